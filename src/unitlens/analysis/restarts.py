"""Agreement across activation-maximization restarts: is a unit's activation function unimodal?

The paper runs 9 restarts per unit from random starts and observes that most of them reach roughly the same
pattern and activation ("the activation function looks unimodal"). This module turns that into numbers, per
unit and per layer:

- the mean pairwise cosine similarity of the R restarts' optima x* (the off-diagonal mean of the R x R
  cosine matrix);
- how many restarts lie within a chosen cosine similarity of the best restart;
- the coefficient of variation of the final activations (std / |mean|);
- the steps taken (median, max) and how many restarts were stopped by the step cap rather than converging.

Everything is batched over units: one (U, R, R) matrix product gives every unit's cosine matrix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.visualize.activation_maximization import best_restart

DEFAULT_THRESHOLD = 0.9


class AMResultLike(Protocol):
    """What the analyses read from an activation-maximization result (``visualize.AMResult`` has it)."""

    @property
    def units(self) -> Tensor: ...  # (U,) int64 unit indices

    @property
    def x(self) -> Tensor: ...  # (U, R, d) every restart's final input

    @property
    def activation(self) -> Tensor: ...  # (U, R) final pre-sigmoid activation

    @property
    def steps(self) -> Tensor: ...  # (U, R) int64 steps taken

    @property
    def converged(self) -> Tensor: ...  # (U, R) bool, False where the step cap stopped the restart

    @property
    def best(self) -> Tensor: ...  # (U,) index of the best restart

    def best_x(self) -> Tensor: ...  # (U, d)


def _check_restarts(x: Tensor) -> None:
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] < 2 or x.shape[2] == 0:
        raise UnitlensError(
            f"restart optima x must have shape (units, restarts >= 2, d), got {tuple(x.shape)}: "
            "agreement across restarts needs at least two restarts per unit"
        )


def _check_per_restart(name: str, t: Tensor, shape: tuple[int, int]) -> None:
    if tuple(t.shape) != shape:
        raise UnitlensError(f"{name} must have shape (units, restarts) = {shape}, got {tuple(t.shape)}")


def pairwise_cosine(x: Tensor) -> Tensor:
    """Cosine similarity of every pair of restarts, per unit.

    Args:
        x: (U, R, d) the R restarts' optima of each of U units.
    Returns:
        (U, R, R) cosine matrices, clamped to [-1, 1]. A zero vector has cosine 0 with everything (itself
        included): it points nowhere.
    """
    _check_restarts(x)
    xn = F.normalize(x, dim=-1)
    # Rounding can push the cosine of a vector with itself to 1 + 1e-7; clamping keeps the range honest.
    return torch.bmm(xn, xn.transpose(1, 2)).clamp_(-1.0, 1.0)


def mean_pairwise_cosine(x: Tensor) -> Tensor:
    """Mean cosine similarity over the R (R - 1) ordered pairs of distinct restarts, per unit.

    Args:
        x: (U, R, d) restart optima, R >= 2.
    Returns:
        (U,) the off-diagonal mean of each unit's R x R cosine matrix: 1 when all restarts point the same
        way, 0 when they are mutually orthogonal.
    """
    cos = pairwise_cosine(x)
    r = cos.shape[1]
    off_diagonal_sum = cos.sum(dim=(1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(dim=1)
    return off_diagonal_sum / (r * (r - 1))


def cosine_to_best(x: Tensor, best: Tensor) -> Tensor:
    """Cosine similarity of every restart with its unit's best restart.

    Args:
        x: (U, R, d) restart optima.
        best: (U,) index of the best restart of each unit.
    Returns:
        (U, R); the entry of the best restart itself is 1 (0 for a zero vector).
    """
    _check_restarts(x)
    u, r, _ = x.shape
    if best.shape != (u,) or best.dtype.is_floating_point or best.dtype == torch.bool:
        raise UnitlensError(
            f"best must be an integer tensor of shape ({u},), got {best.dtype} {tuple(best.shape)}"
        )
    if bool(((best < 0) | (best >= r)).any()):
        raise UnitlensError(f"best restart indices must lie in 0..{r - 1}, got {best.tolist()}")
    xn = F.normalize(x, dim=-1)
    xb = xn[torch.arange(u, device=x.device), best.to(device=x.device, dtype=torch.long)]  # (U, d)
    return torch.einsum("urd,ud->ur", xn, xb).clamp_(-1.0, 1.0)


# Restarts whose final activations lie within this (relative) of each other reached the same height. Below
# it, restarts with other x* sit on one plateau (``unitlens.analysis.flat``); above it, at separate maxima.
SAME_HEIGHT = 1e-3


def activation_spread(activation: Tensor) -> Tensor:
    """(U, R) final activations -> (U,) float64 (max - min) / max(|max|, 1): how far apart the restarts ended.

    Relative to the best activation, or absolute below 1, so activations near 0 do not inflate it.
    """
    if activation.ndim != 2 or activation.shape[1] < 1:
        raise UnitlensError(f"activation must have shape (units, restarts), got {tuple(activation.shape)}")
    a = activation.to(torch.float64)
    top = a.amax(dim=1)
    return (top - a.amin(dim=1)) / top.abs().clamp_min(1.0)


def activation_cv(activation: Tensor) -> Tensor:
    """Coefficient of variation of each unit's final activations across restarts.

    CV = std / |mean|, with the population standard deviation (divisor R: the R restarts are the whole set
    being described, not a sample). Defined as 0 when all restarts reach exactly the same activation (even a
    zero one), and +inf when the mean is 0 but the activations differ.

    Args:
        activation: (U, R) final pre-sigmoid activations.
    Returns:
        (U,) coefficients of variation.
    """
    if activation.ndim != 2 or activation.shape[1] < 1:
        raise UnitlensError(f"activation must have shape (units, restarts), got {tuple(activation.shape)}")
    std = activation.std(dim=1, correction=0)
    cv = std / activation.mean(dim=1).abs()
    return torch.where(std == 0, torch.zeros_like(cv), cv)


@dataclass(frozen=True)
class RestartAgreement:
    """Per-unit agreement of the R restarts of U units.

    Attributes:
        mean_cosine: (U,) mean pairwise cosine similarity of the restarts' x*.
        cosine_to_best: (U, R) cosine of each restart's x* with the best restart's.
        best: (U,) int64 index of the best (highest-activation) restart.
        n_within: (U,) int64 restarts whose cosine with the best restart is >= ``threshold``, the best restart
            itself included (so R means all restarts agree with the best, 1 that none other does).
        threshold: the cosine similarity used for ``n_within``.
        activation_cv: (U,) coefficient of variation of the final activations (see :func:`activation_cv`).
        activation_spread: (U,) how far apart the restarts' final activations are (:func:`activation_spread`).
        steps_median: (U,) median steps taken (float: the mean of the two middle values when R is even).
        steps_max: (U,) int64 most steps taken by any restart.
        n_capped: (U,) int64 restarts stopped by the step cap instead of the stopping rule.
    """

    mean_cosine: Tensor
    cosine_to_best: Tensor
    best: Tensor
    n_within: Tensor
    threshold: float
    activation_cv: Tensor
    activation_spread: Tensor
    steps_median: Tensor
    steps_max: Tensor
    n_capped: Tensor

    @property
    def n_units(self) -> int:
        return int(self.mean_cosine.shape[0])

    @property
    def n_restarts(self) -> int:
        return int(self.cosine_to_best.shape[1])

    def subset(self, keep: Tensor) -> RestartAgreement:
        """The same figures for the units where ``keep`` (U,) bool is True (e.g. all but flagged units)."""
        if keep.dtype != torch.bool or tuple(keep.shape) != (self.n_units,):
            raise UnitlensError(
                f"keep must be a ({self.n_units},) bool tensor, got {keep.dtype} {tuple(keep.shape)}"
            )
        if not bool(keep.any()):
            raise UnitlensError("keep selects no unit: a summary needs at least one")
        k = keep.to(self.mean_cosine.device)
        return dataclasses.replace(
            self,
            **{
                f.name: getattr(self, f.name)[k]
                for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), Tensor)
            },
        )


def restart_agreement(
    x: Tensor,
    activation: Tensor,
    steps: Tensor,
    converged: Tensor,
    *,
    best: Tensor | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> RestartAgreement:
    """Per-unit agreement across restarts.

    Args:
        x: (U, R, d) every restart's final input x*.
        activation: (U, R) final pre-sigmoid activations.
        steps: (U, R) integer steps taken.
        converged: (U, R) bool, True where the stopping rule stopped the restart, False where the step cap
            did.
        best: (U,) index of each unit's best restart; ``None`` takes the highest final activation.
        threshold: cosine similarity with the best restart that counts as "the same pattern".
    Returns:
        A :class:`RestartAgreement`.
    """
    _check_restarts(x)
    shape = (int(x.shape[0]), int(x.shape[1]))
    _check_per_restart("activation", activation, shape)
    _check_per_restart("steps", steps, shape)
    _check_per_restart("converged", converged, shape)
    if converged.dtype != torch.bool:
        raise UnitlensError(f"converged must be a bool tensor, got {converged.dtype}")
    if not -1.0 <= threshold <= 1.0:
        raise UnitlensError(f"threshold is a cosine similarity and must lie in [-1, 1], got {threshold}")
    if best is None:
        best = best_restart(activation)
    to_best = cosine_to_best(x, best)
    steps_f = steps.to(torch.float64)
    return RestartAgreement(
        mean_cosine=mean_pairwise_cosine(x),
        cosine_to_best=to_best,
        best=best.to(torch.long),
        n_within=(to_best >= threshold).sum(dim=1),
        threshold=float(threshold),
        activation_cv=activation_cv(activation),
        activation_spread=activation_spread(activation),
        steps_median=steps_f.quantile(0.5, dim=1),
        steps_max=steps.amax(dim=1).to(torch.long),
        n_capped=(~converged).sum(dim=1),
    )


def restart_agreement_of(result: AMResultLike, *, threshold: float = DEFAULT_THRESHOLD) -> RestartAgreement:
    """:func:`restart_agreement` of an activation-maximization result, using its own best restart."""
    return restart_agreement(
        result.x, result.activation, result.steps, result.converged, best=result.best, threshold=threshold
    )


@dataclass(frozen=True)
class RestartSummary:
    """One layer's restart agreement in a few numbers (the figures of the paper's claim 2).

    Attributes:
        n_units, n_restarts: U and R.
        threshold: the cosine above which a unit's restarts count as agreeing.
        median_mean_cosine: median over units of the mean pairwise cosine.
        fraction_above: fraction of units whose mean pairwise cosine is > ``threshold``.
        median_fraction_within: median over units of the fraction of restarts within the per-unit
            threshold of the best restart (:attr:`RestartAgreement.threshold`).
        median_activation_cv: median over units of the activations' coefficient of variation.
        max_activation_cv: the largest coefficient of variation.
        median_steps: median over units of the per-unit median steps.
        max_steps: most steps taken by any restart.
        n_units_capped: units with at least one restart stopped by the step cap.
        n_restarts_capped: restarts stopped by the step cap, all units together.
        n_below: units whose mean pairwise cosine is at or below ``threshold`` (restarts disagree).
        n_separate_maxima: of those, units whose restarts ended more than ``SAME_HEIGHT`` apart in activation:
            separate local maxima of different heights, i.e. the unit's landscape is multimodal (the rest
            reached one height by different inputs: a plateau or ridge).
    """

    n_units: int
    n_restarts: int
    threshold: float
    median_mean_cosine: float
    fraction_above: float
    median_fraction_within: float
    median_activation_cv: float
    max_activation_cv: float
    median_steps: float
    max_steps: int
    n_units_capped: int
    n_restarts_capped: int
    n_below: int
    n_separate_maxima: int

    def to_dict(self) -> dict[str, float]:
        """Plain Python numbers, ready for JSON and the report."""
        return {
            "n_units": self.n_units,
            "n_restarts": self.n_restarts,
            "threshold": self.threshold,
            "median_mean_cosine": self.median_mean_cosine,
            "fraction_above": self.fraction_above,
            "median_fraction_within": self.median_fraction_within,
            "median_activation_cv": self.median_activation_cv,
            "max_activation_cv": self.max_activation_cv,
            "median_steps": self.median_steps,
            "max_steps": self.max_steps,
            "n_units_capped": self.n_units_capped,
            "n_restarts_capped": self.n_restarts_capped,
            "n_below": self.n_below,
            "n_separate_maxima": self.n_separate_maxima,
        }


def _median(t: Tensor) -> float:
    # quantile interpolates between the two middle values; torch.median would return the lower one.
    return float(t.to(torch.float64).quantile(0.5))


def summarize_restarts(
    agreement: RestartAgreement, *, threshold: float = DEFAULT_THRESHOLD
) -> RestartSummary:
    """Reduce per-unit agreement to one layer's figures.

    Args:
        agreement: per-unit figures from :func:`restart_agreement`.
        threshold: a unit "agrees" when its mean pairwise cosine is strictly above this.
    """
    if not -1.0 <= threshold <= 1.0:
        raise UnitlensError(f"threshold is a cosine similarity and must lie in [-1, 1], got {threshold}")
    a = agreement
    below = a.mean_cosine <= threshold
    return RestartSummary(
        n_units=a.n_units,
        n_restarts=a.n_restarts,
        threshold=float(threshold),
        median_mean_cosine=_median(a.mean_cosine),
        fraction_above=float((a.mean_cosine > threshold).to(torch.float64).mean()),
        median_fraction_within=_median(a.n_within.to(torch.float64) / a.n_restarts),
        median_activation_cv=_median(a.activation_cv),
        max_activation_cv=float(a.activation_cv.max()),
        median_steps=_median(a.steps_median),
        max_steps=int(a.steps_max.max()),
        n_units_capped=int((a.n_capped > 0).sum()),
        n_restarts_capped=int(a.n_capped.sum()),
        n_below=int(below.sum()),
        n_separate_maxima=int((below & (a.activation_spread > SAME_HEIGHT)).sum()),
    )
