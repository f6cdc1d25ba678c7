"""``unitlens train``: pre-train one DBN or SDAE on MNIST, patches or the user's own data, resumably, into a
checkpoint."""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from unitlens.commands import add_output_options, add_user_data_options, user_data_overrides
from unitlens.config import ReproduceConfig, apply_overrides, preset
from unitlens.outdir import hold_lock, prepare_output

if TYPE_CHECKING:
    from unitlens.distributed import World

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
    add_user_data_options(p)
    p.add_argument("--data-dir", help="MNIST folder of IDX files or an .npz (default: the embedded digits)")
    p.add_argument("--photos", help="a folder of photographs for the patches (default: the bundled ones)")
    p.add_argument("--patch-size", type=int, default=12)
    p.add_argument("--hidden", default=None, help="units per hidden layer, e.g. 500,500,500")
    p.add_argument("--examples", type=int, default=None, help="training examples per layer")
    p.add_argument("--out", required=True, help="folder for the checkpoint and its log")
    p.add_argument("--seed", type=int, default=0)
    add_output_options(p)
    p.set_defaults(run=run, distributed=True)  # torchrun: data-parallel (unitlens.distributed)


def run(args: argparse.Namespace) -> int:
    from unitlens.distributed import join, leave

    # Under torchrun, every process runs this command: data-parallel pre-training (unitlens.runs.pretrain).
    world = join()
    if not world.main:
        log.setLevel(logging.ERROR)  # process 0 speaks for the run
    try:
        return _run(args, world)
    finally:
        leave(world)


def _run(args: argparse.Namespace, world: World) -> int:
    from unitlens.catalogue import derive_seed, stack_name
    from unitlens.data.files import DATA_CACHE, check_recipe, dataset_from_recipe
    from unitlens.data.recipe import load_data
    from unitlens.distributed import main_first
    from unitlens.recipes import batch_source, build_stack, data_recipe, stack_settings, training_config
    from unitlens.runs import pretrain

    config, dataset = _config(args)
    recipe = data_recipe(dataset, config)
    # Every error about the data comes before the output folder is touched.
    if config.data.path:
        checked = check_recipe(recipe)
        name = f"{dataset}-{args.model}"
    else:
        data = load_data(recipe)
        name = stack_name(dataset, args.model)
    # Process 0 makes the folder and holds the lock; the others wait for it, then write nothing there (but
    # a converted copy of a user's data, which process 0 makes first).
    with main_first(world):
        out = prepare_output(args.out) if world.main else Path(args.out)
    # One lock per stack: trainings of different stacks may share a folder, two of the same one may not.
    lock = hold_lock(out, name=f".{name}.lock") if world.main else contextlib.nullcontext()
    with lock:
        if config.data.path:
            # A memory-mapped file that needs converting streams from a copy in the output folder.
            with main_first(world):  # process 0 converts it, the others then read its copy
                data = dataset_from_recipe(recipe, out / DATA_CACHE, checked)
            log.info("data: %s", data.source)  # says the visible units the values call for
        settings = stack_settings(dataset, config, data)
        seed = derive_seed(args.seed, "train", name)
        stack = build_stack(args.model, data, settings, torch.Generator().manual_seed(seed))
        # Each process its own batches; process 0's are a one-process run's.
        batches = "batches" if world.main else f"batches/rank{world.rank}"
        source = batch_source(dataset, data, config, derive_seed(args.seed, batches, name))
        _, history = pretrain(
            stack,
            source,
            data,
            training_config(args.model, settings),
            seed=seed,
            folder=out,
            name=name,
            quiet=args.quiet,
            world=world,
        )
    if not world.main:
        return 0
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
        section = "data"
        overrides += user_data_overrides(args)
    if args.hidden:
        overrides.append(f"{section}.hidden={args.hidden}")
    if args.examples:
        overrides.append(f"{section}.examples_per_layer={args.examples}")
        if section != "data":
            overrides.append(f"{section}.first_layer_examples={args.examples}")
    config = apply_overrides(preset("quick"), overrides)
    return config, (config.data.name if section == "data" else args.data)
