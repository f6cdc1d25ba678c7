"""``unitlens train``: pre-train one DBN or SDAE on MNIST, patches or the user's own data, resumably, into a
checkpoint."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import torch

from unitlens.commands import add_output_options
from unitlens.config import apply_overrides, preset
from unitlens.data.dataset import DataRecipe
from unitlens.errors import UnitlensError
from unitlens.outdir import hold_lock, prepare_output

log = logging.getLogger("unitlens")
_SLUG = re.compile(r"^[A-Za-z0-9_]+$")
BUILT_IN = ("mnist", "patches")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="pre-train one stack (DBN or SDAE) and save a checkpoint; resumes if interrupted",
        description="Greedy layer-wise pre-training of one stack. The checkpoint lands in OUT/DATA-MODEL"
        ".safetensors (+ .json, and a -log.jsonl of held-out monitoring); running the same command again "
        "after an interruption resumes where it stopped. --data takes mnist, patches, or your own data: an "
        ".npz (x_train, optionally y_train, x_test, y_test), an .npy, an IDX file of any shape or a folder "
        "of images; binary or [0, 1] values train Bernoulli visible units, other values Gaussian ones on "
        "standardised inputs (said in the log).",
    )
    p.add_argument("--model", choices=("dbn", "sdae"), required=True)
    p.add_argument(
        "--data",
        default="mnist",
        help="mnist, patches, or a file or folder of your own (.npz, .npy, IDX, images)",
    )
    p.add_argument("--image-size", help="your folder's images resized to H,W (default: their own size)")
    p.add_argument(
        "--channels", type=int, choices=(1, 3), help="your folder's images as grey (1) or colour (3)"
    )
    p.add_argument("--name", help="your data set's name in file names (default: the file's stem)")
    p.add_argument("--data-dir", help="MNIST folder of IDX files or an .npz (default: the embedded digits)")
    p.add_argument("--photos", help="a folder of photographs for the patches (default: the bundled ones)")
    p.add_argument("--patch-size", type=int, default=12)
    p.add_argument("--hidden", default=None, help="units per hidden layer, e.g. 500,500,500")
    p.add_argument("--examples", type=int, default=None, help="training examples per layer")
    p.add_argument("--out", required=True, help="folder for the checkpoint and its log")
    p.add_argument("--seed", type=int, default=0)
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from unitlens.catalogue import stack_name

    if args.data not in BUILT_IN:
        return _run_file(args)
    out = prepare_output(args.out)
    # One lock per stack: trainings of different stacks may share a folder, two of the same one may not.
    with hold_lock(out, name=f".{stack_name(args.data, args.model)}.lock"):
        return _run(args, out)


def data_name(path: Path) -> str:
    """A data set's default name in file names: its file's stem as letters, digits and _ (MNIST-style IDX
    names lose their ``-images-idx3-ubyte``)."""
    stem = re.sub(r"([-.]images)?[-.]idx\d[-.]ubyte.*$", "", path.name).split(".")[0]
    return re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or "data"


def image_size(text: str | None) -> tuple[int, int]:
    """``--image-size H,W`` -> (H, W); (0, 0) when not given."""
    if not text:
        return 0, 0
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError as error:
        raise UnitlensError(f"--image-size takes H,W, e.g. 32,32; got {text!r}") from error
    if min(height, width) < 1:
        raise UnitlensError(f"--image-size must be positive, got {text!r}")
    return height, width


def _file_recipe(args: argparse.Namespace) -> tuple[str, DataRecipe]:
    """The user's data set: its name in file names and its recipe, every flag checked first."""
    from unitlens.catalogue import DATASETS

    path = Path(args.data).expanduser()
    if not path.exists():
        raise UnitlensError(
            f"--data {args.data}: no such file or folder (expected mnist, patches, an .npz, .npy or IDX "
            "file, or a folder of images)"
        )
    name = args.name or data_name(path)
    if not _SLUG.match(name) or name in DATASETS:
        raise UnitlensError(
            f"--name must be letters, digits or _ and not one of {DATASETS} (it names files), got {name!r}"
        )
    height, width = image_size(args.image_size)
    recipe = DataRecipe(
        "file",
        path=str(path.resolve()),
        seed=args.seed,
        image_height=height,
        image_width=width,
        channels=args.channels or 0,
    )
    return name, recipe


