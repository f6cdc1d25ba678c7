"""``unitlens visualize CHECKPOINT`` or ``unitlens visualize --model ...``: every method and analysis on a
trained stack or on the named layers of a user's own network, figures and a report."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from unitlens.commands import add_output_options
from unitlens.config import preset
from unitlens.data.dataset import DataRecipe, Dataset
from unitlens.errors import UnitlensError
from unitlens.outdir import hold_lock, prepare_output
from unitlens.recipes import data_recipe

if TYPE_CHECKING:
    from unitlens.distributed import World

log = logging.getLogger("unitlens")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "visualize",
        help="visualize the units of a checkpoint or of your own PyTorch model; write figures and a report",
        description="Activation maximization, linear combination, clamped sampling (DBN) and exemplars for "
        "the units of each layer of a checkpoint made by `unitlens train` or `unitlens reproduce`, with the "
        "analyses; or, with --model, the units of the named layers of your own network (recipes paper and "
        "lucid, dataset exemplars, restart agreement, dead units, selectivity). Writes OUT/results, "
        "OUT/figures and OUT/report.",
    )
    p.add_argument(
        "checkpoint", type=Path, nargs="?", help="a checkpoint (.safetensors or .json) of a DBN or an SDAE"
    )
    p.add_argument("--out", required=True, help="folder for results, figures and the report")
    p.add_argument("--data-dir", help="MNIST folder or .npz for the exemplars (default: the embedded digits)")
    p.add_argument("--photos", help="the photographs the patches came from (default: the bundled ones)")
    p.add_argument("--units", type=int, default=36, help="units per layer (default 36; 0: every unit)")
    p.add_argument("--restarts", type=int, default=9)
    p.add_argument("--max-steps", type=int, default=1000, help="the paper recipe's step cap")
    p.add_argument("--seed", type=int, default=0)
    own = p.add_argument_group("your own model (instead of a checkpoint)")
    own.add_argument(
        "--model",
        help="pkg.module:factory, path/to/file.py:factory (factory() returns the nn.Module), or an "
        "exported program model.pt2 (torch.export.save)",
    )
    own.add_argument("--weights", type=Path, help="the model's weights, a .safetensors state dict")
    own.add_argument("--layer", help="dotted module names, comma-separated, e.g. conv1,conv2")
    own.add_argument("--input-shape", help="one input's shape, e.g. 3,32,32 or 1,28,28")
    own.add_argument(
        "--recipe",
        help="paper, lucid or paper,lucid (default: lucid for 3-channel inputs, paper otherwise)",
    )
    own.add_argument(
        "--data",
        default="mnist",
        help="examples for exemplars, the norm and the lucid spectrum: an .npz, a folder of images (random "
        "crops) or mnist (the embedded digits; the default)",
    )
    own.add_argument("--data-count", type=int, default=2000, help="crops taken from an image folder")
    own.add_argument("--steps", type=int, default=512, help="the lucid recipe's Adam steps (default 512)")
    own.add_argument("--unit-axis", type=int, default=1, help="the output axis holding the units (-1: last)")
    own.add_argument(
        "--reduce", default="center", choices=("center", "mean"), help="how a channel's positions are reduced"
    )
    own.add_argument("--name", default="model", help="the results' name (default model)")
    add_output_options(p)
    p.set_defaults(run=run, distributed=True)  # torchrun: data-parallel (unitlens.distributed)


def run(args: argparse.Namespace) -> int:
    from unitlens.distributed import join, leave

    # Under torchrun, every process runs this command and the units are dealt out (unitlens.dealing).
    world = join()
    try:
        return _dispatch(args, world)
    finally:
        leave(world)


def _dispatch(args: argparse.Namespace, world: World) -> int:
    from unitlens.distributed import main_first

    if args.model is None and args.checkpoint is None:
        raise UnitlensError("give a checkpoint, or --model with --layer and --input-shape")
    if args.model is not None and args.checkpoint is not None:
        raise UnitlensError("give either a checkpoint or --model, not both")
    if args.model is not None:
        if world.size > 1:
            raise UnitlensError(
                "visualize --model does not deal its units out to several processes yet: run it without "
                "torchrun (checkpoints of `unitlens train` do: visualize CHECKPOINT)"
            )
        settings = _model_settings(args)  # every flag checked before the output folder is touched
        out = prepare_output(args.out)
        with hold_lock(out):
            return _run_model(args, settings, out)
    if not world.main:
        log.setLevel(logging.ERROR)  # process 0 speaks for the run
    # Process 0 makes the folder, holds its lock and writes; the others compute their share of the units.
    with main_first(world):
        out = prepare_output(args.out) if world.main else Path(args.out)
    with hold_lock(out) if world.main else contextlib.nullcontext():
        return _run(args, out, world)


_SLUG = re.compile(r"^[A-Za-z0-9_]+$")


def _model_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The --model path's flags, validated: layers, input shape, recipes, study settings."""
    from unitlens.model_study import ModelStudyConfig

    if not args.layer:
        raise UnitlensError("--model needs --layer, e.g. --layer conv1,conv2")
    layers = [name.strip() for name in args.layer.split(",") if name.strip()]
    if not args.input_shape:
        raise UnitlensError("--model needs --input-shape, e.g. --input-shape 3,32,32")
    try:
        shape = tuple(int(s) for s in args.input_shape.split(","))
    except ValueError as error:
        raise UnitlensError(
            f"--input-shape must be integers separated by commas, got {args.input_shape!r}"
        ) from error
    if not shape or min(shape) < 1:
        raise UnitlensError(f"--input-shape must be positive sizes, got {args.input_shape!r}")
    default = "lucid" if len(shape) == 3 and shape[0] == 3 else "paper"
    recipes = [r.strip() for r in (args.recipe or default).split(",") if r.strip()]
    bad = [r for r in recipes if r not in ("paper", "lucid")]
    if bad or not recipes:
        raise UnitlensError(f"--recipe takes paper, lucid or paper,lucid; got {args.recipe!r}")
    if not _SLUG.match(args.name):
        raise UnitlensError(f"--name must be letters, digits or _ (it names files), got {args.name!r}")
    if args.weights is not None and not args.weights.is_file():
        raise UnitlensError(f"--weights {args.weights}: no such file")
    config = ModelStudyConfig(
        units=args.units or None,
        restarts=args.restarts,
        max_steps=args.max_steps,
        steps=args.steps,
        unit_axis=args.unit_axis,
        reduce=args.reduce,
    )
    return {"layers": layers, "shape": shape, "recipes": recipes, "config": config}


