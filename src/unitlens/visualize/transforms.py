"""Differentiable, batched random transforms for feature visualization ("transformation robustness").

At every optimization step the image is randomly padded, shifted, scaled and rotated before it reaches the
model, so the optimum has to activate the unit whatever small transform is applied; this suppresses the
high-frequency patterns that plain gradient ascent produces (Olah, Mordvintsev & Schubert 2017, the
``standard_transforms`` of Lucid and Lucent).

**Shapes.** Every transform takes ``x`` of shape (n, C, L) (1-D signals) or (n, C, H, W) (images), float,
and returns (n, C, *spatial') with the same n and C; only the spatial size may change (:class:`Pad` grows
it, :class:`Jitter` shrinks it, :class:`Resize` sets it). Each transform says which spatial dimensions it
supports and raises :class:`~unitlens.errors.UnitlensError` for the others.

**Randomness comes from the caller.** A transform draws no random numbers itself. It declares
``n_random``, how many Uniform[0, 1) numbers it consumes per input, and ``__call__(x, u)`` receives them
as ``u`` of shape (n, n_random): row b of ``u`` decides everything random about row b of the output. The
caller derives each input's uniforms from that input's own generator, so an input is transformed the same
way at step t whether it is optimized alone, in a batch of 1,000 or in a different chunk, and a run can be
split or resumed without changing any result. For the same reason every transform treats rows
independently: row b of the output depends only on ``x[b]`` and ``u[b]``, so per-row choices (offsets,
scales, angles) are applied with index gathers and per-row affine grids, never one choice per batch.

A uniform u picks one of k choices as ``floor(u * k)``, clamped to k - 1 so that a float32 u that rounds
up to 1.0 still picks the last choice. The outputs are differentiable with respect to ``x`` (not ``u``:
the choices are discrete).

References:
    C. Olah, A. Mordvintsev, L. Schubert. Feature Visualization. Distill, 2017.
    Lucid: github.com/tensorflow/lucid, lucid/optvis/transform.py.
    Lucent: github.com/greentfrapp/lucent, lucent/optvis/transform.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeGuard

import torch
import torch.nn.functional as F
from torch import Tensor

from unitlens.errors import UnitlensError

__all__ = [
    "Compose",
    "Jitter",
    "Pad",
    "RandomRotate",
    "RandomScale",
    "Resize",
    "Transform",
    "standard_transforms",
]

PAD_MODES = ("constant", "reflect", "replicate")
# grid_sample's padding modes: what a zoom-out or rotation shows where it samples outside the image.
GRID_PADDINGS = ("zeros", "border", "reflection")
RESIZE_MODES = ("bilinear", "linear", "bicubic", "nearest", "area")


class Transform(Protocol):
    """A random, differentiable, row-wise transform of a batch (see the module docstring).

    ``n_random`` is read-only (a property) so that frozen dataclasses satisfy the protocol.
    """

    @property
    def n_random(self) -> int:
        """How many Uniform[0, 1) numbers the transform consumes per input per step."""
        ...

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        """x: (n, C, *spatial) float; u: (n, n_random) in [0, 1). Returns (n, C, *spatial')."""
        ...


# ---------------------------------------------------------------------------------------------- checks


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass; True as a width or distance is almost surely a mistake.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _spatial_ndim(x: Tensor, who: str, supported: tuple[int, ...] = (1, 2)) -> int:
    """The number of spatial axes of x (n, C, *spatial), checked against those ``who`` supports."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise UnitlensError(f"{who}: x must be a floating-point tensor, got {type(x).__name__}")
    ndim = x.dim() - 2
    if ndim not in supported:
        shapes = " or ".join("(n, C, L)" if d == 1 else "(n, C, H, W)" for d in supported)
        raise UnitlensError(f"{who}: x must have shape {shapes}, got {tuple(x.shape)}")
    return ndim


def _check_u(u: Tensor, x: Tensor, n_random: int, who: str) -> Tensor:
    """u as (n, n_random) on x's device; a clear error for any other shape."""
    if not isinstance(u, Tensor) or tuple(u.shape) != (x.shape[0], n_random):
        got = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
        raise UnitlensError(f"{who}: u must have shape (n, n_random) = {(x.shape[0], n_random)}, got {got}")
    return u.to(x.device)


def _choice(u: Tensor, k: int) -> Tensor:
    """(n,) int64 index floor(u * k) in 0..k-1 for uniforms u (n,) in [0, 1)."""
    # Computed in float64 so that floor(u * k) is exact for any float32 u; the clamp catches u == 1.
    return (u.double() * k).floor().long().clamp(0, k - 1)


def _as_real_tuple(cls: str, field: str, values: object, positive: bool) -> tuple[float, ...]:
    expected = "positive finite numbers" if positive else "finite numbers"
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or len(values) == 0:
        raise UnitlensError(f"{cls}.{field} must be a non-empty sequence of {expected}, got {values!r}")
    if not all(_is_real(v) and (not positive or v > 0) for v in values):
        raise UnitlensError(f"{cls}.{field} must be a non-empty sequence of {expected}, got {values!r}")
    return tuple(float(v) for v in values)


def _check_padding(cls: str, padding: object) -> None:
    if padding not in GRID_PADDINGS:
        raise UnitlensError(f"{cls}.padding must be one of {', '.join(GRID_PADDINGS)}, got {padding!r}")


def _warp(x: Tensor, theta: Tensor, padding: str) -> Tensor:
    """Resample x (n, C, H, W) through per-row affine maps theta (n, 2, 3) in normalized coordinates.

    theta maps an output location (x, y, 1) to the input location it samples, both in grid_sample's
    normalized coordinates (-1 and 1 are the outer edges of the border pixels: align_corners=False).
    """
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


# ------------------------------------------------------------------------------------------ transforms


@dataclass(frozen=True)
class Pad:
    """Pad every spatial axis by ``width`` on both sides: (n, C, *s) -> (n, C, *(s + 2 width)).

    Modes: ``constant`` (fill with ``value``; Lucid/Lucent use 0.5, mid-grey for images in [0, 1]),
    ``reflect`` (mirror without repeating the edge; needs width < size) and ``replicate`` (repeat the
    edge). 1-D and 2-D inputs. Deterministic: n_random = 0.
    """

    width: int
    mode: str = "constant"
    value: float = 0.5

    def __post_init__(self) -> None:
        if not _is_int(self.width) or self.width < 0:
            raise UnitlensError(f"Pad.width must be an integer >= 0, got {self.width!r}")
        if self.mode not in PAD_MODES:
            raise UnitlensError(f"Pad.mode must be one of {', '.join(PAD_MODES)}, got {self.mode!r}")
        if not _is_real(self.value):
            raise UnitlensError(f"Pad.value must be a finite number, got {self.value!r}")

    @property
    def n_random(self) -> int:
        return 0

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        ndim = _spatial_ndim(x, "Pad")
        _check_u(u, x, 0, "Pad")
        if self.mode == "reflect" and any(s <= self.width for s in x.shape[2:]):
            raise UnitlensError(
                f"Pad.width must be smaller than every spatial size for mode 'reflect': "
                f"width {self.width}, spatial size {tuple(x.shape[2:])}"
            )
        pad = [self.width] * (2 * ndim)
        if self.mode == "constant":
            return F.pad(x, pad, mode="constant", value=float(self.value))
        return F.pad(x, pad, mode=self.mode)


@dataclass(frozen=True)
class Jitter:
    """A random crop, Lucid's ``jitter(d)``: (n, C, *s) -> (n, C, *(s - distance)).

    For every input and spatial axis k the crop starts at offset o_k = floor(u[:, k] * (distance + 1)) in
    0..distance, so u = 0 gives the top-left crop and u -> 1 the bottom-right one; every offset is equally
    likely, as in Lucid's ``tf.image.random_crop``. (Lucent's jitter instead translates by 0..d-1 pixels
    keeping the size, filling with zeros.) ``ndim`` is the number of spatial axes expected (1 or 2) and
    n_random = ndim, one offset per axis (column k of u drives axis k: H, then W).

    Rows get different offsets, so the crop is one ``torch.gather`` per axis with per-row indices, not a
    loop over rows.
    """

    distance: int
    ndim: int = 2

    def __post_init__(self) -> None:
        if not _is_int(self.distance) or self.distance < 0:
            raise UnitlensError(f"Jitter.distance must be an integer >= 0, got {self.distance!r}")
        if not _is_int(self.ndim) or self.ndim not in (1, 2):
            raise UnitlensError(f"Jitter.ndim must be 1 or 2 (spatial axes), got {self.ndim!r}")

    @property
    def n_random(self) -> int:
        return self.ndim

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        ndim = _spatial_ndim(x, "Jitter")
        if ndim != self.ndim:
            raise UnitlensError(
                f"Jitter.ndim is {self.ndim} but x has {ndim} spatial axes (shape {tuple(x.shape)}); "
                f"build Jitter({self.distance}, ndim={ndim})"
            )
        u = _check_u(u, x, self.ndim, "Jitter")
        if any(s <= self.distance for s in x.shape[2:]):
            raise UnitlensError(
                f"Jitter.distance must be smaller than every spatial size: distance {self.distance}, "
                f"spatial size {tuple(x.shape[2:])}"
            )
        offsets = _choice(u, self.distance + 1)  # (n, ndim)
        out = x
        for k in range(ndim):
            axis = 2 + k
            size = out.shape[axis] - self.distance
            # index[b, ..., i, ...] = offsets[b, k] + i along the axis being cropped.
            index = offsets[:, k, None] + torch.arange(size, device=x.device)  # (n, size)
            view = [x.shape[0]] + [1] * (out.dim() - 1)
            view[axis] = size
            shape = list(out.shape)
            shape[axis] = size
            out = torch.gather(out, axis, index.view(view).expand(shape))
        return out


@dataclass(frozen=True)
class RandomScale:
    """Zoom each image about its centre by a factor picked from ``scales``: (n, C, H, W) -> same shape.

    Input b uses scales[floor(u[b, 0] * len(scales))]; a scale s > 1 zooms in (the centre 1/s of the image
    fills the output), s < 1 zooms out, and what lies outside the image is filled per ``padding``
    (``zeros`` as in Lucent, ``border`` to continue the edge, ``reflection``). Bilinear sampling through a
    per-row ``affine_grid`` / ``grid_sample``.

    Lucid and Lucent instead resize the whole batch to round(s * size), one s per batch, so the image
    size changes from step to step; here every row keeps its size, which lets rows have different
    scales. 2-D only. n_random = 1.
    """

    scales: tuple[float, ...]
    padding: str = "zeros"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", _as_real_tuple("RandomScale", "scales", self.scales, True))
        _check_padding("RandomScale", self.padding)

    @property
    def n_random(self) -> int:
        return 1

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        _spatial_ndim(x, "RandomScale", supported=(2,))
        u = _check_u(u, x, 1, "RandomScale")
        table = torch.tensor(self.scales, dtype=torch.float64, device=x.device)
        s = table[_choice(u[:, 0], len(self.scales))]  # (n,)
        # Output offset d from the centre samples the input at d / s; isotropic, so the aspect ratio of
        # the normalized coordinates does not matter.
        theta = torch.zeros(x.shape[0], 2, 3, dtype=torch.float64, device=x.device)
        theta[:, 0, 0] = 1 / s
        theta[:, 1, 1] = 1 / s
        return _warp(x, theta, self.padding)


@dataclass(frozen=True)
class RandomRotate:
    """Rotate each image about its centre by an angle picked from ``degrees``: (n, C, H, W) -> same shape.

    Input b uses degrees[floor(u[b, 0] * len(degrees))]. Direction: a positive angle turns the image
    counter-clockwise as displayed (row 0 at the top), the convention of Lucid (``tfa.image.rotate``) and
    Lucent (kornia); +90 degrees on a square image equals ``torch.rot90(x, 1, dims=(-2, -1))``. The
    rotation is in pixel space (a non-square image is not sheared). Corners brought in from outside the
    image are filled per ``padding`` (``zeros`` as in Lucid and Lucent). Bilinear sampling through a
    per-row ``affine_grid`` / ``grid_sample``. 2-D only. n_random = 1.
    """

    degrees: tuple[float, ...]
    padding: str = "zeros"

    def __post_init__(self) -> None:
        object.__setattr__(self, "degrees", _as_real_tuple("RandomRotate", "degrees", self.degrees, False))
        _check_padding("RandomRotate", self.padding)

    @property
    def n_random(self) -> int:
        return 1

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        _spatial_ndim(x, "RandomRotate", supported=(2,))
        u = _check_u(u, x, 1, "RandomRotate")
        H, W = x.shape[2], x.shape[3]
        table = torch.tensor(self.degrees, dtype=torch.float64, device=x.device)
        angle = torch.deg2rad(table[_choice(u[:, 0], len(self.degrees))])  # (n,)
        c, s = torch.cos(angle), torch.sin(angle)
        # In pixel offsets from the centre (x right, y down), turning the picture counter-clockwise by
        # a moves content at p to R p with R = [[c, s], [-s, c]]; an output pixel q therefore samples
        # R^-1 q = [[c, -s], [s, c]] q. Normalized coordinates are pixel offsets divided by (W/2, H/2),
        # so theta = D^-1 R^-1 D with D = diag(W/2, H/2), which keeps the rotation rigid for H != W.
        theta = torch.zeros(x.shape[0], 2, 3, dtype=torch.float64, device=x.device)
        theta[:, 0, 0] = c
        theta[:, 0, 1] = -s * H / W
        theta[:, 1, 0] = s * W / H
        theta[:, 1, 1] = c
        return _warp(x, theta, self.padding)


@dataclass(frozen=True)
class Resize:
    """Resize to a fixed spatial ``size``: (n, C, *s) -> (n, C, *size), with ``F.interpolate``.

    Feeds the model an input size other than the parameterization's. ``size`` has one entry for 1-D
    inputs (L,) and two for images (H, W). ``bilinear`` and ``linear`` both mean linear interpolation
    along every axis (``linear`` for 1-D, ``bilinear`` for 2-D, whichever is given); ``bicubic`` is 2-D
    only; ``nearest`` and ``area`` work for both. align_corners=False, no antialiasing. n_random = 0.
    """

    size: tuple[int, ...]
    mode: str = "bilinear"

    def __post_init__(self) -> None:
        size = self.size
        if (
            isinstance(size, str | bytes)
            or not isinstance(size, Sequence)
            or len(size) not in (1, 2)
            or not all(_is_int(s) and s > 0 for s in size)
        ):
            raise UnitlensError(f"Resize.size must be 1 or 2 positive integers, (L,) or (H, W), got {size!r}")
        object.__setattr__(self, "size", tuple(size))
        if self.mode not in RESIZE_MODES:
            raise UnitlensError(f"Resize.mode must be one of {', '.join(RESIZE_MODES)}, got {self.mode!r}")
        if self.mode == "bicubic" and len(size) != 2:
            raise UnitlensError(f"Resize.mode 'bicubic' needs a 2-D size (H, W), got size {size!r}")

    @property
    def n_random(self) -> int:
        return 0

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        ndim = _spatial_ndim(x, "Resize")
        _check_u(u, x, 0, "Resize")
        if ndim != len(self.size):
            raise UnitlensError(
                f"Resize.size {self.size} has {len(self.size)} axes but x has {ndim} spatial axes "
                f"(shape {tuple(x.shape)})"
            )
        mode = self.mode
        if mode in ("linear", "bilinear"):
            mode = "linear" if ndim == 1 else "bilinear"
        # align_corners is only defined for the interpolating modes; nearest and area reject it.
        align = False if mode in ("linear", "bilinear", "bicubic") else None
        return F.interpolate(x, size=self.size, mode=mode, align_corners=align)


@dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order; n_random is their sum.

    u's columns are handed out in order: the first transform gets the first ``n_random`` columns, the
    next the following ones, and so on. A list is accepted and stored as a tuple.
    """

    transforms: tuple[Transform, ...]

    def __post_init__(self) -> None:
        ts = self.transforms
        if isinstance(ts, str | bytes) or not isinstance(ts, Sequence):
            raise UnitlensError(f"Compose.transforms must be a sequence of transforms, got {ts!r}")
        for i, t in enumerate(ts):
            n = getattr(t, "n_random", None)
            if not callable(t) or not _is_int(n) or n < 0:
                raise UnitlensError(
                    f"Compose.transforms[{i}] must be a transform (callable with an integer n_random >= 0), "
                    f"got {t!r}"
                )
        object.__setattr__(self, "transforms", tuple(ts))

    @property
    def n_random(self) -> int:
        return sum(t.n_random for t in self.transforms)

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        u = _check_u(u, x, self.n_random, "Compose")
        start = 0
        for t in self.transforms:
            x = t(x, u[:, start : start + t.n_random])
            start += t.n_random
        return x


def standard_transforms() -> Compose:
    """Lucid's and Lucent's ``standard_transforms``, with their numbers, for (n, C, H, W) images.

    In order (lucid/optvis/transform.py and lucent/optvis/transform.py, identical lists):

    - pad(12, mode="constant", constant_value=0.5)  -> :class:`Pad` (12, "constant", 0.5)
    - jitter(8)                                     -> :class:`Jitter` (8)
    - random_scale([1 + (i - 5) / 50 for i in range(11)]), i.e. 0.90, 0.92, ..., 1.10 -> :class:`RandomScale`
    - random_rotate(list(range(-10, 11)) + 5 * [0]) degrees, 0 six times in 26 -> :class:`RandomRotate`
    - jitter(4)                                     -> :class:`Jitter` (4)

    Differences: the scale keeps the image size (see :class:`RandomScale`), Jitter crops as in Lucid
    (Lucent translates), and every choice is per input rather than per batch. n_random = 6. An (H, W)
    image comes out (H + 12, W + 12): + 24 from the pad, - 8 and - 4 from the two jitters.
    """
    return Compose(
        (
            Pad(12, mode="constant", value=0.5),
            Jitter(8),
            RandomScale(tuple(1 + (i - 5) / 50 for i in range(11))),
            RandomRotate(tuple(float(d) for d in [*range(-10, 11), *(5 * [0])])),
            Jitter(4),
        )
    )
