"""How the HTML report scales: 1000 units x 3 layers x 6 stacks, opened in headless Chromium.

Run inside the project's environment (Chromium and chromedriver from Debian's packages, as
``tests/render/test_report_browser.py`` uses them; this script installs nothing):

    python benchmarks/report_scale.py [--units 1000] [--layers 3] [--out RUN] [--keep] [--timeout 120]

What it does:

1. **Synthetic results in the real format.** For the paper's six stacks (``mnist-dbn``, ``mnist-sdae``,
   ``patches-dbn``, ``patches-sdae``, ``patches20-dbn``, ``patches20-sdae``; inputs 28x28, 12x12, 20x20)
   it writes ``results/NAME.npz`` and the summary ``NAME.json`` through ``unitlens.results.StackResults``
   (which validates them), with what a real study writes (``unitlens.study.LayerStudy.results``): per layer
   ``--units`` units, 9 AM restarts, 9 exemplars, the linear combination, the filters on layer 1, 18 clamped
   samples and their mean on DBN layers >= 2, the selectivity matrices of the first 36 units (the control's
   on layers >= 2), dead/flat flags (2 % of units), exemplar labels on MNIST, and a summary per layer
   holding the fields the report reads (restart agreement and its threshold, the degenerate threshold,
   margins, correlations, ...). The images are not white noise, which no real result is and which would
   not compress as real ones do (the report zlib-compresses its 8-bit images). Each unit has a smooth
   random pattern (a 1/f^1.5 random field plus pixel noise); layer 1 is AM's closed form (every restart is
   the normalised filter, the linear combination the filter itself); on higher layers 70 % of units have
   restarts that reach the same optimum and the rest restarts of their own; MNIST's DBN samples are
   binary. The AM step history (``am_history``, which the report does not carry) keeps 10 steps to keep
   the ``.npz`` files small. Random data from a fixed seed (0).

   **Exemplars are rows of a training set**, as a real study's are (``unitlens.study``: ``exemplars`` is
   ``data.x_train[exemplars.indices]``, each unit's top 9 training rows by its pre-sigmoid activation,
   ``unitlens.visualize.exemplars.top_exemplars``). So units share rows, and the same rows recur across
   a data set's layers and its two models; the report stores identical images of a layer once, so
   drawing every exemplar independently (as this benchmark once did) overstated the report's size.
   Per data set there is one pool of ``POOL_ROWS`` = 10,000 synthetic training rows (``training_pool``,
   its own seed), each row following the image model the exemplars had: MNIST sparse strokes in [0, 1]
   (mostly exactly 0) with a random digit label, patches signed 1/f^1.5 fields plus pixel noise. A unit's
   activation of a row is the dot product of its pattern with it (float32, a chunk of units at a time,
   ``top_rows``); its 9 exemplars are the 9 rows with the highest, strongest first,
   ``exemplar_activations`` those values and ``exemplar_labels`` (MNIST) the rows' labels. The table's
   last column is the share of a layer's exemplars that are distinct rows. Measured at 1000 units (9000
   exemplars per layer): 0.35-0.37 on MNIST's layers (strokes with more ink have larger dot products, so
   a few rows win for many units), 0.49-0.51 on the patches' layers; over all six layers of a data set's
   two stacks, 0.11 of the exemplars are distinct on MNIST (6,096 of the pool's 10,000 rows), 0.15 on
   patches (8,371) and patches20 (8,045). At 100 units the layers' shares are 0.80-0.92.

   The table prints the images' raw 8-bit size beside the data files (``report/data/*.js``: ``index.js``,
   per stack and layer an index file and its chunks of 100 units, and one table of exemplars per data
   set) so the compression can be judged. Measured 2026-12-04 at 1000 units: the data files are 69 MB,
   0.34 of the images' 205 MB of raw levels (each exemplar stored once per data set, the bytes travel
   unencoded; MNIST's binary samples compress about ninefold, the noisy patches' images hardly at all:
   the 20x20 DBN's 18 clamped samples per unit are 7 MB of each of its layers 2 and 3).
2. **The report**: ``unitlens.render.report.write_report(RUN)`` (no figures: ``figures/manifest.json`` is
   absent and the report says so; a ``run.json`` is written).
3. **The browser**: headless Chromium through Selenium (the test's flags plus
   ``--enable-precise-memory-info``) opens ``file://RUN/report/index.html``. Before the page loads, a
   script injected with the DevTools command ``Page.addScriptToEvaluateOnNewDocument`` records, with the
   page's own clock (``performance.now()``), every ``change`` event (capture phase, on the whole document)
   and every change of the ``data-shown`` attribute of any element (a ``MutationObserver``), and for each
   such change the time of the next frame after it (``requestAnimationFrame`` then ``setTimeout(0)``:
   the first task after that frame has been painted).

Figures (each measured once):

- ``report_mb``: the size on disk of the whole ``RUN/report/`` folder, in MB (10^6 bytes). Budget <= 60.
  Also printed, not budgeted: the data files' total (``report/data/*.js``), the number of layer files
  and the largest one, and each state's layer file in the state table.
- ``first_paint_s``: ``first-contentful-paint`` from ``performance.getEntriesByType('paint')``, seconds
  from navigation start. Budget < 1.
- ``worst_layer_s``: the slowest of the 18 stack/layer states' "time to usable". **Readiness condition**:
  the explorer sets ``data-shown="STACK/LAYER/UNIT"`` on ``#unit-view`` right after it has loaded the
  layer's index file, drawn its unit index, loaded the unit's chunk of images and drawn the unit's panels
  on their canvases (``showUnit()`` in ``explorer.js``); a state is
  usable at the next frame painted after ``#unit-view`` shows ``STACK/LAYER/...``. Each state is chosen
  through the explorer's own controls, ``<select>`` elements ``#pick-dataset``, ``#pick-model`` and
  ``#pick-layer`` (Selenium's ``Select``, as a user would), in an order where each state needs exactly one
  control change (mnist-dbn 1, 2, 3; mnist-sdae 3, 2, 1; patches-sdae 1, 2, 3; ...), so every state is
  decoded cold, once; its clock starts at that ``change`` event. The first state, shown when the page
  loads, is chosen by the load: its clock starts at ``DOMContentLoaded`` (the explorer's scripts have run;
  the synchronous work they did before that is not counted). Budget < 1 for every state.
- ``memory_mb``: after visiting all 18 states and a garbage collection (DevTools
  ``HeapProfiler.collectGarbage``), the resident set (``VmRSS`` in ``/proc/PID/status``) of the page's
  renderer process, in MB (2^20 bytes): the largest process under this session's chromedriver started with
  ``--type=renderer`` that is not Chromium's WebUI (``--top-chrome-webui``) or an extension. Budget < 300.
  RSS counts the shared pages of Chromium's code too (an empty page's renderer has about 110 MB of RSS,
  about 10 MB of it private). Also printed, not budgeted: that renderer's private memory
  (``Private_Clean + Private_Dirty`` of ``smaps_rollup``), every renderer's RSS, the JS heap
  (``performance.memory.usedJSHeapSize`` with ``--enable-precise-memory-info``, which leaves out the
  array buffers that hold the decoded images) and the proportional set size (``Pss``) of all of the
  session's Chromium processes. Without ``/proc``, ``memory_mb`` is the JS heap, and the table says so.

A full run (1000 units) takes under a minute on 2 idle cores: about 10 s to generate the results, 16 s
for ``write_report`` (printed, not budgeted), 9 s in the browser;
Python peaks at about 1.6 GB (``write_report`` holds every stack's results
at once), the run folder at about 1 GB on disk (removed at the end unless ``--keep`` or ``--out``).

Every figure is a single measurement on a shared, noisy machine (timings vary by tens of percent from run
to run; run it with ``nice`` when other work shares the machine), not a median. The table shows each
figure beside its budget with MET or MISSED; the last line is JSON: ``report_mb``, ``first_paint_s``,
``worst_layer_s``, ``memory_mb`` (null where a figure could not be measured, with the reason printed),
``units`` and ``budgets_met``, then what else was measured (``write_report_s``, ``data_mb``,
``layer_files``, ``largest_layer_file_mb``, ``distinct_exemplars`` per ``STACK/LAYER``, ...), the
problems and the page's SEVERE console entries (``console_errors``, also printed above the JSON line:
JavaScript errors and files that failed to load). Where the page's structure changes (other ids, no
``data-shown``), the benchmark says which element or marker it could not find and reports null rather
than failing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from unitlens.render.report import write_report
from unitlens.results import LayerResults, StackResults

# ------------------------------------------------------------------------------------------ settings

STACKS: dict[str, tuple[int, int]] = {
    "mnist-dbn": (28, 28),
    "mnist-sdae": (28, 28),
    "patches-dbn": (12, 12),
    "patches-sdae": (12, 12),
    "patches20-dbn": (20, 20),
    "patches20-sdae": (20, 20),
}
RESTARTS = 9  # the paper's
SAMPLES = 18  # StudyConfig.n_samples
EXEMPLARS = 9  # StudyConfig.n_exemplars
SELECTIVITY_UNITS = 36  # StudyConfig.selectivity_units
HISTORY_STEPS = 10  # am_history's T: not carried to the report, kept short to keep the .npz small
MAX_STEPS = 1000  # StudyConfig.max_steps: a restart that took this many steps was stopped by the cap
FLAT_SHARE = 0.02
AGREE_SHARE = 0.7  # units of layers >= 2 whose restarts reach the same optimum
SEED = 0
POOL_ROWS = 10_000  # each data set's synthetic training set, the rows its exemplars are drawn from
DATASETS = ("mnist", "patches", "patches20")
# The results' image fields (unitlens.results), all of which the report shows.
IMAGE_FIELDS = ("filters", "am_x", "samples", "samples_mean", "lc", "exemplars")

BUDGETS: dict[str, tuple[str, float]] = {
    "report_mb": ("<=", 60.0),
    "first_paint_s": ("<", 1.0),
    "worst_layer_s": ("<", 1.0),
    "memory_mb": ("<", 300.0),
}

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
    "--enable-precise-memory-info",
)

# What the benchmark relies on in the page: keep these when the report is redesigned.
UNIT_VIEW_ID = "unit-view"  # its data-shown attribute is "STACK/LAYER/UNIT" once a unit has been drawn
SHOWN_ATTRIBUTE = "data-shown"
PICK_DATASET_ID = "pick-dataset"  # <select>, option values: data set names ("mnist")
PICK_MODEL_ID = "pick-model"  # <select>, option values: stack names ("mnist-dbn")
PICK_LAYER_ID = "pick-layer"  # <select>, option values: layer numbers ("1")
INDEX_FILE = "index.js"  # report/data/index.js: window.X = {"stacks": [{"name", "layers": [{"key"}]}]}

# Runs in the page before any of its scripts (Page.addScriptToEvaluateOnNewDocument), or after the load
# when that command fails. Times are performance.now(), milliseconds from navigation start.
HOOK_JS = """
(function () {
  if (window.__reportScale) { return; }
  const log = { changes: [], shown: [] };
  window.__reportScale = log;
  document.addEventListener("change", (e) => {
    const t = e.target || {};
    log.changes.push({ id: t.id || "", value: String(t.value), t: performance.now() });
  }, true);
  new MutationObserver((records) => {
    for (const r of records) {
      const entry = { id: r.target.id || "", value: r.target.getAttribute(r.attributeName) || "",
        t: performance.now(), painted: null };
      log.shown.push(entry);
      requestAnimationFrame(() => setTimeout(() => { entry.painted = performance.now(); }, 0));
    }
  }).observe(document, { attributes: true, attributeFilter: ["__ATTRIBUTE__"], subtree: true });
})();
""".replace("__ATTRIBUTE__", SHOWN_ATTRIBUTE)


# ------------------------------------------------------------------------------------------ synthetic results


def smooth_fields(rng: np.random.Generator, n: int, shape: tuple[int, int], chunk: int = 4096) -> np.ndarray:
    """(n, h * w) float32 random fields with a 1/f^1.5 amplitude spectrum, zero mean, unit variance each."""
    h, w = shape
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2)
    amplitude = 1.0 / np.maximum(f, 1.0 / max(h, w)) ** 1.5
    amplitude[0, 0] = 0.0
    out = np.empty((n, h * w), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        size = (m, h, w // 2 + 1)
        spectrum = (rng.standard_normal(size) + 1j * rng.standard_normal(size)) * amplitude
        x = np.fft.irfft2(spectrum, s=(h, w))
        x /= x.std(axis=(1, 2), keepdims=True) + 1e-12
        out[start : start + m] = x.reshape(m, -1)
    return out


def _noise(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _column_normalised(rng: np.random.Generator, us: int) -> np.ndarray:
    """(us, us) a selectivity-like matrix: positive, diagonal-heavy, columns summing to 1."""
    m = rng.uniform(0.0, 1.0, size=(us, us)) + np.eye(us) * rng.uniform(0.0, 3.0, size=us)
    return (m / m.sum(axis=0, keepdims=True)).astype(np.float32)


def _margin(s: np.ndarray) -> np.ndarray:
    others = np.where(np.eye(s.shape[0], dtype=bool), -np.inf, s)
    return (np.diag(s) - others.max(axis=1)).astype(np.float32)


def restart_mean_cosine(am_x: np.ndarray) -> np.ndarray:
    """(U,) the mean pairwise cosine of each unit's restarts ``am_x`` (U, R, d)."""
    x = am_x / (np.linalg.norm(am_x, axis=2, keepdims=True) + 1e-12)
    gram = np.einsum("urd,usd->urs", x, x)
    r = am_x.shape[1]
    return ((gram.sum(axis=(1, 2)) - r) / (r * (r - 1))).astype(np.float32)


