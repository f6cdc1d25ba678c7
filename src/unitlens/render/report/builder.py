"""Build the browsable static report of a run folder (paper sections 6 and 7).

``write_report(RUN)`` reads ``RUN/run.json``, ``RUN/results/*.npz`` with their ``.json`` summaries (through
``unitlens.results.StackResults.load``, which validates them), ``RUN/results/claims.json``, the fine-tuning
stage's ``RUN/results/finetune.json``, the study settings of ``RUN/config.toml`` and the figures that
``RUN/figures/manifest.json`` lists (``unitlens.render.figures.read_manifest``), and writes into
``RUN/report/``:

- ``index.html``: the claims, the unit browser's controls, the paper's figures, per-layer tables and the
  run's provenance, drawn here in Python so they read without JavaScript. It is ASCII (other characters
  as HTML references) and declares windows-1252, the encoding the layer files' bytes rely on;
- ``data/index.js``: ``window.UNITLENS_REPORT_INDEX = {...};``, the stacks, their layers and their files;
- ``data/s{STACK}-l{LAYER}.js`` and its chunks ``data/s{STACK}-l{LAYER}-c{C}.js``, and one table of
  exemplars per data set, ``data/e{N}.js`` (``unitlens.render.report.layer_files``): a layer's index file
  is added to the page when the layer is opened, a chunk when one of its units is shown (browsers refuse
  the fetch API on ``file://`` pages, not ``<script>`` tags);
- ``explorer.js`` and ``style.css``: static assets copied from this package.

Nothing is fetched from a network: the report opens from disk with no server.

The results are the paper's stacks (``mnist-dbn``, ...) and users' own models (``NAME-RECIPE``, one file
per recipe, with layer names and grey or RGB inputs; ``unitlens.render.figures.split_results_name``).
Claims are measured on the paper's stacks only: a run of a user's model shows none and says so.
"""

from __future__ import annotations

import html
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from unitlens.atomic import write_bytes, write_text
from unitlens.catalogue import DATASET_LABELS, DATASETS, MODEL_LABELS, MODELS
from unitlens.errors import UnitlensError
from unitlens.render.figures import (
    FigureEntry,
    is_paper_stack,
    read_manifest,
    recipe_order,
    split_results_name,
)
from unitlens.render.report.layer_files import (
    CHUNK_UNITS,
    SharedImages,
    layer_files,
    nested_get,
    quantise_images,
    shared_file_text,
)
from unitlens.results import StackResults, display_shape

__all__ = [
    "INDEX_GLOBAL",
    "ReportStack",
    "RunContents",
    "index_html",
    "index_js",
    "quantise_images",
    "read_run",
    "report_index",
    "write_report",
]

INDEX_GLOBAL = "UNITLENS_REPORT_INDEX"
"""The global that ``data/index.js`` assigns; ``explorer.js`` reads it."""

_ASSETS = ("explorer.js", "style.css")
_LEGACY = ("data.js",)  # the single data file of reports before format 3, removed on re-rendering

DATASET_ORDER = DATASETS
MODEL_ORDER = MODELS

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
# The index of stacks and layers (data/index.js)


def _study_settings(folder: Path) -> dict[str, Any]:
    """The study settings the browser names (K of the linear combination), from the run's ``config.toml``.

    A run folder without one (a user model's run, an old folder) or with an unreadable one gives ``{}``:
    the browser then says "K" without a number rather than guessing.
    """
    path = folder / "config.toml"
    try:
        with path.open("rb") as f:
            study = tomllib.load(f).get("study", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    if not isinstance(study, dict):
        return {}
    return {k: study[k] for k in ("lc_k", "n_exemplars") if isinstance(study.get(k), int)}


def _finetune(folder: Path) -> dict[str, Any] | None:
    """The fine-tuning stage's AM cosines per ``"MODEL Lj"`` (``results/finetune.json``), or None."""
    path = folder / "results" / "finetune.json"
    if not path.is_file():
        return None
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("am_cosine"), dict):
        raise UnitlensError(f"{path}: expected an object with 'am_cosine': {{\"dbn L2\": ..., ...}}")
    return {"am_cosine": doc["am_cosine"], "hidden_learning_rate": doc.get("hidden_learning_rate")}


