"""``unitlens report RUN_DIR``: re-render the claims, figures and report of a run from its raw results."""

from __future__ import annotations

import argparse

from unitlens.commands import add_output_options
from unitlens.outdir import hold_lock, prepare_output


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="re-render a run folder's figures and report from its results (no retraining)",
    )
    p.add_argument("run_dir", help="a run folder made by unitlens reproduce")
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from unitlens.reproduce import render_run

    run_dir = prepare_output(args.run_dir, what="RUN_DIR", create=False)
    with hold_lock(run_dir, what="RUN_DIR"):
        print(f"report: {render_run(run_dir)}")
    return 0
