"""``unitlens reproduce``: train, visualize, analyse, and write the figures and the report."""

from __future__ import annotations

import argparse
from pathlib import Path

from unitlens.commands import add_output_options, add_user_data_options, user_data_overrides
from unitlens.config import PRESETS, apply_overrides, preset


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "reproduce",
        help="run the paper's whole pipeline and write a run folder with figures and a report",
        description="Train a DBN and an SDAE on MNIST and on natural-image patches, visualize layers 1 to 3 "
        "with every method, measure the paper's claims, and write figures and an HTML report. With --data "
        "FILE the run trains and studies both on your own data set instead (no claims: they are the "
        "paper's, on its data). Running the same command again resumes an interrupted run.",
    )
    p.add_argument(
        "--preset", choices=PRESETS, default="quick", help="quick (embedded data, minutes) or paper"
    )
    p.add_argument("--data-dir", help="MNIST folder of IDX files or an .npz (default: the embedded digits)")
    p.add_argument("--photos", help="a folder of your own photographs for the patches")
    p.add_argument(
        "--data",
        help="your own data set instead of MNIST and the patches: an .npz, .npy or IDX file or a folder of "
        "images (settings: --set data.hidden=..., data.examples_per_layer=..., data.units=...)",
    )
    add_user_data_options(p)
    p.add_argument("--out", default=None, help="run folder (default runs/PRESET-seedN, or runs/NAME-seedN)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a setting, e.g. --set study.restarts=9 --set mnist.hidden=1000,1000,1000 (repeatable)",
    )
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from unitlens.reproduce import reproduce

    overrides = [f"seed={args.seed}", *args.overrides]
    if args.data_dir:
        overrides.append(f"mnist.data_dir={args.data_dir}")
    if args.photos:
        overrides.append(f"patches.photos={args.photos}")
    if args.data:
        overrides += user_data_overrides(args)
    config = apply_overrides(preset(args.preset), overrides)
    # reproduce() checks the folder (unitlens.outdir.prepare_output) and holds its lock for the whole run.
    label = config.data.name if config.data.path else config.preset
    out = args.out if args.out is not None else Path("runs") / f"{label}-seed{config.seed}"
    report = reproduce(config, out, quiet=args.quiet, verbose=args.verbose)
    print(f"report: {report}")
    return 0