@dataclass(frozen=True)
class TrainingPool:
    """A data set's synthetic training set: ``x`` (POOL_ROWS, d) float32, ``labels`` (POOL_ROWS,) or None."""

    x: np.ndarray
    labels: np.ndarray | None


def training_pool(dataset: str, shape: tuple[int, int], rows: int = POOL_ROWS) -> TrainingPool:
    """The rows a data set's exemplars are drawn from, shared by its two models and all their layers.

    Each row follows the image model the exemplars had before the pool: MNIST sparse strokes in [0, 1]
    (mostly exactly 0) with a digit label, patches signed 1/f^1.5 fields plus pixel noise. Its own seed
    (``SEED`` and the data set's place in ``DATASETS``), so the pool does not depend on the stacks' order.
    """
    rng = np.random.default_rng([SEED, DATASETS.index(dataset)])
    if dataset == "mnist":  # digits: sparse strokes in [0, 1], mostly exactly 0
        strokes = _sigmoid(4.0 * (smooth_fields(rng, rows, shape) - 1.0))
        x = np.where(strokes < 0.05, 0.0, strokes).astype(np.float32)
        return TrainingPool(x, rng.integers(0, 10, size=rows))
    x = smooth_fields(rng, rows, shape)  # whitened patches: signed
    x += _noise(rng, x.shape, 0.2)
    return TrainingPool(x, None)


