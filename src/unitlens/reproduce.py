"""``unitlens reproduce``: the paper's whole pipeline in one resumable run folder.

Stages, each finished one kept on disk and never redone:

1. train: a DBN and an SDAE on MNIST (the elastic stream over the embedded or given digits) and on 12x12
   whitened patches (and 20x20 ones with ``patches20``), checkpointed inside each layer, so an interrupted
   run resumes mid-layer (``unitlens.runs.pretrain``);
2. study: every method and analysis on layers 1-3 of each stack -> ``results/NAME.npz`` + ``NAME.json``;
3. finetune: MNIST classification error and the AM images before and after fine-tuning (claim 7);
4. claims, figures and the report, re-rendered from the results on every run (cheap).

Every file is written atomically, so a killed run never leaves a half-written file that a later stage reads.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from unitlens import progress
from unitlens.analysis.claims import measure_claims
from unitlens.atomic import write_text
from unitlens.catalogue import MODELS, derive_seed, stack_name
from unitlens.checkpoint import paths_for, read_checkpoint, save_checkpoint, versions
from unitlens.config import ReproduceConfig, dumps_toml, load_toml
from unitlens.data.dataset import Dataset
from unitlens.data.files import DATA_CACHE, check_recipe, dataset_from_recipe
from unitlens.errors import UnitlensError
from unitlens.models.classifier import StackClassifier
from unitlens.models.stack import LayerStack
from unitlens.outdir import hold_lock, output_error, prepare_output
from unitlens.recipes import (
    batch_source,
    build_stack,
    data_recipe,
    datasets_of,
    finetune_config,
    is_user_data,
    load_datasets,
    stack_settings,
    study_config,
    training_config,
)
from unitlens.results import StackResults
from unitlens.runs import pretrain
from unitlens.study import stack_results, study_stack
from unitlens.training.finetune import FinetuneConfig, finetune
from unitlens.visualize.activation_maximization import AMResult, maximize_activation

log = logging.getLogger("unitlens")


def stack_names(config: ReproduceConfig) -> list[str]:
    """The stacks a run trains, ``{dataset}-{model}``."""
    return list(_stack_parts(config))


def _stack_parts(config: ReproduceConfig) -> dict[str, tuple[str, str]]:
    """Each stack's name -> (data set, model): the paper's, named by the catalogue, or the user's data
    set's ``NAME-dbn`` and ``NAME-sdae``."""
    parts: dict[str, tuple[str, str]] = {}
    for ds in datasets_of(config):
        for m in MODELS:
            parts[f"{ds}-{m}" if is_user_data(ds, config) else stack_name(ds, m)] = (ds, m)
    return parts


