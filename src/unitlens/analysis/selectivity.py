"""The selectivity matrix: is each unit's optimal pattern specific to that unit?

Feed unit i's optimum x*_i to the layer and record the post-sigmoid activation of every unit j studied:
M[i, j] = sigmoid(preact_j(x*_i)), a (U patterns x U units) matrix, the paper's inset next to Figure 1.

**Normalisation.** The paper normalises "across columns in order to eliminate the effect of units that are
activated for very many patterns". Each column j is divided by its **sum** over the patterns, so N[i, j] is
unit j's share of its total response that pattern i earns: a unit on for every pattern spreads its column
evenly (1/U per cell), a selective unit puts most of its column on its own pattern. Dividing by the column's
maximum instead, as unitlens first did, makes every diagonal exactly 1 (x*_j maximizes unit j over the
patterns too) and the row test true by construction: on the quick run that "held" at 100% for every stack
and for the shuffled control, while the largest off-diagonal entry of MNIST SDAE layer 3 was >= 0.95 in 33
of 36 rows. With the column sum, nothing forces the row test: N[i, i] > N[i, j] compares unit i's share
with unit j's share.

**Margins.** Row i's margin is N[i, i] minus the largest other entry of the row: > 0 when pattern i earns
its own unit's response more than any other unit's, 0 for a duplicated unit (its twin's column and row
are the same), < 0 when another unit claims the pattern. The claim is judged on the median margin beside
the shuffled-weights control and beside the same matrix built from each unit's top data-set exemplar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from unitlens.analysis.restarts import AMResultLike
from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack


def check_units(stack: LayerStack, layer: int, units: Tensor, *, unique: bool = True) -> Tensor:
    """Validate unit indices of ``layer`` (1-based) and return them as int64 on the stack's device.

    Args:
        units: (U,) integer indices into the layer's units, U >= 1.
        unique: reject repeated indices (a repeated unit would tie with itself).
    Raises:
        UnitlensError: wrong shape or dtype, an index out of range, or a repeat when ``unique``.
    """
    n_hidden = int(stack.layer(layer).n_hidden)  # checks the layer number
    if not isinstance(units, Tensor) or units.ndim != 1 or units.numel() == 0:
        shape = tuple(units.shape) if isinstance(units, Tensor) else type(units).__name__
        raise UnitlensError(f"units must be a non-empty 1-D tensor of unit indices, got {shape}")
    if units.dtype.is_floating_point or units.dtype.is_complex or units.dtype == torch.bool:
        raise UnitlensError(f"units must hold integer indices, got dtype {units.dtype}")
    if bool(((units < 0) | (units >= n_hidden)).any()):
        raise UnitlensError(f"units of layer {layer} must lie in 0..{n_hidden - 1}, got {units.tolist()}")
    if unique and torch.unique(units).numel() != units.numel():
        raise UnitlensError(f"units must not repeat, got {units.tolist()}")
    return units.to(device=stack.device, dtype=torch.long)


def check_inputs(stack: LayerStack, name: str, x: Tensor, n_rows: int | None = None) -> Tensor:
    """Validate a (n, n_inputs) batch of inputs and move it to the stack's device and dtype."""
    d = stack.n_inputs
    if (
        not isinstance(x, Tensor)
        or x.ndim != 2
        or x.shape[1] != d
        or (n_rows is not None and x.shape[0] != n_rows)
    ):
        rows = "n" if n_rows is None else str(n_rows)
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise UnitlensError(f"{name} must have shape ({rows}, {d}) (one input per row), got {shape}")
    return x.to(device=stack.device, dtype=stack.dtype)


def selectivity_matrix(stack: LayerStack, layer: int, units: Tensor, x_star: Tensor) -> Tensor:
    """Post-sigmoid responses of the studied units to each unit's optimum.

    Args:
        stack: the model; lower layers are computed by its deterministic up-pass.
        layer: the layer (1-based).
        units: (U,) distinct unit indices of ``layer``.
        x_star: (U, d) row i is unit ``units[i]``'s optimum (e.g. the best restart's x*).
    Returns:
        (U, U) M with M[i, j] = sigmoid(preact_{units[j]}(x_star[i])): rows are patterns, columns units.
    """
    idx = check_units(stack, layer, units)
    x = check_inputs(stack, "x_star", x_star, n_rows=int(idx.shape[0]))
    with torch.no_grad():
        return torch.sigmoid(stack.preactivation(x, layer)[:, idx])


def normalise_columns(m: Tensor) -> Tensor:
    """Divide each column of ``m`` (P, U) by its sum over the P patterns; an all-zero column stays zero.

    Post-sigmoid responses are positive, but a float32 sigmoid below about -104 underflows to 0, so a unit
    that never responds would otherwise give 0 / 0.
    """
    col_sum = m.sum(dim=0)
    return m / torch.where(col_sum > 0, col_sum, torch.ones_like(col_sum))


