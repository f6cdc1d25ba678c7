"""The data set every loader returns: flattened float32 images, optional labels, and the norm rho."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.results import ImageShape

# Rows read at a time from a large (possibly memory-mapped) array: at most this many, and at most this many
# bytes once converted to float64, what block statistics are computed in (block_rows).
BLOCK_ROWS = 65_536
BLOCK_BYTES = 16 * 1024 * 1024


def block_rows(x: Any) -> int:
    """Rows of ``x`` (n, ...) (an array or tensor) to read at a time: at most :data:`BLOCK_ROWS`, and at
    most :data:`BLOCK_BYTES` of float64, at least 1. Reading in such blocks keeps a streamed
    (memory-mapped) data set from being copied whole."""
    row = max(1, math.prod(int(s) for s in x.shape[1:])) * 8
    return max(1, min(BLOCK_ROWS, BLOCK_BYTES // row))


def dataset_norm(x: Tensor) -> float:
    """rho, the mean L2 norm of the rows of ``x`` (n, d): the norm activation maximization keeps."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise UnitlensError(f"dataset_norm expects a non-empty (n, d) tensor, got shape {tuple(x.shape)}")
    rows = block_rows(x)  # a float64 copy of the whole set would double a streamed set's memory
    total = 0.0
    for start in range(0, x.shape[0], rows):
        total += float(torch.linalg.vector_norm(x[start : start + rows].double(), dim=1).sum())
    return total / x.shape[0]


LOADERS = ("mnist", "patches", "file")
IMAGE_FITS = ("resize", "crop")  # how a user's image folder reaches its size (DataRecipe.image_fit)


_FILE_FIELDS = ("image_height", "image_width", "channels", "test_fraction", "image_fit")


