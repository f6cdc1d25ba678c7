"""Elastic deformations of digits (Simard, Steinkraus & Platt 2003), as an endless seeded batch stream.

The paper trained on an *extended* MNIST (InfiMNIST / MNIST8M, Loosli et al. 2007): every example is a random
elastic deformation, plus a small translation, of a real training digit. A deformation draws a displacement
field dx, dy ~ Uniform(-1, 1) per pixel, smooths each with a Gaussian of width sigma, scales it by alpha, adds
a per-image translation, and resamples the image at (pixel + displacement) by bilinear interpolation with
zeros outside the image.

Speed: the Gaussian smoothing is written as two small matrix products, ``G_h @ F @ G_w.T`` (the 1-D
convolution with zero padding *is* a banded matrix), which on a 2-core CPU is about 10x faster than a
depthwise ``conv2d`` with the 2-D kernel; the constant parts of the field (the -1 of ``2u - 1``, the
translation's offset, the pixel grid itself) are folded into one precomputed tensor; the resampling is
``grid_sample``. At batch 1,000 the cost is dominated by drawing the 1.6M uniform numbers (torch's CPU
generator is single-threaded). See ``benchmarks/elastic_stream.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from unitlens.errors import UnitlensError

__all__ = [
    "GAUSSIAN_TRUNCATE",
    "ElasticConfig",
    "ElasticStream",
    "displacement_field",
    "elastic_deform",
    "gaussian_radius",
    "gaussian_smoothing_matrix",
    "warp",
]

# The Gaussian kernel is cut at this many sigmas (scipy.ndimage.gaussian_filter's default): the mass beyond
# 4 sigma is 6e-5, far below what a 28x28 displacement field can show.
GAUSSIAN_TRUNCATE = 4.0


def _check_number(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnitlensError(f"ElasticConfig.{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        expected = "> 0" if positive else ">= 0"
        raise UnitlensError(f"ElasticConfig.{name} must be finite and {expected}, got {value!r}")
    return number


@dataclass(frozen=True)
class ElasticConfig:
    """How strongly a digit is deformed.

    Attributes:
        alpha: scale of the smoothed displacement field, in pixels per unit of smoothed noise. 34 is Simard,
            Steinkraus & Platt's (2003) value for 28x28 MNIST: with sigma 4 it moves pixels by about 1.4 px
            (standard deviation) at the image centre and 0.8 px at the corners (the zero-padded smoothing
            fades at the border), enough to bend strokes without breaking the digit.
        sigma: width (pixels) of the Gaussian that smooths the uniform noise. 4 is Simard et al.'s value for
            28x28 MNIST: a smaller sigma gives a jagged, noise-like warp, a larger one an almost affine one.
        max_shift: the largest translation (pixels) drawn, uniformly in [-max_shift, max_shift], per image
            and axis, on top of the elastic field. 2 pixels matches the "small translations" of InfiMNIST
            (Loosli et al. 2007) and keeps a 20x20 MNIST digit inside its 28x28 frame.
    """

    alpha: float = 34.0
    sigma: float = 4.0
    max_shift: float = 2.0

    def __post_init__(self) -> None:
        # Frozen: coerce through object.__setattr__ so TOML integers (alpha = 34) become floats.
        object.__setattr__(self, "alpha", _check_number("alpha", self.alpha, positive=False))
        object.__setattr__(self, "sigma", _check_number("sigma", self.sigma, positive=True))
        object.__setattr__(self, "max_shift", _check_number("max_shift", self.max_shift, positive=False))


def gaussian_radius(sigma: float) -> int:
    """Half-width of the truncated Gaussian kernel: the kernel has ``2 * radius + 1`` taps (as scipy)."""
    return int(GAUSSIAN_TRUNCATE * sigma + 0.5)


def gaussian_smoothing_matrix(
    n: int, sigma: float, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> Tensor:
    """The 1-D Gaussian convolution of a length-n signal, "same" size with zero padding, as a matrix.

    ``G[i, j] = k[j - i]`` for ``|j - i| <= radius``, where k is the Gaussian of width sigma truncated at
    ``GAUSSIAN_TRUNCATE`` sigmas and normalised to sum 1 over its taps. Samples outside the signal count as
    zero, so rows near the ends sum to less than 1. Smoothing a (B, H, W) field is ``G_h @ F @ G_w.T``.

    Args:
        n: signal length (at least 1).
        sigma: kernel width in samples (> 0).
        dtype, device: of the returned matrix; built in float64, then cast.

    Returns:
        (n, n) symmetric matrix.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UnitlensError(f"gaussian_smoothing_matrix: n must be a positive integer, got {n!r}")
    if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
        raise UnitlensError(f"gaussian_smoothing_matrix: sigma must be finite and > 0, got {sigma!r}")
    radius = gaussian_radius(sigma)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    norm = torch.exp(-0.5 * (taps / sigma) ** 2).sum()
    index = torch.arange(n, dtype=torch.float64)
    offset = index[None, :] - index[:, None]  # j - i
    matrix = torch.exp(-0.5 * (offset / sigma) ** 2) / norm
    matrix = torch.where(offset.abs() <= radius, matrix, torch.zeros_like(matrix))
    return matrix.to(dtype=dtype, device=device)


