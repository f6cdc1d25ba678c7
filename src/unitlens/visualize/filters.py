"""Layer-1 filters, and the unit selection every visualization method shares.

A first-layer unit computes sigmoid(b_i + w_i·x), so its filter w_i (row i of W1, shape (d,)) is its picture:
the paper's Figure 1 shows these rows for layer 1, and activation maximization's layer-1 optimum is
rho · w_i / ||w_i||.

Units are numbered from 0 within a layer (tensor indices); layers are numbered from 1, like the paper.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import SupportsIndex

import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack

Units = Sequence[SupportsIndex] | Tensor | SupportsIndex | None


def unit_indices(stack: LayerStack, layer: int, units: Units = None) -> Tensor:
    """The selected units of ``layer`` as a 1-D int64 tensor on the stack's device.

    Args:
        stack: the model.
        layer: 1-based layer number.
        units: ``None`` (every unit of the layer), one index, a sequence of indices or a 1-D integer tensor;
            0-based, each in ``0..n_units-1``. Order is kept and repeats are allowed.
    Returns:
        (U,) int64 indices.
    Raises:
        UnitlensError: the layer does not exist, or an index is not an integer in range.
    """
    n_units = int(stack.layer(layer).n_hidden)  # stack.layer checks the layer number
    if units is None:
        return torch.arange(n_units, device=stack.device)
    if isinstance(units, Tensor):
        if units.dtype == torch.bool or units.is_floating_point() or units.is_complex() or units.ndim > 1:
            raise UnitlensError(
                f"units must be a 1-D integer tensor of layer {layer}'s unit indices, "
                f"got dtype {units.dtype} and shape {tuple(units.shape)}"
            )
        index = units.reshape(-1).to(device=stack.device, dtype=torch.int64)
    else:
        values = list(units) if isinstance(units, Sequence) else [units]
        try:  # operator.index accepts ints and numpy integers, refuses floats; bools are refused by hand
            if any(isinstance(u, bool) for u in values):
                raise TypeError
            ints = [operator.index(u) for u in values]
        except TypeError:
            raise UnitlensError(
                f"units must be integers (0-based unit indices of layer {layer}), got {units!r}"
            ) from None
        index = torch.tensor(ints, dtype=torch.int64, device=stack.device)
    if index.numel() == 0:
        raise UnitlensError(f"units selects no unit of layer {layer}: pass None for all {n_units} units")
    bad = (index < 0) | (index >= n_units)
    if bool(bad.any()):
        raise UnitlensError(
            f"units must lie in 0..{n_units - 1} (layer {layer} has {n_units} units), "
            f"got {index[bad].tolist()[:5]}"
        )
    return index


@torch.no_grad()
def first_layer_filters(stack: LayerStack, units: Units = None) -> Tensor:
    """The first layer's filters: rows of W1, one per selected unit.

    Args:
        stack: a DBN, an SDAE or any :class:`LayerStack`.
        units: layer-1 units (see :func:`unit_indices`); ``None`` for all.
    Returns:
        (U, d) a copy of W1[units], d the number of inputs; detached from autograd.
    """
    return stack.weight(1).detach()[unit_indices(stack, 1, units)].clone()
