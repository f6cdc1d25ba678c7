"""Agreement between methods, and between an optimum and the data.

- :func:`pearson_rows`: the Pearson correlation of two images of the same unit, for every unit at once
  (activation maximization against the linear combination of filters, or against the mean of clamped
  samples; the spec measured 0.66 to 0.70 for the linear combination at layer 2).
- :func:`activation_vs_data`: how far a unit's optimum drives it beyond anything in the data set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from unitlens.analysis.restarts import AMResultLike
from unitlens.analysis.selectivity import check_inputs, check_units
from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack


def pearson_rows(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of row u of ``a`` with row u of ``b``, for every u.

    A constant row has no variance and its correlation is undefined: it is returned as NaN (as
    ``numpy.corrcoef`` does), never as 0, so that a summary cannot mistake it for "no agreement".
    :func:`summarize_correlations` leaves NaNs out and counts them.

    Args:
        a: (U, d) one image per unit.
        b: (U, d) the other method's image of the same units.
    Returns:
        (U,) correlations in [-1, 1], NaN where either row is constant.
    """
    if a.ndim != 2 or a.shape != b.shape or a.shape[1] < 2:
        raise UnitlensError(
            f"pearson_rows needs two (units, d) tensors of the same shape with d >= 2, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    ac = a - a.mean(dim=1, keepdim=True)
    bc = b - b.mean(dim=1, keepdim=True)
    r = (ac * bc).sum(dim=1) / (ac.norm(dim=1) * bc.norm(dim=1))
    # Test constancy on the raw rows: after subtracting a rounded mean, a constant float32 row can keep
    # residues of 1e-8 whose "correlation" would be arbitrary.
    constant = (a.amax(dim=1) == a.amin(dim=1)) | (b.amax(dim=1) == b.amin(dim=1))
    return torch.where(constant, torch.full_like(r, float("nan")), r.clamp(-1.0, 1.0))


@dataclass(frozen=True)
class CorrelationSummary:
    """Distribution over units of a per-unit correlation (NaNs left out and counted).

    Attributes:
        n_units: units given.
        n_undefined: units whose correlation is NaN (a constant image).
        median, q25, q75, min, max: over the defined correlations (linear interpolation between order
            statistics, as ``numpy.percentile``); NaN when none is defined.
        mean: mean of the defined correlations.
    """

    n_units: int
    n_undefined: int
    median: float
    q25: float
    q75: float
    min: float
    max: float
    mean: float

    def to_dict(self) -> dict[str, float]:
        """Plain Python numbers, ready for JSON and the report."""
        return {
            "n_units": self.n_units,
            "n_undefined": self.n_undefined,
            "median": self.median,
            "q25": self.q25,
            "q75": self.q75,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
        }


def summarize_correlations(r: Tensor) -> CorrelationSummary:
    """Median, quartiles and range of per-unit correlations ``r`` (U,), NaNs excluded."""
    if r.ndim != 1 or r.numel() == 0:
        raise UnitlensError(f"correlations must be a non-empty (units,) tensor, got {tuple(r.shape)}")
    defined = r[~torch.isnan(r)].to(torch.float64)
    n_undefined = int(r.numel() - defined.numel())
    if defined.numel() == 0:
        nan = math.nan
        return CorrelationSummary(int(r.numel()), n_undefined, nan, nan, nan, nan, nan, nan)
    q = defined.quantile(torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64, device=defined.device))
    return CorrelationSummary(
        n_units=int(r.numel()),
        n_undefined=n_undefined,
        median=float(q[1]),
        q25=float(q[0]),
        q75=float(q[2]),
        min=float(defined.min()),
        max=float(defined.max()),
        mean=float(defined.mean()),
    )


def method_agreement(a: Tensor, b: Tensor) -> CorrelationSummary:
    """:func:`summarize_correlations` of :func:`pearson_rows` ``(a, b)``: two methods' images, (U, d) each."""
    return summarize_correlations(pearson_rows(a, b))