def _check_images(images: object, name: str) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise UnitlensError(f"{name} must be a (batch, height, width) tensor, got {shape}")
    if not images.is_floating_point():
        raise UnitlensError(f"{name} must be a floating-point tensor, got {images.dtype}")
    if images.shape[1] < 2 or images.shape[2] < 2:
        raise UnitlensError(f"{name} must be at least 2x2 pixels, got {tuple(images.shape[1:])}")
    return images


def _check_generator(generator: object, device: torch.device, name: str = "generator") -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise UnitlensError(f"{name} must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise UnitlensError(f"{name} is on {generator.device}, but the images are on {device}")
    return generator


def warp(images: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """Resample each image at (pixel + displacement), bilinear, zeros outside the image.

    ``out[b, y, x] = images[b]`` interpolated at column ``x + dx[b, y, x]``, row ``y + dy[b, y, x]``;
    neighbours outside the image count as 0. An integer constant dx = s shifts the picture left by s pixels
    (out[:, :, x] = images[:, :, x + s]).

    Args:
        images: (B, H, W) floating point.
        dx, dy: (B, H, W) displacements in pixels, along the width and the height.

    Returns:
        (B, H, W), same dtype and device as images.
    """
    images = _check_images(images, "images")
    for name, field in (("dx", dx), ("dy", dy)):
        if not isinstance(field, Tensor) or field.shape != images.shape:
            shape = tuple(field.shape) if isinstance(field, Tensor) else type(field).__name__
            raise UnitlensError(f"{name} must have the images' shape {tuple(images.shape)}, got {shape}")
    _, H, W = images.shape
    rows = torch.arange(H, dtype=images.dtype, device=images.device)[:, None]
    cols = torch.arange(W, dtype=images.dtype, device=images.device)[None, :]
    # grid_sample with align_corners=True maps -1 and +1 to the centres of the first and last pixels.
    gx = (cols + dx.to(images.dtype)) * (2.0 / (W - 1)) - 1.0
    gy = (rows + dy.to(images.dtype)) * (2.0 / (H - 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    out = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[:, 0]


def displacement_field(
    batch: int,
    image_shape: tuple[int, int],
    generator: torch.Generator,
    config: ElasticConfig,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """The random displacement (elastic field plus translation) that ``elastic_deform`` applies.

    Draws, in this order, ``u = rand(batch, H, W, 2)`` (last axis: x, y) and ``v = rand(batch, 2)``, then
    ``d_c = alpha * G_h @ (2 u_c - 1) @ G_w.T + max_shift * (2 v_c - 1)``. The plain, readable form of
    the fused computation inside ``elastic_deform`` (which consumes the generator identically).

    Returns:
        dx, dy: (batch, H, W) each, in pixels.
    """
    H, W = _check_shape(image_shape)
    generator = _check_generator(generator, torch.device(device))
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
        raise UnitlensError(f"batch must be a non-negative integer, got {batch!r}")
    if not isinstance(config, ElasticConfig):
        raise UnitlensError(f"config must be an ElasticConfig, got {type(config).__name__}")
    u = torch.rand(batch, H, W, 2, generator=generator, dtype=dtype, device=device)
    v = torch.rand(batch, 2, generator=generator, dtype=dtype, device=device)
    G_h = gaussian_smoothing_matrix(H, config.sigma, dtype, device)
    G_w = gaussian_smoothing_matrix(W, config.sigma, dtype, device)
    noise = (2.0 * u - 1.0).movedim(-1, 0).contiguous()  # (2, batch, H, W): strided matmuls are slow
    shift = config.max_shift * (2.0 * v - 1.0)
    dx = config.alpha * (G_h @ noise[0] @ G_w.T) + shift[:, 0, None, None]
    dy = config.alpha * (G_h @ noise[1] @ G_w.T) + shift[:, 1, None, None]
    return dx, dy


def _check_shape(image_shape: object) -> tuple[int, int]:
    if (
        not isinstance(image_shape, tuple | list)
        or len(image_shape) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 2 for s in image_shape)
    ):
        raise UnitlensError(f"image_shape must be (height, width), two integers >= 2, got {image_shape!r}")
    return int(image_shape[0]), int(image_shape[1])


class _Deformer:
    """Precomputed matrices and reused buffers for deforming (B, H, W) images with one config.

    The grid that ``grid_sample`` reads is, per image b, pixel (y, x) and axis c (0: x, 1: y):
        grid = s_c * (pixel_c + alpha * (G_h (2u_c - 1) G_w^T)[y, x] + max_shift * (2 v_c - 1)) - 1
    with s_c = 2 / (size_c - 1). Everything that does not depend on u, v is one (H, W, 2) tensor ``base``;
    the u-part is ``G_h @ u @ K.T`` with ``u`` laid out (B, H, W*2) and K = kron(G_w, diag(2 alpha s_c)),
    which leaves the result directly in grid layout (B, H, W, 2): no transpose, no extra pass for 2u - 1.
    """

    def __init__(self, H: int, W: int, config: ElasticConfig, dtype: torch.dtype, device: torch.device):
        self.H, self.W, self.dtype, self.device = H, W, dtype, device
        scale = torch.tensor([2.0 / (W - 1), 2.0 / (H - 1)], dtype=torch.float64)
        G_h = gaussian_smoothing_matrix(H, config.sigma, torch.float64)
        G_w = gaussian_smoothing_matrix(W, config.sigma, torch.float64)
        K = torch.kron(G_w, torch.diag(2.0 * config.alpha * scale))  # (2W, 2W)
        # alpha * G_h @ (-1) @ G_w.T = -alpha * rowsum(G_h) rowsum(G_w)^T: the field's constant part.
        offset = -config.alpha * G_h.sum(1)[:, None] * G_w.sum(1)[None, :]  # (H, W)
        rows = torch.arange(H, dtype=torch.float64)[:, None].expand(H, W)
        cols = torch.arange(W, dtype=torch.float64)[None, :].expand(H, W)
        pixel = torch.stack((cols, rows), dim=-1)  # (H, W, 2), last axis (x, y)
        base = scale * (pixel + offset[..., None] - config.max_shift) - 1.0
        self.G_h = G_h.to(dtype=dtype, device=device)
        self.K_t = K.T.contiguous().to(dtype=dtype, device=device)
        self.base = base.to(dtype=dtype, device=device)
        self.shift_scale = (2.0 * config.max_shift * scale).to(dtype=dtype, device=device)  # (2,)
        self._batch = -1

    def _buffers(self, batch: int) -> None:
        if batch != self._batch:
            shape = (batch, self.H, 2 * self.W)
            self._u = torch.empty(shape, dtype=self.dtype, device=self.device)
            self._smooth_h = torch.empty(shape, dtype=self.dtype, device=self.device)
            self._grid = torch.empty(shape, dtype=self.dtype, device=self.device)
            self._v = torch.empty((batch, 2), dtype=self.dtype, device=self.device)
            self._batch = batch

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """(B, H, W) images -> (B, H, W) deformed, a new tensor; draws u then v from the generator."""
        batch = images.shape[0]
        self._buffers(batch)
        torch.rand(self._u.shape, generator=generator, out=self._u)
        torch.rand(self._v.shape, generator=generator, out=self._v)
        torch.matmul(self.G_h, self._u, out=self._smooth_h)
        grid = self._grid.view(batch * self.H, 2 * self.W)
        torch.mm(self._smooth_h.view(batch * self.H, 2 * self.W), self.K_t, out=grid)
        grid4 = self._grid.view(batch, self.H, self.W, 2)
        grid4.add_(self.base).add_((self._v * self.shift_scale)[:, None, None, :])
        out = F.grid_sample(images[:, None], grid4, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out[:, 0]


def elastic_deform(images: Tensor, generator: torch.Generator, config: ElasticConfig) -> Tensor:
    """Random elastic deformation plus translation of every image in a batch, at once.

    Equal (to float rounding) to ``warp(images, *displacement_field(B, (H, W), generator, config))`` and
    consumes the generator identically. Bilinear interpolation with zero fill is a convex combination of
    pixel values and 0, so the output lies in [min(0, images.min()), max(0, images.max())]; the result is
    clamped to that range to remove float rounding beyond it ([0, 1] inputs give [0, 1] outputs).

    Args:
        images: (B, H, W) floating point, H and W at least 2.
        generator: draws the fields; on the images' device.
        config: alpha, sigma, max_shift.

    Returns:
        (B, H, W) deformed images, same dtype and device.
    """
    images = _check_images(images, "images")
    generator = _check_generator(generator, images.device)
    if not isinstance(config, ElasticConfig):
        raise UnitlensError(f"config must be an ElasticConfig, got {type(config).__name__}")
    _, H, W = images.shape
    out = _Deformer(H, W, config, images.dtype, images.device)(images, generator)
    if images.numel() > 0:
        low, high = torch.aminmax(images)
        out.clamp_(min(float(low), 0.0), max(float(high), 0.0))
    return out


class ElasticStream:
    """An endless, seeded stream of elastically deformed examples drawn from a base set (a ``BatchSource``).

    Each batch picks ``batch_size`` base examples uniformly at random with replacement, then deforms them
    (``elastic_deform``). The generator is the stream's only state besides a batch counter, so
    ``state_dict`` / ``load_state_dict`` resume it exactly; the same seed gives the same stream.

    Args:
        x: (n, H*W) floating-point base images, one per row.
        y: (n,) labels or None.
        image_shape: (H, W).
        batch_size: examples per batch (any positive number: sampling is with replacement).
        generator: draws the indices and the deformations; on x's device.
        config: deformation strength.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor | None,
        image_shape: tuple[int, int],
        batch_size: int,
        generator: torch.Generator,
        config: ElasticConfig = ElasticConfig(),
    ) -> None:
        H, W = _check_shape(image_shape)
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] < 1:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise UnitlensError(f"x must be a non-empty (n, H*W) tensor, got {shape}")
        if x.shape[1] != H * W:
            raise UnitlensError(f"x has {x.shape[1]} columns, but image_shape {(H, W)} needs {H * W}")
        if not x.is_floating_point():
            raise UnitlensError(f"x must be a floating-point tensor, got {x.dtype}")
        if y is not None and (not isinstance(y, Tensor) or y.shape != (x.shape[0],)):
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise UnitlensError(
                f"y must be None or a ({x.shape[0]},) tensor (one label per row of x), got {shape}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UnitlensError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(config, ElasticConfig):
            raise UnitlensError(f"config must be an ElasticConfig, got {type(config).__name__}")
        self.x = x.contiguous()
        self.y = y
        self.image_shape = (H, W)
        self.batch_size = batch_size
        self.generator = _check_generator(generator, x.device)
        self.config = config
        self.batches_drawn = 0
        self._deformer = _Deformer(H, W, config, x.dtype, x.device)
        # The output range of bilinear resampling with zero fill (see elastic_deform), computed once.
        low, high = torch.aminmax(self.x)
        self._clamp = (min(float(low), 0.0), max(float(high), 0.0))
        self._picked = torch.empty((batch_size, H * W), dtype=x.dtype, device=x.device)

    def next_batch(self) -> tuple[Tensor, Tensor | None]:
        """Returns x (batch, H*W) deformed examples (a new tensor) and y (batch,) their labels or None."""
        H, W = self.image_shape
        idx = torch.randint(
            self.x.shape[0], (self.batch_size,), generator=self.generator, device=self.x.device
        )
        torch.index_select(self.x, 0, idx, out=self._picked)
        out = self._deformer(self._picked.view(self.batch_size, H, W), self.generator)
        out.clamp_(*self._clamp)
        self.batches_drawn += 1
        return out.view(self.batch_size, H * W), (None if self.y is None else self.y[idx])

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Yields ``next_batch()`` forever."""
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict[str, Tensor]:
        return {"generator": self.generator.get_state(), "batches_drawn": torch.tensor(self.batches_drawn)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = {"generator", "batches_drawn"} - set(state)
        if missing:
            raise UnitlensError(f"elastic stream state lacks {sorted(missing)}")
        try:
            self.generator.set_state(state["generator"])
        except (RuntimeError, TypeError) as error:
            raise UnitlensError(f"elastic stream state: generator state does not fit ({error})") from error
        self.batches_drawn = int(state["batches_drawn"])
