"""``unitlens visualize CHECKPOINT``: every method and analysis on a trained stack, figures and a report."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from unitlens.commands import add_output_options
from unitlens.config import preset
from unitlens.data.dataset import DataRecipe, Dataset
from unitlens.errors import UnitlensError
from unitlens.outdir import hold_lock, prepare_output
from unitlens.recipes import data_recipe

log = logging.getLogger("unitlens")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "visualize",
        help="visualize a checkpoint's units with every method; write figures and a report",
        description="Activation maximization, linear combination, clamped sampling (DBN) and exemplars for "
        "the units of each layer of a checkpoint made by `unitlens train` or `unitlens reproduce`, with the "
        "analyses; writes OUT/results, OUT/figures and OUT/report. For a plain PyTorch model use the Python "
        "API: unitlens.visualize.maximize_activation(model, 'layer.name', input_shape=..., norm=...).",
    )
    p.add_argument("checkpoint", type=Path, help="a checkpoint (.safetensors or .json) of a DBN or an SDAE")
    p.add_argument("--out", required=True, help="folder for results, figures and the report")
    p.add_argument("--data-dir", help="MNIST folder or .npz for the exemplars (default: the embedded digits)")
    p.add_argument("--photos", help="the photographs the patches came from (default: the bundled ones)")
    p.add_argument("--units", type=int, default=36, help="units per layer (default 36; 0: every unit)")
    p.add_argument("--restarts", type=int, default=9)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = prepare_output(args.out)
    with hold_lock(out):
        return _run(args, out)


def _run(args: argparse.Namespace, out: Path) -> int:
    from unitlens.checkpoint import load_model, paths_for
    from unitlens.data.recipe import load_data
    from unitlens.models.stack import LayerStack
    from unitlens.reproduce import render_run
    from unitlens.runs import recorded_recipe
    from unitlens.study import StudyConfig, stack_results, study_stack

    model, ckpt = load_model(args.checkpoint)
    if not isinstance(model, LayerStack):
        raise UnitlensError(
            f"{args.checkpoint} holds a {ckpt.meta['model_kind']!r}; visualize takes a DBN or SDAE"
        )
    meta_path = paths_for(args.checkpoint)[1]
    for name, tensor in model.state_dict().items():
        if not bool(torch.isfinite(tensor).all()):
            raise UnitlensError(
                f"{paths_for(args.checkpoint)[0]}: tensor {name} holds NaN or inf, so its units cannot be "
                "visualized; the training diverged: retrain with a smaller learning rate"
            )
    recipe = recorded_recipe(ckpt.meta, meta_path) or _recipe_of_old_checkpoint(ckpt.meta, meta_path)
    folder = args.photos if recipe.loader == "patches" else args.data_dir
    if folder:  # the same recipe over another copy of the data (a moved folder)
        recipe = dataclasses.replace(recipe, path=str(Path(folder).expanduser().resolve()))
    data = load_data(recipe)
    if data.n_inputs != model.n_inputs:
        raise UnitlensError(f"{args.checkpoint} takes {model.n_inputs} inputs; the data has {data.n_inputs}")
    _check_standardisation(data, ckpt.tensors, meta_path)
    meta = ckpt.meta.get("data", {})
    if "rho" in meta:  # the norm the model was trained with
        data = dataclasses.replace(data, rho=float(meta["rho"]))
    dataset = "mnist" if recipe.loader == "mnist" else ("patches" if recipe.size == 12 else "patches20")
    name = f"{dataset}-{model.kind}"
    config = StudyConfig(units=args.units or None, restarts=args.restarts, max_steps=args.max_steps)
    studies = study_stack(model, data, config, torch.Generator().manual_seed(args.seed))
    stack_results(studies, data).save(out / "results" / f"{name}.npz")
    print(f"report: {render_run(out)}")
    return 0


def _recipe_of_old_checkpoint(meta: dict[str, Any], path: Path) -> DataRecipe:
    """A checkpoint from before data recipes: the digits, or patches as ``train`` made them then (the
    quick preset's patch settings, seed 0, at the checkpoint's patch size)."""
    data = meta.get("data", {})
    if data.get("kind") != "real":
        return DataRecipe("mnist")
    shape = data.get("image_shape") or [12, 12]
    recipe = dataclasses.replace(data_recipe("patches", preset("quick")), size=int(shape[0]))
    log.warning(
        "%s records no data recipe (made before unitlens recorded one); rebuilding its patches as `unitlens "
        "train` made them (size %s, f0 %g, %d patches, seed 0)",
        path,
        recipe.size,
        recipe.f0,
        recipe.n_train,
    )
    return recipe


def _check_standardisation(data: Dataset, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """The rebuilt data must be standardised as the training data were (the checkpoint keeps both)."""
    for name in ("pixel_mean", "pixel_scale"):
        stored, rebuilt = tensors.get(f"data.{name}"), getattr(data, name)
        if stored is None:
            continue
        if rebuilt is None or rebuilt.shape != stored.shape or not torch.allclose(rebuilt, stored, atol=1e-4):
            gap = (
                "absent"
                if rebuilt is None or rebuilt.shape != stored.shape
                else (f"max difference {float((rebuilt - stored).abs().max()):.3g}")
            )
            raise UnitlensError(
                f"{path}: the data rebuilt from its recipe ({data.source}) are not the data the model was "
                f"trained on (data.{name}: {gap}); pass --photos or --data-dir with the training folder"
            )
