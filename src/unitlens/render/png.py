"""Write and read 8-bit PNG images of grey levels in [0, 1].

``save_png`` writes atomically (a temporary file beside the target, then a rename): a reader, or a
resumed run, sees the previous file or the complete new one, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from unitlens.atomic import write_with
from unitlens.errors import UnitlensError
from unitlens.render.tiles import _as_float_array, upscale

__all__ = ["load_png", "save_png"]


def _to_uint8(image: Any, path: Path) -> np.ndarray:
    """Check an image ``(H, W)`` or ``(H, W, 3)`` in [0, 1] and quantise it to 8 bits (round to nearest)."""
    arr = _as_float_array(image, f"image for {path}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UnitlensError(
            f"image for {path}: expected a non-empty grey (H, W) or colour (H, W, 3) image, "
            f"got shape {arr.shape}"
        )
    low, high = float(arr.min()), float(arr.max())
    if low < 0.0 or high > 1.0:
        # Clipping would hide a scaling bug; the caller scales (see render.tiles) before saving.
        raise UnitlensError(
            f"image for {path}: expected values in [0, 1], got range [{low:.6g}, {high:.6g}]; "
            "scale it first (unitlens.render.tiles.scale_tile)"
        )
    return np.rint(arr * 255.0).astype(np.uint8)


def save_png(path: str | os.PathLike[str], image: Any, *, scale: int = 1) -> Path:
    """Write ``image`` as an 8-bit PNG at ``path``, atomically; return the path.

    Args:
        path: destination; missing parent folders are created. An existing file is replaced only once
            the new one is completely written.
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB, values in [0, 1] (numpy or torch). Values outside
            [0, 1] are an error, not clipped.
        scale: integer nearest-neighbour enlargement (each pixel becomes ``scale x scale``).

    Returns:
        ``Path(path)``.

    Raises:
        UnitlensError: bad shape, NaN / infinity, values outside [0, 1], bad ``scale``, or a failed write.
    """
    target = Path(path)
    pixels = upscale(_to_uint8(image, target), scale).astype(np.uint8)
    picture = Image.fromarray(pixels)  # mode "L" for (H, W), "RGB" for (H, W, 3)

    def write(f: IO[bytes]) -> None:
        picture.save(f, format="PNG")

    try:
        write_with(target, write)
    except OSError as exc:
        raise UnitlensError(f"{target}: could not write the PNG ({exc})") from exc
    return target


def load_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PNG (or any image Pillow reads) as float64 grey levels in [0, 1].

    Returns:
        ``(H, W)`` for grey images (8- or 16-bit, 1-bit, grey + alpha with the alpha dropped),
        ``(H, W, 3)`` for colour ones (alpha dropped, palettes expanded).

    Raises:
        UnitlensError: the file is missing or is not a readable image.
    """
    source = Path(path)
    try:
        with Image.open(source) as picture:
            picture.load()
            mode = picture.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grey: Pillow reports these as integer images of 0..65535.
                return np.asarray(picture, dtype=np.float64) / 65535.0
            if mode in ("L", "1", "LA"):
                grey = picture if mode == "L" else picture.convert("L")
                return np.asarray(grey, dtype=np.float64) / 255.0
            rgb = picture if mode == "RGB" else picture.convert("RGB")
            return np.asarray(rgb, dtype=np.float64) / 255.0
    except FileNotFoundError as exc:
        raise UnitlensError(f"{source}: no such image file") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise UnitlensError(f"{source}: not a readable image ({exc})") from exc
