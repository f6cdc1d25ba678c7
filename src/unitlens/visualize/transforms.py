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
scales, angles) are applied with index gathers, per-row affine grids and (inside :class:`Compose`, which
fuses runs of transforms: see there) per-row matrix products, never one choice per batch.

A uniform u picks one of k choices as ``floor(u * k)``, clamped to k - 1 so that a float32 u that rounds
up to 1.0 still picks the last choice. The outputs are differentiable with respect to ``x`` (not ``u``:
the choices are discrete).

References:
    C. Olah, A. Mordvintsev, L. Schubert. Feature Visualization. Distill, 2017.
    Lucid: github.com/tensorflow/lucid, lucid/optvis/transform.py.
    Lucent: github.com/greentfrapp/lucent, lucent/optvis/transform.py.
"""

from __future__ import annotations

import functools
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


def _crop(x: Tensor, offsets: Tensor, size: tuple[int, ...]) -> Tensor:
    """Row b of x (n, C, *s) cropped to ``size`` from ``offsets[b]`` ((n, ndim) int64, in range): one
    ``torch.gather`` on the flattened spatial axes, whatever their number, with the index shared by the
    channels (expanded, not copied)."""
    n, channels = x.shape[0], x.shape[1]
    spatial = x.shape[2:]
    flat = torch.zeros(n, *(1 for _ in size), dtype=torch.long, device=x.device)
    stride = 1
    for axis in reversed(range(len(size))):
        shape = [1] * len(size)
        shape[axis] = size[axis]
        position = offsets[:, axis].view(n, *(1 for _ in size)) + torch.arange(
            size[axis], device=x.device
        ).view(shape)
        flat = flat + position * stride
        stride *= spatial[axis]
    index = flat.reshape(n, 1, math.prod(size)).expand(n, channels, math.prod(size))
    return torch.gather(x.reshape(n, channels, math.prod(spatial)), 2, index).view(n, channels, *size)


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

    Rows get different offsets, so the crop is one ``torch.gather`` on the flattened spatial axes with
    per-row indices (:func:`_crop`), not a loop over rows.
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
        return _crop(x, offsets, tuple(s - self.distance for s in x.shape[2:]))


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
        return _warp(x, self._theta(x, u), self.padding)

    def _factors(self, u: Tensor) -> Tensor:
        """(n,) float64: each row's scale."""
        table = torch.tensor(self.scales, dtype=torch.float64, device=u.device)
        return table[_choice(u[:, 0], len(self.scales))]

    def _theta(self, x: Tensor, u: Tensor) -> Tensor:
        """(n, 2, 3) float64: each row's map from output to input locations (see :func:`_warp`)."""
        s = self._factors(u)
        # Output offset d from the centre samples the input at d / s; isotropic, so the aspect ratio of
        # the normalized coordinates does not matter.
        theta = torch.zeros(x.shape[0], 2, 3, dtype=torch.float64, device=x.device)
        theta[:, 0, 0] = 1 / s
        theta[:, 1, 1] = 1 / s
        return theta


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
        return _warp(x, self._theta(x, u), self.padding)

    def _theta(self, x: Tensor, u: Tensor) -> Tensor:
        """(n, 2, 3) float64: each row's map from output to input locations (see :func:`_warp`)."""
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
        return theta


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

    **Fused execution.** For float32 and float64 inputs, runs of this module's transforms are computed
    together, with the same result as applying them one at a time up to float rounding (the tests hold
    it to 1e-5 in float32 and 1e-10 in float64, values and gradients): nested Composes are flattened;
    consecutive Jitters (after an optional Pad) are one crop at the summed offsets; a RandomScale with
    ``zeros`` padding, with the Pad and Jitters before it and the Jitters after it, is two small batched
    matrix products per row (a zoom about the centre treats rows and columns independently, and a crop
    or a pad is a selection of rows and columns); a RandomRotate (or a RandomScale with another
    padding) with the Jitters after it is one ``grid_sample`` evaluated only where the crops keep it.
    Every bilinear sample of the reference is still taken, at the same location (computed in float64),
    from the same neighbours: two warps in a row stay two warps, since one warp through the composed
    map would interpolate once instead of twice and change the result. Lucid's standard transforms
    become two products and one grid_sample instead of a pad, two gathers and two full grid_samples.
    Other transforms, or transforms whose checks fail (which then raise), run by their own ``__call__``.
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
        if isinstance(x, Tensor) and x.dtype in _FUSED_DTYPES and x.dim() in (3, 4):
            return _run_fused(_flatten(self.transforms, u), x, None)[0]
        start = 0
        for t in self.transforms:
            x = t(x, u[:, start : start + t.n_random])
            start += t.n_random
        return x

    def resized(self, x: Tensor, u: Tensor, size: tuple[int, int]) -> Tensor:
        """(n, C, H, W) -> (n, C, *size): the composition, then a bilinear resize to ``size`` as
        ``F.interpolate(..., mode="bilinear", align_corners=False)`` does it (what feature visualization
        does to feed a model of another input size), equal to the two applied in turn up to float
        rounding. When the last segment is a warp, the resize is folded into it: the warp is sampled only
        at the rows and columns the resize reads, and the resize becomes two small products (Lucid's
        transforms on an 8x8 image then sample 16x16 locations instead of 20x20, and skip a separate
        interpolation and its backward pass)."""
        u = _check_u(u, x, self.n_random, "Compose")
        fused = isinstance(x, Tensor) and x.dtype in _FUSED_DTYPES and x.dim() == 4
        if fused:
            x, done = _run_fused(_flatten(self.transforms, u), x, size)
            if done:
                return x
        else:
            x = self(x, u)
        if tuple(x.shape[2:]) == tuple(size):
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# ----------------------------------------------------------------------------------------- fused paths
#
# Compose runs its transforms in fused segments that give the same result as applying them one at a time
# (the reference composition), up to float rounding: exact index copies stay exact copies, and every
# bilinear sample is taken at the same location with the same taps and weights; only the order of the
# floating-point operations (and the precision of the sample locations, computed in float64 here) differs.
# Nothing is resampled twice or once less than in the reference: two warps in a row stay two warps.