@dataclass(frozen=True)
class DataRecipe:
    """Everything that rebuilds a data set exactly: its loader and the loader's arguments.

    A checkpoint records it (``data.recipe`` in its JSON), so ``unitlens visualize`` studies a model on the
    very inputs it was trained on (``unitlens.data.recipe.load_data``).

    Attributes:
        loader: ``mnist`` (digits, binary), ``patches`` (whitened photo patches, standardised per pixel) or
            ``file`` (a user's own data set: ``unitlens.data.files``).
        path: the MNIST folder / .npz, the photo folder or the user's file or folder, absolute; "" for the
            embedded digits or the bundled photographs.
        size, n_train, n_test, seed, f0, margin: ``load_patches``'s arguments (``seed`` also draws a user
            file's held-out rows; the rest unused for ``mnist`` and ``file``).
        standardised: the inputs are standardised per pixel with the training set's mean and scale (patches,
            real-valued user data); the checkpoint keeps those as ``data.pixel_mean`` / ``data.pixel_scale``.
        image_height, image_width: a user's image folder brought to this size (0: the images' own size),
            by ``image_fit``: ``resize`` or ``crop`` (about the centre).
        channels: a user's image folder read as 1 (grey) or 3 (colour) channels (0: colour if any image is).
        test_fraction: the held-out share of a user's data that bring no test split.
    """

    loader: str
    path: str = ""
    size: int = 12
    n_train: int = 100_000
    n_test: int = 10_000
    seed: int = 0
    f0: float = 0.2
    margin: int = 0
    standardised: bool = False
    image_height: int = 0
    image_width: int = 0
    channels: int = 0
    test_fraction: float = 0.1
    image_fit: str = "resize"

    def __post_init__(self) -> None:
        if self.loader not in LOADERS:
            raise UnitlensError(f"data recipe field 'loader': expected one of {LOADERS}, got {self.loader!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able fields that the loader uses (an MNIST recipe is its loader and path)."""
        values = asdict(self)
        if self.loader == "mnist":
            return {k: values[k] for k in ("loader", "path", "standardised")}
        if self.loader == "file":
            keys = ("loader", "path", "seed", "standardised", "image_height", "image_width", "channels")
            return {k: values[k] for k in (*keys, "test_fraction", "image_fit")}
        return {k: v for k, v in values.items() if k not in _FILE_FIELDS}

    @classmethod
    def from_dict(cls, values: Any, *, where: str) -> DataRecipe:
        """The recipe ``values`` describe; a missing, unknown or mistyped field is an error naming it."""
        if not isinstance(values, dict):
            raise UnitlensError(f"{where}: the data recipe must be an object, got {type(values).__name__}")
        types = {
            "loader": str,
            "path": str,
            "size": int,
            "n_train": int,
            "n_test": int,
            "seed": int,
            "f0": float,
            "margin": int,
            "standardised": bool,
            "image_height": int,
            "image_width": int,
            "channels": int,
            "test_fraction": float,
            "image_fit": str,
        }
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise UnitlensError(f"{where}: unknown data recipe fields {unknown}; expected {sorted(types)}")
        needed = ["loader"] + (
            ["path", "size", "n_train", "n_test", "seed", "f0", "margin"]
            if values.get("loader") == "patches"
            else ["path", "seed", "standardised"]
            if values.get("loader") == "file"
            else []
        )
        missing = [name for name in needed if name not in values]
        if missing:
            raise UnitlensError(f"{where}: the data recipe lacks the fields {missing}")
        for name, value in values.items():
            kind = types[name]
            ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
            if kind is float:
                ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not ok:
                raise UnitlensError(
                    f"{where}: data recipe field {name!r} must be {kind.__name__}, got {value!r}"
                )
        fields: dict[str, Any] = {k: (float(v) if types[k] is float else v) for k, v in values.items()}
        return cls(**fields)


@dataclass(frozen=True)
class Dataset:
    """A train / held-out split of flattened images.

    Attributes:
        x_train: (n_train, d) float32 inputs, d = height * width.
        y_train: (n_train,) int64 labels, or None for unlabelled data (patches).
        x_test: (n_test, d) float32 held-out inputs.
        y_test: (n_test,) int64 labels, or None.
        image_shape: one input's shape: (height, width) or (channels, height, width) images with 1 or 3
            channels, or (d,) for inputs that are not images (drawn as bar plots).
        rho: mean L2 norm of ``x_train``'s rows (the paper's dataset norm).
        source: where the data came from, for people (a path, or the package that ships it).
        kind: ``"binary"`` for inputs in [0, 1] (Bernoulli visible units, cross-entropy) or ``"real"``
            for standardised real values (Gaussian visible units, squared error).
        pixel_mean: (d,) mean subtracted from every input, or None; ``x * pixel_scale + pixel_mean`` gives
            the inputs back in their original units.
        pixel_scale: (d,) scale divided out of every input, or None.
        recipe: how to load exactly these data again (None for a data set built in memory).
    """

    x_train: Tensor
    y_train: Tensor | None
    x_test: Tensor
    y_test: Tensor | None
    image_shape: ImageShape
    rho: float
    source: str
    kind: str = "binary"
    pixel_mean: Tensor | None = field(default=None, repr=False)
    pixel_scale: Tensor | None = field(default=None, repr=False)
    recipe: DataRecipe | None = None

    def __post_init__(self) -> None:
        shape = self.image_shape
        if (
            len(shape) not in (1, 2, 3)
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)
            or (len(shape) == 3 and shape[0] not in (1, 3))
        ):
            raise UnitlensError(
                f"Dataset.image_shape must be (d,), (height, width) or (1 or 3, height, width), got {shape!r}"
            )
        d = math.prod(shape)
        for name in ("x_train", "x_test"):
            x = getattr(self, name)
            if x.ndim != 2 or x.shape[1] != d or x.dtype != torch.float32:
                raise UnitlensError(
                    f"Dataset.{name} must be float32 of shape (n, {d}) for images {self.image_shape}, "
                    f"got {x.dtype} {tuple(x.shape)}"
                )
        for xname, yname in (("x_train", "y_train"), ("x_test", "y_test")):
            y = getattr(self, yname)
            if y is not None and (y.shape != (getattr(self, xname).shape[0],) or y.dtype != torch.int64):
                raise UnitlensError(f"Dataset.{yname} must be int64 of shape (n,), matching {xname}")
        if self.kind not in ("binary", "real"):
            raise UnitlensError(f"Dataset.kind must be 'binary' or 'real', got {self.kind!r}")

    @property
    def n_inputs(self) -> int:
        """Number of input units d."""
        return math.prod(self.image_shape)

    def to_original_units(self, x: Tensor) -> Tensor:
        """Undo the per-pixel standardisation of ``x`` (..., d), if there was one."""
        if self.pixel_scale is not None:
            x = x * self.pixel_scale
        if self.pixel_mean is not None:
            x = x + self.pixel_mean
        return x
