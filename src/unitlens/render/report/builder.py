"""Build the browsable static report of a run folder (paper sections 6 and 7).

``write_report(RUN)`` reads ``RUN/run.json``, ``RUN/results/*.npz`` with their ``.json`` summaries (through
``unitlens.results.StackResults.load``, which validates them), ``RUN/results/claims.json`` and the figures
that ``RUN/figures/manifest.json`` lists (``unitlens.render.figures.read_manifest``), and writes into
``RUN/report/``:

- ``index.html``: the overview (run facts, figures, the measured claims, per-layer summary tables), drawn
  here in Python so it reads without JavaScript, and the unit explorer's controls;
- ``data.js``: one statement ``window.UNITLENS_REPORT_DATA = {...};`` whose right-hand side is JSON. It is
  loaded with a ``<script>`` tag because browsers refuse ``fetch()`` on ``file://`` pages;
- ``explorer.js`` and ``style.css``: static assets copied from this package.

Nothing is fetched from a network: the report opens from disk with no server.

The results are the paper's stacks (``mnist-dbn``, ...) and users' own models (``NAME-RECIPE``, one file
per recipe, with layer names and grey or RGB inputs; ``unitlens.render.figures.split_results_name``).
Claims are measured on the paper's stacks only: a run of a user's model shows none and says so.

Images travel compactly. Each image is scaled on its own to levels in [0, 1] by the paper's display rule
(``unitlens.render.tiles``: signed arrays show zero as mid grey; an RGB image's three channels together),
quantised to uint8 in the results' channel-major order (``(C, H, W)`` flattened: all red levels, then
green, then blue), and each array of images is zlib-compressed and base64-encoded. The browser inflates it
with ``DecompressionStream`` (format ``"deflate"`` is zlib's) and draws it on ``<canvas>``. Compression
halves the payload: AM optima are noisy, but digits, filters and restarts that agree compress well.
"""

from __future__ import annotations

import base64
import html
import json
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from unitlens.atomic import write_text
from unitlens.catalogue import DATASET_LABELS, DATASETS, MODEL_LABELS, MODELS
from unitlens.errors import UnitlensError
from unitlens.render.figures import (
    FigureEntry,
    is_paper_stack,
    read_manifest,
    recipe_order,
    split_results_name,
)
from unitlens.render.tiles import tile_images
from unitlens.results import ImageShape, LayerResults, StackResults, display_shape

__all__ = [
    "DATA_GLOBAL",
    "ReportStack",
    "RunContents",
    "data_js",
    "decode_images",
    "encode_images",
    "explorer_payload",
    "index_html",
    "quantise_images",
    "read_run",
    "write_report",
]

DATA_GLOBAL = "UNITLENS_REPORT_DATA"
"""The global that ``data.js`` assigns; ``explorer.js`` reads it."""

_DATA_PREFIX = f"window.{DATA_GLOBAL} = "
_ASSETS = ("explorer.js", "style.css")

DATASET_ORDER = DATASETS
MODEL_ORDER = MODELS

# Image fields (unitlens.results.LayerResults) carried to the explorer, in the order panels show them.
# Shapes (U, d) or (U, k, d).
IMAGE_KEYS = ("filters", "am_x", "samples", "samples_mean", "lc", "exemplars")
# Per-unit numbers carried to the explorer: float arrays (U,) or (U, k), and integer ones.
FLOAT_KEYS = (
    "am_activation",
    "am_stationarity",
    "exemplar_activations",
    "restart_mean_cosine",
    "energy_concentration",
    "lc_vs_am",
    "samples_vs_am",
)
INT_KEYS = ("units", "am_best", "am_steps", "am_converged", "flat", "dead", "exemplar_labels")

# verdict -> (CSS class, mark, words): the mark and the words tell the states apart without colour.
_VERDICTS = {
    "holds": ("holds", "\u2714", "holds"),
    "holds_control_too": ("control", "\u2248", "holds, but so does the control"),
    "fails": ("fails", "\u2718", "fails"),
    "not_measured": ("unmeasured", "\u2013", "not measured"),
    "descriptive": ("descriptive", "\u2139", "descriptive"),
}
_OLD_VERDICTS = {True: "holds", False: "fails", None: "not_measured"}