_FUSED_DTYPES = (torch.float32, torch.float64)

_Item = tuple[Transform, Tensor]  # a transform and its columns of u


def _flatten(transforms: tuple[Transform, ...], u: Tensor) -> list[_Item]:
    """The transforms of nested Composes in order, each with its columns of u."""
    items: list[_Item] = []
    start = 0
    for t in transforms:
        part = u[:, start : start + t.n_random]
        start += t.n_random
        if type(t) is Compose:
            items.extend(_flatten(t.transforms, part))
        else:
            items.append((t, part))
    return items


def _take_jitters(
    items: list[_Item], j: int, ndim: int, size: tuple[int, ...]
) -> tuple[int, tuple[int, ...], Tensor | None]:
    """Absorb the run of Jitters that starts at items[j] and is valid for inputs of ``size`` (a Jitter
    whose checks would fail ends the run, and raises when it is called alone): (the index after the run,
    the size after it, the summed per-row offsets (n, ndim) or None for an empty run). A crop of a crop is
    one crop at the summed offsets."""
    offsets: Tensor | None = None
    while j < len(items):
        t, u = items[j]
        if type(t) is not Jitter or t.ndim != ndim or any(s <= t.distance for s in size):
            break
        step = _choice(u, t.distance + 1)
        offsets = step if offsets is None else offsets + step
        size = tuple(s - t.distance for s in size)
        j += 1
    return j, size, offsets


