"""Grey photographs for the natural-image patches: ten bundled with installed packages, or a user's folder.

The paper drew its patches from the ten 512x512 natural images of Olshausen & Field (1996), which no
package ships. unitlens uses, by default, ten real photographs that come inside two of its dependencies
(eight from scikit-image's data folder, two from scikit-learn's sample images), so patches work offline
with no setup. The files are located inside the installed packages and read with Pillow directly:
``skimage.data``'s functions are not called because they may try to download through pooch.

Every grey loader returns (H, W) float64 grey images in [0, 1]; colour is turned into ITU-R 601 luma
(0.299 R + 0.587 G + 0.114 B, the weights of Pillow's ``"L"`` conversion) in float64, so no rounding to
8 bits happens before whitening. The colour loaders (``read_rgb_image``, ``load_bundled_photos_rgb``) return
(H, W, 3) float64 RGB in [0, 1], grey images replicated to three channels. Alpha channels are dropped.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from unitlens.errors import UnitlensError

# (package, folder inside the package, file name) of every bundled photograph, in a fixed order: the order
# decides which image every random patch index refers to, so it must not change between runs.
_BUNDLED: tuple[tuple[str, str, str], ...] = (
    ("skimage", "data", "camera.png"),
    ("skimage", "data", "astronaut.png"),
    ("skimage", "data", "coffee.png"),
    ("skimage", "data", "chelsea.png"),
    ("skimage", "data", "grass.png"),
    ("skimage", "data", "gravel.png"),
    ("skimage", "data", "brick.png"),
    ("skimage", "data", "rocket.jpg"),
    ("sklearn", "datasets/images", "china.jpg"),
    ("sklearn", "datasets/images", "flower.jpg"),
)

BUNDLED_PHOTOS: tuple[str, ...] = tuple(name for _, _, name in _BUNDLED)
"""File names of the ten bundled photographs, in the order ``load_bundled_photos`` returns them."""

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm"})
"""File name endings (lower case) that ``load_image_folder`` reads; other files are ignored."""

# ITU-R BT.601 luma weights, the ones Pillow's "L" conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114])

# Pillow raises any of these for a file that is not an image, is truncated or is corrupt.
_READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def _package_dir(package: str) -> Path:
    """Folder of an installed top-level package, found without importing it (importing sklearn is slow)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UnitlensError(
            f"the bundled photographs need the package {package!r}, which is not installed; "
            f"install it, or pass a folder of your own images"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_photo_paths() -> list[Path]:
    """Paths of the ten bundled photographs inside the installed packages, in ``BUNDLED_PHOTOS`` order."""
    paths = []
    for package, folder, name in _BUNDLED:
        path = _package_dir(package) / folder / name
        if not path.is_file():
            raise UnitlensError(
                f"bundled photograph {path} is missing from the installed {package!r}; reinstall it, "
                f"or pass a folder of your own images"
            )
        paths.append(path)
    return paths


def _to_grey(image: Image.Image) -> np.ndarray:
    """(H, W) float64 grey in [0, 1] from a Pillow image of any mode (first frame of a multi-frame file)."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(image, dtype=np.float64) / 65535.0
    if mode in ("I", "F"):
        # 32-bit integer or float pixels carry no standard range: 16-bit data read as "I" is kept on
        # its 16-bit scale, anything else is stretched to [0, 1] (whitening removes the scale anyway).
        grey = np.asarray(image, dtype=np.float64)
        lo, hi = float(grey.min()), float(grey.max())
        if mode == "I" and lo >= 0.0 and hi <= 65535.0:
            return grey / 65535.0
        if mode == "F" and lo >= 0.0 and hi <= 1.0:
            return grey
        return (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
    if mode == "L":
        return np.asarray(image, dtype=np.float64) / 255.0
    if mode == "LA":
        return np.asarray(image.getchannel("L"), dtype=np.float64) / 255.0
    if mode == "1":
        return np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    # RGB, RGBA, P (palette), CMYK, YCbCr, ...: Pillow converts to RGB (dropping alpha); luma in float64.
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    return (rgb @ _LUMA) / 255.0


def _read_image(path: str | Path, convert: Callable[[Image.Image], np.ndarray], expected: str) -> np.ndarray:
    """Decode one image file with ``convert`` and check it (non-empty, ``expected`` shape, finite), clipped
    to [0, 1].

    Raises:
        UnitlensError: the file cannot be read as an image (naming the file).
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            pixels = convert(image)
    except _READ_ERRORS as err:
        raise UnitlensError(f"cannot read image {path}: {err}") from err
    rank = 2 if expected == "2-D" else 3
    if pixels.ndim != rank or pixels.size == 0 or (rank == 3 and pixels.shape[2] != 3):
        raise UnitlensError(
            f"image {path} decoded to shape {pixels.shape}, expected a non-empty {expected} image"
        )
    if not np.isfinite(pixels).all():
        raise UnitlensError(f"image {path} holds non-finite pixel values")
    return np.clip(pixels, 0.0, 1.0)


def read_grey_image(path: str | Path) -> np.ndarray:
    """Read one image file as (H, W) float64 grey in [0, 1].

    Raises:
        UnitlensError: the file cannot be read as an image (naming the file).
    """
    return _read_image(path, _to_grey, "2-D")


def load_bundled_photos() -> list[np.ndarray]:
    """The ten bundled photographs, each (H, W) float64 grey in [0, 1], in ``BUNDLED_PHOTOS`` order.

    Sizes range from 451x300 (chelsea) to 640x427 (rocket, china, flower); five are 512x512.
    """
    return [read_grey_image(path) for path in bundled_photo_paths()]


# Pillow modes that hold one grey channel (with or without alpha): read by ``_to_grey``, then replicated.
_GREY_MODES = frozenset({"1", "L", "LA", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


def _to_rgb(image: Image.Image) -> np.ndarray:
    """(H, W, 3) float64 RGB in [0, 1] from a Pillow image of any mode; grey is replicated, alpha dropped."""
    if image.mode in _GREY_MODES:
        # Grey read as ``read_grey_image`` reads it (16-bit and float scales kept), then copied to R, G, B.
        return np.repeat(_to_grey(image)[:, :, None], 3, axis=2)
    # RGB, RGBA, P (palette), CMYK, YCbCr, ...: Pillow converts to 8-bit RGB, dropping alpha.
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def read_rgb_image(path: str | Path) -> np.ndarray:
    """Read one image file as (H, W, 3) float64 RGB in [0, 1]; grey images are replicated to 3 channels.

    Raises:
        UnitlensError: the file cannot be read as an image (naming the file).
    """
    return _read_image(path, _to_rgb, "(H, W, 3)")


def load_bundled_photos_rgb() -> list[np.ndarray]:
    """The ten bundled photographs, each (H, W, 3) float64 RGB in [0, 1], in ``BUNDLED_PHOTOS`` order.

    The same files as ``load_bundled_photos``. camera, grass, gravel and brick are grey photographs: their
    three channels are equal.
    """
    return [read_rgb_image(path) for path in bundled_photo_paths()]


def image_files(folder: str | Path) -> list[Path]:
    """The image files (by ``IMAGE_SUFFIXES``, any case) directly inside ``folder``, sorted by name.

    Raises:
        UnitlensError: the folder does not exist, is not a folder, or holds no image file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise UnitlensError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise UnitlensError(f"image folder {folder} is not a folder")
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.name,
    )
    if not files:
        raise UnitlensError(
            f"image folder {folder} holds no image files (expected names ending in "
            f"{', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files


def load_image_folder(folder: str | Path) -> list[np.ndarray]:
    """Every image file in ``folder`` (see ``image_files``), sorted by name, as (H, W) float64 grey in [0, 1].

    Raises:
        UnitlensError: the folder is missing or holds no images, or a file cannot be read (naming it).
    """
    return [read_grey_image(path) for path in image_files(folder)]


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def photo_sources() -> str:
    """A description of the bundled photographs for people (``Dataset.source``): packages, versions, files."""
    skimage_files = ", ".join(name for package, _, name in _BUNDLED if package == "skimage")
    sklearn_files = ", ".join(name for package, _, name in _BUNDLED if package == "sklearn")
    return (
        f"{len(_BUNDLED)} photographs bundled with scikit-image {_version('scikit-image')} "
        f"(skimage/data: {skimage_files}) and scikit-learn {_version('scikit-learn')} "
        f"(sklearn/datasets/images: {sklearn_files})"
    )