def top_rows(patterns: np.ndarray, x: np.ndarray, k: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each pattern's ``k`` rows of ``x`` with the largest dot product, strongest first (ties: lower row).

    Args:
        patterns: (U, d) float32, the units' weight patterns; the activation of row ``x[n]`` is
            ``patterns[i] @ x[n]`` (float32, a chunk of units at a time), like a unit's pre-sigmoid input.
        x: (N, d) float32, the training pool.

    Returns:
        ``(indices, activations)``: (U, k) int64 rows and (U, k) float32 activations, descending.
    """
    u = patterns.shape[0]
    k = min(k, x.shape[0])
    indices = np.empty((u, k), dtype=np.int64)
    values = np.empty((u, k), dtype=np.float32)
    xt = np.ascontiguousarray(x.T, dtype=np.float32)
    for start in range(0, u, chunk):
        act = patterns[start : start + chunk].astype(np.float32) @ xt  # (m, N)
        part = np.sort(np.argpartition(-act, k - 1, axis=1)[:, :k], axis=1)  # sorted rows: stable ties
        vals = np.take_along_axis(act, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        indices[start : start + chunk] = np.take_along_axis(part, order, axis=1)
        values[start : start + chunk] = np.take_along_axis(vals, order, axis=1)
    return indices, values


def synthetic_layer(
    rng: np.random.Generator,
    dataset: str,
    model: str,
    j: int,
    units: int,
    shape: tuple[int, int],
    pool: TrainingPool,
) -> tuple[LayerResults, np.ndarray]:
    """One layer's results with the fields and dtypes a real study writes (see the module docstring), and
    its exemplars' rows of ``pool`` (U, EXEMPLARS)."""
    u, r, d = units, RESTARTS, shape[0] * shape[1]
    base = smooth_fields(rng, u, shape) + _noise(rng, (u, d), 0.1)  # the unit's own pattern
    if j == 1:  # AM's closed form: every restart reaches the normalised filter
        am_x = np.repeat(base[:, None, :] * np.float32(9.3 / math.sqrt(d)), r, axis=1)
    else:  # restarts that agree reach the same optimum; the others a point of their own
        agree = rng.uniform(size=(u, 1, 1)) < AGREE_SHARE
        spread = np.where(agree, np.float32(0.0), np.float32(0.35))
        am_x = base[:, None, :] + spread * smooth_fields(rng, u * r, shape).reshape(u, r, d)
        am_x += np.where(agree, np.float32(0.003), np.float32(0.1)) * _noise(rng, am_x.shape, 1.0)
    activation = rng.normal(2.0, 1.0, size=(u, r)).astype(np.float32)
    steps = rng.integers(20, MAX_STEPS + 1, size=(u, r))
    history = np.linspace(0.0, 1.0, HISTORY_STEPS, dtype=np.float32)[:, None, None] * activation
    us = min(SELECTIVITY_UNITS, u)
    flat = (rng.uniform(size=u) < FLAT_SHARE).astype(np.int64)
    dead = flat * (rng.uniform(size=u) < 0.5).astype(np.int64)
    # The exemplars: rows of the data set's training pool, each unit's top EXEMPLARS by its activation.
    indices, top = top_rows(base, pool.x, EXEMPLARS)
    fields_: dict[str, np.ndarray] = {
        "units": np.arange(u, dtype=np.int64),
        "am_x": am_x,
        "am_activation": activation,
        "am_steps": steps,
        "am_converged": (steps < MAX_STEPS).astype(np.int64),
        "am_stationarity": rng.uniform(0.0, 1e-3, size=(u, r)).astype(np.float32),
        "am_start_gradient_norm": rng.uniform(0.1, 2.0, size=(u, r)).astype(np.float32),
        "am_history": history,
        "am_best": activation.argmax(axis=1).astype(np.int64),
        # Layer 1's linear combination is the filter itself; higher layers' a blend of lower filters.
        "lc": base.copy() if j == 1 else base + 0.5 * smooth_fields(rng, u, shape) + _noise(rng, (u, d), 0.1),
        "exemplars": pool.x[indices],
        "exemplar_activations": top,
        "selectivity": (sel := _column_normalised(rng, us)),
        "selectivity_margin": _margin(sel),
        "exemplar_selectivity": _column_normalised(rng, us),
        "restart_mean_cosine": restart_mean_cosine(am_x),
        "energy_concentration": rng.uniform(0.05, 0.6, size=u).astype(np.float32),
        "lc_vs_am": rng.uniform(-0.2, 1.0, size=u).astype(np.float32),
        "flat": flat,
        "dead": dead,
    }
    if j == 1:
        fields_["filters"] = base
    if j >= 2:
        fields_["control_selectivity"] = _column_normalised(rng, us)
    if model == "dbn" and j >= 2:
        drive = base[:, None, :] + 0.7 * smooth_fields(rng, u * SAMPLES, shape).reshape(u, SAMPLES, d)
        if dataset == "mnist":  # binary visible units: 0/1 samples
            samples = (rng.uniform(size=drive.shape) < _sigmoid(3.0 * drive - 2.0)).astype(np.float32)
        else:  # Gaussian visible units: real-valued means
            samples = drive + _noise(rng, drive.shape, 0.2)
        fields_["samples"] = samples
        fields_["samples_mean"] = samples.mean(axis=1)
        fields_["samples_vs_am"] = rng.uniform(-0.2, 0.9, size=u).astype(np.float32)
    if pool.labels is not None:
        fields_["exemplar_labels"] = pool.labels[indices]
    return LayerResults(**fields_), indices


def _correlations(r: np.ndarray) -> dict[str, Any]:
    x = r.astype(np.float64)
    return {
        "n_units": int(x.size),
        "n_undefined": 0,
        "median": float(np.median(x)),
        "q25": float(np.quantile(x, 0.25)),
        "q75": float(np.quantile(x, 0.75)),
        "min": float(x.min()),
        "max": float(x.max()),
        "mean": float(x.mean()),
    }


def _selectivity(s: np.ndarray) -> dict[str, Any]:
    margin = _margin(s).astype(np.float64)
    off = s[~np.eye(s.shape[0], dtype=bool)]
    return {
        "normalisation": "column_sum",
        "n_units": int(s.shape[0]),
        "n_diagonal": int((margin > 0).sum()),
        "fraction_diagonal": float((margin > 0).mean()),
        "median_margin": float(np.median(margin)),
        "mean_margin": float(margin.mean()),
        "min_margin": float(margin.min()),
        "mean_diagonal": float(np.diag(s).mean()),
        "mean_off_diagonal": float(off.mean()) if off.size else 0.0,
    }


def _restarts(a: LayerResults, threshold: float) -> dict[str, Any]:
    cos = a.restart_mean_cosine.astype(np.float64)
    capped = a.am_converged == 0
    return {
        "n_units": a.n_units,
        "n_restarts": a.n_restarts,
        "threshold": threshold,
        "median_mean_cosine": float(np.median(cos)),
        "fraction_above": float((cos > threshold).mean()),
        "median_steps": float(np.median(a.am_steps)),
        "max_steps": int(a.am_steps.max()),
        "n_units_capped": int(capped.any(axis=1).sum()),
        "n_restarts_capped": int(capped.sum()),
    }


def layer_summary(j: int, a: LayerResults) -> dict[str, Any]:
    """The study's per-layer summary (``LayerStudy.summary``'s layout), with what the report reads."""
    conc = a.energy_concentration.astype(np.float64)
    assert a.selectivity is not None and a.exemplar_selectivity is not None and a.flat is not None
    assert a.am_stationarity is not None and a.lc_vs_am is not None and a.dead is not None
    out: dict[str, Any] = {
        "layer": j,
        "n_units": a.n_units,
        "am_learning_rate": 0.1,
        "am_stationarity": {
            "median": float(np.median(a.am_stationarity)),
            "max": float(a.am_stationarity.max()),
            "fraction_converged": float(a.am_converged.mean()),
        },
        "restarts": _restarts(a, 0.9),
        "selectivity": _selectivity(a.selectivity),
        "exemplar_selectivity": _selectivity(a.exemplar_selectivity),
        "degenerate": {
            "n_units": a.n_units,
            "k": 10,
            "threshold": 0.5,
            "n_flagged": int((conc > 0.5).sum()),
            "fraction_flagged": float((conc > 0.5).mean()),
            "median_concentration": float(np.median(conc)),
        },
        "lc_vs_am": _correlations(a.lc_vs_am),
        "flat": {
            "n_units": a.n_units,
            "n_dead": int(a.dead.sum()),
            "n_plateau": int(a.flat.sum() - a.dead.sum()),
            "n_flagged": int(a.flat.sum()),
            "flagged": np.flatnonzero(a.flat).tolist(),
        },
        "seconds": {},
    }
    if a.samples_vs_am is not None:
        out["samples_vs_am"] = _correlations(a.samples_vs_am)
        out["samples_below_lc"] = float((a.samples_vs_am < a.lc_vs_am).mean())
    if j == 1:
        out["closed_form_cosine_min"] = 0.9999
        out["closed_form_cosine_median"] = 1.0
    if a.control_selectivity is not None:
        out["control_restarts"] = {**_restarts(a, 0.9), "median_mean_cosine": 0.5, "fraction_above": 0.0}
        out["control_selectivity"] = _selectivity(a.control_selectivity)
    return out


@dataclass
class Synthetic:
    """What ``write_results`` wrote: the .npz files' bytes, the report's images' raw 8-bit size (one byte
    per pixel), and the exemplars' rows of each data set's pool per ``(stack, layer)``' (U, EXEMPLARS)."""

    npz_bytes: int = 0
    pixels: int = 0
    exemplar_rows: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)

    def distinct_share(self, stack: str, layer: int) -> float:
        """The share of a layer's exemplars that are distinct rows (1: no two units share one)."""
        rows = self.exemplar_rows[(stack, layer)]
        return np.unique(rows).size / rows.size

    def dataset_share(self, dataset: str) -> tuple[float, int]:
        """Over all layers of a data set's stacks: the share of exemplars that are distinct rows, and the
        number of distinct rows."""
        rows = [v for (name, _), v in self.exemplar_rows.items() if name.rsplit("-", 1)[0] == dataset]
        n = np.unique(np.concatenate([r.ravel() for r in rows])).size
        return n / sum(r.size for r in rows), n


