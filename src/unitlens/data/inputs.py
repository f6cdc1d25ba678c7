"""Inputs for a user's model: the examples its units are compared with, from a file or folder the user names.

``load_inputs(spec, input_shape)`` returns (n, *input_shape) float32 examples:

- ``"mnist"``: unitlens's embedded digits (1, 28, 28) in [0, 1] (the training split);
- an ``.npz`` file: its array ``x`` (or ``images``, or its only array), shaped (n, *input_shape), (n, d)
  with d = prod(input_shape), or channels-last (n, H, W, C); integer arrays (uint8 images) are scaled
  to [0, 1], floats are taken as they are. Read with ``allow_pickle=False``;
- a folder of images: ``n`` random crops of size (H, W) from its images (grey for C = 1, RGB for C = 3),
  each image first shrunk so its shorter side is at most 4 crop sizes (crops then hold whole objects, not
  texture), crops drawn with a seeded generator, in [0, 1].
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from unitlens.errors import UnitlensError

__all__ = ["load_inputs"]

# An image is shrunk until its shorter side is at most this many crop sizes.
_CROP_SCALE = 4


def load_inputs(spec: str | Path, input_shape: tuple[int, ...], *, n: int = 2000, seed: int = 0) -> Tensor:
    """(n_examples, *input_shape) float32 inputs from ``spec`` (see the module docstring).

    Raises:
        UnitlensError: a missing or unreadable file, or data that cannot take ``input_shape`` (naming the
            file, the field and what was expected).
    """
    shape = tuple(int(s) for s in input_shape)
    if str(spec) == "mnist":
        from unitlens.data.mnist import load_mnist

        data = load_mnist(None)
        return _shaped(data.x_train.float(), shape, "the embedded MNIST digits")
    path = Path(spec).expanduser()
    if path.is_dir():
        return _folder_crops(path, shape, n, seed)
    if not path.exists():
        raise UnitlensError(
            f"--data {path}: no such file or folder (expected an .npz, an image folder or 'mnist')"
        )
    if path.suffix.lower() != ".npz":
        raise UnitlensError(f"--data {path}: expected an .npz file, a folder of images or 'mnist'")
    return _npz_inputs(path, shape)


def _npz_inputs(path: Path, shape: tuple[int, ...]) -> Tensor:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            key = next((k for k in ("x", "images") if k in names), names[0] if len(names) == 1 else None)
            if key is None:
                raise UnitlensError(f"{path}: expected an array named 'x' or 'images' (found {names})")
            array = archive[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UnitlensError(f"{path}: cannot read it as an .npz file ({error})") from error
    if array.dtype.kind in "iub":
        values = torch.from_numpy(array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0))
    elif array.dtype.kind == "f":
        values = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    else:
        raise UnitlensError(f"{path}: field {key} has dtype {array.dtype}, expected numbers")
    if not bool(torch.isfinite(values).all()):
        raise UnitlensError(f"{path}: field {key} holds NaN or inf")
    return _shaped(values, shape, f"{path}: field {key}")


def _shaped(values: Tensor, shape: tuple[int, ...], what: str) -> Tensor:
    """``values`` (n, ...) as (n, *shape): reshaped when the sizes match, channels-last moved first."""
    if values.dim() < 2 or values.shape[0] < 1:
        raise UnitlensError(
            f"{what} has shape {tuple(values.shape)}, expected (n, {', '.join(map(str, shape))})"
        )
    if tuple(values.shape[1:]) == shape:
        return values
    if len(shape) == 3 and tuple(values.shape[1:]) == (shape[1], shape[2], shape[0]):
        return values.permute(0, 3, 1, 2).contiguous()
    if values[0].numel() == int(np.prod(shape)):
        return values.reshape(values.shape[0], *shape)
    raise UnitlensError(
        f"{what} has examples of shape {tuple(values.shape[1:])}; the model takes {shape} "
        f"({int(np.prod(shape))} values per example)"
    )


def _folder_crops(folder: Path, shape: tuple[int, ...], n: int, seed: int) -> Tensor:
    from unitlens.data.images import image_files, read_grey_image, read_rgb_image

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise UnitlensError(
            f"--data {folder}: an image folder gives (1, H, W) grey or (3, H, W) colour inputs; the model "
            f"takes {shape}"
        )
    channels, h, w = shape
    files = image_files(folder)
    if not files:
        raise UnitlensError(f"--data {folder}: the folder holds no image files")
    images = []
    for file in files:
        pixels = read_rgb_image(file) if channels == 3 else read_grey_image(file)[:, :, None]
        images.append(_shrink(pixels, max(h, w) * _CROP_SCALE))
    usable = [im for im in images if im.shape[0] >= h and im.shape[1] >= w]
    if not usable:
        raise UnitlensError(f"--data {folder}: every image is smaller than the model's input {h}x{w}")
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(len(usable), (n,), generator=g)
    out = torch.empty(n, channels, h, w)
    for i, k in enumerate(which.tolist()):
        image = usable[k]
        top = int(torch.randint(image.shape[0] - h + 1, (1,), generator=g))
        left = int(torch.randint(image.shape[1] - w + 1, (1,), generator=g))
        out[i] = torch.from_numpy(image[top : top + h, left : left + w].transpose(2, 0, 1).astype(np.float32))
    return out


def _shrink(pixels: np.ndarray, short_side: int) -> np.ndarray:
    """(H, W, C) in [0, 1] shrunk (area-averaged) so its shorter side is at most ``short_side``."""
    height, width = pixels.shape[:2]
    factor = short_side / min(height, width)
    if factor >= 1.0:
        return pixels
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    channels = [
        np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX))
        for plane in pixels.transpose(2, 0, 1)
    ]
    return np.stack(channels, axis=2).astype(np.float64)