def _verdict_of(claim: dict[str, Any]) -> str:
    """A claim's verdict; a claims.json written before verdicts existed has only ``holds``."""
    return str(claim.get("verdict") or _OLD_VERDICTS[claim.get("holds")])


@dataclass(frozen=True)
class ReportStack:
    """One trained stack or user model in the report: ``results/NAME.npz`` and its summary ``.json``.

    Attributes:
        name: the file stem: ``{dataset}-{model}`` for the paper's stacks, ``NAME-RECIPE`` for a user's model.
        dataset, model: the paper's stacks: the stem split at its last hyphen (model ``""`` when there is
            none); a user's model: its NAME and its recipe (``split_results_name``; ``""`` when none).
        results: the validated results (``unitlens.results.StackResults``), summary included when present.
        path: the ``.npz`` file.
    """

    name: str
    dataset: str
    model: str
    results: StackResults
    path: Path

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(self.results.layers)

    @property
    def is_paper(self) -> bool:
        """One of the paper's DBN/SDAE stacks (``unitlens.catalogue``), not a user's model."""
        return is_paper_stack(self.name)

    @property
    def recipe(self) -> str | None:
        """A user model's AM recipe (``"paper"``, ``"lucid"``, ...), or None."""
        return None if self.is_paper else (self.results.recipe or self.model or None)

    @property
    def description(self) -> str | None:
        """A user model's description (the summary's ``"model"``), or None."""
        return self.results.model_description

    @property
    def dataset_label(self) -> str:
        return DATASET_LABELS.get(self.dataset, self.dataset) if self.is_paper else self.dataset

    @property
    def model_label(self) -> str:
        if not self.is_paper:
            if self.model in MODEL_LABELS and self.results.recipe is None:  # a stack on a user's data set
                return MODEL_LABELS[self.model]
            return f"{self.recipe} recipe" if self.recipe else "results"
        return MODEL_LABELS.get(self.model, self.model.upper() or "model")

    @property
    def label(self) -> str:
        if not self.is_paper:
            return f"{self.dataset} — {self.model_label}"
        dataset = DATASET_LABELS.get(self.dataset, self.dataset)
        return f"{dataset} — {MODEL_LABELS.get(self.model, self.model.upper())}" if self.model else dataset


@dataclass(frozen=True)
class RunContents:
    """What a run folder holds for the report; optional parts are None when absent.

    ``figures`` are the entries of ``figures/manifest.json`` (None: no manifest), sorted by file name.
    """

    folder: Path
    run: dict[str, Any] | None
    stacks: tuple[ReportStack, ...]
    claims: tuple[dict[str, Any], ...] | None
    figures: tuple[FigureEntry, ...] | None