def write_results(run: Path, units: int, layers: int) -> Synthetic:
    """Write every stack's ``results/NAME.npz`` and ``NAME.json`` and ``run.json``. One stack at a time
    (and one data set's training pool), so memory stays at about one stack's arrays."""
    rng = np.random.default_rng(SEED)
    out = Synthetic()
    pool: TrainingPool | None = None
    pool_of = ""
    for name, shape in STACKS.items():
        dataset, model = name.split("-")
        if dataset != pool_of:
            pool, pool_of = training_pool(dataset, shape), dataset
        assert pool is not None
        per_layer = {}
        for j in range(1, layers + 1):
            per_layer[j], out.exemplar_rows[(name, j)] = synthetic_layer(
                rng, dataset, model, j, units, shape, pool
            )
        summary = {"layers": [layer_summary(j, a) for j, a in per_layer.items()]}
        out.pixels += sum(v.size for a in per_layer.values() for k, v in a.arrays() if k in IMAGE_FIELDS)
        results = StackResults(image_shape=shape, layers=per_layer, summary=summary, source=name)
        out.npz_bytes += results.save(run / "results" / f"{name}.npz").stat().st_size
        del per_layer, results
    facts = {"seed": SEED, "preset": f"report_scale ({units} units)", "versions": {}, "seconds": {}}
    (run / "run.json").write_text(json.dumps(facts) + "\n", encoding="utf-8")
    return out


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@dataclass
class DataFiles:
    """The report's data files: ``report/data/*.js`` (``index.js`` and one file per stack and layer)."""

    total_bytes: int = 0  # every report/data/*.js
    layer_files: int = 0  # report/data/*.js but index.js: layer index files, their chunks, shared tables
    largest_bytes: int = 0
    largest_name: str = ""
    per_layer: dict[tuple[str, int], int] = field(default_factory=dict)  # (stack, layer) -> file bytes
    problems: list[str] = field(default_factory=list)


