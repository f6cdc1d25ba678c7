"""Small matplotlib plots beside the paper's figures: training curves, restart agreement, AM histories,
and the fine-tuning sweep behind claim 7.

Each function is pure: it takes rows of a training log, one stack's validated results
(``unitlens.results.StackResults``) or the fine-tuning results, and returns the bytes of a PNG;
``unitlens.render.figures.write_figures`` saves them. Figures are drawn with matplotlib's object-oriented
API on an Agg canvas, never through ``pyplot``: no global figure state, nothing shown, and a user's own
backend choice is left alone.
Data a plot needs but does not find (an empty history, a layer the results lack) gives a small PNG that
says so rather than an error; the results' shapes were checked when they were loaded.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, FuncFormatter

from unitlens.analysis.claims import FINETUNE_COSINE
from unitlens.errors import UnitlensError
from unitlens.render.figures import row_margins
from unitlens.results import StackResults

__all__ = [
    "activation_history_plot",
    "finetune_sweep_plot",
    "restart_agreement_plot",
    "training_curves_plot",
]

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


def restart_agreement_plot(results: StackResults, *, threshold: float = 0.9, title: str = "") -> bytes:
    """Histograms of each unit's mean pairwise cosine between its AM restarts, one panel per layer.

    Reads each layer's ``restart_mean_cosine`` ``(U,)`` (NaN values are left out). A dashed line marks
    ``threshold`` ("the same pattern"; ``write_figures`` passes the study's, from its summary); each
    panel's title gives the layer's name (``StackResults.layer_name``: "layer j", or a user model's
    "conv1"), the median and the share of units above the threshold.

    Returns:
        PNG bytes.
    """
    layers = list(results.layers)
    values = {j: results.layers[j].restart_mean_cosine.astype(np.float64) for j in layers}
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
        ax.set_title(f"{results.layer_name(j)}: {stats}", fontsize=8)
        ax.set_xlabel("mean cosine between restarts", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("units", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


def activation_history_plot(results: StackResults, *, n_units: int = 4, title: str = "") -> bytes:
    """Pre-sigmoid activation against AM step for every restart of the first ``n_units`` units, per layer.

    Reads each layer's ``am_history`` ``(T, U, R)``, ``am_steps`` ``(U, R)`` (each restart's curve stops at
    its last step) and ``units`` (legend labels). One colour per unit, one line per restart; panels are
    titled by layer name (``StackResults.layer_name``).

    Returns:
        PNG bytes.
    """
    if n_units < 1:
        raise UnitlensError(f"n_units: expected >= 1, got {n_units}")
    layers = list(results.layers)
    fig = _figure(len(layers))
    axes = fig.subplots(1, len(layers), squeeze=False)[0]
    for ax, j in zip(axes, layers, strict=True):
        layer = results.layers[j]
        history = layer.am_history.astype(np.float64)
        t, u, r = history.shape
        steps, ids = layer.am_steps, layer.units
        for k in range(min(n_units, u)):
            for restart in range(r):
                stop = min(t, int(steps[k, restart]) + 1)
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
        ax.set_title(results.layer_name(j), fontsize=9)
        ax.set_xlabel("AM step (log scale)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    axes[0].set_ylabel("activation (pre-sigmoid)", fontsize=8)
    axes[0].legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


def _rate_values(entry: Mapping[str, Any], key: str, index: int) -> dict[str, float]:
    """``entry[key]`` of sweep row ``index`` as {name: number}; absent or None values are left out."""
    values = entry.get(key, {})
    if not isinstance(values, Mapping):
        raise UnitlensError(f"finetune sweep[{index}].{key} must be an object, got {values!r}")
    out: dict[str, float] = {}
    for name, value in values.items():
        if value is None:
            continue
        if not _is_number(value):
            raise UnitlensError(f"finetune sweep[{index}].{key}[{name!r}] must be a number, got {value!r}")
        out[str(name)] = float(value)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rate(value: Any, where: str) -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise UnitlensError(f"finetune {where} must be a learning rate > 0, got {value!r}")
    return float(value)


def finetune_sweep_plot(finetune: Mapping[str, Any], *, title: str = "") -> bytes:
    """Claim 7 against the pre-trained layers' fine-tuning rate: AM cosines (left), held-out errors (right).

    Args:
        finetune: the contents of ``results/finetune.json``: ``sweep``, a list of rows
            ``{"hidden_learning_rate", "errors": {model: error}, "am_cosine": {"model Lj": cosine}}``;
            optionally ``hidden_learning_rate`` (the judged rate, marked in both panels) and
            ``errors["random"]`` (the randomly initialised network, a horizontal line).
        title: shown above the panels.

    Left: the median cosine between each layer's AM images before and after fine-tuning, one line per
    "model layer", with the specification's floor (``FINETUNE_COSINE``) dashed. Right: each model's held-out
    error. The rate axis is logarithmic.

    Returns:
        PNG bytes; a note when there is no sweep.

    Raises:
        UnitlensError: a sweep that is not a list of such rows, a rate that is not a number > 0, a value
            that is not a number.
    """
    sweep = finetune.get("sweep")
    if not sweep:
        return _note("fine-tuning sweep not measured", title)
    if not isinstance(sweep, Sequence) or isinstance(sweep, str):
        raise UnitlensError(f"finetune sweep must be a list of rows, got {type(sweep).__name__}")
    rows: list[tuple[float, dict[str, float], dict[str, float]]] = []
    for i, entry in enumerate(sweep):
        if not isinstance(entry, Mapping):
            raise UnitlensError(f"finetune sweep[{i}] must be an object, got {entry!r}")
        rate = _rate(entry.get("hidden_learning_rate"), f"sweep[{i}].hidden_learning_rate")
        rows.append((rate, _rate_values(entry, "errors", i), _rate_values(entry, "am_cosine", i)))
    rows.sort(key=lambda r: r[0])
    judged = finetune.get("hidden_learning_rate")
    judged = None if judged is None else _rate(judged, "hidden_learning_rate")
    top_errors = finetune.get("errors", {})
    if not isinstance(top_errors, Mapping):
        raise UnitlensError(f"finetune errors must be an object, got {top_errors!r}")
    random_error = top_errors.get("random")
    if random_error is not None and not _is_number(random_error):
        raise UnitlensError(f"finetune errors['random'] must be a number, got {random_error!r}")

    fig = _figure(2)
    fig.set_size_inches(2 * _PANEL[0] + 0.6, _PANEL[1] + 0.75)
    left, right = fig.subplots(1, 2)
    keys = sorted({k for _, _, cos in rows for k in cos})
    models = sorted({k for _, err, _ in rows for k in err if k != "random"} | {k.split(" ")[0] for k in keys})
    colour = {m: f"C{i % 10}" for i, m in enumerate(models)}  # one colour per model in both panels
    styles: dict[str, str] = {}
    for key in keys:
        model, _, layer = key.partition(" ")
        style = styles.setdefault(layer, ("-", "-.", ":")[len(styles) % 3])
        points = [(rate, cos[key]) for rate, _, cos in rows if key in cos]
        left.plot(
            *zip(*points, strict=True), color=colour[model], ls=style, marker="o", ms=3, lw=1, label=key
        )
    left.axhline(FINETUNE_COSINE, color="0.3", ls="--", lw=1, label=f"floor {FINETUNE_COSINE:g}")
    left.set_ylabel("median AM cosine, before vs after", fontsize=8)
    for model in sorted({k for _, err, _ in rows for k in err if k != "random"}):
        points = [(rate, err[model]) for rate, err, _ in rows if model in err]
        right.plot(
            *zip(*points, strict=True), color=colour[model], marker="o", ms=3, lw=1, label=model.upper()
        )
    if random_error is not None:
        right.axhline(float(random_error), color="0.3", ls="--", lw=1, label="random initialisation")
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.1%}"))
    right.set_ylabel("held-out error", fontsize=8)
    for ax in (left, right):
        if judged is not None:
            ax.axvline(judged, color="C3", ls=":", lw=1.2, label=f"judged rate {judged:g}")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("hidden-layer learning rate (log scale)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


_SELECTIVITY_PANELS = (
    ("selectivity", "AM optima"),
    ("control_selectivity", "shuffled-weights control"),
    ("exemplar_selectivity", "top data exemplars"),
)


def selectivity_plot(results: StackResults, layer: int, *, title: str = "") -> bytes:
    """The selectivity matrix of ``layer`` as a heat map with a colour scale, beside the shuffled control's
    and the top exemplars' where the results hold them, and each matrix's row margins.

    Reads the layer's ``selectivity`` and, when present, ``control_selectivity`` and
    ``exemplar_selectivity``: (Us, Us) matrices whose columns sum to 1 (rows: each unit's pattern, columns:
    the units' responses). All heat maps share one colour scale, so the diagonals compare at a glance; the
    bottom row plots each row's margin (diagonal minus largest other entry: > 0 when the pattern excites
    its own unit most), with the median in the panel's title.

    Returns:
        PNG bytes; a note when the results have no such layer, the layer has no matrix (a user model's
        layer of one studied unit) or its matrix has fewer than 2 units.
    """
    lr = results.layers.get(layer)
    if lr is None:
        return _note(f"no layer {layer} in these results", title)
    name = results.layer_name(layer)
    if lr.selectivity is None:
        return _note(f"{name}: no selectivity matrix in these results", title)
    if lr.selectivity.shape[0] < 2:
        return _note(f"{name}: a selectivity matrix needs at least 2 units", title)
    panels = []
    for name, label in _SELECTIVITY_PANELS:
        m = getattr(lr, name)
        if m is not None:
            panels.append((label, m.astype(np.float64)))
    vmax = max(float(m.max()) for _, m in panels) or 1.0
    fig = _figure(len(panels), 2)
    grid = fig.subplots(2, len(panels), squeeze=False, height_ratios=(3, 1.3))
    image = None
    for col, (label, m) in enumerate(panels):
        ax = grid[0, col]
        image = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("unit j (response)", fontsize=7)
        ax.set_ylabel("pattern of unit i", fontsize=7)
        ax.tick_params(labelsize=6)
        margin = row_margins(m)
        bx = grid[1, col]
        bx.bar(np.arange(m.shape[0]), margin, color=np.where(margin > 0, "C0", "C3"), width=0.9)
        bx.axhline(0.0, color="0.3", lw=0.8)
        bx.set_title(
            f"row margins: median {np.median(margin):.3f}, {np.mean(margin > 0):.0%} > 0", fontsize=7
        )
        bx.set_xlabel("row i", fontsize=7)
        bx.tick_params(labelsize=6)
    grid[1, 0].set_ylabel("margin", fontsize=7)
    if image is not None:
        bar = fig.colorbar(image, ax=list(grid[0]), shrink=0.8)
        bar.set_label("share of unit j's response (columns sum to 1)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    fig.suptitle(f"{title + ': ' if title else ''}selectivity, {name}", fontsize=10)
    return _png(fig)
