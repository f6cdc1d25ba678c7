"""``unitlens train``: pre-train one DBN or SDAE on MNIST or patches, resumably, into a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from unitlens.commands import add_output_options
from unitlens.config import apply_overrides, preset
from unitlens.outdir import hold_lock, prepare_output


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="pre-train one stack (DBN or SDAE) and save a checkpoint; resumes if interrupted",
        description="Greedy layer-wise pre-training of one stack. The checkpoint lands in OUT/DATA-MODEL"
        ".safetensors (+ .json, and a -log.jsonl of held-out monitoring); running the same command again "
        "after an interruption resumes where it stopped.",
    )
    p.add_argument("--model", choices=("dbn", "sdae"), required=True)
    p.add_argument("--data", choices=("mnist", "patches"), default="mnist")
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

    out = prepare_output(args.out)
    # One lock per stack: trainings of different stacks may share a folder, two of the same one may not.
    with hold_lock(out, name=f".{stack_name(args.data, args.model)}.lock"):
        return _run(args, out)


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
    last = {int(r["layer"]): r["heldout_reconstruction"] for r in history}
    for layer, err in sorted(last.items()):
        print(f"layer {layer}: held-out reconstruction error {err:.4g}")
    print(f"checkpoint: {out / name}.safetensors")
    return 0