def data_files(report: Path) -> DataFiles:
    """Sizes of ``report/data/*.js``; which file is which stack and layer, from ``data/index.js``."""
    out = DataFiles()
    data = report / "data"
    files = sorted(data.glob("*.js")) if data.is_dir() else []
    if not files:
        out.problems.append(f"no {data}/*.js: the report's data files were not found")
        return out
    out.total_bytes = sum(f.stat().st_size for f in files)
    layers = [f for f in files if f.name != INDEX_FILE]
    out.layer_files = len(layers)
    if layers:
        largest = max(layers, key=lambda f: f.stat().st_size)
        out.largest_bytes, out.largest_name = largest.stat().st_size, largest.name
    try:
        text = (data / INDEX_FILE).read_text(encoding="ascii")
        doc = json.loads(text[text.index("=") + 1 :].strip().rstrip(";"))
        for stack in doc["stacks"]:
            for entry in stack["layers"]:
                # A layer's index file and its chunks of images (KEY.js, KEY-cN.js); "bytes" is their sum.
                out.per_layer[(stack["name"], int(entry["layer"]))] = int(entry["bytes"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        out.problems.append(f"could not read the stacks' layer files from {data / INDEX_FILE}: {exc!r}")
    return out


# ------------------------------------------------------------------------------------------ browser


@dataclass
class LayerTiming:
    """One stack/layer state: how it was chosen and when it became usable (seconds, or None)."""

    stack: str
    layer: int
    how: str  # "page load" or the ids of the controls changed
    shown_s: float | None = None  # clock start -> data-shown set
    usable_s: float | None = None  # clock start -> the next frame painted after it
    problem: str | None = None


@dataclass
class BrowserFigures:
    first_paint_s: float | None = None
    dom_content_loaded_s: float | None = None
    load_s: float | None = None
    page_ready_s: float | None = None  # navigation start -> the first state usable
    layers: list[LayerTiming] = field(default_factory=list)
    renderer_rss_mb: float | None = None
    renderers_mb: list[float] = field(default_factory=list)  # every renderer's RSS
    renderer_private_mb: float | None = None  # the page's renderer's private memory (USS)
    chromium_pss_mb: float | None = None
    js_heap_mb: float | None = None
    console_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def worst_layer_s(self) -> float | None:
        """The slowest state; None unless every state was measured (a missing one could be the worst)."""
        values = [t.usable_s for t in self.layers]
        if not values or any(v is None for v in values):
            return None
        return max(v for v in values if v is not None)

    @property
    def memory_mb(self) -> float | None:
        return self.renderer_rss_mb if self.renderer_rss_mb is not None else self.js_heap_mb


def visit_order(stacks: list[str], layers: int) -> list[tuple[str, int]]:
    """Every (stack, layer) once, each one control change from the one before: layers go up and down in
    turn, and each data set's models are walked in the order that keeps the last model when the data set
    changes (the explorer keeps the model and the layer across a data-set change)."""
    datasets: dict[str, list[str]] = {}
    for name in stacks:
        datasets.setdefault(name.rsplit("-", 1)[0], []).append(name)
    order: list[tuple[str, int]] = []
    last_model: str | None = None
    for names in datasets.values():
        if last_model is not None:
            suffix = "-" + last_model
            names = sorted(names, key=lambda n: not n.endswith(suffix))  # stable: the rest keep their order
        for name in names:
            up = len(order) // layers % 2 == 0
            for j in range(1, layers + 1) if up else range(layers, 0, -1):
                order.append((name, j))
            last_model = name.rsplit("-", 1)[1]
    return order


def _proc_tree(root: int) -> list[int]:
    """``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _proc_kb(pid: int, file: str, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def chromium_memory(driver_pid: int, figures: BrowserFigures) -> None:
    """From /proc: the page's renderer's RSS and private memory, every renderer's RSS, and all of the
    session's Chromium processes' PSS (the processes under chromedriver ``driver_pid``).

    The page's renderer is the largest renderer that is neither Chromium's own WebUI
    (``--top-chrome-webui``) nor an extension's; the others are an idle spare renderer and that WebUI.
    """
    if not Path("/proc/self/status").exists():
        figures.problems.append("no /proc: renderer memory unknown, memory_mb is the JS heap")
        return
    pages: list[tuple[int, int]] = []  # (RSS kB, pid) of renderers that may hold the page
    every: list[int] = []
    pss = 0
    for pid in _proc_tree(driver_pid):
        if pid == driver_pid:
            continue
        try:
            # Chromium rewrites its process title: the arguments may be one string joined by spaces.
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        pss += _proc_kb(pid, "smaps_rollup", "Pss") or 0
        rss = _proc_kb(pid, "status", "VmRSS")
        if b"--type=renderer" not in cmdline or rss is None:
            continue
        every.append(rss)
        if b"--top-chrome-webui" not in cmdline and b"--extension-process" not in cmdline:
            pages.append((rss, pid))
    figures.renderers_mb = sorted((kb / 1024 for kb in every), reverse=True)
    figures.chromium_pss_mb = pss / 1024 if pss else None
    if not pages:
        figures.problems.append(
            f"no Chromium renderer process found under chromedriver (pid {driver_pid}): "
            "memory_mb is the JS heap"
        )
        return
    rss, pid = max(pages)
    figures.renderer_rss_mb = rss / 1024
    private = [_proc_kb(pid, "smaps_rollup", k) for k in ("Private_Clean", "Private_Dirty")]
    if all(kb is not None for kb in private):
        figures.renderer_private_mb = sum(kb for kb in private if kb is not None) / 1024


def _wait(predicate: Callable[[], Any], timeout: float, poll: float = 0.05) -> Any:
    """``predicate()``'s first truthy value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(poll)


_SHOWN_AFTER = """
const log = window.__reportScale;
if (!log) { return "no-hook"; }
const hit = log.shown.find((e) =>
  e.t >= arguments[1] && e.value.startsWith(arguments[0]) && e.painted !== null);
return hit ? [hit.t, hit.painted] : null;
"""


def _shown_after(browser: Any, prefix: str, since: float) -> Any:
    """[set, painted] (ms) of the first data-shown change to ``prefix...`` at or after ``since`` whose next
    frame has been painted; None while there is none; "no-hook" without the timing hook."""
    return browser.execute_script(_SHOWN_AFTER, prefix, since)


def _hook_log(browser: Any) -> Any:
    return browser.execute_script("return window.__reportScale ? window.__reportScale : null;")


def _start_browser(profile: Path) -> tuple[Any, int]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(str(CHROMEDRIVER))  # an explicit driver: Selenium Manager never downloads one
    browser = webdriver.Chrome(service=service, options=options)
    return browser, int(service.process.pid)


def _choose(browser: Any, control_id: str, value: str) -> str | None:
    """Select ``value`` in the <select> ``#control_id`` as a user would; return why not, or None."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import Select

    try:
        Select(browser.find_element("id", control_id)).select_by_value(value)
    except WebDriverException as exc:
        return f"could not select {value!r} in #{control_id}: {type(exc).__name__}: {exc.msg or exc}"
    return None


def _changes_needed(current: tuple[str, int], target: tuple[str, int]) -> list[tuple[str, str]]:
    """The explorer's controls to change, in order, to go from ``current`` to ``target``."""
    (stack, layer), (goal, goal_layer) = current, target
    steps: list[tuple[str, str]] = []
    if stack.rsplit("-", 1)[0] != goal.rsplit("-", 1)[0]:
        steps.append((PICK_DATASET_ID, goal.rsplit("-", 1)[0]))
        stack = goal.rsplit("-", 1)[0] + "-" + stack.rsplit("-", 1)[1]  # the explorer keeps the model
    if stack != goal:
        steps.append((PICK_MODEL_ID, goal))
    if layer != goal_layer:
        steps.append((PICK_LAYER_ID, str(goal_layer)))
    return steps


def browse(index: Path, states: list[tuple[str, int]], timeout: float) -> BrowserFigures:
    """Open the report, time its first paint and each state, then read the memory (see the docstring)."""
    figures = BrowserFigures()
    started = time.perf_counter()
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        figures.problems.append(
            f"{' and '.join(missing)} missing: install Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver); no browser figures"
        )
        return figures
    try:
        import selenium  # noqa: F401
    except ImportError:
        figures.problems.append("selenium is not installed in this environment: no browser figures")
        return figures
    from selenium.common.exceptions import WebDriverException

    profile = Path(tempfile.mkdtemp(prefix="report-scale-chromium-"))
    browser: Any = None
    try:
        browser, driver_pid = _start_browser(profile)
        browser.set_page_load_timeout(timeout)
        browser.set_script_timeout(timeout)
        early = True
        try:
            browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOK_JS})
        except WebDriverException as exc:
            early = False
            figures.problems.append(
                f"could not inject the timing hook before load ({exc.msg}); the first state's time is unknown"
            )
        browser.get(index.as_uri())
        if not early:
            browser.execute_script(HOOK_JS)
        timing_js = (
            "const n = performance.getEntriesByType('navigation')[0];"
            "const p = performance.getEntriesByType('paint')"
            "  .find((e) => e.name === 'first-contentful-paint');"
            "return {dcl: n ? n.domContentLoadedEventStart : null, load: n ? n.loadEventEnd : null,"
            " fcp: p ? p.startTime : null};"
        )
        # The paint entry can land just after the load event: give it a few seconds.
        nav = _wait(lambda: (n := browser.execute_script(timing_js))["fcp"] is not None and n, 5.0)
        nav = nav or browser.execute_script(timing_js)
        figures.first_paint_s = None if nav["fcp"] is None else nav["fcp"] / 1000
        figures.dom_content_loaded_s = None if nav["dcl"] is None else nav["dcl"] / 1000
        figures.load_s = None if nav["load"] is None else nav["load"] / 1000
        if figures.first_paint_s is None:
            figures.problems.append(
                "no first-contentful-paint entry in performance.getEntriesByType('paint')"
            )
        if _hook_log(browser) is None:
            figures.problems.append("the timing hook did not run in the page: no layer timings")
            return figures

        current = states[0]
        first = LayerTiming(current[0], current[1], "page load (clock from DOMContentLoaded)")
        hit = _wait(partial(_shown_after, browser, f"{current[0]}/{current[1]}/", 0.0), timeout)
        if hit == "no-hook" or not hit:
            first.problem = (
                f"#{UNIT_VIEW_ID} never got {SHOWN_ATTRIBUTE}='{current[0]}/{current[1]}/...' "
                f"within {timeout:g} s "
                "(the readiness marker is missing or the page did not draw)"
            )
        elif early and nav["dcl"] is not None:
            first.shown_s = max(0.0, hit[0] - nav["dcl"]) / 1000
            first.usable_s = max(0.0, hit[1] - nav["dcl"]) / 1000
            figures.page_ready_s = hit[1] / 1000
        else:
            first.problem = "the hook was injected after the load: the first state's time is unknown"
        figures.layers.append(first)
        print(f"  {first.stack} layer {first.layer}: {_fmt(first.usable_s, 's')} ({first.how})", flush=True)
        if hit == "no-hook" or not hit:
            figures.problems.append("the first state never became usable: the other states are skipped")
            states = states[:1]

        for target in states[1:]:
            steps = _changes_needed(current, target)
            timing = LayerTiming(target[0], target[1], " then ".join(f"#{c}" for c, _ in steps))
            figures.layers.append(timing)
            before = len(_hook_log(browser)["changes"])
            for control, value in steps:
                problem = _choose(browser, control, value)
                if problem is not None:
                    timing.problem = problem
                    break
            current = target
            if timing.problem is not None:
                print(f"  {target[0]} layer {target[1]}: {timing.problem}", flush=True)
                continue
            changes = _hook_log(browser)["changes"][before:]
            if not changes:
                timing.problem = f"selecting through {timing.how} fired no change event"
                continue
            t0 = float(changes[0]["t"])
            prefix = f"{target[0]}/{target[1]}/"
            hit = _wait(partial(_shown_after, browser, prefix, t0), timeout)
            if not hit or hit == "no-hook":
                timing.problem = f"#{UNIT_VIEW_ID} never showed {prefix}... within {timeout:g} s"
                print(f"  {target[0]} layer {target[1]}: {timing.problem}; the remaining states are skipped")
                break
            timing.shown_s = (hit[0] - t0) / 1000
            timing.usable_s = (hit[1] - t0) / 1000
            print(f"  {target[0]} layer {target[1]}: {_fmt(timing.usable_s, 's')} ({timing.how})", flush=True)

        try:
            browser.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
        except WebDriverException as exc:
            figures.problems.append(f"could not collect garbage before the memory reading ({exc.msg})")
        time.sleep(1.0)
        heap = browser.execute_script("return performance.memory ? performance.memory.usedJSHeapSize : null;")
        figures.js_heap_mb = None if heap is None else heap / 2**20
        chromium_memory(driver_pid, figures)
    except WebDriverException as exc:
        figures.problems.append(f"the browser failed: {type(exc).__name__}: {exc.msg or exc}")
    finally:
        if browser is not None:
            # The page's SEVERE console entries (JavaScript errors, failed loads), however the run ended.
            with contextlib.suppress(WebDriverException):
                figures.console_errors = [
                    e["message"][:500] for e in browser.get_log("browser") if e["level"] == "SEVERE"
                ]
            with contextlib.suppress(WebDriverException):
                browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
        figures.seconds = time.perf_counter() - started
    return figures


