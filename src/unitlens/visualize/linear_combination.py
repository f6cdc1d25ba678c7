"""Method 3: a unit as a linear combination of the filters below (Lee, Ekanadham & Ng 2008).

A layer-2 unit i with weights v = W2[i] over the layer-1 units is drawn as

    image_2(i) = Σ_{k ∈ S_i} v_k · W1[k, :],     S_i = the K layer-1 units with the largest |v_k|,

signed weights kept; biases and sigmoids ignored. Lee et al. (2009) draw layer 3 the same way from the
layer-2 units' images, and the recursion goes on for deeper layers:

    image_1 = W1,    image_j = top_k_mask(W_j, K) @ image_{j-1}       (each a (n_units_j, d) matrix)

so a whole layer costs one matrix product per level. It applies to any stack of affine layers (DBN and SDAE
alike). Its known weaknesses, no rule for K and the nonlinearity ignored, are part of what the comparison
with activation maximization shows.

References:
    H. Lee, C. Ekanadham, A. Ng, Sparse deep belief net model for visual area V2, NIPS 2008.
    H. Lee, R. Grosse, R. Ranganath, A. Ng, Convolutional deep belief networks for scalable unsupervised
    learning of hierarchical representations, ICML 2009.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack
from unitlens.visualize.filters import Units, unit_indices

# The paper's default number of lower-layer units kept per unit.
DEFAULT_K = 100


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UnitlensError(
            f"k (the number of lower-layer units kept per unit) must be an int >= 1, got {k!r}"
        )
    return k


def top_k_mask(weights: Tensor, k: int) -> Tensor:
    """Keep the ``k`` entries of largest magnitude in each row, with their signs; zero the rest.

    Ties in |w| are broken towards the lower column index (a stable sort), so the result is deterministic.

    Args:
        weights: (U, H) weights of U units over H lower units.
        k: entries kept per row; ``k >= H`` keeps every entry.
    Returns:
        (U, H) a new tensor, the masked weights.
    """
    k = _check_k(k)
    if weights.ndim != 2:
        raise UnitlensError(f"top_k_mask expects a (units, inputs) matrix, got shape {tuple(weights.shape)}")
    if k >= weights.shape[1]:
        return weights.clone()
    # A stable descending sort of |w| puts equal magnitudes in index order; topk gives no such promise.
    order = torch.sort(weights.abs(), dim=1, descending=True, stable=True).indices[:, :k]
    masked = torch.zeros_like(weights)
    return masked.scatter_(1, order, weights.gather(1, order))


@torch.no_grad()
def linear_combination(stack: LayerStack, layer: int, units: Units = None, *, k: int = DEFAULT_K) -> Tensor:
    """Images of ``layer``'s units as signed combinations of the K strongest lower-layer images.

    Layer 1 gives the filters themselves (rows of W1). For layer j >= 2 the images of every unit of layers
    2..j-1 are built first (one product each), then the selected units' top-K weights combine them.

    Args:
        stack: a DBN, an SDAE or any :class:`LayerStack`.
        layer: 1-based layer number.
        units: units of ``layer`` (see :func:`~unitlens.visualize.filters.unit_indices`); ``None`` for all.
        k: lower-layer units kept per unit at every level (the paper's K, default 100); K at least the lower
            layer's size keeps them all, giving the plain product W_j ... W2 W1.
    Returns:
        (U, d) one image per selected unit, d the number of inputs; detached from autograd.
    """
    k = _check_k(k)
    index = unit_indices(stack, layer, units)
    images = stack.weight(1).detach()  # (n_1, d): layer 1's images are its filters
    if layer == 1:
        return images[index].clone()
    for level in range(2, layer):
        images = top_k_mask(stack.weight(level).detach(), k) @ images  # (n_level, d)
    return top_k_mask(stack.weight(layer).detach()[index], k) @ images