def _run_model(args: argparse.Namespace, settings: dict[str, Any], out: Path) -> int:
    from unitlens.data.inputs import load_inputs
    from unitlens.model_study import study_model
    from unitlens.models.user import load_user_model
    from unitlens.reproduce import render_run

    model, description = load_user_model(args.model, args.weights)
    log.info("model: %s", description)
    data = load_inputs(args.data, settings["shape"], n=args.data_count, seed=args.seed)
    log.info("data: %d examples of shape %s from %s", data.shape[0], tuple(data.shape[1:]), args.data)
    for recipe in settings["recipes"]:
        results = study_model(
            model,
            settings["layers"],
            data,
            recipe,
            settings["config"],
            torch.Generator().manual_seed(args.seed),
            description=description,
        )
        path = out / "results" / f"{args.name}-{recipe}.npz"
        results.save(path)
        log.info("wrote %s", path)
    print(f"report: {render_run(out)}")
    return 0


def _run(args: argparse.Namespace, out: Path, world: World) -> int:
    from unitlens.checkpoint import load_model, paths_for
    from unitlens.data.files import DATA_CACHE
    from unitlens.data.recipe import load_data
    from unitlens.distributed import main_first
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
    with main_first(world):  # process 0 fills the data cache, the others then read it
        data = load_data(recipe, cache=out / DATA_CACHE)
    if data.n_inputs != model.n_inputs:
        raise UnitlensError(f"{args.checkpoint} takes {model.n_inputs} inputs; the data has {data.n_inputs}")
    _check_standardisation(data, ckpt.tensors, meta_path)
    meta = ckpt.meta.get("data", {})
    if "rho" in meta:  # the norm the model was trained with
        data = dataclasses.replace(data, rho=float(meta["rho"]))
    if recipe.loader == "file":  # a user's data set: the checkpoint's own name, NAME-MODEL
        name = paths_for(args.checkpoint)[1].stem
    else:
        dataset = "mnist" if recipe.loader == "mnist" else ("patches" if recipe.size == 12 else "patches20")
        name = f"{dataset}-{model.kind}"
    config = StudyConfig(units=args.units or None, restarts=args.restarts, max_steps=args.max_steps)
    studies = study_stack(model, data, config, torch.Generator().manual_seed(args.seed), world=world)
    if not world.main:
        return 0
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
