"""Build the browsable static report of a run folder (paper sections 6 and 7).

``write_report(RUN)`` reads ``RUN/run.json``, ``RUN/results/*.npz`` (+ their ``.json`` summaries),
``RUN/results/claims.json`` and ``RUN/figures/*.png``, and writes into ``RUN/report/``:

- ``index.html``: the overview (run facts, figures, the measured claims, per-layer summary tables), drawn
  here in Python so it reads without JavaScript, and the unit explorer's controls;
- ``data.js``: one statement ``window.UNITLENS_REPORT_DATA = {...};`` whose right-hand side is JSON. It is
  loaded with a ``<script>`` tag because browsers refuse ``fetch()`` on ``file://`` pages;
- ``explorer.js`` and ``style.css``: static assets copied from this package.

Nothing is fetched from a network: the report opens from disk with no server.

Images travel compactly. Each image is scaled on its own to grey levels in [0, 1] by the paper's display
rule (``unitlens.render.tiles``: signed arrays show zero as mid grey), quantised to uint8, and each array
of images is zlib-compressed and base64-encoded. The browser inflates it with ``DecompressionStream``
(format ``"deflate"`` is zlib's) and draws it on ``<canvas>``. Compression halves the payload: AM optima
are noisy, but digits, filters and restarts that agree compress well.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from unitlens.atomic import write_text
from unitlens.errors import UnitlensError
from unitlens.render.tiles import tile_images
from unitlens.results import load_arrays

__all__ = [
    "DATA_GLOBAL",
    "RunContents",
    "StackResults",
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

DATASET_ORDER = ("mnist", "patches", "patches20")
MODEL_ORDER = ("dbn", "sdae")
DATASET_LABELS = {"mnist": "MNIST", "patches": "Natural patches 12x12", "patches20": "Natural patches 20x20"}
MODEL_LABELS = {"dbn": "DBN", "sdae": "SDAE"}

# Image arrays carried to the explorer, in the order panels show them. Shapes (U, d) or (U, k, d).
IMAGE_KEYS = ("filters", "am_x", "samples", "samples_mean", "lc", "exemplars")
REQUIRED_KEYS = ("units", "am_x", "am_activation", "am_best")
# Per-unit numbers carried to the explorer: float arrays (U,) or (U, k), and integer ones.
FLOAT_KEYS = (
    "am_activation",
    "exemplar_activations",
    "restart_mean_cosine",
    "energy_concentration",
    "lc_vs_am",
    "samples_vs_am",
)
INT_KEYS = ("units", "am_best", "am_steps", "am_converged", "flat", "dead")

_FIGURE_CAPTIONS = {
    "figure1": "Figure 1: layer-1 filters and the AM optima of layers 2 and 3, DBN and SDAE",
    "figure2": "Figure 2: the same for natural image patches",
    "figure3": "Figure 3: samples of DBN layer-2 units, clamped on (one row per unit)",
    "figure4": "Figure 4: DBN layer 2, mean of clamped samples | linear combination | AM",
    "finetune_sweep": (
        "Fine-tuning sweep (claim 7): median cosine of the AM images before/after fine-tuning, and held-out "
        "error, against the pre-trained layers' learning rate; the claim's verdict depends on this rate and "
        "is judged at the marked one"
    ),
}
_DATASET_WORDS = {"mnist": "MNIST", "patches": "12x12 patches", "patches20": "20x20 patches"}

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
class StackResults:
    """One trained stack's results: ``results/{dataset}-{model}.npz`` and its summary ``.json``.

    Attributes:
        name: the file stem, ``{dataset}-{model}``.
        dataset, model: the stem split at its last hyphen (model ``""`` when there is none).
        arrays: the ``.npz`` contents (see ``unitlens.results``).
        layers: the layer numbers found in ``arrays``, ascending.
        summaries: per-layer summary dicts keyed by layer number (empty without a ``.json``).
        path: the ``.npz`` file, for error messages.
    """

    name: str
    dataset: str
    model: str
    arrays: dict[str, np.ndarray]
    layers: tuple[int, ...]
    summaries: dict[int, dict[str, Any]]
    path: Path

    def layer(self, j: int) -> dict[str, np.ndarray]:
        """Arrays of layer ``j`` without their ``layer{j}/`` prefix."""
        prefix = f"layer{j}/"
        return {k[len(prefix) :]: v for k, v in self.arrays.items() if k.startswith(prefix)}

    @property
    def label(self) -> str:
        dataset = DATASET_LABELS.get(self.dataset, self.dataset)
        return f"{dataset} — {MODEL_LABELS.get(self.model, self.model.upper())}" if self.model else dataset


@dataclass(frozen=True)
class RunContents:
    """What a run folder holds for the report; optional parts are None or empty when absent."""

    folder: Path
    run: dict[str, Any] | None
    stacks: tuple[StackResults, ...]
    claims: tuple[dict[str, Any], ...] | None
    figures: tuple[str, ...]


# ---------------------------------------------------------------------------------------------------------
# Reading the run folder


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UnitlensError(f"{path}: could not read the file ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise UnitlensError(f"{path}: not valid JSON ({exc})") from exc


def _order_key(stem: str) -> tuple[int, str, int, str]:
    dataset, _, model = stem.rpartition("-") if "-" in stem else (stem, "", "")
    d = DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER)
    m = MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)
    return d, dataset, m, model


def _read_stack(npz: Path) -> StackResults:
    stem = npz.stem
    dataset, _, model = stem.rpartition("-") if "-" in stem else (stem, "", "")
    arrays = load_arrays(npz)
    if "image_shape" not in arrays:
        raise UnitlensError(f"{npz}: missing the array 'image_shape' (expected (height, width))")
    shape = arrays["image_shape"]
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or (shape < 1).any():
        raise UnitlensError(f"{npz}: 'image_shape' must be two positive integers, got {shape.tolist()}")
    layers = sorted({int(m.group(1)) for k in arrays if (m := re.match(r"layer(\d+)/", k))})
    if not layers:
        raise UnitlensError(f"{npz}: no layer arrays (expected keys 'layer1/am_x', ...)")
    d = int(shape[0]) * int(shape[1])
    for j in layers:
        _check_layer(
            npz, j, {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"layer{j}/")}, d
        )

    summaries: dict[int, dict[str, Any]] = {}
    summary_path = npz.with_suffix(".json")
    if summary_path.exists():
        doc = _read_json(summary_path)
        rows = doc.get("layers") if isinstance(doc, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "layer" in r for r in rows):
            raise UnitlensError(
                f'{summary_path}: expected {{"layers": [{{"layer": 1, ...}}, ...]}} (one summary per layer)'
            )
        summaries = {int(r["layer"]): r for r in rows}
    return StackResults(stem, dataset, model, arrays, tuple(layers), summaries, npz)


def _check_layer(npz: Path, j: int, a: dict[str, np.ndarray], d: int) -> None:
    """Check the shapes the report relies on, naming the file and key on a mismatch."""
    for key in REQUIRED_KEYS:
        if key not in a:
            raise UnitlensError(f"{npz}: missing the array 'layer{j}/{key}'")
    n_units = a["units"].shape[0]
    if a["units"].ndim != 1 or n_units == 0:
        raise UnitlensError(
            f"{npz}: 'layer{j}/units' must be a non-empty 1-D array, got shape {a['units'].shape}"
        )
    for key in IMAGE_KEYS:
        if key in a:
            arr = a[key]
            if arr.ndim not in (2, 3) or arr.shape[0] != n_units or arr.shape[-1] != d:
                raise UnitlensError(
                    f"{npz}: 'layer{j}/{key}' has shape {arr.shape}; expected ({n_units}, {d}) or "
                    f"({n_units}, k, {d}) for {n_units} units of {d} pixels"
                )
            if arr.size and not np.isfinite(arr).all():
                raise UnitlensError(f"{npz}: 'layer{j}/{key}' holds NaN or infinite values")
    n_restarts = a["am_x"].shape[1] if a["am_x"].ndim == 3 else 1
    for key in ("am_activation", "am_steps", "am_converged"):
        if key in a and a[key].shape != (n_units, n_restarts):
            raise UnitlensError(
                f"{npz}: 'layer{j}/{key}' has shape {a[key].shape}; expected ({n_units}, {n_restarts})"
            )
    best = a["am_best"]
    if best.shape != (n_units,) or (best < 0).any() or (best >= n_restarts).any():
        raise UnitlensError(
            f"{npz}: 'layer{j}/am_best' must hold {n_units} restart indices in 0..{n_restarts - 1}"
        )
    if "selectivity" in a:
        s = a["selectivity"]
        if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] > n_units:
            raise UnitlensError(
                f"{npz}: 'layer{j}/selectivity' has shape {s.shape}; "
                f"expected a square (Us, Us) with Us <= {n_units}"
            )


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
            "(run the study first)"
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

    figures_dir = folder / "figures"
    figures = (
        tuple(sorted(p.name for p in figures_dir.iterdir() if p.is_file() and p.suffix.lower() == ".png"))
        if figures_dir.is_dir()
        else ()
    )
    return RunContents(folder, run, stacks, claims, figures)


# ---------------------------------------------------------------------------------------------------------
# Compact images


def quantise_images(images: np.ndarray, image_shape: tuple[int, int], signed: bool) -> np.ndarray:
    """Scale each image on its own for display and quantise it to 8 bits.

    Args:
        images: ``(n, h*w)`` real values.
        image_shape: ``(h, w)``.
        signed: True: ``0.5 + 0.5 * x / max|x|`` (zero is mid grey); False: stretched from min to max
            (see ``unitlens.render.tiles.scale_tile``).

    Returns:
        uint8 ``(n, h*w)``: ``round(255 * scaled)``, within half a level of the scaled value.
    """
    flat = np.asarray(images, dtype=np.float64)
    n = flat.shape[0]
    h, w = image_shape
    # A one-column grid without borders scales every tile on its own in one vectorised call.
    panel = tile_images(flat, (h, w), grid=(n, 1), signed=signed, border=0)
    return np.rint(panel.reshape(n, h * w) * 255.0).astype(np.uint8)


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


def _layer_payload(stack: StackResults, j: int) -> dict[str, Any]:
    a = stack.layer(j)
    h, w = (int(v) for v in stack.arrays["image_shape"])
    n_units = int(a["units"].shape[0])
    images: dict[str, Any] = {}
    for key in IMAGE_KEYS:
        if key not in a:
            continue
        arr = a[key]
        per_unit = 1 if arr.ndim == 2 else int(arr.shape[1])
        if per_unit == 0:
            continue
        signed = bool((arr < 0).any())
        q = quantise_images(arr.reshape(-1, h * w), (h, w), signed)
        images[key] = {"per_unit": per_unit, "signed": signed, "data": encode_images(q)}
    numbers: dict[str, Any] = {}
    for key in FLOAT_KEYS:
        if key in a:
            # Restarts that agree differ in the 5th digit of their activation: keep their spread visible.
            numbers[key] = _floats(a[key], 7 if key == "am_activation" else 4)
    for key in INT_KEYS:
        if key in a:
            numbers[key] = a[key].astype(np.int64).tolist()

    out: dict[str, Any] = {
        "layer": j,
        "n_units": n_units,
        "n_restarts": int(a["am_x"].shape[1]) if a["am_x"].ndim == 3 else 1,
        "images": images,
        "numbers": numbers,
        "degenerate_threshold": stack.summaries.get(j, {}).get("degenerate", {}).get("threshold", 0.5),
    }
    if "selectivity" in a and a["selectivity"].size:
        s = np.asarray(a["selectivity"], dtype=np.float64)
        us = s.shape[0]
        diag = np.diag(s).copy()
        others = np.where(np.eye(us, dtype=bool), -np.inf, s)
        # Values are column-normalised activations in [0, 1]: one absolute scale, no per-row stretch.
        # Columns sum to 1, so values are small: one scale for the whole matrix, its maximum, said beside it.
        top = float(np.nan_to_num(s).max()) or 1.0
        q = np.rint(np.clip(np.nan_to_num(s) / top, 0.0, 1.0) * 255.0).astype(np.uint8)
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
    """The JSON-able data the unit explorer reads: every stack's layers, images encoded."""
    stacks = []
    for stack in run.stacks:
        h, w = (int(v) for v in stack.arrays["image_shape"])
        stacks.append(
            {
                "name": stack.name,
                "dataset": stack.dataset,
                "model": stack.model,
                "dataset_label": DATASET_LABELS.get(stack.dataset, stack.dataset),
                "model_label": MODEL_LABELS.get(stack.model, stack.model.upper() or "model"),
                "image_shape": [h, w],
                "layers": [_layer_payload(stack, j) for j in stack.layers],
            }
        )
    return {"format": 1, "encoding": "zlib+base64 uint8", "stacks": stacks}


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
        f"<code>{_e(run.folder.resolve())}</code>.</p></section>"
    )
    return "".join(parts)


