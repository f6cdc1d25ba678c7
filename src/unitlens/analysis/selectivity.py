"""The selectivity matrix: is each unit's optimal pattern specific to that unit?

Feed unit i's optimum x*_i to the layer and record the post-sigmoid activation of every unit j studied:
M[i, j] = sigmoid(preact_j(x*_i)), a (U patterns x U units) matrix. Each column is divided by its maximum,
so every unit's strongest response is 1. A strong diagonal means each pattern excites its own unit more than
it excites the others (the paper's inset next to Figure 1).

float32 sigmoids saturate to exactly 1 above about 17, so a unit that is always on has a column of ones
after normalisation and ties with the diagonal of every row. A row counts as diagonal when its diagonal
entry equals the row maximum, ties included, and the number of rows counted only thanks to a tie is
reported beside the fraction, so a reader can see how much of the diagonal the ties make.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """Divide each column of ``m`` (P, U) by its maximum; a column that is all zero stays zero.

    Post-sigmoid responses are positive, but a float32 sigmoid below about -104 underflows to 0, so a unit
    that never responds would otherwise give 0 / 0.
    """
    col_max = m.amax(dim=0)
    return m / torch.where(col_max > 0, col_max, torch.ones_like(col_max))


@dataclass(frozen=True)
class Selectivity:
    """The selectivity matrix of U units and its figures.

    Attributes:
        matrix: (U, U) raw post-sigmoid responses, rows patterns, columns units.
        normalised: (U, U) ``matrix`` with each column divided by its maximum.
        row_is_diagonal: (U,) bool, the row's diagonal entry equals the row maximum (ties included).
        row_tied: (U,) bool, counted as diagonal only because of a tie: another entry of the row equals the
            diagonal one (typically a saturated, always-on unit).
        always_on: (U,) bool, units whose raw response is exactly 1 to every pattern (saturated sigmoid).
        n_diagonal: rows counted as diagonal, ties included.
        n_tied: of those, rows counted only thanks to a tie.
        fraction_diagonal: ``n_diagonal / U``.
        fraction_strict: rows whose diagonal is strictly the largest entry, divided by U.
        mean_diagonal: mean of the normalised diagonal.
        mean_off_diagonal: mean of the normalised off-diagonal entries.
        diagonal_ratio: ``mean_diagonal / mean_off_diagonal`` (+inf when every off-diagonal entry is 0).
    """

    matrix: Tensor
    normalised: Tensor
    row_is_diagonal: Tensor
    row_tied: Tensor
    always_on: Tensor
    n_diagonal: int
    n_tied: int
    fraction_diagonal: float
    fraction_strict: float
    mean_diagonal: float
    mean_off_diagonal: float
    diagonal_ratio: float

    @property
    def n_units(self) -> int:
        return int(self.matrix.shape[0])

    def to_dict(self) -> dict[str, float]:
        """The figures as plain Python numbers (no matrices), ready for JSON and the report."""
        return {
            "n_units": self.n_units,
            "n_diagonal": self.n_diagonal,
            "n_tied": self.n_tied,
            "n_always_on": int(self.always_on.sum()),
            "fraction_diagonal": self.fraction_diagonal,
            "fraction_strict": self.fraction_strict,
            "mean_diagonal": self.mean_diagonal,
            "mean_off_diagonal": self.mean_off_diagonal,
            "diagonal_ratio": self.diagonal_ratio,
        }

    def describe(self) -> str:
        """One sentence for people, naming the ties."""
        text = f"{self.n_diagonal}/{self.n_units} rows peak on the diagonal"
        if self.n_tied:
            n_on = int(self.always_on.sum())
            text += (
                f" ({self.n_tied} of them only by a tie"
                + (f" with {n_on} saturated always-on unit{'s' if n_on != 1 else ''}" if n_on else "")
                + ")"
            )
        return text + f"; mean diagonal / mean off-diagonal = {self.diagonal_ratio:.3g}"


def selectivity_from_matrix(matrix: Tensor) -> Selectivity:
    """The figures of a selectivity matrix already computed.

    Args:
        matrix: (U, U) non-negative responses, rows patterns, columns units, U >= 2; row i's pattern is
            unit i's optimum.
    """
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise UnitlensError(
            f"a selectivity matrix must be square with at least 2 units, got {tuple(matrix.shape)}"
        )
    if bool((matrix < 0).any()):
        raise UnitlensError("a selectivity matrix holds post-sigmoid responses and must be non-negative")
    u = int(matrix.shape[0])
    normalised = normalise_columns(matrix)
    diag = normalised.diagonal()
    eye = torch.eye(u, dtype=torch.bool, device=matrix.device)
    # Exact comparisons on purpose: a saturated column normalises to exactly 1.0, as does x / x.
    off_max = normalised.masked_fill(eye, float("-inf")).amax(dim=1)
    row_is_diagonal = diag >= off_max
    strict = diag > off_max
    row_tied = row_is_diagonal & ~strict
    mean_diag = float(diag.to(torch.float64).mean())
    off_sum = float(normalised.to(torch.float64).sum()) - float(diag.to(torch.float64).sum())
    mean_off = off_sum / (u * (u - 1))
    ratio = mean_diag / mean_off if mean_off > 0 else float("inf")
    n_diagonal = int(row_is_diagonal.sum())
    return Selectivity(
        matrix=matrix,
        normalised=normalised,
        row_is_diagonal=row_is_diagonal,
        row_tied=row_tied,
        always_on=(matrix == 1).all(dim=0),
        n_diagonal=n_diagonal,
        n_tied=int(row_tied.sum()),
        fraction_diagonal=n_diagonal / u,
        fraction_strict=int(strict.sum()) / u,
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