# A margin above this counts as a diagonal row: float rounding of a duplicated unit's shares stays far below.
MARGIN_EPS = 1e-6


@dataclass(frozen=True)
class Selectivity:
    """The selectivity matrix of U units and its figures.

    Attributes:
        matrix: (U, U) raw post-sigmoid responses, rows patterns, columns units.
        normalised: (U, U) ``matrix`` with each column divided by its sum (the module docstring says why).
        margin: (U,) per row, the normalised diagonal entry minus the row's largest other entry.
        always_on: (U,) bool, units whose raw response is exactly 1 to every pattern (saturated sigmoid).
        n_diagonal: rows whose margin exceeds ``MARGIN_EPS`` (the diagonal is the row's only maximum).
        fraction_diagonal: ``n_diagonal / U``.
        median_margin, mean_margin: over the rows.
        mean_diagonal: mean of the normalised diagonal.
        mean_off_diagonal: mean of the normalised off-diagonal entries.
        diagonal_ratio: ``mean_diagonal / mean_off_diagonal`` (+inf when every off-diagonal entry is 0).
    """

    matrix: Tensor
    normalised: Tensor
    margin: Tensor
    always_on: Tensor
    n_diagonal: int
    fraction_diagonal: float
    median_margin: float
    mean_margin: float
    mean_diagonal: float
    mean_off_diagonal: float
    diagonal_ratio: float

    @property
    def n_units(self) -> int:
        return int(self.matrix.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain Python numbers (no matrices), ready for JSON and the report."""
        return {
            "normalisation": "column_sum",
            "n_units": self.n_units,
            "n_diagonal": self.n_diagonal,
            "n_always_on": int(self.always_on.sum()),
            "fraction_diagonal": self.fraction_diagonal,
            "median_margin": self.median_margin,
            "mean_margin": self.mean_margin,
            "min_margin": float(self.margin.min()),
            "mean_diagonal": self.mean_diagonal,
            "mean_off_diagonal": self.mean_off_diagonal,
            "diagonal_ratio": self.diagonal_ratio,
        }

    def describe(self) -> str:
        """One sentence for people."""
        text = (
            f"{self.n_diagonal}/{self.n_units} rows peak on the diagonal; median margin "
            f"{self.median_margin:.3g}, mean off-diagonal {self.mean_off_diagonal:.3g} (columns sum to 1)"
        )
        n_on = int(self.always_on.sum())
        if n_on:
            text += f"; {n_on} saturated always-on unit{'s' if n_on != 1 else ''}"
        return text


def selectivity_from_matrix(matrix: Tensor) -> Selectivity:
    """The figures of a selectivity matrix already computed.

    Args:
        matrix: (U, U) non-negative responses, rows patterns, columns units, U >= 2; row i's pattern is
            unit i's optimum (or any pattern chosen for unit i, e.g. its top data-set exemplar).
    """
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise UnitlensError(
            f"a selectivity matrix must be square with at least 2 units, got {tuple(matrix.shape)}"
        )
    if bool((matrix < 0).any()) or not bool(torch.isfinite(matrix).all()):
        raise UnitlensError("a selectivity matrix holds post-sigmoid responses and must be finite, >= 0")
    u = int(matrix.shape[0])
    normalised = normalise_columns(matrix)
    n64 = normalised.to(torch.float64)
    diag = n64.diagonal()
    eye = torch.eye(u, dtype=torch.bool, device=matrix.device)
    off_max = n64.masked_fill(eye, float("-inf")).amax(dim=1)
    margin = diag - off_max
    mean_diag = float(diag.mean())
    mean_off = (float(n64.sum()) - float(diag.sum())) / (u * (u - 1))
    ratio = mean_diag / mean_off if mean_off > 0 else float("inf")
    n_diagonal = int((margin > MARGIN_EPS).sum())
    return Selectivity(
        matrix=matrix,
        normalised=normalised,
        margin=margin.to(matrix.dtype),
        always_on=(matrix == 1).all(dim=0),
        n_diagonal=n_diagonal,
        fraction_diagonal=n_diagonal / u,
        median_margin=float(margin.median()),
        mean_margin=float(margin.mean()),
        mean_diagonal=mean_diag,
        mean_off_diagonal=mean_off,
        diagonal_ratio=ratio,
    )


def selectivity(stack: LayerStack, layer: int, units: Tensor, x_star: Tensor) -> Selectivity:
    """Selectivity matrix and figures of ``units`` of ``layer`` given their optima ``x_star`` (U, d)."""
    return selectivity_from_matrix(selectivity_matrix(stack, layer, units, x_star))


def selectivity_of(stack: LayerStack, layer: int, result: AMResultLike) -> Selectivity:
    """:func:`selectivity` of an activation-maximization result's units and best restarts."""
    return selectivity(stack, layer, result.units, result.best_x())
