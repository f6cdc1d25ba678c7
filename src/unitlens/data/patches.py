"""Natural-image patches: whitened photographs cut into small square patches at random positions.

The paper trained on 100,000 grey 12x12 patches of the whitened images of Olshausen & Field (1996). By
default unitlens whitens the ten photographs bundled with scikit-image and scikit-learn
(``images.load_bundled_photos``) the same way (``whitening.whiten``), draws patch positions uniformly at
random, and standardises every pixel to zero mean and unit variance over the training patches. A folder
of the user's own images can replace the photographs.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unitlens.data.dataset import DataRecipe, Dataset, dataset_norm
from unitlens.data.images import (
    BUNDLED_PHOTOS,
    image_files,
    load_bundled_photos,
    photo_sources,
    read_grey_image,
)
from unitlens.data.whitening import DEFAULT_F0, whiten
from unitlens.errors import UnitlensError

DEFAULT_MARGIN = 16
"""Pixels kept between a patch and every image border.

Whitening works through the FFT, which treats an image as periodic: the jump between opposite edges makes
the filter ring near the borders. Measured on the bundled camera photograph (whitening a 256x256 crop
alone against cropping the whitened full image), the artefact's rms, relative to the whitened image's unit
standard deviation, is 2.3 on the border row, 0.30 four pixels in, 0.16 at 8, 0.10 at 12 and 0.07 at 16; it
falls slowly because R(f) = f exp(-(f/f0)^4) has a cusp at f = 0, so its kernel has a long tail. 16 pixels
keeps the artefact below about 7% of the signal while still using 88% of a 512x512 image's patch positions.
"""


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise UnitlensError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def sample_patch_positions(
    shapes: Sequence[tuple[int, int]],
    size: int,
    n: int,
    generator: torch.Generator,
    margin: int = DEFAULT_MARGIN,
    *,
    names: Sequence[str] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw ``n`` patch positions uniformly over every valid window of every image.

    A window of ``size`` x ``size`` pixels is valid when it stays ``margin`` pixels away from each border.
    All valid windows of all images are equally likely, so an image is chosen with probability
    proportional to its number of valid windows (about its area): every part of every photograph is
    equally represented, and a small image does not contribute more per pixel than a large one.

    Args:
        shapes: (H, W) of each image.
        size: patch side in pixels, >= 1.
        n: number of positions, >= 0.
        generator: CPU generator for the draw.
        margin: pixels kept from every border, >= 0.
        names: image names for error messages (default "image <index>").

    Returns:
        image: (n,) int64 index into ``shapes``.
        row: (n,) int64 top row of each window.
        col: (n,) int64 left column of each window.

    Raises:
        UnitlensError: an argument is invalid, or an image is smaller than size + 2 * margin (naming it).
    """
    size = _check_int(size, "patch size", 1)
    n = _check_int(n, "number of patches", 0)
    margin = _check_int(margin, "margin", 0)
    if len(shapes) == 0:
        raise UnitlensError("sample_patches needs at least one image, got none")
    if names is not None and len(names) != len(shapes):
        raise UnitlensError(f"got {len(names)} image names for {len(shapes)} images")
    need = size + 2 * margin
    for i, (h, w) in enumerate(shapes):
        if h < need or w < need:
            name = names[i] if names is not None else f"image {i}"
            raise UnitlensError(
                f"{name} is {h}x{w} pixels (height x width); {size}x{size} patches kept {margin} pixels from "
                f"the borders need images of at least {need}x{need}"
            )
    # Number of valid top-left corners along each axis of each image.
    ny = torch.tensor([h - need + 1 for h, _ in shapes], dtype=torch.int64)
    nx = torch.tensor([w - need + 1 for _, w in shapes], dtype=torch.int64)
    ends = torch.cumsum(ny * nx, 0)
    starts = ends - ny * nx
    # One uniform draw over the concatenated list of all valid windows, then find its image and corner.
    flat = torch.randint(0, int(ends[-1]), (n,), generator=generator, dtype=torch.int64)
    image = torch.searchsorted(ends, flat, right=True)
    local = flat - starts[image]
    row = torch.div(local, nx[image], rounding_mode="floor") + margin
    col = local % nx[image] + margin
    return image, row, col