class Run:
    """A run folder: its config, its stage record (``run.json``) and its log.

    ``config.toml`` records the settings: a resume must ask for the same ones, except while no stage has
    started (nothing trained, studied or fine-tuned yet), when the folder takes the new settings.
    ``run.json`` is derived: a damaged one is reported in one line and rebuilt, each stage's outputs being
    checked again (``stage``'s ``outputs_ok``) instead of trusting the record.
    """

    def __init__(self, folder: Path, config: ReproduceConfig) -> None:
        self.folder = folder
        self.config = config
        self.record_path = folder / "run.json"
        self.record: dict[str, Any] = self._read_record()
        config_path = folder / "config.toml"
        previous: ReproduceConfig | None = None
        if config_path.exists() or config_path.is_symlink():
            try:
                previous = load_toml(config_path)
            except UnitlensError as exc:
                if self._started():
                    raise UnitlensError(
                        f"{exc}. The run in {folder} has started, so its settings cannot be guessed: restore "
                        "config.toml, or choose another --out folder"
                    ) from exc
                log.warning("%s; no stage has started, so the folder takes this command's settings", exc)
        if previous != config:
            if previous is not None and self._started():
                raise UnitlensError(
                    f"{folder} holds a run with other settings ({config_path}); resume it with the same "
                    "command, or choose another --out folder"
                )
            if previous is not None:
                log.info("%s: no stage has started; taking this command's settings", config_path)
            folder.mkdir(parents=True, exist_ok=True)
            if config_path.is_dir() and not config_path.is_symlink():
                config_path.rmdir()  # an empty folder in its place (a non-empty one fails to load above)
            write_text(config_path, dumps_toml(config))
        self.record.update(
            {
                "seed": config.seed,
                "preset": config.preset,
                "versions": versions(),
                "machine": platform.machine(),
            }
        )
        self.save()

    def _read_record(self) -> dict[str, Any]:
        """``run.json``'s record, or a fresh one (with a warning) when it is missing or damaged."""
        fresh: dict[str, Any] = {"stages": {}}
        if not self.record_path.exists():
            return fresh
        try:
            record = json.loads(self.record_path.read_text(encoding="utf-8"))
            problem = (
                "" if isinstance(record, dict) else f"expected a JSON object, got {type(record).__name__}"
            )
            stages = record.get("stages", {}) if not problem else None
            if not problem and not (
                isinstance(stages, dict) and all(isinstance(v, dict) for v in stages.values())
            ):
                problem = "field 'stages' must be an object of objects"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            log.warning(
                "%s is damaged (%s); rebuilding it from the checkpoints and results the folder holds",
                self.record_path,
                problem,
            )
            return fresh
        record.setdefault("stages", {})
        return dict(record)

    def _started(self) -> bool:
        """Whether any stage has begun: one is recorded as done, or a checkpoint or result was written."""
        if self.record["stages"]:
            return True
        return any(
            (self.folder / sub).is_dir() and any((self.folder / sub).iterdir())
            for sub in ("checkpoints", "results")
        )

    def save(self) -> None:
        write_text(self.record_path, json.dumps(self.record, indent=2, sort_keys=True) + "\n")

    def done(self, stage: str) -> bool:
        return bool(self.record["stages"].get(stage, {}).get("done"))

    def stage(
        self, name: str, work: Callable[[], None], outputs_ok: Callable[[], str | None] | None = None
    ) -> None:
        """Run ``work`` unless the stage is done; record its time.

        A stage is done when the record says so and ``outputs_ok`` (what is wrong with the files the stage
        writes, or None when they are whole) finds nothing wrong: a damaged or deleted output is reported
        in one line and recomputed. Without a record of the stage (a rebuilt ``run.json``), whole outputs
        are kept. Start and done lines (with ``stage k/n`` and the run's time left, when the session's
        display holds a stage plan) go to the log and the terminal.
        """
        plan = progress.current().plan
        problem = outputs_ok() if outputs_ok is not None else None
        recorded = self.done(name)
        if problem is None and (recorded or outputs_ok is not None):
            if not recorded:
                self.record["stages"][name] = {"done": True, "seconds": None}
                self.save()
            if plan is not None:
                plan.skip(name, self.record["stages"][name].get("seconds"))
            else:
                log.info("stage %s: already done", name)
            return
        if recorded and problem is not None:
            log.warning("stage %s: %s; recomputing it", name, problem)
        if plan is not None:
            plan.start(name)
        else:
            log.info("stage %s: start", name)
        start = time.perf_counter()
        work()
        seconds = time.perf_counter() - start
        self.record["stages"][name] = {"done": True, "seconds": round(seconds, 2)}
        self.save()
        if plan is not None:
            plan.finish(name, seconds)
        else:
            log.info("stage %s: done in %.1f s", name, seconds)


def stage_names(config: ReproduceConfig, datasets: dict[str, Dataset] | None = None) -> list[str]:
    """The stages a run goes through, in order: train and study per stack, then finetune when enabled:
    on MNIST, or on the user's data set when ``datasets`` shows it labelled (train and held-out labels)."""
    names = [f"{kind} {stack}" for stack in stack_names(config) for kind in ("train", "study")]
    return names + (["finetune"] if _finetune_data(config, datasets) is not None else [])


