"""One module per CLI sub-command: argument parsing and file placement, calling the pure core."""

from __future__ import annotations

import argparse


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--verbose``, the same on every command (``unitlens.cli`` applies them)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress or log on stderr (errors and the final summary still show; log files still fill)",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", help="add per-step detail to the log and to stderr"
    )