# ------------------------------------------------------------------------------------------ output


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} {unit}" if unit == "s" else f"{value:.1f} {unit}"


def verdict(key: str, value: float | None) -> bool | None:
    if value is None:
        return None
    op, limit = BUDGETS[key]
    return value <= limit if op == "<=" else value < limit


def _rows(figures: dict[str, float | None], units: dict[str, str], notes: dict[str, str]) -> Iterator[str]:
    yield f"{'figure':<15} {'measured':>12}  {'budget':<10} {'':<7} note"
    for key, (op, limit) in BUDGETS.items():
        met = verdict(key, figures[key])
        word = "n/a" if met is None else ("MET" if met else "MISSED")
        budget = f"{op} {limit:g} {units[key]}"
        yield f"{key:<15} {_fmt(figures[key], units[key]):>12}  {budget:<10} {word:<7} {notes.get(key, '')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000, help="units per layer (default 1000)")
    parser.add_argument("--layers", type=int, default=3, help="layers per stack (default 3)")
    parser.add_argument(
        "--out", type=Path, default=None, help="run folder to write (default: a temporary one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary run folder")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the page or a state"
    )
    args = parser.parse_args()
    if args.units < 1 or args.layers < 1:
        parser.error("--units and --layers must be at least 1")

    run = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="report-scale-"))
    run.mkdir(parents=True, exist_ok=True)
    try:
        n_states = len(STACKS) * args.layers
        print(
            f"report_scale: {args.units} units x {args.layers} layers x {len(STACKS)} stacks, "
            f"run folder {run}"
        )
        t = time.perf_counter()
        synthetic = write_results(run, args.units, args.layers)
        generate_s = time.perf_counter() - t
        print(
            f"  synthetic results: {synthetic.npz_bytes / 1e6:.0f} MB of .npz in {generate_s:.1f} s",
            flush=True,
        )
        t = time.perf_counter()
        index = write_report(run)
        report_s = time.perf_counter() - t
        report_bytes = folder_bytes(index.parent)
        data = data_files(index.parent)
        print(
            f"  write_report: {report_bytes / 1e6:.1f} MB in {report_s:.1f} s "
            f"({data.layer_files} layer files)",
            flush=True,
        )
        print(f"  browser: {n_states} stack/layer states", flush=True)
        states = visit_order(list(STACKS), args.layers)
        browser = browse(index, states, args.timeout)
        print(f"  browser run: {browser.seconds:.1f} s", flush=True)
        print()

        print(f"{'state':<22} {'chosen by':<42} {'shown':>9} {'usable':>9} {'file':>9} {'distinct ex.':>12}")
        for timing in browser.layers:
            state = f"{timing.stack} layer {timing.layer}"
            size = data.per_layer.get((timing.stack, timing.layer))
            share = synthetic.distinct_share(timing.stack, timing.layer)
            line = (
                f"{state:<22} {timing.how:<42} {_fmt(timing.shown_s, 's'):>9} "
                f"{_fmt(timing.usable_s, 's'):>9} {_fmt(None if size is None else size / 1e6, 'MB'):>9} "
                f"{share:>12.3f}"
            )
            print(line + (f"  ({timing.problem})" if timing.problem else ""))
        print(
            "(file: the layer's data file; distinct ex.: distinct training rows / the layer's "
            f"{args.units * EXEMPLARS} exemplars)"
        )
        print()

        worst = browser.worst_layer_s
        worst_state = next(
            (
                f"{t.stack} layer {t.layer}"
                for t in browser.layers
                if worst is not None and t.usable_s == worst
            ),
            "",
        )
        figures = {
            "report_mb": report_bytes / 1e6,
            "first_paint_s": browser.first_paint_s,
            "worst_layer_s": worst,
            "memory_mb": browser.memory_mb,
        }
        # Both figures are about all the states: with one missing, neither is known.
        complete = len(browser.layers) == n_states and all(t.usable_s is not None for t in browser.layers)
        if not complete:
            figures["worst_layer_s"] = None
            figures["memory_mb"] = None
        data_note = (
            f"data files {data.total_bytes / 1e6:.1f} MB, largest {data.largest_name} "
            f"{data.largest_bytes / 1e6:.1f} MB"
            if data.total_bytes
            else "no data files"
        )
        notes = {
            "report_mb": f"{data_note}; images {synthetic.pixels / 1e6:.0f} MB as raw 8-bit levels",
            "first_paint_s": (
                f"DOMContentLoaded {_fmt(browser.dom_content_loaded_s, 's')}, "
                f"load {_fmt(browser.load_s, 's')}"
            ),
            "worst_layer_s": (
                f"{worst_state}; first state usable {_fmt(browser.page_ready_s, 's')} after navigation start"
                if worst is not None
                else f"{sum(t.usable_s is not None for t in browser.layers)} of {n_states} states measured"
            ),
            "memory_mb": (
                f"page renderer's RSS, {_fmt(browser.renderer_private_mb, 'MB')} of it private (all "
                + "renderers' RSS: "
                + ", ".join(f"{m:.0f}" for m in browser.renderers_mb)
                + " MB); "
                f"JS heap {_fmt(browser.js_heap_mb, 'MB')}, "
                f"all Chromium PSS {_fmt(browser.chromium_pss_mb, 'MB')}"
                if browser.renderer_rss_mb is not None
                else "JS heap (renderer RSS unknown)"
            )
            if complete
            else f"not every state was visited and drawn ({_fmt(browser.memory_mb, 'MB')} at the end)",
        }
        units = {"report_mb": "MB", "first_paint_s": "s", "worst_layer_s": "s", "memory_mb": "MB"}
        for line in _rows(figures, units, notes):
            print(line)
        print(
            f"generation {generate_s:.1f} s, write_report {report_s:.1f} s, browser {browser.seconds:.1f} s"
        )
        print(
            f"data files: {data.layer_files} layer files + {INDEX_FILE}, {data.total_bytes / 1e6:.1f} MB "
            f"({data.total_bytes / max(synthetic.pixels, 1):.2f} of the images' raw 8-bit size), largest "
            f"{data.largest_name} {data.largest_bytes / 1e6:.2f} MB"
        )
        shares = {name: synthetic.dataset_share(name) for name in DATASETS}
        print(
            "distinct exemplars per data set, over its 2 stacks' layers: "
            + ", ".join(
                f"{name} {share:.3f} ({rows} of {POOL_ROWS} pool rows)"
                for name, (share, rows) in shares.items()
            )
        )
        for problem in data.problems + browser.problems:
            print(f"problem: {problem}")
        for message in browser.console_errors:
            print(f"console error: {message}")

        def rounded(x: float | None, digits: int) -> float | None:
            return None if x is None or not math.isfinite(x) else round(x, digits)

        result = {
            "benchmark": "report_scale",
            "report_mb": rounded(figures["report_mb"], 2),
            "first_paint_s": rounded(figures["first_paint_s"], 3),
            "worst_layer_s": rounded(figures["worst_layer_s"], 3),
            "memory_mb": rounded(figures["memory_mb"], 1),
            "units": args.units,
            "layers": args.layers,
            "budgets_met": {key: verdict(key, value) for key, value in figures.items()},
            "js_heap_mb": rounded(browser.js_heap_mb, 1),
            "renderer_private_mb": rounded(browser.renderer_private_mb, 1),
            "page_ready_s": rounded(browser.page_ready_s, 3),
            "generate_s": round(generate_s, 1),
            "write_report_s": round(report_s, 1),
            "data_mb": rounded(data.total_bytes / 1e6, 2),
            "layer_files": data.layer_files,
            "largest_layer_file_mb": rounded(data.largest_bytes / 1e6, 2),
            "distinct_exemplars": {
                f"{stack}/{j}": round(synthetic.distinct_share(stack, j), 3)
                for stack, j in synthetic.exemplar_rows
            },
            "browser_s": round(browser.seconds, 1),
            "problems": data.problems
            + browser.problems
            + [f"{t.stack}/{t.layer}: {t.problem}" for t in browser.layers if t.problem],
            "console_errors": browser.console_errors,
        }
        print(json.dumps(result))
    finally:
        if args.out is None and not args.keep:
            shutil.rmtree(run, ignore_errors=True)
        elif args.out is None:
            print(f"kept {run}", file=sys.stderr)


if __name__ == "__main__":
    main()
