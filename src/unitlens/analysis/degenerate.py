"""Degenerate optima: activation maximization that collapses onto a few bright pixels.

The paper's layer-2 and layer-3 optima are strokes and digit parts. A prototype found many of its DBN
layer-2 optima to be a single bright dot instead (more than half of the image's energy in 10 pixels). The
energy concentration of an image x is the share of its energy, sum of x², held by its k largest-|x| pixels:
k / d for a flat image, 1 for an image with at most k non-zero pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from unitlens.errors import UnitlensError

DEFAULT_K = 10
DEFAULT_THRESHOLD = 0.5


def energy_concentration(x: Tensor, k: int = DEFAULT_K) -> Tensor:
    """Share of each image's energy held by its ``k`` largest-magnitude pixels.

    Args:
        x: (..., d) images, e.g. (U, d) best optima or (U, R, d) every restart.
        k: number of pixels, 1 <= k <= d.
    Returns:
        (...) values in [k / d, 1]; NaN for an all-zero image (it has no energy to share).
    """
    if x.ndim < 1 or x.shape[-1] == 0:
        raise UnitlensError(f"x must have a last dimension of pixels, got shape {tuple(x.shape)}")
    d = int(x.shape[-1])
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d:
        raise UnitlensError(f"k must be an integer in 1..{d} (the image's pixel count), got {k!r}")
    energy = x.square()
    # The k largest |x| are the k largest x²: topk on the squares avoids a second pass.
    top = energy.topk(k, dim=-1).values.sum(dim=-1)
    return top / energy.sum(dim=-1)


@dataclass(frozen=True)
class DegenerateOptima:
    """Energy concentration of U optima and which of them are flagged as degenerate.

    Attributes:
        concentration: (U,) share of each optimum's energy in its ``k`` largest-|x| pixels.
        flagged: (U,) bool, ``concentration > threshold``.
        k: pixels counted.
        threshold: share above which an optimum is flagged.
        n_flagged: flagged units.
        fraction_flagged: ``n_flagged / U``.
        median_concentration: median over units (NaN images ignored).
    """

    concentration: Tensor
    flagged: Tensor
    k: int
    threshold: float
    n_flagged: int
    fraction_flagged: float
    median_concentration: float

    def to_dict(self) -> dict[str, float]:
        """The figures as plain Python numbers, ready for JSON and the report."""
        return {
            "n_units": int(self.concentration.shape[0]),
            "k": self.k,
            "threshold": self.threshold,
            "n_flagged": self.n_flagged,
            "fraction_flagged": self.fraction_flagged,
            "median_concentration": self.median_concentration,
        }


def degenerate_optima(
    x: Tensor, *, k: int = DEFAULT_K, threshold: float = DEFAULT_THRESHOLD
) -> DegenerateOptima:
    """Flag optima whose energy is concentrated in a few pixels.

    Args:
        x: (U, d) one optimum per unit (e.g. ``AMResult.best_x()``).
        k: pixels counted (10 by default, as in the spec).
        threshold: flag when more than this share of the energy lies in the ``k`` pixels (0.5 by default).
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise UnitlensError(f"x must have shape (units, d) with at least one unit, got {tuple(x.shape)}")
    if not 0.0 <= threshold <= 1.0:
        raise UnitlensError(f"threshold is a share of the energy and must lie in [0, 1], got {threshold}")
    c = energy_concentration(x, k)
    flagged = c > threshold
    n_flagged = int(flagged.sum())
    return DegenerateOptima(
        concentration=c,
        flagged=flagged,
        k=k,
        threshold=float(threshold),
        n_flagged=n_flagged,
        fraction_flagged=n_flagged / int(x.shape[0]),
        median_concentration=float(c.to(torch.float64).nanquantile(0.5)),
    )