def _finetune_data(config: ReproduceConfig, datasets: dict[str, Dataset] | None) -> str | None:
    """The data set the finetune stage uses (``mnist``, or the user's when labelled), or None: no stage."""
    if not config.finetune.enabled:
        return None
    if not config.data.path:
        return "mnist"
    data = (datasets or {}).get(config.data.name)
    labelled = data is not None and data.y_train is not None and data.y_test is not None
    return config.data.name if labelled else None


def _log_file(folder: Path) -> logging.Handler:
    """``folder/log.txt``: the readable record of a run (everything the ``unitlens`` logger says)."""
    path = folder / "log.txt"
    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise output_error(exc, path) or UnitlensError(
            f"cannot append to {path} ({exc.strerror or exc}): move or remove what is there, then run the "
            "same command again"
        ) from exc
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    return handler


def reproduce(
    config: ReproduceConfig, out: str | Path, *, quiet: bool = False, verbose: bool = False
) -> Path:
    """Run (or resume) the whole pipeline in folder ``out``; return the report's path.

    Progress and the log go to stderr (see ``unitlens.progress``: live bars on a terminal, a few plain
    lines elsewhere, nothing with ``quiet``; per-step detail with ``verbose``) and to ``out/log.txt``.
    Inside an open ``progress.session`` (the CLI's) that session's choice holds. The data are loaded (and so
    checked) before anything is written.
    """
    if config.data.path:  # the user's file, checked; converted (if memory-mapped) once the folder exists
        recipe = data_recipe(config.data.name, config)
        checked = check_recipe(recipe)
    else:
        datasets = load_datasets(config)
    folder = prepare_output(out)  # one line naming the path for one that cannot hold the run
    with hold_lock(folder), progress.session(quiet=quiet, verbose=verbose):  # one run per folder at a time
        if config.data.path:
            datasets = {config.data.name: dataset_from_recipe(recipe, folder / DATA_CACHE, checked)}
        handler = _log_file(folder)
        try:
            return _reproduce(Run(folder, config), datasets, quiet)
        finally:
            log.removeHandler(handler)
            handler.close()


def _reproduce(run: Run, datasets: dict[str, Dataset], quiet: bool) -> Path:
    config, folder = run.config, run.folder
    start = time.perf_counter()
    stacks: dict[str, LayerStack] = {}
    with progress.current().stages(stage_names(config, datasets)):
        for name, (dataset, _) in _stack_parts(config).items():
            stacks[name] = _train(run, name, datasets[dataset], quiet)
            run.stage(
                f"study {name}",
                functools.partial(_study, run, name, stacks[name], datasets),
                functools.partial(_study_outputs, run, name),
            )
        tuned_on = _finetune_data(config, datasets)
        if tuned_on is not None:
            run.stage(
                "finetune",
                lambda: _finetune_stage(run, stacks, datasets[tuned_on], tuned_on),
                lambda: _finetune_outputs(run),
            )
    for ds in datasets_of(config):
        if f"{ds}-dbn" in stacks and f"{ds}-sdae" in stacks:
            _add_filter_match(
                folder / "results" / f"{ds}-dbn.json", stacks[f"{ds}-dbn"], stacks[f"{ds}-sdae"]
            )
    log.info("rendering the claims, figures and report")
    report = render_run(folder)
    run.record["seconds"] = {"this_invocation": round(time.perf_counter() - start, 2)}
    run.save()
    log.info("report: %s", report)
    return report


def _train(run: Run, name: str, data: Dataset, quiet: bool) -> LayerStack:
    """Pre-train stack ``name`` (resuming an interrupted run; loading a finished one)."""
    config = run.config
    dataset, model = _stack_parts(config)[name]
    settings = stack_settings(dataset, config, data)
    seed = derive_seed(config.seed, "train", name)
    stack = build_stack(model, data, settings, torch.Generator().manual_seed(seed))
    source = batch_source(dataset, data, config, derive_seed(config.seed, "batches", name))
    trained: list[LayerStack] = []

    def work() -> None:
        result, history = pretrain(
            stack,
            source,
            data,
            training_config(model, settings),
            seed=seed,
            folder=run.folder / "checkpoints",
            name=name,
            quiet=quiet,
        )
        _restore_log(run.folder / "checkpoints" / f"{name}-log.jsonl", history)
        trained.append(result)

    run.stage(f"train {name}", work)
    if not trained:  # finished in an earlier invocation: pretrain loads the checkpoint
        work()
    return trained[0]


