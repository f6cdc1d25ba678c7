"""One module per CLI sub-command: argument parsing and file placement, calling the pure core."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from unitlens.data.dataset import IMAGE_FITS
from unitlens.errors import UnitlensError


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


def add_user_data_options(parser: argparse.ArgumentParser) -> None:
    """How a folder of the user's images is read, and the data set's name in file names (``--data`` is
    each command's own: ``train`` takes mnist and patches too)."""
    parser.add_argument("--name", help="your data set's name in file names (default: the file's stem)")
    parser.add_argument("--image-size", help="your folder's images brought to H,W (default: their own size)")
    parser.add_argument(
        "--image-fit",
        choices=IMAGE_FITS,
        default="resize",
        help="--image-size by resizing or cropping",
    )
    parser.add_argument(
        "--channels", type=int, choices=(1, 3), help="your folder's images as grey (1) or colour (3)"
    )


def user_data_overrides(args: argparse.Namespace) -> list[str]:
    """The ``data.*`` settings (``unitlens.config.UserDataSettings``) for ``args.data``, a file or folder,
    and the options of :func:`add_user_data_options`; a missing path is an error naming it."""
    path = Path(args.data).expanduser()
    if not path.exists():
        raise UnitlensError(
            f"--data {args.data}: no such file or folder (expected an .npz, .npy or IDX file, or a folder of "
            "images)"
        )
    height, width = image_size(args.image_size)
    return [
        f"data.path={path.resolve()}",
        f"data.name={args.name or data_name(path)}",
        f"data.image_height={height}",
        f"data.image_width={width}",
        f"data.channels={args.channels or 0}",
        f"data.image_fit={args.image_fit}",
    ]


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