def _claims_section(run: RunContents) -> str:
    head = '<section id="claims" aria-labelledby="claims-h"><h2 id="claims-h">Measured claims</h2>'
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


def _figure_caption(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    if stem in _FIGURE_CAPTIONS:
        return _FIGURE_CAPTIONS[stem]
    base, _, suffix = stem.partition("_")
    caption = _FIGURE_CAPTIONS.get(base)
    if caption is None:
        return stem.replace("_", " ")
    return f"{caption} ({_DATASET_WORDS.get(suffix, suffix)})" if suffix else caption


def _figures_section(run: RunContents) -> str:
    head = '<section id="figures" aria-labelledby="figures-h"><h2 id="figures-h">Figures</h2>'
    if not run.figures:
        return head + '<p class="note">No figures in <code>figures/</code>.</p></section>'
    items = []
    for name in run.figures:
        caption = _figure_caption(name)
        items.append(
            f'<figure class="paper-figure"><a href="../figures/{quote(name)}">'
            f'<img src="../figures/{quote(name)}" alt="{_e(caption)}" loading="eager"></a>'
            f'<figcaption>{_e(caption)} <span class="file">{_e(name)}</span></figcaption></figure>'
        )
    return head + '<div class="figure-grid">' + "".join(items) + "</div></section>"


def _median(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else None


def _summary_from_arrays(a: dict[str, np.ndarray]) -> dict[str, Any]:
    """The table's numbers computed from the raw arrays, for a stack whose ``.json`` summary is missing."""
    out: dict[str, Any] = {"n_units": int(a["units"].shape[0])}
    if "restart_mean_cosine" in a:
        c = a["restart_mean_cosine"].astype(np.float64)
        out["restarts"] = {"median_mean_cosine": _median(c), "fraction_above": float((c > 0.9).mean())}
    if "energy_concentration" in a:
        e = a["energy_concentration"].astype(np.float64)
        out["degenerate"] = {"fraction_flagged": float((e > 0.5).mean())}
    if "selectivity_margin" in a and a["selectivity_margin"].size:
        m = a["selectivity_margin"].astype(np.float64)
        out["selectivity"] = {"median_margin": _median(m), "fraction_diagonal": float((m > 0).mean())}
    if "flat" in a:
        out["flat"] = {"n_flagged": int(a["flat"].sum())}
    for key in ("lc_vs_am", "samples_vs_am"):
        if key in a:
            out[key] = {"median": _median(a[key].astype(np.float64))}
    return out


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
        "&gt; 0.9",
        "fraction of units whose restarts agree above the threshold",
        ("restarts", "fraction_above"),
    ),
    (
        "Control",
        "restart agreement of the shuffled-weights control",
        ("control_restarts", "median_mean_cosine"),
    ),
    ("Capped", "units with a restart stopped by the step cap", ("restarts", "n_units_capped")),
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


def _layers_section(run: RunContents) -> str:
    parts = [
        '<section id="layers" aria-labelledby="layers-h"><h2 id="layers-h">Layers</h2>',
        '<p class="note">Per stack and layer. Hover a column heading for its definition.</p>',
    ]
    for stack in run.stacks:
        rows = []
        from_arrays = False
        for j in stack.layers:
            summary = stack.summaries.get(j)
            if summary is None:
                summary, from_arrays = _summary_from_arrays(stack.layer(j)), True
            cells = "".join(f"<td>{_e(_fmt(_get(summary, *path)))}</td>" for _, _, path in _LAYER_COLUMNS)
            rows.append(f'<tr><th scope="row">{j}</th>{cells}</tr>')
        heads = "".join(f'<th scope="col" title="{_e(tip)}">{title}</th>' for title, tip, _ in _LAYER_COLUMNS)
        note = (
            f' <span class="note">(no <code>{_e(stack.name)}.json</code>: computed from the arrays)</span>'
            if from_arrays
            else ""
        )
        parts.append(
            f'<div class="scroll"><table class="data layer-table" id="stack-{_e(stack.name)}" '
            f'data-stack="{_e(stack.name)}"><caption>{_e(stack.label)}{note}</caption>'
            f'<thead><tr><th scope="col">Layer</th>{heads}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
    parts.append("</section>")
    return "".join(parts)


_EXPLORER = """
<section id="explorer" aria-labelledby="explorer-h">
<h2 id="explorer-h">Unit explorer</h2>
<p class="note">Pick a stack, a layer and a unit. Keys: <kbd>&larr;</kbd> / <kbd>&rarr;</kbd> previous / next
unit (when no control has focus). Each image is scaled on its own; signed images show zero as grey, negative
as black, positive as white.</p>
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