def report_index(run: RunContents, layers: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The JSON of ``data/index.js``: every stack, its geometry and its layers' files.

    Args:
        run: the run folder's contents.
        layers: stack name -> its layers' index entries (``layer_files.layer_files``).

    Per stack: ``image_shape`` as the results hold it (``[h, w]``, ``[c, h, w]`` or ``[d]``), ``display``
    ``[h, w]`` (a vector's bar plot, an image's own size) and ``channels`` (1 or 3): an image of a layer
    file has ``channels * h * w`` levels; ``kind`` ``"paper"`` or ``"model"`` (a user's model, with its
    ``recipe``, ``description`` and each layer's ``name``); ``exemplar_split``: where its exemplars come
    from.
    """
    stacks = []
    for stack in run.stacks:
        r = stack.results
        stacks.append(
            {
                "name": stack.name,
                "kind": "paper" if stack.is_paper else "model",
                # The first picker: a data set's stacks, or one user model's recipes (a model named like a
                # data set must not join its stacks).
                "group": stack.dataset if stack.is_paper else f"model:{stack.dataset}",
                "dataset": stack.dataset,
                "model": stack.model,
                "label": stack.label,
                "dataset_label": stack.dataset_label,
                "model_label": stack.model_label,
                "recipe": stack.recipe,
                "description": stack.description,
                "image_shape": list(r.image_shape),
                "display": list(display_shape(r.image_shape)),
                "spatial": list(r.spatial),
                "channels": r.channels,
                "vector": r.is_vector,
                # The study ranks the training rows (unitlens.study); a user model's run, the data it got.
                "exemplar_split": "the training set" if stack.is_paper else "the data set given",
                "layers": layers[stack.name],
            }
        )
    study = _study_settings(run.folder)
    # Format 3: one data file per layer, loaded on demand (format 2 was one data.js for every layer).
    return {"format": 3, "stacks": stacks, "study": study, "finetune": _finetune(run.folder)}


def index_js(index: Mapping[str, Any]) -> str:
    """The text of ``data/index.js``: one assignment whose right-hand side is strict, ASCII-only JSON."""
    body = json.dumps(index, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return f"window.{INDEX_GLOBAL} = {body};\n"


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
        rows.append(f'<tr><th scope="row">{_e(k)}</th><td data-label="{_e(k)}">{value}</td></tr>')
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
            f'<td data-label="Stack">{_e(stack.label)}</td><td data-label="Recipe">{recipe}</td>'
            f'<td data-label="Model">{description}</td><td data-label="Layers">{layers}</td>'
            f'<td data-label="Inputs">{inputs}</td></tr>'
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
    no_control = '<span class="note">no control</span>'
    for c, verdict in zip(run.claims, verdicts, strict=True):
        cls, mark, word = _VERDICTS[verdict]
        control = c.get("control")
        rule = c.get("rule", "")
        detail = c.get("detail", "")
        rows.append(
            f'<tr class="claim-{cls}" data-verdict="{_e(verdict)}"><th scope="row">{_e(c["id"])}</th>'
            f'<td data-label="Claim">{_e(c["claim"])}</td><td data-label="Measured">{_e(c["measured"])}</td>'
            f'<td data-label="Control">{_e(control) if control else no_control}</td>'
            f'<td data-label="Verdict"><span class="verdict {cls}"><span aria-hidden="true">{mark}</span> '
            f"{_e(word)}</span></td>"
            f'<td class="detail" data-label="Rule">{_e(rule)}{"<br>" + _e(detail) if detail else ""}'
            "</td></tr>"
        )
    table = (
        '<table id="claims-table" class="data"><caption>Claims and what this run measured</caption>'
        '<thead><tr><th scope="col">#</th><th scope="col">Claim</th><th scope="col">Measured</th>'
        '<th scope="col">Control</th><th scope="col">Verdict</th><th scope="col">Rule</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    return head + summary + '<div class="scroll">' + table + "</div></section>"


_PAPER_FIGURE = re.compile(r"figure(\d+)")


def _figure_order(entry: FigureEntry) -> tuple[int, int, str]:
    """The paper's figures first, in its order (figure 1, 2, 3, ...), then the others by file name."""
    m = _PAPER_FIGURE.fullmatch(entry.kind)
    return (0, int(m.group(1)), entry.file) if m else (1, 0, entry.file)


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
    for entry in sorted(run.figures, key=_figure_order):
        name, caption = entry.file, entry.caption
        # The paper's figures open; the others are one click away. Each shows at its native size, in a box
        # that scrolls when it is wider than the page: a downscaled figure drops rows and borders.
        is_open = " open" if _figure_order(entry)[0] == 0 else ""
        items.append(
            f'<details class="paper-figure" data-kind="{_e(entry.kind)}"{is_open}><summary>{_e(caption)} '
            f'<span class="file">{_e(name)}</span></summary><div class="figure-box">'
            f'<a href="../figures/{quote(name)}"><img src="../figures/{quote(name)}" alt="{_e(caption)}" '
            'loading="eager"></a></div></details>'
        )
    return (
        head + "<p class=\"note\">The paper's figures in its order, then the run's other figures; each at "
        "its native resolution (open one to see it, click it to open the file).</p>"
        + "".join(items)
        + "</section>"
    )


def _tip(label_html: str, tip: str) -> str:
    """A label with its explanation, shown on hover, keyboard focus and touch (``explorer.js`` toggles it)."""
    return (
        f'<span class="term" tabindex="0" data-tip="{_e(tip)}">{label_html}'
        f'<span class="tip" role="tooltip">{_e(tip)}</span></span>'
    )


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
        if isinstance(
            t := nested_get(stack.results.layer_summary(j) or {}, "restarts", "threshold"), int | float
        )
    }
    return f"{found.pop():g}" if len(found) == 1 else "threshold"


def _layers_section(run: RunContents) -> str:
    """One table per stack, a row per layer, every number from the study's summary (``NAME.json``, which
    holds the figures the study computed with its own thresholds); the report computes none of its own."""
    parts = [
        '<section id="layers" aria-labelledby="layers-h"><h2 id="layers-h">Layers</h2>',
        '<p class="note">Per stack and layer, from the study\'s summary. Hover, focus or tap a column '
        "heading for its definition.</p>",
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
            columns = [
                c for c in columns if any(nested_get(sm, *c[2]) is not None for sm in summaries.values())
            ]
        heads = "".join(
            f'<th scope="col">{_tip(title.format(threshold=_e(threshold)), tip)}</th>'
            for title, tip, _ in columns
        )
        rows = []
        for j, summary in summaries.items():
            cells = "".join(
                f'<td data-label="{_e(html.unescape(title.format(threshold=threshold)))}">'
                f"{_e(_fmt(nested_get(summary, *path)))}</td>"
                for title, _, path in columns
            )
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
<h2 id="explorer-h">Unit browser</h2>
<p class="note">Pick a stack and a layer: its index shows every unit's best activation-maximization input
(layer 1: its filter), to sort and filter; click a unit to open it. Keys, while the browser has focus:
<kbd>&larr;</kbd> / <kbd>&rarr;</kbd> previous / next unit in the index's order. The address names the unit
shown: copy it to share that unit (and the pinned ones).</p>
<div class="picker" role="group" aria-label="Choose a layer and a unit">
  <label for="pick-dataset">Data set</label><select id="pick-dataset"></select>
  <label for="pick-model">Model</label><select id="pick-model"></select>
  <label for="pick-layer">Layer</label><select id="pick-layer"></select>
  <label for="pick-unit">Unit</label><select id="pick-unit"></select>
  <button type="button" id="prev-unit" aria-label="Previous unit">&larr; Prev</button>
  <button type="button" id="next-unit" aria-label="Next unit">Next &rarr;</button>
</div>
<div class="picker secondary" role="group" aria-label="Sort, filter and scale">
  <label for="index-sort">Sort by</label><select id="index-sort">
    <option value="unit">unit number</option>
    <option value="restart">restart agreement (mean cosine)</option>
    <option value="margin">selectivity margin (first units)</option>
    <option value="vsdata">AM activation minus the best training input&#39;s</option>
    <option value="activation">AM activation</option>
    <option value="energy">energy concentration (dots)</option>
    <option value="lc">LC vs AM (Pearson)</option>
    <option value="samples">samples vs AM (Pearson)</option>
  </select>
  <button type="button" id="index-order" data-order="asc" aria-pressed="false">Lowest first</button>
  <label for="index-filter">Show</label><select id="index-filter">
    <option value="all">every unit</option>
    <option value="flagged">dead or flat units</option>
    <option value="ok">units that are not dead or flat</option>
    <option value="disagree">restarts that disagree (below the study&#39;s threshold)</option>
    <option value="capped">restarts stopped by the step cap</option>
    <option value="degenerate">degenerate optima (energy in a few pixels)</option>
    <option value="claimed">margin at or below 0 (another unit claims the pattern)</option>
  </select>
  <label for="scale-mode">Scale</label><select id="scale-mode">
    <option value="image">each image on its own</option>
    <option value="unit">one scale per unit</option>
    <option value="layer">one scale per layer</option>
  </select>
</div>
<p id="link-error" class="warning" role="alert" hidden></p>
<p id="explorer-status" class="status" role="status" aria-live="polite"></p>
<p id="index-count" class="note"></p>
<div id="unit-index" class="unit-index" role="group" aria-label="Units of this layer" data-layer=""></div>
<section id="pins-section" class="pins-section" aria-labelledby="pins-h" hidden>
<h3 id="pins-h">Pinned units</h3>
<div id="pins" class="pins"></div>
</section>
<div id="unit-browser" class="unit-browser" tabindex="-1">
<div id="unit-view" class="unit-view" data-shown=""></div>
</div>
<noscript><p class="note">The unit browser needs JavaScript.</p></noscript>
</section>
"""


def index_html(run: RunContents) -> str:
    """The report's ``index.html``: claims, the unit browser, figures, layer tables, then provenance.

    ASCII only (``xmlcharrefreplace``), declared windows-1252: the layer files' bytes inherit that
    encoding (``unitlens.render.report.layer_files``).
    """
    r = run.run or {}
    subtitle = ", ".join(
        f"{k} {_e(r[k])}" for k in ("preset", "seed") if k in r and not isinstance(r[k], dict | list)
    )
    title = "unitlens report" + (f" — {subtitle}" if subtitle else "")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="windows-1252">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n"
        # An empty icon: otherwise the browser asks for a favicon.ico that does not exist.
        '<link rel="icon" href="data:,">\n<link rel="stylesheet" href="style.css">\n</head>\n<body>\n'
        '<header class="top"><h1>unitlens report</h1>'
        '<p class="subtitle">Visualizing higher-layer features (Erhan et al. 2009)'
        f"{' · ' + subtitle if subtitle else ''}</p>"
        '<nav aria-label="Sections"><a href="#claims">Claims</a><a href="#explorer">Unit browser</a>'
        '<a href="#figures">Figures</a><a href="#layers">Layers</a><a href="#run">Run</a></nav>'
        "</header>\n<main>\n"
        + _claims_section(run)
        + _EXPLORER
        + _figures_section(run)
        + "\n"
        + _layers_section(run)
        + "\n"
        + _run_section(run)
        + "</main>\n"
        '<script src="data/index.js"></script>\n<script src="explorer.js"></script>\n</body>\n</html>\n'
    )
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")


# ---------------------------------------------------------------------------------------------------------
# Writing


def _asset(name: str) -> str:
    return resources.files("unitlens.render.report").joinpath("assets", name).read_text(encoding="utf-8")


def write_report(run_dir: str | Path, chunk_units: int = CHUNK_UNITS) -> Path:
    """Write ``RUN/report/`` (index.html, data/index.js, one data file per layer, explorer.js, style.css).

    Every file is written atomically; ``index.html`` last, so a reader never finds it pointing at a
    missing or half-written file. Re-running regenerates the report from the current results and then
    removes what the new report no longer uses (an older report's ``data.js``, layer files of stacks
    that are gone).

    Args:
        run_dir: the run folder.
        chunk_units: units per file of images (``layer_files.CHUNK_UNITS``): opening a unit loads its
            chunk only.

    Returns:
        The path of ``index.html``.

    Raises:
        UnitlensError: no results in the folder, or a malformed results file (named in the message).
    """
    if not isinstance(chunk_units, int) or chunk_units < 1:
        raise UnitlensError(f"chunk_units must be a positive integer, got {chunk_units!r}")
    run = read_run(run_dir)
    out = run.folder / "report"
    data = out / "data"
    written = {data / "index.js"}
    layers: dict[str, list[dict[str, Any]]] = {}
    # One table of exemplars per data set (the stacks of one data set, or one user model's recipes, at one
    # input size): they are training rows, which every layer of those stacks draws from.
    shared: dict[tuple[str, tuple[int, ...]], SharedImages] = {}
    for i, stack in enumerate(run.stacks):
        group = (stack.dataset if stack.is_paper else f"model:{stack.dataset}", stack.results.image_shape)
        table = shared.setdefault(group, SharedImages.empty(f"e{len(shared)}"))
        entries = []
        for j in stack.layers:
            files = layer_files(stack.results, j, f"s{i}-l{j}", table, chunk_units)
            for key, text in [*files.chunks, (files.entry["key"], files.index)]:
                path = data / f"{key}.js"
                write_bytes(path, text)
                written.add(path)
            entries.append(files.entry)
        layers[stack.name] = entries
    for table in shared.values():
        path = data / f"{table.key}.js"
        write_bytes(path, shared_file_text(table))
        written.add(path)
    write_text(data / "index.js", index_js(report_index(run, layers)))
    for name in _ASSETS:
        write_text(out / name, _asset(name))
    index = out / "index.html"
    write_text(index, index_html(run))
    for name in _LEGACY:
        (out / name).unlink(missing_ok=True)
    for path in data.glob("*.js"):
        if path not in written:
            path.unlink(missing_ok=True)
    return index