# ---------------------------------------------------------------------------------------------------------
# Reading the run folder


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UnitlensError(f"{path}: could not read the file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise UnitlensError(f"{path}: not valid JSON ({exc})") from exc


def _order_key(stem: str) -> tuple[int, int, str, int, str]:
    """Where a results file's stack goes: the paper's stacks first (data sets, then models, in the
    catalogue's order), then users' models by NAME, each NAME's recipes paper, lucid, then the others.
    Any stem sorts (a NAME with hyphens, dots or none at all)."""
    if is_paper_stack(stem):
        dataset, _, model = stem.rpartition("-")
        return 0, DATASET_ORDER.index(dataset), dataset, MODEL_ORDER.index(model), model
    name, recipe = split_results_name(stem)
    rank, word = recipe_order(recipe)
    return 1, 0, name, rank, word


def _read_stack(npz: Path) -> ReportStack:
    stem = npz.stem
    results = StackResults.load(npz)
    if is_paper_stack(stem):
        dataset, _, model = stem.rpartition("-")
    else:
        dataset, recipe = split_results_name(stem, results.recipe)
        model = recipe or ""
    return ReportStack(stem, dataset, model, results, npz)


def _check_claims(path: Path, doc: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(doc, list):
        raise UnitlensError(f'{path}: expected a list of claims [{{"id": ..., "claim": ..., ...}}]')
    for i, c in enumerate(doc):
        if not isinstance(c, dict):
            raise UnitlensError(f"{path}: claim [{i}] is not an object")
        for key in ("id", "claim", "measured"):
            if key not in c:
                raise UnitlensError(f"{path}: claim [{i}] has no field '{key}'")
        if c.get("holds") not in (True, False, None):
            raise UnitlensError(
                f"{path}: claim [{i}] field 'holds' must be true, false or null, got {c['holds']!r}"
            )
        if "verdict" in c and c["verdict"] not in _VERDICTS:
            raise UnitlensError(
                f"{path}: claim [{i}] field 'verdict' must be one of {sorted(_VERDICTS)}, "
                f"got {c['verdict']!r}"
            )
    return tuple(doc)


def read_run(run_dir: str | Path) -> RunContents:
    """Read everything the report shows from a run folder.

    Raises:
        UnitlensError: the folder or its ``results/*.npz`` are missing, or a file is malformed (the message
            names the file and what was expected).
    """
    folder = Path(run_dir)
    if not folder.is_dir():
        raise UnitlensError(f"run folder {folder} does not exist or is not a folder")
    results = folder / "results"
    npzs = sorted(results.glob("*.npz"), key=lambda p: _order_key(p.stem)) if results.is_dir() else []
    if not npzs:
        raise UnitlensError(
            f"run folder {folder} holds no results: expected results/{{dataset}}-{{model}}.npz files "
            "(run the study first) or results/NAME-RECIPE.npz ones (run `unitlens visualize --model ...`)"
        )
    stacks = tuple(_read_stack(p) for p in npzs)

    run: dict[str, Any] | None = None
    if (folder / "run.json").exists():
        doc = _read_json(folder / "run.json")
        if not isinstance(doc, dict):
            raise UnitlensError(f"{folder / 'run.json'}: expected a JSON object with 'seed', 'preset', ...")
        run = doc

    claims = None
    claims_path = results / "claims.json"
    if claims_path.exists():
        claims = _check_claims(claims_path, _read_json(claims_path))

    entries = read_manifest(folder / "figures")
    figures = None if entries is None else tuple(sorted(entries, key=lambda e: e.file))
    return RunContents(folder, run, stacks, claims, figures)


# ---------------------------------------------------------------------------------------------------------
# Compact images


def quantise_images(images: np.ndarray, image_shape: ImageShape, signed: bool) -> np.ndarray:
    """Scale each image on its own for display and quantise it to 8 bits.

    Args:
        images: ``(n, d)`` real values, d = ``prod(image_shape)``; colour images flattened channel-major.
        image_shape: ``(h, w)`` grey, or ``(c, h, w)`` with c = 1 or 3.
        signed: True: ``0.5 + 0.5 * x / max|x|`` (zero is mid grey); False: stretched from min to max
            (see ``unitlens.render.tiles.scale_tile``). An RGB image's channels share its scale.

    Returns:
        uint8 ``(n, d)`` in the input's order (channel-major for RGB): ``round(255 * scaled)``, within half
        a level of the scaled value; for vectors ``image_shape`` ``(d,)``, ``(n, h * w)``: their bar plots
        (``display_shape``), which the explorer draws as grey images.
    """
    flat = np.asarray(images, dtype=np.float64)
    n = flat.shape[0]
    # A one-column grid without borders scales every tile on its own in one vectorised call.
    panel = tile_images(flat, image_shape, grid=(n, 1), signed=signed, border=0)
    if panel.ndim == 3:  # (n*h, w, 3), channels last -> back to the results' (n, 3, h, w) order
        h, w = display_shape(image_shape)
        panel = panel.reshape(n, h, w, 3).transpose(0, 3, 1, 2)
    # (n, d) for images; a vector's bar plot has display_shape's h * w pixels.
    return np.rint(panel.reshape(n, -1) * 255.0).astype(np.uint8)


def encode_images(q: np.ndarray) -> str:
    """uint8 array -> base64 text of its zlib-compressed bytes (C order)."""
    return base64.b64encode(zlib.compress(np.ascontiguousarray(q, dtype=np.uint8).tobytes(), 9)).decode(
        "ascii"
    )


def decode_images(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``encode_images``: the uint8 array of ``shape``."""
    raw = zlib.decompress(base64.b64decode(text))
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def _number(x: float, digits: int = 4) -> float | None:
    """A float with ``digits`` significant digits (keeps data.js small); NaN or infinity becomes null."""
    return float(f"{x:.{digits}g}") if math.isfinite(x) else None


def _floats(arr: np.ndarray, digits: int = 4) -> Any:
    """``arr`` as nested lists of rounded floats (None where not finite)."""
    if not arr.size:
        return arr.tolist()
    return np.vectorize(lambda x: _number(x, digits), otypes=[object])(arr.astype(np.float64)).tolist()


def _layer_payload(stack: ReportStack, j: int) -> dict[str, Any]:
    a: LayerResults = stack.results.layers[j]
    shape, d = stack.results.image_shape, stack.results.n_inputs
    images: dict[str, Any] = {}
    for key in IMAGE_KEYS:
        arr = getattr(a, key)
        if arr is None:
            continue
        per_unit = 1 if arr.ndim == 2 else int(arr.shape[1])
        if per_unit == 0:
            continue
        signed = bool((arr < 0).any())
        q = quantise_images(arr.reshape(-1, d), shape, signed)
        images[key] = {"per_unit": per_unit, "signed": signed, "data": encode_images(q)}
    numbers: dict[str, Any] = {}
    for key in FLOAT_KEYS:
        if (arr := getattr(a, key)) is not None:
            # Restarts that agree differ in the 5th digit of their activation: keep their spread visible.
            numbers[key] = _floats(arr, 7 if key == "am_activation" else 4)
    for key in INT_KEYS:
        if (arr := getattr(a, key)) is not None:
            numbers[key] = arr.astype(np.int64).tolist()

    # The study's threshold for "degenerate" (its summary); without a summary the explorer flags nothing.
    threshold = _get(stack.results.layer_summary(j) or {}, "degenerate", "threshold")
    out: dict[str, Any] = {
        "layer": j,
        "name": stack.results.layer_name(j),
        "n_units": a.n_units,
        "n_restarts": a.n_restarts,
        "images": images,
        "numbers": numbers,
        "degenerate_threshold": threshold,
    }
    if a.selectivity is not None and a.selectivity.size:
        s = a.selectivity.astype(np.float64)
        us = s.shape[0]
        diag = np.diag(s).copy()
        others = np.where(np.eye(us, dtype=bool), -np.inf, s)
        # Values are column-normalised activations in [0, 1]: one absolute scale, no per-row stretch.
        # Columns sum to 1, so values are small: one scale for the whole matrix, its maximum, said beside it.
        top = float(s.max()) or 1.0
        q = np.rint(np.clip(s / top, 0.0, 1.0) * 255.0).astype(np.uint8)
        out["selectivity"] = {
            "n": us,
            "data": encode_images(q),
            "scale_max": _number(top, 4),
            "margin": _floats(diag - others.max(axis=1)) if us > 1 else [None] * us,
            "diagonal": _floats(diag),
            "max_other": _floats(others.max(axis=1)) if us > 1 else [None] * us,
            "argmax_other": others.argmax(axis=1).tolist() if us > 1 else [None] * us,
        }
    return out


def explorer_payload(run: RunContents) -> dict[str, Any]:
    """The JSON-able data the unit explorer reads: every stack's layers, images encoded.

    Per stack: ``image_shape`` as the results hold it (``[h, w]`` or ``[c, h, w]``), ``spatial`` ``[h, w]``
    and ``channels`` (1 or 3): an image array of ``k`` images decodes to ``(k, channels, h, w)``
    (``decode_images``); ``kind`` ``"paper"`` or ``"model"`` (a user's model, with its ``recipe``,
    ``description`` and each layer's ``name``).
    """
    stacks = []
    for stack in run.stacks:
        r = stack.results
        stacks.append(
            {
                "name": stack.name,
                "kind": "paper" if stack.is_paper else "model",
                # The explorer's first picker: a data set's stacks, or one user model's recipes (a model
                # named like a data set must not join its stacks).
                "group": stack.dataset if stack.is_paper else f"model:{stack.dataset}",
                "dataset": stack.dataset,
                "model": stack.model,
                "dataset_label": stack.dataset_label,
                "model_label": stack.model_label,
                "recipe": stack.recipe,
                "description": stack.description,
                "image_shape": list(r.image_shape),
                "spatial": list(r.spatial),
                "channels": r.channels,
                "layers": [_layer_payload(stack, j) for j in stack.layers],
            }
        )
    # Format 2: images may have 3 channels (format 1 was grey only).
    return {"format": 2, "encoding": "zlib+base64 uint8, channel-major", "stacks": stacks}


def data_js(payload: Mapping[str, Any]) -> str:
    """The text of ``data.js``: one assignment whose right-hand side is strict JSON."""
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return f"{_DATA_PREFIX}{body};\n"


# ---------------------------------------------------------------------------------------------------------
# The overview (HTML)


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: Any, digits: int = 3) -> str:
    """A number for a table cell: fixed decimals for fractions, compact otherwise; '—' when absent."""
    if x is None or isinstance(x, bool):
        return "—" if x is None else ("yes" if x else "no")
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "—"
        if abs(x) >= 1000 or (x != 0 and abs(x) < 10 ** (-digits)):
            return f"{x:.{digits}g}"
        return f"{x:.{digits}f}"
    return str(x)


def _seconds(x: Any) -> str:
    if not isinstance(x, int | float) or isinstance(x, bool) or not math.isfinite(x):
        return _e(x)
    if x < 60:
        return f"{x:.1f} s"
    minutes, secs = divmod(x, 60)
    return f"{int(minutes)} min {secs:.0f} s" if minutes < 60 else f"{x / 3600:.2f} h"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            yield from _flatten(v, name + " / ")
        else:
            yield name, v


def _facts_table(title: str, d: Mapping[str, Any], seconds: bool = False) -> str:
    rows = []
    for k, v in _flatten(d):
        value = _seconds(v) if seconds else _e(json.dumps(v) if isinstance(v, list) else _fmt(v, 4))
        rows.append(f'<tr><th scope="row">{_e(k)}</th><td>{value}</td></tr>')
    if not rows:
        return ""
    return f'<table class="facts"><caption>{_e(title)}</caption><tbody>{"".join(rows)}</tbody></table>'


def _run_section(run: RunContents) -> str:
    parts = ['<section id="run" aria-labelledby="run-h"><h2 id="run-h">Run</h2>']
    if run.run is None:
        parts.append('<p class="note">No <code>run.json</code> in this run folder: run facts unknown.</p>')
    else:
        r = run.run
        headline = {"preset": r.get("preset"), "seed": r.get("seed")}
        extra = {
            k: v
            for k, v in r.items()
            if k not in ("preset", "seed", "versions", "stages", "seconds") and not isinstance(v, dict | list)
        }
        parts.append('<div class="facts-grid">')
        parts.append(_facts_table("Run", {**headline, **extra}))
        for key, title, secs in (("versions", "Versions", False), ("stages", "Stages", False)):
            if isinstance(r.get(key), dict):
                parts.append(_facts_table(title, r[key], secs))
        if isinstance(r.get("seconds"), dict):
            parts.append(_facts_table("Timings", r["seconds"], seconds=True))
        parts.append("</div>")
    names = ", ".join(f"<code>{_e(s.name)}</code>" for s in run.stacks)
    parts.append(
        f'<p class="note">Results for {len(run.stacks)} stacks: {names}. Folder: '
        f"<code>{_e(run.folder.resolve())}</code>.</p>"
    )
    parts.append(_stacks_table(run))
    parts.append("</section>")
    return "".join(parts)


def _stacks_table(run: RunContents) -> str:
    """What each results file holds: the stack or model, its recipe and description, its layers, inputs."""
    rows = []
    for stack in run.stacks:
        r = stack.results
        c, (h, w) = r.channels, r.spatial
        inputs = f"{r.n_inputs} values" if r.is_vector else f"{h}×{w} " + ("RGB" if c == 3 else "grey")
        layers = ", ".join(_e(r.layer_name(j)) for j in r.layers)
        recipe = _e(stack.recipe) if stack.recipe else ("the paper's" if stack.is_paper else "—")
        description = _e(stack.description) if stack.description else ""
        rows.append(
            f'<tr data-stack="{_e(stack.name)}"><th scope="row"><code>{_e(stack.name)}</code></th>'
            f"<td>{_e(stack.label)}</td><td>{recipe}</td><td>{description}</td><td>{layers}</td>"
            f"<td>{inputs}</td></tr>"
        )
    return (
        '<div class="scroll"><table id="stacks-table" class="data"><caption>Stacks and models</caption>'
        '<thead><tr><th scope="col">Results</th><th scope="col">Stack</th><th scope="col">Recipe</th>'
        '<th scope="col">Model</th><th scope="col">Layers</th><th scope="col">Inputs</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _claims_section(run: RunContents) -> str:
    head = '<section id="claims" aria-labelledby="claims-h"><h2 id="claims-h">Measured claims</h2>'
    if run.claims is None and not any(s.is_paper for s in run.stacks):
        return (
            head + '<p class="note">There are no paper claims for this model: the claims of section 7 are '
            "measured on the paper's DBN and SDAE stacks (<code>unitlens reproduce</code>), and this run "
            "holds only a user's model.</p></section>"
        )
    if run.claims is None:
        return (
            head
            + '<p class="note">No <code>results/claims.json</code>: the claims were not measured.</p>'
            + "</section>"
        )
    verdicts = [_verdict_of(c) for c in run.claims]
    counts = {v: verdicts.count(v) for v in _VERDICTS}
    summary = (
        f"<p>Section 7 of the paper: {counts['holds']} hold, {counts['holds_control_too']} hold but so does "
        f"the shuffled-weights control (no evidence about training), {counts['fails']} fail, "
        f"{counts['not_measured']} not measured, {counts['descriptive']} descriptive.</p>"
    )
    rows = []
    for c, verdict in zip(run.claims, verdicts, strict=True):
        cls, mark, word = _VERDICTS[verdict]
        control = c.get("control")
        rule = c.get("rule", "")
        detail = c.get("detail", "")
        rows.append(
            f'<tr class="claim-{cls}" data-verdict="{_e(verdict)}"><th scope="row">{_e(c["id"])}</th>'
            f"<td>{_e(c['claim'])}</td><td>{_e(c['measured'])}</td>"
            f"<td>{_e(control) if control else '<span class=note>no control</span>'}</td>"
            f'<td><span class="verdict {cls}"><span aria-hidden="true">{mark}</span> {_e(word)}</span></td>'
            f'<td class="detail">{_e(rule)}{"<br>" + _e(detail) if detail else ""}</td></tr>'
        )
    table = (
        '<table id="claims-table" class="data"><caption>Claims and what this run measured</caption>'
        '<thead><tr><th scope="col">#</th><th scope="col">Claim</th><th scope="col">Measured</th>'
        '<th scope="col">Control</th><th scope="col">Verdict</th><th scope="col">Rule</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    return head + summary + '<div class="scroll">' + table + "</div></section>"


def _figures_section(run: RunContents) -> str:
    head = '<section id="figures" aria-labelledby="figures-h"><h2 id="figures-h">Figures</h2>'
    if run.figures is None:
        return (
            head + '<p class="note">No figures: <code>figures/manifest.json</code> is missing (render them '
            "with <code>unitlens report RUN</code>).</p></section>"
        )
    if not run.figures:
        return head + '<p class="note">No figures in <code>figures/</code>.</p></section>'
    items = []
    for entry in run.figures:
        name, caption = entry.file, entry.caption
        items.append(
            f'<figure class="paper-figure" data-kind="{_e(entry.kind)}"><a href="../figures/{quote(name)}">'
            f'<img src="../figures/{quote(name)}" alt="{_e(caption)}" loading="eager"></a>'
            f'<figcaption>{_e(caption)} <span class="file">{_e(name)}</span></figcaption></figure>'
        )
    return head + '<div class="figure-grid">' + "".join(items) + "</div></section>"


def _get(d: Mapping[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return None
        d = d[p]
    return d


_LAYER_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Units", "studied units", ("n_units",)),
    (
        "Restart agreement",
        "median over units of the mean pairwise cosine of the restarts",
        ("restarts", "median_mean_cosine"),
    ),
    (
        "&gt; {threshold}",
        "fraction of units whose restarts agree above the study's cosine threshold",
        ("restarts", "fraction_above"),
    ),
    (
        "Control",
        "restart agreement of the shuffled-weights control",
        ("control_restarts", "median_mean_cosine"),
    ),
    ("Capped", "units with a restart stopped by the step cap", ("restarts", "n_units_capped")),
    (
        "Stationarity",
        "median share of the gradient along the sphere at x* (0: a constrained optimum; a dash where the "
        "recipe has no constraint surface, as lucid's)",
        ("am_stationarity", "median"),
    ),
    (
        "Dead/flat",
        "units whose AM image is not a feature: dead (cannot be moved) or on a plateau",
        ("flat", "n_flagged"),
    ),
    (
        "Margin",
        "selectivity: median over rows of the diagonal minus the largest other entry (columns sum to 1)",
        ("selectivity", "median_margin"),
    ),
    (
        "Control margin",
        "the same median margin for the shuffled-weights control",
        ("control_selectivity", "median_margin"),
    ),
    (
        "Exemplar margin",
        "the same median margin with each unit's top data-set exemplar as its pattern",
        ("exemplar_selectivity", "median_margin"),
    ),
    (
        "Degenerate",
        "fraction of optima with over half their energy in 10 pixels",
        ("degenerate", "fraction_flagged"),
    ),
    ("LC vs AM", "median Pearson correlation, linear combination vs AM image", ("lc_vs_am", "median")),
    (
        "Samples vs AM",
        "median Pearson correlation, mean of clamped samples vs AM image",
        ("samples_vs_am", "median"),
    ),
    (
        "Closed form",
        "layer 1: smallest cosine between AM and the normalised filter",
        ("closed_form_cosine_min",),
    ),
)


def _threshold_heading(run: RunContents) -> str:
    """The study's restart-agreement threshold, when every summary used the same one."""
    found = {
        t
        for stack in run.stacks
        for j in stack.layers
        if isinstance(t := _get(stack.results.layer_summary(j) or {}, "restarts", "threshold"), int | float)
    }
    return f"{found.pop():g}" if len(found) == 1 else "threshold"


def _layers_section(run: RunContents) -> str:
    """One table per stack, a row per layer, every number from the study's summary (``NAME.json``, which
    holds the figures the study computed with its own thresholds); the report computes none of its own."""
    parts = [
        '<section id="layers" aria-labelledby="layers-h"><h2 id="layers-h">Layers</h2>',
        '<p class="note">Per stack and layer. Hover a column heading for its definition.</p>',
    ]
    threshold = _threshold_heading(run)
    for stack in run.stacks:
        # Without a summary only the unit count is known: the results hold no per-layer figures.
        summaries = {
            j: stack.results.layer_summary(j) or {"n_units": stack.results.layers[j].n_units}
            for j in stack.layers
        }
        columns = list(_LAYER_COLUMNS)
        if not stack.is_paper:
            # A user's model has no linear combination, samples, control or closed form: drop the columns
            # no layer of it fills rather than show rows of dashes.
            columns = [c for c in columns if any(_get(sm, *c[2]) is not None for sm in summaries.values())]
        heads = "".join(
            f'<th scope="col" title="{_e(tip)}">{title.format(threshold=_e(threshold))}</th>'
            for title, tip, _ in columns
        )
        rows = []
        for j, summary in summaries.items():
            cells = "".join(f"<td>{_e(_fmt(_get(summary, *path)))}</td>" for _, _, path in columns)
            name = stack.results.layer_name(j) if stack.results.layer_names is not None else str(j)
            rows.append(f'<tr><th scope="row">{_e(name)}</th>{cells}</tr>')
        note = (
            f' <span class="note">(no <code>{_e(stack.name)}.json</code>: the study\'s summary is missing, '
            "only the unit counts are shown)</span>"
            if stack.results.summary is None
            else ""
        )
        about = f": {_e(stack.description)}" if stack.description else ""
        parts.append(
            f'<div class="scroll"><table class="data layer-table" id="stack-{_e(stack.name)}" '
            f'data-stack="{_e(stack.name)}"><caption>{_e(stack.label)}{about}{note}</caption>'
            f'<thead><tr><th scope="col">Layer</th>{heads}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
    parts.append("</section>")
    return "".join(parts)


_EXPLORER = """
<section id="explorer" aria-labelledby="explorer-h">
<h2 id="explorer-h">Unit explorer</h2>
<p class="note">Pick a stack, a layer and a unit. Keys: <kbd>&larr;</kbd> / <kbd>&rarr;</kbd> previous / next
unit (when no control has focus). Each image is scaled on its own (an RGB image's channels together); signed
images show zero as grey, negative as black, positive as white.</p>
<div class="picker" role="group" aria-label="Choose a unit">
  <label for="pick-dataset">Data set</label><select id="pick-dataset"></select>
  <label for="pick-model">Model</label><select id="pick-model"></select>
  <label for="pick-layer">Layer</label><select id="pick-layer"></select>
  <label for="pick-unit">Unit</label><select id="pick-unit"></select>
  <button type="button" id="prev-unit" aria-label="Previous unit">&larr; Prev</button>
  <button type="button" id="next-unit" aria-label="Next unit">Next &rarr;</button>
</div>
<p id="explorer-status" class="status" role="status" aria-live="polite"></p>
<div id="unit-view" class="unit-view" data-shown=""></div>
<noscript><p class="note">The unit explorer needs JavaScript.</p></noscript>
</section>
"""


def index_html(run: RunContents) -> str:
    """The report's ``index.html``: overview in static HTML, then the explorer's controls."""
    r = run.run or {}
    subtitle = ", ".join(
        f"{k} {_e(r[k])}" for k in ("preset", "seed") if k in r and not isinstance(r[k], dict | list)
    )
    title = "unitlens report" + (f" — {subtitle}" if subtitle else "")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n"
        # An empty icon: otherwise the browser asks for a favicon.ico that does not exist.
        '<link rel="icon" href="data:,">\n<link rel="stylesheet" href="style.css">\n</head>\n<body>\n'
        '<header class="top"><h1>unitlens report</h1>'
        '<p class="subtitle">Visualizing higher-layer features (Erhan et al. 2009)'
        f"{' · ' + subtitle if subtitle else ''}</p>"
        '<nav aria-label="Sections"><a href="#run">Run</a><a href="#claims">Claims</a>'
        '<a href="#figures">Figures</a><a href="#layers">Layers</a>'
        '<a href="#explorer">Unit explorer</a></nav>'
        "</header>\n<main>\n"
        + _run_section(run)
        + "\n"
        + _claims_section(run)
        + "\n"
        + _figures_section(run)
        + "\n"
        + _layers_section(run)
        + _EXPLORER
        + "</main>\n"
        '<script src="data.js"></script>\n<script src="explorer.js"></script>\n</body>\n</html>\n'
    )


# ---------------------------------------------------------------------------------------------------------
# Writing


def _asset(name: str) -> str:
    return resources.files("unitlens.render.report").joinpath("assets", name).read_text(encoding="utf-8")


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN/report/`` (index.html, data.js, explorer.js, style.css) from a run folder's results.

    Every file is written atomically; ``index.html`` last, so a reader never finds it pointing at a
    missing or half-written asset. Re-running regenerates the report from the current results.

    Returns:
        The path of ``index.html``.

    Raises:
        UnitlensError: no results in the folder, or a malformed results file (named in the message).
    """
    run = read_run(run_dir)
    out = run.folder / "report"
    write_text(out / "data.js", data_js(explorer_payload(run)))
    for name in _ASSETS:
        write_text(out / name, _asset(name))
    index = out / "index.html"
    write_text(index, index_html(run))
    return index
