"""A user's own data set from a file or a folder: examples of any shape, checked, with their value kind.

:func:`load_data_file` reads

- an ``.npz`` with ``x_train`` (or ``x``) and optionally ``y_train``, ``x_test``, ``y_test``, read with
  ``allow_pickle=False``;
- an ``.npy`` array (n, ...), **memory-mapped**: it is never read whole, so a data set larger than memory
  is streamed (the checks read it once, in blocks: ``unitlens.data.dataset.block_rows``);
- an IDX file (n, ...) of any shape (raw or gzip), with its labels from a file beside it whose name has
  ``labels`` where the images file has ``images`` (``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte``);
- a folder of images, grey or colour, each resized to ``image_size`` (H, W), or cropped to it about its
  centre (``image_fit="crop"``; a size is required when the images' sizes differ), as (1, H, W) grey or
  (3, H, W) colour (``channels``; default colour when any file is).

Every example keeps its shape, so images are drawn as images and vectors as vectors. uint8 values are
scaled by 1/255 when any exceeds 1 (pixels; a uint8 array of 0s and 1s stays binary); other integers and
floats are taken as they are. The values decide the visible units
(:attr:`DataFile.visible`): only 0 and 1 (``"binary"``) or within [0, 1] (``"unit"``) give Bernoulli
units; anything else (``"real"``) gives Gaussian units on standardised inputs.

Without ``x_test`` a held-out split is made: ``test_fraction`` of the rows (at least one), drawn with a
seeded generator from in-memory data, and the **last** rows of a memory-mapped file (reading random rows
of a file larger than memory is slow; shuffle the file, or give ``x_test``, if its order matters).

Every bad input is one :class:`~unitlens.errors.UnitlensError` naming the file, the field and what was
expected: a missing file, an unreadable or pickled one, a field of the wrong dtype or shape, NaN or inf
(with the first row that holds one), labels that are not integers or do not match the examples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from unitlens.data.dataset import IMAGE_FITS, DataRecipe, Dataset, block_rows, dataset_norm
from unitlens.data.idx import read_idx
from unitlens.errors import UnitlensError
from unitlens.results import ImageShape

__all__ = ["DATA_CACHE", "DataFile", "check_recipe", "dataset_from_recipe", "load_data_file"]

# The output folder's subfolder that holds converted copies of memory-mapped files (dataset_from_recipe).
DATA_CACHE = "data-cache"
_IDX_SUFFIXES = ("-ubyte", "-ubyte.gz", ".idx", ".idx.gz")
KINDS = ("binary", "unit", "real")


@dataclass(frozen=True)
class DataFile:
    """A checked data set of examples of shape ``shape``, in memory or memory-mapped.

    Attributes:
        x_train: (n_train, *shape) array: float32 in memory, or a read-only memory map of the file's dtype
            (read through :meth:`rows`, which applies ``scale``).
        y_train: (n_train,) int64 labels, or None.
        x_test: (n_test, *shape) float32 held-out examples (always in memory).
        y_test: (n_test,) int64, or None.
        shape: one example's shape: (d,) vectors, (H, W) or (C, H, W) images, or any other.
        kind: ``"binary"`` (only 0 and 1), ``"unit"`` (within [0, 1]) or ``"real"``.
        scale: what the stored values are multiplied by (1/255 for a memory map of uint8 pixels, else 1).
        source: the file or folder, for people.
        is_image: the examples are images (a folder or an IDX file of 2-D or 3-D examples, or an array of
            (H, W) or (C, H, W) examples with C = 1 or 3); vectors are drawn as plots, not as squares.
    """

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    shape: tuple[int, ...]
    kind: str
    scale: float
    source: str
    is_image: bool

    @property
    def visible(self) -> str:
        """The visible units that fit the values: ``"bernoulli"`` (binary or [0, 1]) or ``"gaussian"``."""
        return "gaussian" if self.kind == "real" else "bernoulli"

    @property
    def n_inputs(self) -> int:
        """Values per example, d."""
        return int(np.prod(self.shape))

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def rows(self, index: np.ndarray | slice) -> Tensor:
        """(k, d) float32 training rows ``index`` (a slice, or sorted indices for a memory map), flattened
        and scaled: the one way to read ``x_train`` whether it is in memory or mapped."""
        block = np.asarray(self.x_train[index], dtype=np.float32)
        if self.scale != 1.0:
            block = block * np.float32(self.scale)
        return torch.from_numpy(np.ascontiguousarray(block.reshape(block.shape[0], -1)))

    def describe(self) -> str:
        """One line for the log: what was read and the visible units chosen."""
        mapped = " (memory-mapped)" if isinstance(self.x_train, np.memmap) else ""
        labels = "labelled" if self.y_train is not None else "unlabelled"
        what = "images" if self.is_image else "examples"
        return (
            f"{self.source}: {self.n_train:,} training and {self.x_test.shape[0]:,} held-out {what} of "
            f"shape {self.shape}{mapped}, {labels}; values {self.kind} -> {self.visible} visible units"
        )


def load_data_file(
    path: str | Path,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    image_fit: str = "resize",
    test_fraction: float = 0.1,
    seed: int = 0,
) -> DataFile:
    """The data set at ``path`` (see the module docstring).

    Args:
        path: an ``.npz``, ``.npy`` or IDX file, or a folder of images.
        image_size: (H, W) every image of a folder is resized to (None: their common size).
        channels: 1 (grey) or 3 (colour) for a folder (None: colour if any image is).
        image_fit: how a folder's images are brought to ``image_size``: ``"resize"`` (bilinear) or
            ``"crop"`` (the central H x W pixels; an image smaller than that is an error naming it).
        test_fraction: the held-out share when the data bring no test split, in (0, 1).
        seed: draws the held-out rows of in-memory data.
    """
    path = Path(path).expanduser()
    if not 0.0 < test_fraction < 1.0:
        raise UnitlensError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    if not path.exists():
        raise UnitlensError(f"{path}: no such file or folder (expected an .npz, .npy or IDX file, or images)")
    if path.is_dir():
        x = _image_folder(path, image_size, channels, image_fit)
        return _finish(path, x, None, None, None, test_fraction, seed, is_image=True)
    name = path.name.lower()
    if name.endswith(".npz"):
        x, y, x_test, y_test = _npz(path)
        return _finish(path, x, y, x_test, y_test, test_fraction, seed, is_image=None)
    if name.endswith(".npy"):
        return _finish(path, _npy(path), None, None, None, test_fraction, seed, is_image=None)
    if name.endswith(_IDX_SUFFIXES):
        x, y = _idx(path)
        return _finish(path, x, y, None, None, test_fraction, seed, is_image=x.ndim in (3, 4))
    raise UnitlensError(
        f"{path}: expected an .npz, an .npy, an IDX file (name ending in {', '.join(_IDX_SUFFIXES)}) or a "
        "folder of images"
    )


# --------------------------------------------------------------------------------------------- readers


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    # np.load takes any file that is neither a zip nor an .npy for a pickle: say what it really is.
    if not zipfile.is_zipfile(path):
        raise UnitlensError(f"{path}: cannot read it as an .npz file (it is not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            key = "x_train" if "x_train" in names else "x" if "x" in names else None
            if key is None:
                raise UnitlensError(
                    f"{path}: expected an array named 'x_train' (or 'x'); found {sorted(names)}"
                )
            arrays = {k: archive[k] for k in (key, "y_train", "x_test", "y_test") if k in names}
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise UnitlensError(f"{path}: holds pickled objects, which unitlens never loads") from error
        raise UnitlensError(f"{path}: cannot read it as an .npz file ({error})") from error
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise UnitlensError(f"{path}: cannot read it as an .npz file ({error})") from error
    if "y_test" in arrays and "x_test" not in arrays:
        raise UnitlensError(f"{path}: has field 'y_test' but no 'x_test' for it to label")
    if "y_train" in arrays and "x_test" in arrays and "y_test" not in arrays:
        raise UnitlensError(f"{path}: labels the training split, so field 'y_test' must label 'x_test'")
    return arrays[key], arrays.get("y_train"), arrays.get("x_test"), arrays.get("y_test")


def _npy(path: Path) -> np.ndarray:
    with path.open("rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            raise UnitlensError(f"{path}: cannot read it as an .npy file (no .npy header)")
    try:
        # Copy-on-write: the array is writable for torch, and nothing is ever written back to the file.
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error).lower() or "python objects" in str(error).lower():
            raise UnitlensError(f"{path}: holds pickled objects, which unitlens never loads") from error
        raise UnitlensError(f"{path}: cannot read it as an .npy file ({error})") from error
    except OSError as error:
        raise UnitlensError(f"{path}: cannot read it as an .npy file ({error})") from error
    return array


def _idx(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    x = read_idx(path)
    # train-images-idx3-ubyte -> train-labels-idx1-ubyte: labels are 1-D, whatever the images' rank.
    labels_path = path.with_name(re.sub(r"idx\d", "idx1", path.name.replace("images", "labels")))
    if "images" not in path.name or not labels_path.is_file():
        return x, None
    y = read_idx(labels_path)
    if y.ndim != 1:
        raise UnitlensError(f"{labels_path}: expected labels of shape (n,), got {y.shape}")
    return x, y


def _image_folder(
    folder: Path, size: tuple[int, int] | None, channels: int | None, fit: str = "resize"
) -> np.ndarray:
    from unitlens.data.images import image_files

    if channels not in (None, 1, 3):
        raise UnitlensError(f"channels must be 1 (grey) or 3 (colour), got {channels!r}")
    if fit not in IMAGE_FITS:
        raise UnitlensError(f"image_fit must be one of {IMAGE_FITS}, got {fit!r}")
    files = image_files(folder)
    opened: list[Image.Image] = []
    for file in files:
        try:
            with Image.open(file) as image:
                image.load()
                opened.append(image.copy())
        except OSError as error:
            raise UnitlensError(f"{file}: cannot read it as an image ({error})") from error
    colour = channels == 3 or (
        channels is None and any(im.mode not in ("1", "L", "I", "F", "LA") for im in opened)
    )
    if size is None:
        sizes = {im.size for im in opened}  # (W, H)
        if len(sizes) > 1:
            raise UnitlensError(
                f"{folder}: the images have {len(sizes)} different sizes (e.g. {sorted(sizes)[:3]} as W x "
                "H); give the size to resize them to (image_size / --image-size H,W)"
            )
        width, height = sizes.pop()
    else:
        height, width = size
        if height < 1 or width < 1:
            raise UnitlensError(f"image_size must be positive, got {size!r}")
    out = np.empty((len(opened), 3 if colour else 1, height, width), dtype=np.float32)
    for i, (picture, file) in enumerate(zip(opened, files, strict=True)):
        converted: Image.Image = picture.convert("RGB" if colour else "L")
        if converted.size != (width, height) and fit == "crop":
            w, h = converted.size
            if w < width or h < height:
                raise UnitlensError(
                    f"{file}: {w} x {h} pixels (W x H) is smaller than the {width} x {height} crop asked for"
                )
            left, top = (w - width) // 2, (h - height) // 2
            converted = converted.crop((left, top, left + width, top + height))
        elif converted.size != (width, height):
            converted = converted.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(converted, dtype=np.float32) / 255.0
        out[i] = pixels.transpose(2, 0, 1) if colour else pixels[None]
    return out


# ------------------------------------------------------------------------------------------- the checks


def _finish(
    path: Path,
    x: np.ndarray,
    y: np.ndarray | None,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    test_fraction: float,
    seed: int,
    *,
    is_image: bool | None,
) -> DataFile:
    _check_examples(x, path, "x_train")
    shape = tuple(int(s) for s in x.shape[1:])
    mapped = isinstance(x, np.memmap)
    low, high, distinct = _scan(x, path, "x_train")
    # uint8 values above 1 are pixels, scaled to [0, 1]; a uint8 array of 0s and 1s is kept as it is.
    scale = 1.0 / 255.0 if x.dtype == np.uint8 and high > 1 else 1.0
    kind = _kind(low, high, distinct, scale)
    if y is not None:
        y = _labels(y, x.shape[0], path, "y_train")
    if x_test is not None:
        _check_examples(x_test, path, "x_test")
        if tuple(x_test.shape[1:]) != shape:
            raise UnitlensError(
                f"{path}: field 'x_test' has examples of shape {tuple(x_test.shape[1:])}; 'x_train' has "
                f"{shape}"
            )
        test_kind = _kind(*_scan(x_test, path, "x_test"), scale if x_test.dtype == x.dtype else 1.0)
        kind = KINDS[max(KINDS.index(kind), KINDS.index(test_kind))]
        if y_test is not None:
            y_test = _labels(y_test, x_test.shape[0], path, "y_test")
        train = x if mapped else _as_float(x, scale)
        test = _as_float(x_test, scale if x_test.dtype == x.dtype else 1.0)
    else:
        n = x.shape[0]
        if n < 2:
            raise UnitlensError(
                f"{path}: field 'x_train' holds {n} example; a held-out split needs at least 2"
            )
        k = max(1, round(test_fraction * n))
        kept: slice | np.ndarray
        if mapped:  # the last rows: a memory map is read in order
            held, kept = np.arange(n - k, n), slice(0, n - k)
            train = x[kept]
        else:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
            held, kept = np.sort(order[:k]), np.sort(order[k:])
            train = _as_float(x[kept], scale)
        test = _as_float(np.asarray(x[held]), scale)
        y, y_test = (None, None) if y is None else (y[kept], y[held])
    if is_image is None:
        is_image = len(shape) == 2 or (len(shape) == 3 and shape[0] in (1, 3))
    return DataFile(
        x_train=train,
        y_train=y,
        x_test=test,
        y_test=y_test,
        shape=shape,
        kind=kind,
        scale=scale if mapped else 1.0,
        source=str(path),
        is_image=is_image,
    )


def _check_examples(x: np.ndarray, path: Path, field: str) -> None:
    if x.dtype.kind not in "biuf":
        raise UnitlensError(f"{path}: field {field!r} has dtype {x.dtype}; expected numbers")
    if x.ndim < 2 or x.shape[0] < 1 or any(s < 1 for s in x.shape[1:]):
        raise UnitlensError(
            f"{path}: field {field!r} has shape {x.shape}; expected (n, ...) with n >= 1 examples of at "
            "least one value (a 1-D array is one feature per example: reshape it to (n, 1))"
        )


def _scan(x: np.ndarray, path: Path, field: str) -> tuple[float, float, np.ndarray]:
    """(min, max, the distinct values if there are at most two, else an empty array) of ``x``, read in
    blocks (``unitlens.data.dataset.block_rows``); NaN or inf is an error naming the first row holding
    one."""
    low, high = np.inf, -np.inf
    distinct = np.empty(0)
    few = True
    rows = block_rows(x)
    for start in range(0, x.shape[0], rows):
        block = np.asarray(x[start : start + rows])
        if block.dtype.kind == "f":
            finite = np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)
            if not bool(finite.all()):
                row = start + int(np.argmin(finite))
                raise UnitlensError(f"{path}: field {field!r} holds NaN or inf (first in row {row})")
        low, high = min(low, float(block.min())), max(high, float(block.max()))
        if few:
            distinct = np.union1d(distinct, np.unique(block)[:3])
            few = distinct.size <= 2
    return low, high, distinct if few else np.empty(0)


def _kind(low: float, high: float, distinct: np.ndarray, scale: float) -> str:
    """``"binary"`` (only 0 and 1 once scaled), ``"unit"`` (within [0, 1]) or ``"real"``."""
    if distinct.size and set((distinct * scale).tolist()) <= {0.0, 1.0}:
        return "binary"
    return "unit" if low * scale >= 0.0 and high * scale <= 1.0 else "real"


def _labels(y: np.ndarray, n: int, path: Path, field: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "iu" and not (
        y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))
    ):
        raise UnitlensError(f"{path}: field {field!r} has dtype {y.dtype}; expected integer class labels")
    if y.shape != (n,):
        raise UnitlensError(
            f"{path}: field {field!r} has shape {y.shape}; expected ({n},), one label per example"
        )
    if y.size and int(y.min()) < 0:
        raise UnitlensError(f"{path}: field {field!r} holds negative labels (min {int(y.min())})")
    return y.astype(np.int64)


def _as_float(x: np.ndarray, scale: float) -> np.ndarray:
    """In-memory float32, multiplied by ``scale``."""
    out = np.ascontiguousarray(x, dtype=np.float32)
    return out * np.float32(scale) if scale != 1.0 else out


# ------------------------------------------------------------------------------------ as a training set


def check_recipe(recipe: DataRecipe) -> DataFile:
    """The user's data file a ``file`` recipe names, read and checked (every error of
    :func:`load_data_file`), before anything is written."""
    size = (recipe.image_height, recipe.image_width) if recipe.image_height and recipe.image_width else None
    return load_data_file(
        recipe.path,
        image_size=size,
        channels=recipe.channels or None,
        image_fit=recipe.image_fit,
        test_fraction=recipe.test_fraction,
        seed=recipe.seed,
    )


def dataset_from_recipe(
    recipe: DataRecipe, cache: Path | None = None, checked: DataFile | None = None
) -> Dataset:
    """The :class:`~unitlens.data.dataset.Dataset` a ``file`` recipe describes (``train --data FILE``).

    Binary and [0, 1] values are kept as they are (kind ``"binary"``: Bernoulli visible units); real values
    are standardised per input with the training split's mean and standard deviation (kind ``"real"``:
    Gaussian visible units), kept as ``pixel_mean`` / ``pixel_scale``; an input that is constant over the
    training split keeps scale 1 (it becomes 0). ``image_shape`` is the examples' shape when the results
    can draw it as an image ((H, W), or (C, H, W) with C = 1 or 3), else (d,): bar plots.

    A memory-mapped ``.npy`` is **streamed**: ``x_train`` is a tensor over file pages, which training
    batches, the norm and the exemplars read block by block, so a data set larger than memory trains. A
    float32 file of binary or [0, 1] values is streamed from itself. One that must be scaled (uint8 pixels)
    or standardised (real values) is converted once, block by block, into a float32 ``.npy`` in ``cache``
    (the command's output folder), named by a digest of the recipe and the source's size and modification
    time, written atomically and reused while those stay the same; without ``cache`` it is converted in
    memory.

    ``checked``: the recipe's :func:`check_recipe`, when a command has already read the file (to report
    every error before writing anything), so that it is not read and checked a second time.
    """
    data = checked if checked is not None else check_recipe(recipe)
    real = data.kind == "real" or recipe.standardised
    mean = scale = None
    if (
        isinstance(data.x_train, np.memmap)
        and data.x_train.dtype == np.float32
        and data.scale == 1.0
        and not real
    ):
        # Streamed: the tensor is the file's own pages, read as batches ask for them, never copied whole.
        x_train = torch.from_numpy(data.x_train.reshape(data.n_train, -1))
    elif isinstance(data.x_train, np.memmap) and cache is not None:
        if real:
            mean, scale = _moments(data)
        x_train = torch.from_numpy(_converted(data, recipe, cache, mean, scale))
    else:
        if real:
            mean, scale = _moments(data)
        x_train = data.rows(slice(None))
        if mean is not None and scale is not None:
            x_train = (x_train - mean) / scale
    x_test = torch.from_numpy(np.ascontiguousarray(data.x_test.reshape(data.x_test.shape[0], -1)))
    # A recipe recorded as standardised stays so (an estimator may standardise [0, 1] data for Gaussian
    # units); one made fresh standardises exactly when the values are real.
    if mean is not None and scale is not None:
        x_test = (x_test - mean) / scale
    shape = data.shape
    image_shape: ImageShape
    if data.is_image and len(shape) == 2:
        image_shape = (shape[0], shape[1])
    elif data.is_image and len(shape) == 3 and shape[0] in (1, 3):
        image_shape = (shape[0], shape[1], shape[2])
    else:
        image_shape = (data.n_inputs,)
    return Dataset(
        x_train=x_train,
        y_train=None if data.y_train is None else torch.from_numpy(data.y_train),
        x_test=x_test,
        y_test=None if data.y_test is None else torch.from_numpy(data.y_test),
        image_shape=image_shape,
        rho=dataset_norm(x_train),
        source=data.describe() + (", standardised per input" if real else ""),
        kind="real" if real else "binary",
        pixel_mean=mean,
        pixel_scale=scale,
        recipe=dataclasses.replace(recipe, standardised=real),
    )


def _moments(data: DataFile) -> tuple[Tensor, Tensor]:
    """(d,) float32 mean and standard deviation (1 where constant) of the training rows, accumulated in
    float64 block by block (a memory map is never read whole; in memory, no float64 copy of the set)."""
    rows = block_rows(data.x_train)
    total = torch.zeros(data.n_inputs, dtype=torch.float64)
    squares = torch.zeros(data.n_inputs, dtype=torch.float64)
    for start in range(0, data.n_train, rows):
        block = data.rows(slice(start, start + rows)).double()
        total += block.sum(0)
        squares += block.square().sum(0)
    mean = total / data.n_train
    var = (squares / data.n_train - mean.square()).clamp_min(0.0)
    std = var.sqrt()
    return mean.float(), torch.where(std > 1e-12, std, torch.ones_like(std)).float()


def _converted(
    data: DataFile, recipe: DataRecipe, cache: Path, mean: Tensor | None, scale: Tensor | None
) -> np.ndarray:
    """(n_train, d) float32 copy-on-write memory map of the training rows, scaled (and standardised with
    ``mean`` / ``scale``), from ``cache``: reused when the recipe and the source are unchanged, else
    written block by block to a temporary file and renamed into place."""
    source = Path(recipe.path)
    stat = source.stat()
    key = json.dumps(
        {
            "recipe": recipe.to_dict(),
            "bytes": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "rows": data.n_train,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    path = cache / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', source.stem)}-{digest}.f32.npy"
    shape = (data.n_train, data.n_inputs)
    if path.is_file():
        try:
            mapped = np.load(path, mmap_mode="c", allow_pickle=False)
            if mapped.shape == shape and mapped.dtype == np.float32:
                return mapped
        except (OSError, ValueError):
            pass  # damaged: written again below
    cache.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        out = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32, shape=shape)
        rows = block_rows(data.x_train)
        for start in range(0, data.n_train, rows):
            block = data.rows(slice(start, start + rows))
            if mean is not None and scale is not None:
                block = (block - mean) / scale
            out[start : start + block.shape[0]] = block.numpy()
        out.flush()
        del out
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return np.load(path, mmap_mode="c", allow_pickle=False)