def _restore_log(path: Path, history: list[dict[str, float]]) -> None:
    """Rewrite a checkpoint's training log from the history the checkpoint keeps, if it is damaged."""
    from unitlens.render.figures import read_training_log

    try:
        if read_training_log(path) == history:
            return
        problem = "it differs from the checkpoint's history"
    except UnitlensError as exc:
        problem = str(exc)
    if path.exists():
        log.warning("%s: %s; rewriting it from the checkpoint", path, problem)
    write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in history))


def _study_outputs(run: Run, name: str) -> str | None:
    """What is wrong with stack ``name``'s study results (None: both files are whole)."""
    path = run.folder / "results" / f"{name}.npz"
    if not path.exists():
        return f"{path} is missing"
    try:
        if StackResults.load(path).summary is None:
            return f"{path.with_suffix('.json')} is missing"
    except UnitlensError as exc:
        return str(exc)
    return None


def _finetune_outputs(run: Run) -> str | None:
    """What is wrong with the finetune stage's results (None: whole)."""
    from unitlens.render.figures import read_finetune

    path = run.folder / "results" / "finetune.json"
    if not path.exists():
        return f"{path} is missing"
    try:
        result = read_finetune(path)
    except UnitlensError as exc:
        return str(exc)
    missing = sorted({"hidden_learning_rate", "errors", "am_cosine", "sweep", "weights"} - set(result))
    if missing:
        return f"{path} lacks the fields {missing}"
    weights = result["weights"]
    if not isinstance(weights, dict) or not all(isinstance(w, str) for w in weights.values()):
        return f"{path}: field 'weights' must map each model to its checkpoint file"
    for weight in weights.values():  # the fine-tuned stacks the claim can be rechecked from
        try:
            read_checkpoint(run.folder / weight)
        except UnitlensError as exc:
            return str(exc)
    return None


def _study(run: Run, name: str, stack: LayerStack, datasets: dict[str, Dataset]) -> None:
    """Every method and analysis on ``stack``; raw arrays and the summary written atomically."""
    dataset = _stack_parts(run.config)[name][0]
    data = datasets[dataset]
    generator = torch.Generator().manual_seed(derive_seed(run.config.seed, "study", name))
    studies = study_stack(stack, data, study_config(dataset, run.config), generator)
    # One results format (unitlens.results): NAME.npz and its summary NAME.json, each written atomically.
    stack_results(studies, data).save(run.folder / "results" / f"{name}.npz")


def _add_filter_match(summary_path: Path, dbn: LayerStack, sdae: LayerStack) -> None:
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    summary["filter_match"] = filter_match(dbn, sdae)
    write_text(summary_path, json.dumps(summary, indent=1) + "\n")


def render_run(run_dir: Path) -> Path:
    """Claims (when the run has the paper's stacks), figures and report, from ``run_dir/results`` alone.

    The claims are the paper's (section 7), measured on its DBN/SDAE stacks (``mnist-dbn``, ...): a run
    folder of a user's model (``results/NAME-RECIPE.npz``, ``unitlens visualize --model``) gets figures and
    a report without them, and the report says there are none for the model.
    """
    from unitlens.render.figures import is_paper_stack, read_finetune, write_figures
    from unitlens.render.report import write_report
    from unitlens.results import read_summary

    results = run_dir / "results"
    if not results.is_dir():
        raise UnitlensError(f"{run_dir} has no results/ folder: is it a unitlens run folder?")
    try:
        # The paper stacks' summaries (unitlens.results' format, validated, naming a damaged file); a user
        # model's NAME-RECIPE.json is read with its results, by the figures and the report.
        summaries = {
            path.stem: read_summary(path)
            for path in sorted(results.glob("*-*.json"))
            if is_paper_stack(path.stem)
        }
        finetune_path = results / "finetune.json"
        finetune = read_finetune(finetune_path) if finetune_path.exists() else None
    except UnitlensError as exc:
        raise UnitlensError(
            f"{exc}. Run the run's `unitlens reproduce` command again (its settings are in "
            f"{run_dir / 'config.toml'}) to recompute it; finished stages are kept"
        ) from exc
    if summaries:
        claims = measure_claims(summaries, finetune)
        write_text(results / "claims.json", json.dumps(claims, indent=1) + "\n")
    checkpoints = run_dir / "checkpoints"
    write_figures(results, run_dir / "figures", checkpoints_dir=checkpoints if checkpoints.is_dir() else None)
    return write_report(run_dir)


