"""Dead and flat units: units whose activation maximization has nothing to show.

A unit whose AM optimum is drawn beside the others looks like a feature even when it computes nothing. Two
kinds of unit are flagged, each from evidence of its own:

- **dead**: the unit cannot be moved. Its gradient at every AM start is at most ``DEAD_GRADIENT`` of the
  layer's median (the starts are the same random inputs every unit gets), or its pre-sigmoid activation
  varies by at most ``DEAD_RANGE`` over the whole data set (its sigmoid output then moves by at most a
  quarter of that: it is a constant to the data). A fixed-step ascent reports such a unit as converged at
  once and returns its random start.
- **plateau**: the unit's restarts all reach the same activation (final activations within
  ``PLATEAU_SPREAD`` of each other, relative) but not the same pattern (mean pairwise cosine below the
  agreement threshold). The maximum is then a plateau, not a point, and which image AM returns depends on
  the start. The quick run's patches DBN has such units (dated measurement in ``docs/decisions.md``): an
  activation that saturates at about -1.4 pre-sigmoid, reached by the top 5% of the data, restarts within
  2e-4 of each other and mean cosine 0.66.

Both thresholds are in the units' own terms (a share of the layer's gradient scale, a pre-sigmoid range, a
relative spread), never fitted to a run: see ``docs/decisions.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from unitlens.analysis.restarts import SAME_HEIGHT, activation_spread
from unitlens.errors import UnitlensError

DEAD_GRADIENT = 1e-3
DEAD_RANGE = 1e-2
PLATEAU_SPREAD = SAME_HEIGHT


@dataclass(frozen=True)
class FlatUnits:
    """Which of U units are dead or on a plateau, and the evidence.

    Attributes:
        dead: (U,) bool, the unit cannot be moved (see the module docstring).
        plateau: (U,) bool, restarts reach one activation but different patterns.
        flagged: (U,) bool, ``dead | plateau``: its AM image is not a feature.
        gradient_ratio: (U,) the largest start gradient norm over the layer's median.
        data_range: (U,) max minus min pre-sigmoid activation over the data set.
        activation_spread: (U,) (max - min) final activation over restarts, over max(|best|, 1).
    """

    dead: Tensor
    plateau: Tensor
    flagged: Tensor
    gradient_ratio: Tensor
    data_range: Tensor
    activation_spread: Tensor

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    def to_dict(self) -> dict[str, Any]:
        """Counts and the flagged units' positions (indices into the studied units), for JSON."""
        return {
            "n_units": int(self.flagged.numel()),
            "n_dead": int(self.dead.sum()),
            "n_plateau": int(self.plateau.sum()),
            "n_flagged": self.n_flagged,
            "flagged": self.flagged.nonzero().flatten().tolist(),
            "thresholds": {
                "dead_gradient": DEAD_GRADIENT,
                "dead_range": DEAD_RANGE,
                "plateau_spread": PLATEAU_SPREAD,
            },
        }

    def describe(self) -> str:
        """One sentence for people."""
        if not self.n_flagged:
            return "no dead or flat units"
        return (
            f"{int(self.dead.sum())} dead and {int(self.plateau.sum())} flat (plateau) units: "
            "their AM images are not features"
        )


def flat_units(
    *,
    start_gradient_norm: Tensor,
    reference_gradient_norm: float,
    activation: Tensor,
    restart_mean_cosine: Tensor,
    data_min: Tensor,
    data_max: Tensor,
    threshold: float,
) -> FlatUnits:
    """Flag dead and plateau units from AM's own record and the data set's activation range.

    Args:
        start_gradient_norm: (U, R) ||gradient|| at each AM start (``AMResult.start_gradient_norm``).
        reference_gradient_norm: the layer's median start gradient norm (``AMResult``'s).
        activation: (U, R) final activation of each restart.
        restart_mean_cosine: (U,) mean pairwise cosine of the restarts' optima.
        data_min, data_max: (U,) the unit's pre-sigmoid extremes over the data set.
        threshold: the cosine counted as "the same pattern" (the study's, 0.9).
    """
    u, r = activation.shape
    shapes = {
        "start_gradient_norm": (start_gradient_norm, (u, r)),
        "restart_mean_cosine": (restart_mean_cosine, (u,)),
        "data_min": (data_min, (u,)),
        "data_max": (data_max, (u,)),
    }
    for name, (t, shape) in shapes.items():
        if tuple(t.shape) != shape:
            raise UnitlensError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    scale = max(float(reference_gradient_norm), torch.finfo(torch.float64).tiny)
    gradient_ratio = start_gradient_norm.amax(dim=1).to(torch.float64) / scale
    data_range = (data_max - data_min).to(torch.float64)
    spread = activation_spread(activation)
    dead = (gradient_ratio <= DEAD_GRADIENT) | (data_range <= DEAD_RANGE)
    plateau = ~dead & (spread <= PLATEAU_SPREAD) & (restart_mean_cosine.to(torch.float64) < threshold)
    return FlatUnits(
        dead=dead,
        plateau=plateau,
        flagged=dead | plateau,
        gradient_ratio=gradient_ratio,
        data_range=data_range,
        activation_spread=spread,
    )
