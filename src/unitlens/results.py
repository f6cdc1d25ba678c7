"""The raw results of a study as flat arrays: what a run folder keeps in ``results/NAME.npz``.

Figures and the report are rendered from these arrays alone, so they can be regenerated without
retraining or re-optimizing. Keys are ``layer{j}/{name}``; every image array ends with the flattened
input dimension d (reshape with ``image_shape``).

Per layer j (U studied units, R restarts, S samples, N exemplars, d inputs):

=============================  ==================  ==========================================================
key                            shape               meaning
=============================  ==================  ==========================================================
units                          (U,)                unit indices
filters                        (U, d)              layer 1 only: the units' weight rows
am_x                           (U, R, d)           every AM restart's x*
am_activation                  (U, R)              final pre-sigmoid activation of each restart
am_steps, am_converged         (U, R)              steps taken; stopped by the rule (1) or the cap (0)
am_stationarity                (U, R)              share of the gradient along the sphere at x* (0: optimum)
am_start_gradient_norm         (U, R)              ||gradient|| at each start
am_history                     (T, U, R)           activation after each step
am_best                        (U,)                best restart per unit
lc                             (U, d)              linear combination of lower filters
samples, samples_mean          (U, S, d), (U, d)   DBN, j >= 2: clamped samples and their mean
exemplars                      (U, N, d)           the N training inputs that most activate the unit
exemplar_activations           (U, N)              their pre-sigmoid activations
selectivity                    (Us, Us)            selectivity matrix, columns divided by their sums
selectivity_margin             (Us,)               per row: diagonal minus the largest other entry
exemplar_selectivity           (Us, Us)            the same with each unit's top exemplar as its pattern
control_selectivity            (Us, Us)            the same for the shuffled-weights control (j >= 2)
flat, dead                     (U,)                1: AM image is not a feature (dead or plateau); dead
restart_mean_cosine            (U,)                mean pairwise cosine of the restarts
energy_concentration           (U,)                fraction of x*'s energy in its 10 largest pixels
lc_vs_am, samples_vs_am        (U,)                Pearson correlation with the AM image
=============================  ==================  ==========================================================

Top-level keys: ``image_shape`` (2,), and ``pixel_mean`` / ``pixel_scale`` (d,) for standardised data.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from unitlens.atomic import write_bytes
from unitlens.data.dataset import Dataset
from unitlens.errors import UnitlensError
from unitlens.study import LayerStudy


def study_arrays(studies: list[LayerStudy], data: Dataset) -> dict[str, np.ndarray]:
    """Flatten a stack's layer studies into the arrays documented above."""
    out: dict[str, np.ndarray] = {"image_shape": np.array(data.image_shape, dtype=np.int64)}
    if data.pixel_mean is not None:
        out["pixel_mean"] = data.pixel_mean.numpy()
    if data.pixel_scale is not None:
        out["pixel_scale"] = data.pixel_scale.numpy()
    for s in studies:
        p = f"layer{s.layer}/"
        am = s.am
        arrays: dict[str, Any] = {
            "units": s.units,
            "am_x": am.x.flatten(2),
            "am_activation": am.activation,
            "am_steps": am.steps,
            "am_converged": am.converged.to(dtype=am.steps.dtype),
            "am_history": am.history,
            "am_best": am.best,
            "lc": s.linear_combination,
            "exemplars": data.x_train[s.exemplars.indices],
            "exemplar_activations": s.exemplars.activations,
            "am_stationarity": am.stationarity,
            "am_start_gradient_norm": am.start_gradient_norm,
            "selectivity": s.selectivity.normalised,
            "selectivity_margin": s.selectivity.margin,
            "restart_mean_cosine": s.restarts.mean_cosine,
            "energy_concentration": s.degenerate.concentration,
            "lc_vs_am": s.lc_vs_am,
        }
        if s.filters is not None:
            arrays["filters"] = s.filters
        if s.flat is not None:
            arrays["flat"] = s.flat.flagged.to(dtype=am.steps.dtype)
            arrays["dead"] = s.flat.dead.to(dtype=am.steps.dtype)
        if s.exemplar_selectivity is not None:
            arrays["exemplar_selectivity"] = s.exemplar_selectivity.normalised
        if s.control_selectivity is not None:
            arrays["control_selectivity"] = s.control_selectivity.normalised
        if s.samples is not None and s.samples_vs_am is not None:
            arrays["samples"] = s.samples.samples
            arrays["samples_mean"] = s.samples.mean
            arrays["samples_vs_am"] = s.samples_vs_am
        for name, value in arrays.items():
            out[p + name] = value.detach().cpu().numpy()
    return out


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    write_bytes(path, buffer.getvalue())


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read a results ``.npz`` without unpickling; a damaged file is a clear error."""
    try:
        with np.load(Path(path), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError as exc:
        raise UnitlensError(f"results file {path} does not exist") from exc
    except (ValueError, OSError, EOFError) as exc:
        raise UnitlensError(f"results file {path} is damaged or not an .npz: {exc}") from exc