def filter_match(a: LayerStack, b: LayerStack) -> float:
    """Median over `a`'s layer-1 filters of the best |cosine| with any of `b`'s (1: the same filters)."""
    wa = torch.nn.functional.normalize(a.weight(1).detach(), dim=1)
    wb = torch.nn.functional.normalize(b.weight(1).detach(), dim=1)
    return float((wa @ wb.T).abs().max(dim=1).values.median())


def finetuned_copy(stack: LayerStack, classifier: StackClassifier) -> LayerStack:
    """``stack`` with the classifier's fine-tuned hidden weights (the original is untouched)."""
    out = copy.deepcopy(stack)
    with torch.no_grad():
        for k, linear in enumerate(classifier.hidden_layers(), start=1):
            out.layer(k).weight.copy_(linear.weight)
            out.layer(k).hidden_bias.copy_(linear.bias)
    return out


def finetune_rates(config: ReproduceConfig) -> list[float]:
    """The hidden-layer rates the finetune stage measures: the sweep and the judged rate, highest first."""
    ft = config.finetune
    return sorted({*ft.sweep_hidden_rates, ft.hidden_learning_rate}, reverse=True)


def n_classes(data: Dataset) -> int:
    """The classes of ``data``'s labels (at least 2): one more than the largest label."""
    assert data.y_train is not None and data.y_test is not None
    return max(2, int(max(int(data.y_train.max()), int(data.y_test.max()))) + 1)


def finetune_stack(
    stack: LayerStack, data: Dataset, config: ReproduceConfig, hidden_learning_rate: float
) -> tuple[StackClassifier, float]:
    """``stack`` fine-tuned on ``data``'s labels as the finetune stage does it: (classifier, held-out error).

    The seeds depend on the run's seed only, not on the rate, so every rate starts from the same output
    layer and sees the same batches.
    """
    generator = torch.Generator().manual_seed(_output_seed(config))
    clf = StackClassifier.from_stack(stack, n_classes(data), generator=generator)
    return clf, _fit(clf, data, finetune_config(config.finetune, hidden_learning_rate), config)


def _output_seed(config: ReproduceConfig) -> int:
    """The seed of every classifier's new output layer (the random baseline's whole initialisation)."""
    return derive_seed(config.seed, "finetune", "init")


def _fit(clf: StackClassifier, data: Dataset, ft_config: FinetuneConfig, config: ReproduceConfig) -> float:
    """Fine-tune ``clf`` on ``data``'s labels with the stage's batch seed; its held-out error."""
    assert data.y_train is not None and data.y_test is not None
    batches = torch.Generator().manual_seed(derive_seed(config.seed, "finetune", "batches"))
    result = finetune(clf, data.x_train, data.y_train, data.x_test, data.y_test, ft_config, batches)
    return result.test_error


def _finetune_am(
    stack: LayerStack,
    layer: int,
    units: torch.Tensor,
    data: Dataset,
    config: ReproduceConfig,
    learning_rate: float | None = None,
) -> AMResult:
    """AM of ``units`` of ``layer`` for the before/after comparison (3 restarts, a fixed start)."""
    return maximize_activation(
        stack,
        layer,
        units,
        restarts=3,
        norm=data.rho,
        max_steps=config.study.max_steps,
        learning_rate=learning_rate,
        generator=torch.Generator().manual_seed(derive_seed(config.seed, "finetune", "am")),
    )


