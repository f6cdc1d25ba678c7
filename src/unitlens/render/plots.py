"""Small matplotlib plots beside the paper's figures: training curves, restart agreement, AM histories.

Each function is pure: it takes rows of a training log or one stack's results arrays
(``unitlens.results.load_arrays``) and returns the bytes of a PNG; ``unitlens.render.figures.write_figures``
saves them. Figures are drawn with matplotlib's object-oriented API on an Agg canvas, never through
``pyplot``: no global figure state, nothing shown, and a user's own backend choice is left alone.
Data a plot needs but does not find (an empty history, results without the key) gives a small PNG that
says so rather than an error; arrays of the wrong shape raise ``UnitlensError``.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, FuncFormatter

from unitlens.errors import UnitlensError

__all__ = ["activation_history_plot", "restart_agreement_plot", "training_curves_plot"]

_LAYER_KEY = re.compile(r"^layer(\d+)/")
_DPI = 100
_PANEL = (3.2, 2.5)  # inches per subplot: small PNGs that still read at 100 dpi

# The training log's curves: key -> legend label.
_LOSSES = {"train_loss": "training loss", "heldout_reconstruction": "held-out reconstruction"}
_PLL = "heldout_pseudo_log_likelihood"


def _figure(n_cols: int, n_rows: int = 1) -> Figure:
    fig = Figure(figsize=(_PANEL[0] * n_cols, _PANEL[1] * n_rows + 0.35), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" stamp: the same data gives the same bytes whatever the matplotlib version.
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _note(message: str, title: str) -> bytes:
    """A small PNG that only says ``message`` (for plots without data)."""
    fig = _figure(1)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, wrap=True)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


def _layers(results: Mapping[str, np.ndarray], key: str) -> list[int]:
    return sorted({int(m.group(1)) for k in results if (m := _LAYER_KEY.match(k)) and k.endswith("/" + key)})


def _array(results: Mapping[str, np.ndarray], key: str, ndim: int) -> np.ndarray:
    arr = np.asarray(results[key])
    if arr.ndim != ndim or arr.dtype.kind not in "biuf":
        raise UnitlensError(f"results: {key} must be a {ndim}-D numeric array, got shape {arr.shape}")
    return arr


def _number(row: Mapping[str, Any], key: str, index: int) -> float | None:
    if key not in row or row[key] is None:
        return None
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnitlensError(f"training log row {index}: {key} must be a number, got {value!r}")
    return float(value)


def training_curves_plot(rows: Sequence[Mapping[str, Any]], *, title: str = "") -> bytes:
    """Training loss and held-out reconstruction error against examples seen, one panel per layer.

    Args:
        rows: monitoring points of a ``NAME-log.jsonl`` log: ``layer``, ``examples``, and any of
            ``train_loss``, ``heldout_reconstruction``, ``heldout_pseudo_log_likelihood`` (when present, a
            second row of panels shows it).
        title: shown above the panels.

    Returns:
        PNG bytes; a note when ``rows`` is empty.

    Raises:
        UnitlensError: a row without ``layer``/``examples`` or with a non-numeric value.
    """
    if not rows:
        return _note("no training history", title)
    by_layer: dict[int, list[tuple[float, dict[str, float]]]] = {}
    for i, row in enumerate(rows):
        layer, examples = _number(row, "layer", i), _number(row, "examples", i)
        if layer is None or examples is None:
            raise UnitlensError(f"training log row {i}: needs 'layer' and 'examples', got keys {sorted(row)}")
        values = {k: v for k in (*_LOSSES, _PLL) if (v := _number(row, k, i)) is not None}
        by_layer.setdefault(int(layer), []).append((examples, values))
    layers = sorted(by_layer)
    has_pll = any(_PLL in v for points in by_layer.values() for _, v in points)
    fig = _figure(len(layers), 2 if has_pll else 1)
    axes = fig.subplots(2 if has_pll else 1, len(layers), squeeze=False)
    for c, layer in enumerate(layers):
        points = sorted(by_layer[layer], key=lambda p: p[0])
        ax = axes[0, c]
        for key, label in _LOSSES.items():
            xs = [x for x, v in points if key in v]
            if xs:
                ax.plot(xs, [v[key] for _, v in points if key in v], marker=".", ms=3, lw=1, label=label)
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_ylabel("error" if c == 0 else "", fontsize=8)
        if has_pll:
            xs = [x for x, v in points if _PLL in v]
            axes[1, c].plot(xs, [v[_PLL] for _, v in points if _PLL in v], marker=".", ms=3, lw=1, color="C2")
            axes[1, c].set_ylabel("held-out pseudo-LL" if c == 0 else "", fontsize=8)
        for ax in axes[:, c]:
            ax.xaxis.set_major_formatter(EngFormatter())
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3, lw=0.5)
        axes[-1, c].set_xlabel("examples", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        axes[0, 0].legend(handles, labels, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


def restart_agreement_plot(
    results: Mapping[str, np.ndarray], *, threshold: float = 0.9, title: str = ""
) -> bytes:
    """Histograms of each unit's mean pairwise cosine between its AM restarts, one panel per layer.

    Reads ``layer{j}/restart_mean_cosine`` ``(U,)``. A dashed line marks ``threshold`` ("the same
    pattern"); each panel's title gives the median and the share of units above the threshold.

    Returns:
        PNG bytes; a note when no layer has the key.
    """
    layers = _layers(results, "restart_mean_cosine")
    if not layers:
        return _note("no restart agreement in these results", title)
    values = {j: _array(results, f"layer{j}/restart_mean_cosine", 1).astype(np.float64) for j in layers}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()])
    # Shared bins from just below the threshold (or the lowest value) to 1, so layers compare at a glance.
    low = min(threshold - 0.1, math.floor(float(finite.min()) * 20) / 20) if finite.size else threshold - 0.1
    high = max(1.0, float(finite.max())) if finite.size else 1.0
    bins = np.linspace(low, high, 31)
    fig = _figure(len(layers))
    axes = fig.subplots(1, len(layers), squeeze=False, sharey=True)[0]
    for ax, j in zip(axes, layers, strict=True):
        v = values[j][np.isfinite(values[j])]
        ax.hist(v, bins=bins, color="0.35")
        ax.axvline(threshold, color="C3", ls="--", lw=1)
        stats = (
            f"median {np.median(v):.3f}, {np.mean(v > threshold):.0%} > {threshold:g}"
            if v.size
            else "no units"
        )
        ax.set_title(f"layer {j}: {stats}", fontsize=8)
        ax.set_xlabel("mean cosine between restarts", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("units", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


def activation_history_plot(results: Mapping[str, np.ndarray], *, n_units: int = 4, title: str = "") -> bytes:
    """Pre-sigmoid activation against AM step for every restart of the first ``n_units`` units, per layer.

    Reads ``layer{j}/am_history`` ``(T, U, R)`` and, when present, ``am_steps`` ``(U, R)`` (each restart's
    curve stops at its last step) and ``units`` (legend labels). One colour per unit, one line per restart.

    Returns:
        PNG bytes; a note when no layer has a history.
    """
    if n_units < 1:
        raise UnitlensError(f"n_units: expected >= 1, got {n_units}")
    layers = _layers(results, "am_history")
    if not layers:
        return _note("no activation histories in these results", title)
    fig = _figure(len(layers))
    axes = fig.subplots(1, len(layers), squeeze=False)[0]
    for ax, j in zip(axes, layers, strict=True):
        history = _array(results, f"layer{j}/am_history", 3).astype(np.float64)
        t, u, r = history.shape
        steps = results.get(f"layer{j}/am_steps")
        if steps is not None and np.asarray(steps).shape != (u, r):
            raise UnitlensError(
                f"results: layer{j}/am_steps has shape {np.asarray(steps).shape}, expected {(u, r)}"
            )
        ids = results.get(f"layer{j}/units")
        ids = np.arange(u) if ids is None or np.asarray(ids).shape != (u,) else np.asarray(ids)
        for k in range(min(n_units, u)):
            for restart in range(r):
                stop = t if steps is None else min(t, int(np.asarray(steps)[k, restart]) + 1)
                ax.plot(
                    np.arange(stop),
                    history[:stop, k, restart],
                    color=f"C{k % 10}",
                    lw=0.8,
                    alpha=0.7,
                    label=f"unit {ids[k]}" if restart == 0 else None,
                )
        # Most of the rise happens in the first few steps, then a long plateau: a log step axis shows both.
        ax.set_xscale("symlog", linthresh=1, linscale=0.5)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(f"layer {j}", fontsize=9)
        ax.set_xlabel("AM step (log scale)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    axes[0].set_ylabel("activation (pre-sigmoid)", fontsize=8)
    axes[0].legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)
