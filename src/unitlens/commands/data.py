"""``unitlens data``: summarise each data set and write tiles of examples."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("data", help="summarise the data sets and write example tiles")
    p.add_argument("--out", required=True, help="folder for the PNG tiles")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("not yet wired")