def _pad_source(size: int, pad: Pad | None, device: torch.device) -> Tensor:
    """(size + 2 width,) int64: the input index each padded position copies; ``size`` for the constant."""
    width = pad.width if pad is not None else 0
    q = torch.arange(-width, size + width, device=device)
    if pad is None or pad.mode == "constant":
        return torch.where((q >= 0) & (q < size), q, size)
    if pad.mode == "replicate":
        return q.clamp(0, size - 1)
    q = q.abs()  # reflect, width < size: mirror about the first and the last element
    return torch.where(q > size - 1, 2 * (size - 1) - q, q)


def _scale_matrix(
    size: int, pad: Pad | None, pre: Tensor, window: int, s: Tensor, post: Tensor, length: int
) -> Tensor:
    """One axis of [pad] [crops] RandomScale(zeros) [crops]: (n, length, size + 1) float64 weights of the
    input's elements, the last column the weight of the pad's constant.

    The scale samples its input, the window (the crop of ``window`` elements at ``pre`` of the padded
    input), at grid_sample's locations with align_corners=False: output element j (``post`` + 0..length-1
    of the scale's output) sits at normalized ((2 j + 1) / window - 1) and samples the window at
    normalized / s, element ((normalized / s + 1) window - 1) / 2, from its two neighbours with linear
    weights; a neighbour outside the window counts zero (padding "zeros")."""
    n = s.shape[0]
    device = s.device
    j = (post[:, None] + torch.arange(length, device=device)).double()  # (n, length)
    normalized = (2 * j + 1) / window - 1
    location = ((normalized / s[:, None] + 1) * window - 1) / 2
    first = location.floor()
    frac = location - first
    taps = torch.stack((first, first + 1), dim=-1).long()  # (n, length, 2)
    inside = (taps >= 0) & (taps < window)
    weights = torch.stack((1 - frac, frac), dim=-1) * inside
    source = _pad_source(size, pad, device)[taps.clamp(0, window - 1) + pre[:, None, None]]
    matrix = torch.zeros(n, length, size + 1, dtype=torch.float64, device=device)
    return matrix.scatter_add_(2, source, weights)


# Largest table of precomputed weights or grids (elements) a fused segment keeps per shape and dtype, and
# how many of each it keeps: at most 4 x 2.5M float32 (40 MB) per kind. Lucid's transforms need 78k
# (scale) and 520k (rotation) on an 8x8 image, 126k and 2.1M on 28x28; larger images exceed the bound
# and compute their weights and grids per step, as without the tables.
_TABLE_ELEMENTS = 2_500_000