@dataclass(frozen=True)
class ActivationVsData:
    """Each unit's pre-sigmoid activation at its optimum beside its largest over a data set.

    A ratio of two pre-sigmoid activations only reads as "x* reaches this multiple of the best example"
    when the denominator is positive: with a negative data maximum the ratio flips sign and its size
    means nothing. So the ratio is defined only where the data maximum is > 0 (NaN elsewhere), and the
    difference, meaningful for every unit, is reported beside it.

    Attributes:
        x_star_activation: (U,) pre-sigmoid activation of unit ``units[i]`` at ``x_star[i]``.
        data_max: (U,) the unit's largest pre-sigmoid activation over the data set.
        data_argmax: (U,) int64 index of the example that reaches it.
        data_min: (U,) the unit's smallest pre-sigmoid activation over the data set.
        ratio: (U,) ``x_star_activation / data_max`` where ``data_max > 0``, else NaN.
        difference: (U,) ``x_star_activation - data_max``: > 0 when the optimum beats every example.
    """

    x_star_activation: Tensor
    data_max: Tensor
    data_argmax: Tensor
    data_min: Tensor
    ratio: Tensor
    difference: Tensor

    def to_dict(self) -> dict[str, float]:
        """Summary figures as plain Python numbers (medians over units; NaN ratios left out and counted)."""
        n = int(self.difference.shape[0])
        defined = self.ratio[~torch.isnan(self.ratio)].to(torch.float64)
        return {
            "n_units": n,
            "median_difference": float(self.difference.to(torch.float64).quantile(0.5)),
            "fraction_above_data": float((self.difference > 0).to(torch.float64).mean()),
            "median_ratio": float(defined.quantile(0.5)) if defined.numel() else math.nan,
            "n_ratio_undefined": n - int(defined.numel()),
        }


def activation_vs_data(
    stack: LayerStack, layer: int, units: Tensor, x_star: Tensor, data: Tensor, batch_size: int = 1000
) -> ActivationVsData:
    """Compare each unit's activation at its optimum with its maximum over ``data``.

    Args:
        stack: the model; layers below ``layer`` use its deterministic up-pass.
        layer: the layer (1-based).
        units: (U,) unit indices of ``layer`` (repeats allowed).
        x_star: (U, d) row i is unit ``units[i]``'s optimum.
        data: (n, d) examples, n >= 1, processed ``batch_size`` at a time.
        batch_size: examples per forward pass; bounds memory at batch_size x (largest layer) values.
    Returns:
        An :class:`ActivationVsData`.
    """
    idx = check_units(stack, layer, units, unique=False)
    x = check_inputs(stack, "x_star", x_star, n_rows=int(idx.shape[0]))
    if (
        not isinstance(data, Tensor)
        or data.ndim != 2
        or data.shape[0] == 0
        or data.shape[1] != stack.n_inputs
    ):
        shape = tuple(data.shape) if isinstance(data, Tensor) else type(data).__name__
        raise UnitlensError(f"data must be a non-empty (n, {stack.n_inputs}) tensor, got {shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UnitlensError(f"batch_size must be a positive integer, got {batch_size!r}")
    u = int(idx.shape[0])
    best = torch.full((u,), float("-inf"), dtype=stack.dtype, device=stack.device)
    arg = torch.zeros(u, dtype=torch.long, device=stack.device)
    lowest = torch.full((u,), float("inf"), dtype=stack.dtype, device=stack.device)
    with torch.no_grad():
        at_star = stack.preactivation(x, layer)[torch.arange(u, device=stack.device), idx]
        for start in range(0, int(data.shape[0]), batch_size):
            batch = data[start : start + batch_size].to(device=stack.device, dtype=stack.dtype)
            pre = stack.preactivation(batch, layer)[:, idx]  # (b, U)
            vals, where = pre.max(dim=0)
            lowest = torch.minimum(lowest, pre.amin(dim=0))
            # Strict >: the first example reaching the maximum keeps it, as argmax over the whole set would.
            better = vals > best
            best = torch.where(better, vals, best)
            arg = torch.where(better, where + start, arg)
    positive = best > 0
    ratio = torch.where(positive, at_star / torch.where(positive, best, torch.ones_like(best)), math.nan)
    return ActivationVsData(
        x_star_activation=at_star,
        data_max=best,
        data_argmax=arg,
        data_min=lowest,
        ratio=ratio,
        difference=at_star - best,
    )


def activation_vs_data_of(
    stack: LayerStack, layer: int, result: AMResultLike, data: Tensor, batch_size: int = 1000
) -> ActivationVsData:
    """:func:`activation_vs_data` of an activation-maximization result's units and best restarts."""
    return activation_vs_data(stack, layer, result.units, result.best_x(), data, batch_size)
