"""The real inputs that most activate each unit (beyond the paper: a data-driven check on the other methods).

For unit i of layer j, the n_top examples of a data set with the largest pre-sigmoid activation h_ij(x), the
same activation activation maximization climbs. The data set is scanned in batches with a running top-k, so
memory is O(U · n_top + batch · H) however many examples there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack
from unitlens.visualize.filters import Units, unit_indices


@dataclass(frozen=True)
class Exemplars:
    """Each selected unit's strongest inputs.

    Attributes:
        layer: 1-based layer number.
        units: (U,) int64 unit indices.
        indices: (U, n_top) int64 rows of the scanned inputs, strongest first; ties go to the lower row.
        activations: (U, n_top) their pre-sigmoid activations, descending.
    """

    layer: int
    units: Tensor
    indices: Tensor
    activations: Tensor


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UnitlensError(f"{name} must be an int >= 1, got {value!r}")
    return value


@torch.no_grad()
def top_exemplars(
    stack: LayerStack,
    layer: int,
    x: Tensor,
    units: Units = None,
    *,
    n_top: int = 9,
    batch_size: int = 1000,
) -> Exemplars:
    """The ``n_top`` rows of ``x`` that give each unit its highest pre-sigmoid activation.

    The result equals a stable descending sort of all n activations of each unit, whatever ``batch_size``:
    each batch's activations are appended after the running best (earlier rows first) and sorted stably.

    Args:
        stack: a DBN, an SDAE or any :class:`LayerStack`.
        layer: 1-based layer number.
        x: (n, d) inputs, d the stack's number of inputs; batches are moved to the stack's device and dtype.
        units: units of ``layer`` (see :func:`~unitlens.visualize.filters.unit_indices`); ``None`` for all.
        n_top: examples kept per unit, at most n.
        batch_size: examples per up-pass.
    Returns:
        :class:`Exemplars` with (U, n_top) ``indices`` and ``activations``.
    """
    index = unit_indices(stack, layer, units)
    n_top = _positive_int("n_top", n_top)
    batch_size = _positive_int("batch_size", batch_size)
    if x.ndim != 2 or x.shape[1] != stack.n_inputs:
        raise UnitlensError(
            f"top_exemplars expects inputs of shape (n, {stack.n_inputs}), got {tuple(x.shape)}"
        )
    n = x.shape[0]
    if n_top > n:
        raise UnitlensError(f"n_top = {n_top} exceeds the {n} inputs given")

    n_units = index.numel()
    best_values = torch.empty(n_units, 0, dtype=stack.dtype, device=stack.device)
    best_rows = torch.empty(n_units, 0, dtype=torch.int64, device=stack.device)
    for start in range(0, n, batch_size):
        batch = x[start : start + batch_size].to(device=stack.device, dtype=stack.dtype)
        acts = stack.preactivation(batch, layer).index_select(1, index).t()  # (U, b)
        rows = torch.arange(start, start + batch.shape[0], device=stack.device).expand(n_units, -1)
        values = torch.cat((best_values, acts), dim=1)
        candidates = torch.cat((best_rows, rows), dim=1)
        order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :n_top]
        best_values = values.gather(1, order)
        best_rows = candidates.gather(1, order)
    return Exemplars(layer=layer, units=index, indices=best_rows, activations=best_values)