@functools.lru_cache(maxsize=4)
def _scale_table(
    size: int,
    pad: Pad | None,
    window: int,
    scales: tuple[float, ...],
    pre_max: int,
    post_max: int,
    length: int,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """((pre_max + 1) * len(scales) * (post_max + 1), length, size + 1): :func:`_scale_matrix` for every
    (pre offset, scale, post offset), row (pre * len(scales) + scale) * (post_max + 1) + post, computed
    once by the same function (so the weights are the same numbers) and cast to ``dtype``."""
    pre, which, post = torch.meshgrid(
        torch.arange(pre_max + 1, device=device),
        torch.arange(len(scales), device=device),
        torch.arange(post_max + 1, device=device),
        indexing="ij",
    )
    factors = torch.tensor(scales, dtype=torch.float64, device=device)[which.reshape(-1)]
    return _scale_matrix(size, pad, pre.reshape(-1), window, factors, post.reshape(-1), length).to(dtype)


def _scale_weights(
    size: int,
    pad: Pad | None,
    pre: Tensor,
    window: int,
    scale: RandomScale,
    which: Tensor,
    post: Tensor,
    length: int,
    dtype: torch.dtype,
) -> Tensor:
    """(n, length, size + 1) one axis's weights of the separable segment, in ``dtype``: looked up in
    :func:`_scale_table` when it is small enough (one gather instead of a dozen small operations per
    step, which profiled as a fifth of a lucid step on an 8x8 model), else computed."""
    padded = size + 2 * (pad.width if pad is not None else 0)
    pre_max, post_max = padded - window, window - length
    n_scales = len(scale.scales)
    if (pre_max + 1) * n_scales * (post_max + 1) * length * (size + 1) > _TABLE_ELEMENTS:
        factors = torch.tensor(scale.scales, dtype=torch.float64, device=which.device)[which]
        return _scale_matrix(size, pad, pre, window, factors, post, length).to(dtype)
    table = _scale_table(size, pad, window, scale.scales, pre_max, post_max, length, dtype, which.device)
    return table.index_select(0, (pre * n_scales + which) * (post_max + 1) + post)


def _separable_scale(
    x: Tensor,
    pad: Pad | None,
    pre: Tensor | None,
    window: tuple[int, int],
    scale: RandomScale,
    which: Tensor,
    post: Tensor | None,
    size: tuple[int, int],
) -> Tensor:
    """[pad] [crops] RandomScale(zeros) [crops] on x (n, C, H, W): a zoom about the centre samples rows
    and columns independently, so the whole segment is Ay x' Ax^T per row and channel, two small batched
    matrix products instead of a pad, crops and a grid_sample. For a constant pad x' is x with one more
    row and column holding the constant (the last column of Ay and Ax weighs it), so the padded image is
    never built; for the other pads Ay and Ax already fold the copies of x's edges in. ``which`` (n,) is
    each row's index into ``scale.scales``."""
    n = x.shape[0]
    zero = torch.zeros(n, 2, dtype=torch.long, device=x.device)
    pre = zero if pre is None else pre
    post = zero if post is None else post
    ay, ax = (
        _scale_weights(x.shape[2 + k], pad, pre[:, k], window[k], scale, which, post[:, k], size[k], x.dtype)
        for k in (0, 1)
    )
    if pad is not None and pad.mode == "constant" and pad.width > 0:
        x = F.pad(x, [0, 1, 0, 1], mode="constant", value=float(pad.value))
    else:  # no constant: its column of weights is zero
        ay, ax = ay[..., :-1], ax[..., :-1]
    channels, h, w = x.shape[1], size[0], size[1]
    # Rows first (the (n, 1, h, H) matrix broadcast over the channels), then columns as one product per row
    # of the batch: the order that profiled fastest.
    rows = torch.matmul(ay[:, None], x)  # (n, C, h, W)
    return rows.reshape(n, channels * h, rows.shape[-1]).bmm(ax.transpose(1, 2)).view(n, channels, h, w)


def _warp_grid(
    theta: Tensor, in_size: tuple[int, int], post: Tensor, keep: tuple[Tensor, Tensor], dtype: torch.dtype
) -> Tensor:
    """(n, h, w, 2) grid_sample's grid for warps theta (n, 2, 3) of an (H, W) input, evaluated at the output
    locations (post[:, 0] + keep[0][i], post[:, 1] + keep[1][j]): those a crop at ``post`` (n, 2) keeps
    (keep = (arange(h), arange(w))), or the rows and columns of that crop a resize reads. Grid value k at
    output (i, j) is theta[k, 0] x_j + (theta[k, 1] y_i + theta[k, 2]): both terms in float64 per row and
    column, their sum in ``dtype``."""
    n, (H, W) = theta.shape[0], in_size
    cols = (2 * (post[:, 1, None] + keep[1]).double() + 1) / W - 1  # (n, w)
    rows = (2 * (post[:, 0, None] + keep[0]).double() + 1) / H - 1  # (n, h)
    theta = theta.to(torch.float64)
    grid = torch.empty(n, rows.shape[1], cols.shape[1], 2, dtype=dtype, device=theta.device)
    for k in (0, 1):
        along_cols = (theta[:, k, 0, None] * cols).to(dtype)[:, None, :]
        along_rows = (theta[:, k, 1, None] * rows + theta[:, k, 2, None]).to(dtype)[:, :, None]
        torch.add(along_cols, along_rows, out=grid[..., k])
    return grid


@functools.lru_cache(maxsize=16)
def _resize_weights(length: int, out: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """One axis of a bilinear resize from ``length`` to ``out`` elements, as ``F.interpolate`` with
    align_corners=False computes it: output j reads source location max((j + 1/2) length / out - 1/2, 0)
    from its floor i0 and min(i0 + 1, length - 1) with linear weights. Returns (the (k,) source elements
    read, ascending; the (out, k) weights on them)."""
    j = torch.arange(out, dtype=torch.float64, device=device)
    location = ((j + 0.5) * (length / out) - 0.5).clamp_min(0.0)
    first = location.floor().long().clamp(max=length - 1)
    frac = location - first.double()
    second = (first + 1).clamp(max=length - 1)
    read = torch.unique(torch.cat((first, second)))  # sorted
    weights = torch.zeros(out, length, dtype=torch.float64, device=device)
    weights.index_put_((j.long(), first), 1 - frac, accumulate=True)
    weights.index_put_((j.long(), second), frac, accumulate=True)
    return read, weights[:, read].to(dtype)


@functools.lru_cache(maxsize=4)
def _grid_table(
    warp: RandomRotate | RandomScale,
    in_size: tuple[int, int],
    post_max: tuple[int, int],
    keep: tuple[tuple[int, ...], tuple[int, ...]],
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """(K * (py + 1) * (px + 1), h, w, 2): :func:`_warp_grid` for each of the warp's K choices and every
    post-crop offset, row (k * (py + 1) + oy) * (px + 1) + ox, computed once by the same functions (so the
    grids are the same numbers)."""
    k, oy, ox = torch.meshgrid(
        torch.arange(_n_choices(warp), device=device),
        torch.arange(post_max[0] + 1, device=device),
        torch.arange(post_max[1] + 1, device=device),
        indexing="ij",
    )
    # The uniform at the middle of choice k's interval picks choice k.
    u = ((k.reshape(-1, 1).double() + 0.5) / _n_choices(warp)).to(dtype)
    probe = torch.empty(u.shape[0], 1, *in_size, dtype=dtype, device=device)
    theta = warp._theta(probe, u)
    post = torch.stack((oy.reshape(-1), ox.reshape(-1)), dim=1)
    rows, cols = (torch.tensor(axis, dtype=torch.long, device=device) for axis in keep)
    return _warp_grid(theta, in_size, post, (rows, cols), dtype)


def _n_choices(warp: RandomRotate | RandomScale) -> int:
    return len(warp.degrees) if isinstance(warp, RandomRotate) else len(warp.scales)


def _grid_warp(
    x: Tensor,
    warp: RandomRotate | RandomScale,
    u: Tensor,
    post: Tensor | None,
    size: tuple[int, int],
    resize_to: tuple[int, int] | None = None,
) -> Tensor:
    """A warp (see :func:`_warp`) followed by crops to ``size``, and optionally a bilinear resize to
    ``resize_to`` (see :meth:`Compose.resized`): grid_sample evaluated at the kept output locations only
    (or only those the resize reads), from a grid computed directly rather than by affine_grid over the
    whole output, or looked up in :func:`_grid_table` when that is small enough (one gather per step)."""
    n, in_size, device = x.shape[0], (x.shape[2], x.shape[3]), x.device
    post_max = (in_size[0] - size[0], in_size[1] - size[1])
    if resize_to is None:
        keep = (tuple(range(size[0])), tuple(range(size[1])))
        weights: tuple[Tensor, Tensor] | None = None
    else:
        (rows, wy), (cols, wx) = (_resize_weights(size[a], resize_to[a], x.dtype, device) for a in (0, 1))
        keep = (tuple(rows.tolist()), tuple(cols.tolist()))
        weights = (wy, wx)
    choices = _n_choices(warp)
    if choices * (post_max[0] + 1) * (post_max[1] + 1) * len(keep[0]) * len(keep[1]) * 2 <= _TABLE_ELEMENTS:
        which = _choice(u[:, 0], choices)
        if post is None:
            row = which * ((post_max[0] + 1) * (post_max[1] + 1))
        else:
            row = (which * (post_max[0] + 1) + post[:, 0]) * (post_max[1] + 1) + post[:, 1]
        grid = _grid_table(warp, in_size, post_max, keep, x.dtype, device).index_select(0, row)
    else:
        if post is None:
            post = torch.zeros(n, 2, dtype=torch.long, device=device)
        at = tuple(torch.tensor(axis, dtype=torch.long, device=device) for axis in keep)
        grid = _warp_grid(warp._theta(x, u), in_size, post, (at[0], at[1]), x.dtype)
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode=warp.padding, align_corners=False)
    if weights is None:
        return sampled
    return torch.matmul(torch.matmul(weights[0], sampled), weights[1].t())


def _fused_segment(
    items: list[_Item], i: int, x: Tensor, resize_to: tuple[int, int] | None
) -> tuple[int, Tensor, bool]:
    """Run the longest fusable segment starting at items[i]: (how many items it took, the output, whether
    it also resized to ``resize_to``, which a warp that ends the list does when that reads fewer of its
    locations than the crop keeps).

    Segments: [Pad] [Jitter...] RandomScale(zeros) [Jitter...] (separable products); [Pad] Jitter...
    (one pad, one crop); RandomRotate or RandomScale [Jitter...] (one grid_sample on the kept
    locations); anything else alone, by its own ``__call__`` (which also raises every error: a
    transform whose checks fail is never absorbed)."""
    ndim = x.dim() - 2
    size = tuple(x.shape[2:])
    j = i
    pad: Pad | None = None
    first, first_u = items[i]
    if type(first) is Pad and (first.mode != "reflect" or all(s > first.width for s in size)):
        pad = first
        size = tuple(s + 2 * first.width for s in size)
        j += 1
    j, window, pre = _take_jitters(items, j, ndim, size)
    if ndim == 2 and j < len(items):
        scale, scale_u = items[j]
        if type(scale) is RandomScale and scale.padding == "zeros":
            end, out_size, post = _take_jitters(items, j + 1, 2, window)
            h, w = window
            which = _choice(scale_u[:, 0], len(scale.scales))
            return (
                end - i,
                _separable_scale(x, pad, pre, (h, w), scale, which, post, (out_size[0], out_size[1])),
                False,
            )
    if pre is not None:
        if pad is not None:
            x = pad(x, first_u)
        return j - i, _crop(x, pre, window), False
    if ndim == 2 and type(first) in (RandomRotate, RandomScale):
        warp = first
        assert isinstance(warp, RandomRotate | RandomScale)
        end, out_size, post = _take_jitters(items, i + 1, 2, size)
        kept = (out_size[0], out_size[1])
        if resize_to is not None and end == len(items) and kept != tuple(resize_to):
            read = [_resize_weights(kept[a], resize_to[a], x.dtype, x.device)[0].numel() for a in (0, 1)]
            if read[0] * read[1] < kept[0] * kept[1]:
                return end - i, _grid_warp(x, warp, first_u, post, kept, resize_to), True
        return end - i, _grid_warp(x, warp, first_u, post, kept), False
    return 1, first(x, first_u), False


def _run_fused(items: list[_Item], x: Tensor, resize_to: tuple[int, int] | None) -> tuple[Tensor, bool]:
    """The fused segments in turn: (the output, whether the last one also resized to ``resize_to``)."""
    i, resized = 0, False
    while i < len(items):
        taken, x, resized = _fused_segment(items, i, x, resize_to)
        i += taken
    return x, resized


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
