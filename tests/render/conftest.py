"""A synthetic run folder of a user's own model, shared by the figure, report and browser tests.

Model ``tinycnn`` on RGB 3x8x8 inputs, layers ``conv1`` and ``conv2``, two recipes (``paper``, ``lucid``),
saved with ``StackResults.save`` as the producer (``unitlens.model_study``) saves them: no linear
combination, dataset exemplars, dead/flat flags, a selectivity matrix for conv1 only, and for the lucid
recipe all-NaN stationarity, never converged, and images in the [0, 1] box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from unitlens.results import LayerResults, StackResults

NAME = "tinycnn"
IMAGE_SHAPE = (3, 8, 8)
D3 = math.prod(IMAGE_SHAPE)
LAYER_NAMES = ("conv1", "conv2")
RECIPES = ("paper", "lucid")
UNITS, RESTARTS, EXEMPLARS, STEPS = 4, 3, 2, 5
DESCRIPTION = "a tiny CNN on 8x8 RGB images"
FLAGGED = {"conv2": 1}  # layer name -> the studied position that is dead


def user_model_layer(rng: np.random.Generator, recipe: str, j: int) -> LayerResults:
    """One layer's results as the producer writes them (grey-free: every image has 3 channels)."""
    u, r = UNITS, RESTARTS
    act = rng.normal(size=(u, r)).astype(np.float32)
    lucid = recipe == "lucid"
    am_x = (rng.uniform(size=(u, r, D3)) if lucid else rng.normal(size=(u, r, D3))).astype(np.float32)
    flat = np.zeros(u, np.int64)
    if LAYER_NAMES[j - 1] in FLAGGED:
        flat[FLAGGED[LAYER_NAMES[j - 1]]] = 1
    optional: dict[str, np.ndarray] = {}
    if j == 1:  # conv2 is left without a selectivity matrix, as a layer of one studied unit would be
        sel = rng.uniform(0.1, 1.0, size=(3, 3))
        optional["selectivity"] = (sel / sel.sum(axis=0)).astype(np.float32)
        optional["selectivity_margin"] = rng.normal(size=3).astype(np.float32)
    return LayerResults(
        units=np.arange(u, dtype=np.int64) + 10 * j,
        am_x=am_x,
        am_activation=act,
        am_steps=np.full((u, r), 64) if lucid else rng.integers(5, 50, size=(u, r)),
        am_converged=np.zeros((u, r), np.int64) if lucid else np.ones((u, r), np.int64),
        am_history=rng.normal(size=(STEPS, u, r)).astype(np.float32),
        am_best=act.argmax(axis=1).astype(np.int64),
        exemplars=rng.uniform(size=(u, EXEMPLARS, D3)).astype(np.float32),
        exemplar_activations=-np.sort(-rng.normal(size=(u, EXEMPLARS)), axis=1).astype(np.float32),
        restart_mean_cosine=rng.uniform(0.5, 1.0, size=u).astype(np.float32),
        energy_concentration=rng.uniform(0.0, 0.3, size=u).astype(np.float32),
        am_stationarity=np.full((u, r), np.nan, np.float32)
        if lucid
        else rng.uniform(0, 1e-3, (u, r)).astype(np.float32),
        am_start_gradient_norm=rng.uniform(size=(u, r)).astype(np.float32),
        flat=flat,
        dead=flat.copy(),
        **optional,
    )


def user_model_results(recipe: str, seed: int = 0) -> StackResults:
    rng = np.random.default_rng(seed)
    layers = {j: user_model_layer(rng, recipe, j) for j in (1, 2)}
    summary: dict[str, Any] = {
        "model": DESCRIPTION,
        "recipe": recipe,
        "layers": [
            {
                "layer": j,
                "name": LAYER_NAMES[j - 1],
                "n_units": UNITS,
                "recipe": recipe,
                "restarts": {"threshold": 0.9, "median_mean_cosine": 0.75, "fraction_above": 0.25},
                "degenerate": {"threshold": 0.5, "fraction_flagged": 0.0},
                "flat": {"n_flagged": int(layers[j].flat.sum())},  # type: ignore[union-attr]
                "am_stationarity": {"median": math.nan if recipe == "lucid" else 1e-4},
            }
            for j in (1, 2)
        ],
    }
    return StackResults(
        image_shape=IMAGE_SHAPE,
        layers=layers,
        layer_names=np.array(LAYER_NAMES, dtype=np.str_),
        summary=summary,
    )


@dataclass(frozen=True)
class UserModelRun:
    """The folder and what was saved in it, per recipe."""

    root: Path
    results: dict[str, StackResults]

    def npz(self, recipe: str) -> Path:
        return self.root / "results" / f"{NAME}-{recipe}.npz"


def make_user_model_run(root: Path) -> UserModelRun:
    """``root/results/tinycnn-{paper,lucid}.npz`` and ``.json``, by ``StackResults.save``; not rendered."""
    saved = {}
    for k, recipe in enumerate(RECIPES):
        results = user_model_results(recipe, seed=k)
        results.save(root / "results" / f"{NAME}-{recipe}.npz")
        saved[recipe] = results
    return UserModelRun(root, saved)


@pytest.fixture(scope="module")
def rendered_user_model_run(tmp_path_factory: pytest.TempPathFactory) -> UserModelRun:
    """The user-model run folder after ``render_run``: figures, manifest and report written."""
    from unitlens.reproduce import render_run

    run = make_user_model_run(tmp_path_factory.mktemp("user-model-run"))
    render_run(run.root)
    return run
