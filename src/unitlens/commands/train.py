"""``unitlens train``: pre-train one DBN or SDAE on MNIST, patches or the user's own data, resumably, into a
checkpoint."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import torch

from unitlens.commands import add_output_options
from unitlens.config import ReproduceConfig, apply_overrides, preset
from unitlens.errors import UnitlensError
from unitlens.outdir import hold_lock, prepare_output

log = logging.getLogger("unitlens")
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
        "--image-fit",
        choices=("resize", "crop"),
        default="resize",
        help="--image-size by resizing or cropping",
    )
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
    from unitlens.catalogue import derive_seed, stack_name
    from unitlens.data.files import DATA_CACHE, check_recipe
    from unitlens.data.recipe import load_data
    from unitlens.recipes import batch_source, build_stack, data_recipe, stack_settings, training_config
    from unitlens.runs import pretrain

    config, dataset = _config(args)
    recipe = data_recipe(dataset, config)
    # Every error about the data comes before the output folder is touched.
    if config.data.path:
        check_recipe(recipe)
        name = f"{dataset}-{args.model}"
    else:
        data = load_data(recipe)
        name = stack_name(dataset, args.model)
    out = prepare_output(args.out)
    # One lock per stack: trainings of different stacks may share a folder, two of the same one may not.
    with hold_lock(out, name=f".{name}.lock"):
        if config.data.path:
            # A memory-mapped file that needs converting streams from a copy in the output folder.
            data = load_data(recipe, cache=out / DATA_CACHE)
            log.info("data: %s", data.source)  # says the visible units the values call for
        settings = stack_settings(dataset, config, data)
        seed = derive_seed(args.seed, "train", name)
        stack = build_stack(args.model, data, settings, torch.Generator().manual_seed(seed))
        source = batch_source(dataset, data, config, derive_seed(args.seed, "batches", name))
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
    last = {int(r["layer"]): r["heldout_reconstruction"] for r in history}
    for layer, err in sorted(last.items()):
        print(f"layer {layer}: held-out reconstruction error {err:.4g}")
    print(f"checkpoint: {out / name}.safetensors")
    return 0


def _config(args: argparse.Namespace) -> tuple[ReproduceConfig, str]:
    """The settings this training uses (the quick preset's, with the flags) and the data set's name: mnist,
    patches, or the user's (``data.*``: ``unitlens.config.UserDataSettings``)."""
    overrides = [f"seed={args.seed}", f"patches.size={args.patch_size}"]
    if args.data in BUILT_IN:
        section = args.data
        if args.data_dir:
            overrides.append(f"mnist.data_dir={args.data_dir}")
        if args.photos:
            overrides.append(f"patches.photos={args.photos}")
    else:
        path = Path(args.data).expanduser()
        if not path.exists():
            raise UnitlensError(
                f"--data {args.data}: no such file or folder (expected mnist, patches, an .npz, .npy or IDX "
                "file, or a folder of images)"
            )
        section = "data"
        height, width = image_size(args.image_size)
        overrides += [f"data.path={path.resolve()}", f"data.name={args.name or data_name(path)}"]
        overrides += [f"data.image_height={height}", f"data.image_width={width}"]
        overrides.append(f"data.channels={args.channels or 0}")
        overrides.append(f"data.image_fit={args.image_fit}")
    if args.hidden:
        overrides.append(f"{section}.hidden={args.hidden}")
    if args.examples:
        overrides.append(f"{section}.examples_per_layer={args.examples}")
        if section != "data":
            overrides.append(f"{section}.first_layer_examples={args.examples}")
    config = apply_overrides(preset("quick"), overrides)
    return config, (config.data.name if section == "data" else args.data)


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