def _finetune_stage(run: Run, stacks: dict[str, LayerStack], data: Dataset, dataset: str = "mnist") -> None:
    """Fine-tune both stacks of ``dataset`` (MNIST, or the user's labelled data set) at each hidden-layer
    rate; errors, AM cosines, the judged rate's weights.

    The AM images before fine-tuning are computed once per stack and layer; each rate's fine-tuned copy is
    compared with them at the same AM step size. Writes ``results/finetune.json`` (the judged rate's numbers
    at the top, every rate's in ``sweep``, highest first) and the judged rate's fine-tuned stacks as
    ``checkpoints/finetuned-{dataset}-{model}``.
    """
    config = run.config
    ft = config.finetune
    settings = config.data if is_user_data(dataset, config) else config.mnist
    units = torch.arange(min(settings.units, min(settings.hidden)))
    before = {
        model: {
            layer: _finetune_am(stacks[f"{dataset}-{model}"], layer, units, data, config)
            for layer in range(2, stacks[f"{dataset}-{model}"].n_layers + 1)
        }
        for model in MODELS
    }
    sweep: list[dict[str, Any]] = []
    judged: dict[str, tuple[LayerStack, float]] = {}
    for rate in finetune_rates(config):
        errors: dict[str, float] = {}
        cosines: dict[str, float] = {}
        for model in MODELS:
            stack = stacks[f"{dataset}-{model}"]
            clf, errors[model] = finetune_stack(stack, data, config, rate)
            tuned = finetuned_copy(stack, clf)
            for layer, first in before[model].items():
                after = _finetune_am(tuned, layer, units, data, config, first.learning_rate)
                cos = torch.nn.functional.cosine_similarity(first.best_x(), after.best_x(), dim=1)
                cosines[f"{model} L{layer}"] = float(cos.median())
            if rate == ft.hidden_learning_rate:
                judged[model] = (tuned, errors[model])
        log.info(
            "finetune: hidden rate %g: errors %s; AM cosines %s",
            rate,
            ", ".join(f"{k} {v:.1%}" for k, v in errors.items()),
            ", ".join(f"{k} {v:.4f}" for k, v in cosines.items()),
        )
        sweep.append({"hidden_learning_rate": rate, "errors": errors, "am_cosine": cosines})
    rand = StackClassifier.random(
        stacks[f"{dataset}-dbn"].layer_sizes,
        n_classes(data),
        generator=torch.Generator().manual_seed(_output_seed(config)),
    )
    # The random baseline has no features to keep: every layer learns at the output layer's rate.
    random_error = _fit(rand, data, finetune_config(ft, None), config)
    weights: dict[str, str] = {}
    for model, (tuned, error) in judged.items():
        meta = {
            "finetuned_from": f"{dataset}-{model}",
            "finetune": dataclasses.asdict(finetune_config(ft, ft.hidden_learning_rate)),
            "test_error": error,
            "seed": config.seed,
        }
        json_path = save_checkpoint(
            run.folder / "checkpoints" / f"finetuned-{dataset}-{model}", tuned, meta=meta
        )
        weights[model] = f"checkpoints/{paths_for(json_path)[0].name}"
    top = next(row for row in sweep if row["hidden_learning_rate"] == ft.hidden_learning_rate)
    result = {
        "dataset": dataset,
        "hidden_learning_rate": ft.hidden_learning_rate,
        "learning_rate": ft.learning_rate,
        "errors": {**top["errors"], "random": random_error},
        "am_cosine": top["am_cosine"],
        "sweep": sweep,
        "weights": weights,
    }
    write_text(run.folder / "results" / "finetune.json", json.dumps(result, indent=1) + "\n")


__all__ = ["Run", "reproduce", "stack_names", "stage_names"]