def _run_file(args: argparse.Namespace) -> int:
    """Train on the user's own data set (``unitlens.data.files``)."""
    from unitlens.catalogue import derive_seed
    from unitlens.config import UserDataSettings
    from unitlens.data.recipe import load_data
    from unitlens.data.stream import ShuffledBatches
    from unitlens.recipes import build_stack, training_config
    from unitlens.runs import pretrain

    name, recipe = _file_recipe(args)
    data = load_data(recipe)  # every error about the data comes before the output folder is touched
    log.info("data: %s", data.source)
    try:
        hidden = tuple(int(h) for h in args.hidden.split(",")) if args.hidden else None
    except ValueError as error:
        raise UnitlensError(
            f"--hidden takes sizes separated by commas, e.g. 500,500; got {args.hidden!r}"
        ) from error
    defaults = UserDataSettings()
    user = UserDataSettings(
        name=name,
        hidden=hidden or defaults.hidden,
        examples_per_layer=args.examples or defaults.examples_per_layer,
    )
    # The model blocks follow the values (UserDataSettings.stack_settings), as in reproduce --data.
    settings = user.stack_settings(data.kind, int(data.x_train.shape[0]))
    stack_name = f"{name}-{args.model}"
    out = prepare_output(args.out)
    with hold_lock(out, name=f".{stack_name}.lock"):
        seed = derive_seed(args.seed, "train", stack_name)
        stack = build_stack(args.model, data, settings, torch.Generator().manual_seed(seed))
        generator = torch.Generator().manual_seed(derive_seed(args.seed, "batches", stack_name))
        source = ShuffledBatches(data.x_train, data.y_train, settings.batch_size, generator)
        _, history = pretrain(
            stack,
            source,
            data,
            training_config(args.model, settings),
            seed=seed,
            folder=out,
            name=stack_name,
            quiet=args.quiet,
        )
    _report(history)
    print(f"checkpoint: {out / stack_name}.safetensors")
    return 0


def _report(history: list[dict[str, float]]) -> None:
    last = {int(r["layer"]): r["heldout_reconstruction"] for r in history}
    for layer, err in sorted(last.items()):
        print(f"layer {layer}: held-out reconstruction error {err:.4g}")


def _run(args: argparse.Namespace, out: Path) -> int:
    from unitlens.catalogue import derive_seed, stack_name
    from unitlens.data.recipe import load_data
    from unitlens.recipes import batch_source, build_stack, data_recipe, stack_settings, training_config
    from unitlens.runs import pretrain

    overrides = [f"seed={args.seed}", f"patches.size={args.patch_size}"]
    section = "mnist" if args.data == "mnist" else "patches"
    if args.hidden:
        overrides.append(f"{section}.hidden={args.hidden}")
    if args.examples:
        overrides.append(f"{section}.examples_per_layer={args.examples}")
        overrides.append(f"{section}.first_layer_examples={args.examples}")
    if args.data_dir:
        overrides.append(f"mnist.data_dir={args.data_dir}")
    if args.photos:
        overrides.append(f"patches.photos={args.photos}")
    config = apply_overrides(preset("quick"), overrides)
    data = load_data(data_recipe(args.data, config))
    settings = stack_settings(args.data, config)
    name = stack_name(args.data, args.model)
    seed = derive_seed(args.seed, "train", name)
    stack = build_stack(args.model, data, settings, torch.Generator().manual_seed(seed))
    source = batch_source(args.data, data, config, derive_seed(args.seed, "batches", name))
    _, history = pretrain(
        stack,
        source,
        data,
        training_config(args.model, settings),
        seed=seed,
        folder=out,
        name=name,
        quiet=args.quiet,
    )
    _report(history)
    print(f"checkpoint: {out / name}.safetensors")
    return 0