def sample_patches(
    images: Sequence[np.ndarray | Tensor],
    size: int,
    n: int,
    generator: torch.Generator,
    margin: int = DEFAULT_MARGIN,
    *,
    names: Sequence[str] | None = None,
) -> Tensor:
    """Cut ``n`` square patches at uniform random positions (see ``sample_patch_positions``).

    Vectorised: one draw gives every position; each image's patches are gathered with one advanced index
    into a strided (rows, cols, size, size) view of all its windows (a loop over images, not patches).

    Args:
        images: (H, W) real images (numpy arrays or tensors).
        size: patch side in pixels, >= 1.
        n: number of patches, >= 0.
        generator: CPU generator; same generator state, same patches.
        margin: pixels kept from every border, >= 0 (default ``DEFAULT_MARGIN``).
        names: image names for error messages.

    Returns:
        (n, size * size) float32 patches, each flattened row by row.

    Raises:
        UnitlensError: an image is not 2-D or holds non-finite values, or is too small (naming it).
    """
    tensors = _as_image_tensors(images, names)
    return _cut_patches(tensors, size, n, generator, margin, names)


def _as_image_tensors(images: Sequence[np.ndarray | Tensor], names: Sequence[str] | None) -> list[Tensor]:
    """Checked (H, W) float32 CPU tensors of ``images`` (copies of numpy arrays)."""
    tensors = []
    for i, image in enumerate(images):
        # A copy: the cached whitened photographs are read-only arrays, which torch cannot wrap.
        t = image if isinstance(image, Tensor) else torch.tensor(np.asarray(image))
        name = names[i] if names is not None and i < len(names) else f"image {i}"
        if t.ndim != 2 or t.is_complex() or t.dtype == torch.bool:
            raise UnitlensError(f"{name}: expected a real (H, W) image, got {t.dtype} {tuple(t.shape)}")
        t = t.to(dtype=torch.float32, device="cpu")
        if not bool(torch.isfinite(t).all()):
            raise UnitlensError(f"{name} holds NaN or infinite values")
        tensors.append(t)
    return tensors


def _cut_patches(
    tensors: list[Tensor],
    size: int,
    n: int,
    generator: torch.Generator,
    margin: int,
    names: Sequence[str] | None,
) -> Tensor:
    """``sample_patches`` on images already checked by ``_as_image_tensors``."""
    image_index, row, col = sample_patch_positions(
        [(t.shape[0], t.shape[1]) for t in tensors], size, n, generator, margin, names=names
    )
    # Group the draws by image with one stable sort, so each image's patches are one slice of `order`.
    order = torch.argsort(image_index, stable=True)
    ends = torch.cumsum(torch.bincount(image_index, minlength=len(tensors)), 0).tolist()
    out = torch.empty(n, size * size, dtype=torch.float32)
    start = 0
    for t, end in zip(tensors, ends, strict=True):
        chosen = order[start:end]
        start = end
        if chosen.numel() == 0:
            continue
        # windows[r, c, a, b] = t[r + a, c + b]: a view, no copy until the gather below.
        windows = t.unfold(0, size, 1).unfold(1, size, 1)
        out[chosen] = windows[row[chosen], col[chosen]].reshape(-1, size * size)
    return out


@functools.lru_cache(maxsize=4)
def _whitened_bundled(f0: float) -> tuple[np.ndarray, ...]:
    """The bundled photographs whitened with cut-off ``f0``, cached per process (read-only arrays)."""
    whitened = []
    for image in load_bundled_photos():
        w = whiten(image, f0)
        w.setflags(write=False)  # shared through the cache: nobody may change it
        whitened.append(w)
    return tuple(whitened)


def whitened_bundled_photos(f0: float = DEFAULT_F0) -> list[np.ndarray]:
    """The ten bundled photographs, each whitened (``whitening.whiten``): (H, W) float64, read-only."""
    return list(_whitened_bundled(float(f0)))


def _whitened_folder(folder: Path, f0: float) -> tuple[list[np.ndarray], list[str]]:
    files = image_files(folder)
    whitened = []
    for path in files:
        try:
            whitened.append(whiten(read_grey_image(path), f0))
        except UnitlensError as err:
            if str(path) in str(err):
                raise
            raise UnitlensError(f"image {path}: {err}") from err
    return whitened, [str(path) for path in files]


def _folder_source(folder: Path, names: list[str]) -> str:
    shown = [Path(name).name for name in names[:10]]
    more = f", and {len(names) - 10} more" if len(names) > 10 else ""
    return f"{len(names)} images in {folder.resolve()} ({', '.join(shown)}{more})"


