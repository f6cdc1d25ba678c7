"""The ``unitlens`` command line: with ``runs`` and ``render``, the only code that decides where files go."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

import unitlens
from unitlens import progress
from unitlens.allocator import keep_freed_memory
from unitlens.errors import UnitlensError
from unitlens.outdir import output_error

Command = Callable[[argparse.Namespace], int]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unitlens",
        description="See what every hidden unit of a deep network computes (Erhan et al. 2009).",
    )
    parser.add_argument("--version", action="version", version=f"unitlens {unitlens.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from unitlens.commands import data as data_cmd
    from unitlens.commands import report as report_cmd
    from unitlens.commands import reproduce as reproduce_cmd
    from unitlens.commands import train as train_cmd
    from unitlens.commands import visualize as visualize_cmd

    reproduce_cmd.add_parser(sub)
    train_cmd.add_parser(sub)
    visualize_cmd.add_parser(sub)
    report_cmd.add_parser(sub)
    data_cmd.add_parser(sub)
    return parser


def _check_launch(args: argparse.Namespace) -> None:
    """Refuse a command that does not run data-parallel when torchrun started several copies of it: the
    copies would each run the whole command on the same output folder."""
    world = os.environ.get("WORLD_SIZE", "1")
    if world.strip() not in ("", "0", "1") and not getattr(args, "distributed", False):
        raise UnitlensError(
            f"`unitlens {args.command}` does not run data-parallel yet, and torchrun started {world} copies "
            "of it (WORLD_SIZE); run it in one process (data-parallel: `train` and `visualize CHECKPOINT`)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 success, 2 a user error, 130 interrupted).

    Every command shows its progress and the ``unitlens`` log on stderr as ``unitlens.progress`` says
    (live bars on a terminal, a few plain lines in a file, a pipe or CI), within ``--quiet``/``--verbose``;
    an error is one line on stderr after the bars are cleared: a ``UnitlensError``, or an ``OSError`` of
    a write that failed on the user's side (disk full, read-only, permission; ``unitlens.outdir``).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    run: Command | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 0
    # A log file that cannot be written (disk full) must not print a traceback per record: the next
    # write of the run's own files fails with the one-line error below.
    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
    # The command owns its process: keep freed memory for the next step (unitlens.allocator says why).
    allocator = keep_freed_memory()
    try:
        _check_launch(args)
        with progress.session(quiet=getattr(args, "quiet", False), verbose=getattr(args, "verbose", False)):
            logging.getLogger("unitlens").debug("allocator: %s", allocator)
            return run(args)
    except UnitlensError as exc:
        print(f"unitlens: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, read-only, permission denied on a write that no layer translated
        where = os.fsdecode(exc.filename) if exc.filename is not None else "the output"
        error = output_error(exc, where, writing=False)
        if error is None:
            raise
        print(f"unitlens: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unitlens: interrupted", file=sys.stderr)
        return 130
    finally:
        logging.raiseExceptions = raise_exceptions


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
