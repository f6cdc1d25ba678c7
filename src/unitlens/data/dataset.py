"""The data set every loader returns: flattened float32 images, optional labels, and the norm rho."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from unitlens.errors import UnitlensError


def dataset_norm(x: Tensor) -> float:
    """rho, the mean L2 norm of the rows of ``x`` (n, d): the norm activation maximization keeps."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise UnitlensError(f"dataset_norm expects a non-empty (n, d) tensor, got shape {tuple(x.shape)}")
    return float(torch.linalg.vector_norm(x.double(), dim=1).mean())


@dataclass(frozen=True)
class Dataset:
    """A train / held-out split of flattened images.

    Attributes:
        x_train: (n_train, d) float32 inputs, d = height * width.
        y_train: (n_train,) int64 labels, or None for unlabelled data (patches).
        x_test: (n_test, d) float32 held-out inputs.
        y_test: (n_test,) int64 labels, or None.
        image_shape: (height, width) of one input.
        rho: mean L2 norm of ``x_train``'s rows (the paper's dataset norm).
        source: where the data came from, for people (a path, or the package that ships it).
        kind: ``"binary"`` for inputs in [0, 1] (Bernoulli visible units, cross-entropy) or ``"real"``
            for standardised real values (Gaussian visible units, squared error).
        pixel_mean: (d,) mean subtracted from every input, or None; ``x * pixel_scale + pixel_mean`` gives
            the inputs back in their original units.
        pixel_scale: (d,) scale divided out of every input, or None.
    """

    x_train: Tensor
    y_train: Tensor | None
    x_test: Tensor
    y_test: Tensor | None
    image_shape: tuple[int, int]
    rho: float
    source: str
    kind: str = "binary"
    pixel_mean: Tensor | None = field(default=None, repr=False)
    pixel_scale: Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        d = self.image_shape[0] * self.image_shape[1]
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
        return self.image_shape[0] * self.image_shape[1]

    def to_original_units(self, x: Tensor) -> Tensor:
        """Undo the per-pixel standardisation of ``x`` (..., d), if there was one."""
        if self.pixel_scale is not None:
            x = x * self.pixel_scale
        if self.pixel_mean is not None:
            x = x + self.pixel_mean
        return x