def load_patches(
    folder: str | Path | None = None,
    *,
    size: int = 12,
    n_train: int = 100_000,
    n_test: int = 10_000,
    seed: int = 0,
    f0: float = DEFAULT_F0,
    margin: int = DEFAULT_MARGIN,
) -> Dataset:
    """Whitened natural-image patches, each pixel standardised over the training patches.

    Every image is whitened (``whitening.whiten`` with cut-off ``f0``); ``n_train`` then ``n_test``
    patches are drawn, one after the other, from one generator seeded with ``seed`` (held-out patches are
    independent draws; a held-out window may overlap a training window). Each pixel is then standardised
    with the training patches' per-pixel mean and standard deviation, applied to both sets and stored as
    ``pixel_mean`` and ``pixel_scale``, so ``dataset.to_original_units(x)`` returns whitened-image units.

    Args:
        folder: a folder of the user's images (png, jpg, jpeg, tif, tiff, bmp, pgm, ppm), or None for the
            ten photographs bundled with scikit-image and scikit-learn.
        size: patch side in pixels (the paper: 12; its limitation study: 20).
        n_train: training patches (the paper: 100,000), >= 2.
        n_test: held-out patches, >= 0.
        seed: seed of the generator that draws the positions, >= 0.
        f0: whitening cut-off in cycles/pixel (0.4, the paper's 200 cycles/picture at 512 pixels).
        margin: pixels kept between a patch and every border (see ``DEFAULT_MARGIN``).

    Returns:
        A ``Dataset`` with kind "real", image_shape (size, size), no labels, x_train (n_train, size * size)
        and x_test (n_test, size * size) float32, and rho the mean norm of the standardised training rows.

    Raises:
        UnitlensError: an argument is invalid, the folder is missing or holds no readable images, or an
            image is too small for size + 2 * margin (naming it).
    """
    size = _check_int(size, "size", 1)
    n_train = _check_int(n_train, "n_train", 2)
    n_test = _check_int(n_test, "n_test", 0)
    seed = _check_int(seed, "seed", 0)
    margin = _check_int(margin, "margin", 0)
    if isinstance(f0, bool) or not isinstance(f0, numbers.Real) or not math.isfinite(f0) or f0 <= 0:
        raise UnitlensError(f"f0 must be a finite number > 0 (cycles/pixel), got {f0!r}")
    f0 = float(f0)

    if folder is None:
        images: Sequence[np.ndarray] = _whitened_bundled(f0)
        names: list[str] = list(BUNDLED_PHOTOS)
        source = photo_sources()
    else:
        folder = Path(folder)
        images, names = _whitened_folder(folder, f0)
        source = _folder_source(folder, names)

    tensors = _as_image_tensors(images, names)  # converted and checked once for both draws
    generator = torch.Generator().manual_seed(seed)
    x_train = _cut_patches(tensors, size, n_train, generator, margin, names)
    x_test = _cut_patches(tensors, size, n_test, generator, margin, names)

    # Per-pixel statistics accumulated in float64 (100,000 float32 terms lose digits otherwise).
    mean = x_train.mean(0, dtype=torch.float64)
    x_train -= mean.float()
    std = x_train.square().mean(0, dtype=torch.float64).sqrt()
    if bool((std <= 1e-12).any()):
        raise UnitlensError(f"some patch pixels are constant over the {n_train} training patches; use more")
    scale = std.float()
    x_train /= scale
    x_test = (x_test - mean.float()) / scale

    description = (
        f"{size}x{size} patches (seed {seed}, at least {margin} px from the borders) of {source}, whitened "
        f"with R(f) = f exp(-(f/{f0:g})^4), each pixel standardised over the training patches"
    )
    return Dataset(
        x_train=x_train,
        y_train=None,
        x_test=x_test,
        y_test=None,
        image_shape=(size, size),
        rho=dataset_norm(x_train),
        source=description,
        kind="real",
        pixel_mean=mean.float(),
        pixel_scale=scale,
        recipe=DataRecipe(
            "patches",
            path="" if folder is None else str(Path(folder).expanduser().resolve()),
            size=size,
            n_train=n_train,
            n_test=n_test,
            seed=seed,
            f0=f0,
            margin=margin,
            standardised=True,
        ),
    )
