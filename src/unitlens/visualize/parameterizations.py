"""Parameterizations: how feature visualization builds its input images from free parameters.

Activation maximization optimizes parameters ``p``, not pixels; a parameterization maps them to images. The
choice changes which images gradient ascent finds easily (Olah, Mordvintsev & Schubert 2017, "Feature
Visualization", Distill; Lucid, Lucent, Captum-optim). Two are here, torch only:

* :class:`Pixels`: the image is the parameters, optionally put on a sphere (``norm``, a smooth form of the
  hard norm constraint of Erhan et al. 2009) or squashed into a box by a sigmoid (``box``).
* :class:`Fourier`: Lucid's ``fft_image``. The parameters are the real and imaginary parts of the image's
  real-FFT coefficients, scaled by a 1/f^decay law (or by a magnitude spectrum measured on data,
  :meth:`Fourier.from_data`), then colours are mixed by a decorrelation matrix and squashed into a box.
  Low frequencies move fastest, so the optimizer finds smooth, natural-looking images first.

Shapes. ``shape`` is one image's ``(C, L)`` (1-D signals) or ``(C, H, W)``, any ``C``. Both classes follow
:class:`Parameterization`:

* ``init(count, generator, dtype, device) -> (count, *param_shape)``;
* ``image(params) -> (n, *shape)``, differentiable; row ``i`` of the images depends on row ``i`` of the
  parameters only.

``param_shape`` is ``shape`` for :class:`Pixels` and ``(C, *freq_shape, 2)`` for :class:`Fourier`, where
``freq_shape`` is the rfft grid: ``(L // 2 + 1,)`` in 1-D, ``(H, W // 2 + 1)`` in 2-D; the last axis holds
the real and the imaginary part.

Reproducibility. ``init`` draws only from the given generator, on the generator's own device, and moves
the result to ``device`` afterwards, so a unit's starts depend on its generator alone, not on where the
model runs. Rows are drawn one after the other, so ``init(k)`` is the first ``k`` rows of ``init(m)``
for ``k <= m`` (with the generator in the same state): asking for more restarts keeps the first ones.

References:
    C. Olah, A. Mordvintsev, L. Schubert. Feature Visualization. Distill, 2017.
    Lucid: github.com/tensorflow/lucid, lucid/optvis/param/spatial.py (``pixel_image``, ``fft_image``,
    ``rfft2d_freqs``) and color.py (``color_correlation_svd_sqrt``, ``to_valid_rgb``); its PyTorch port
    Lucent: github.com/greentfrapp/lucent, lucent/optvis/param/spatial.py and color.py.
    T. Fel et al. Unlocking Feature Visualization for Deeper Networks with MAgnitude Constrained
    Optimization (MaCo). NeurIPS 2023 (a magnitude spectrum measured on data replaces 1/f).
    D. Erhan, Y. Bengio, A. Courville, P. Vincent. Visualizing Higher-Layer Features of a Deep Network.
    Technical Report 1341, DIRO, Universite de Montreal, 2009.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from unitlens.errors import UnitlensError

__all__ = [
    "FOURIER_DIVISOR",
    "LUCID_COLOR_MATRIX",
    "LUCID_COLOR_SVD_SQRT",
    "LUCID_SD",
    "Fourier",
    "Parameterization",
    "Pixels",
    "color_matrix_from_data",
    "decorrelate_colors",
    "frequency_magnitudes",
    "power_law_spectrum",
]

# Lucid's and Lucent's default standard deviation of the starting parameters (``pixel_image`` and
# ``fft_image`` both use sd = 0.01): the starts are almost uniform grey images.
LUCID_SD = 0.01

# Lucid divides the Fourier image by 4 (Lucent calls it a "magic constant"; raising it desaturates the
# images). Kept so that step sizes tuned for Lucid carry over.
FOURIER_DIVISOR = 4.0

# Lucid's ``color_correlation_svd_sqrt``: a square root of ImageNet's RGB covariance, from its SVD, so its
# columns are the principal colour axes (first: luminance) scaled by the square roots of their variances.
LUCID_COLOR_SVD_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64
)
# What Lucid mixes colours with: the matrix above divided by its largest column norm, so that the luminance
# axis keeps unit gain and the decorrelated parameters have the step sizes of plain ones.
LUCID_COLOR_MATRIX = LUCID_COLOR_SVD_SQRT / torch.linalg.vector_norm(LUCID_COLOR_SVD_SQRT, dim=0).max()


@runtime_checkable
class Parameterization(Protocol):
    """What activation maximization needs from a parameterization (see the module docstring for shapes).

    ``shape`` is declared as a read-only property so that frozen dataclasses satisfy the protocol.
    """

    @property
    def shape(self) -> tuple[int, ...]:
        """``(C, *spatial)`` of one image the parameterization produces."""
        ...

    def init(
        self, count: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device
    ) -> Tensor:
        """``(count, *param_shape)`` starting parameters, drawn only from ``generator``."""
        ...

    def image(self, params: Tensor) -> Tensor:
        """``(n, *param_shape) -> (n, *shape)``, differentiable and row-independent."""
        ...


# -- validation helpers ---------------------------------------------------------------------------------


def _as_shape(name: str, shape: object, ranks: tuple[int, ...] = (2, 3)) -> tuple[int, ...]:
    """``shape`` as a tuple of ints of one of the lengths ``ranks`` (``(C, L)`` or ``(C, H, W)`` by
    default), every size at least 1."""
    what = "(C, L) or (C, H, W)" if ranks == (2, 3) else "a non-empty tuple"
    expected = f"{name} must be {what} with every size >= 1, got {shape!r}"
    if isinstance(shape, str | bytes) or not isinstance(shape, Sequence):
        raise UnitlensError(expected)
    try:
        sizes = tuple(operator.index(s) for s in shape if not isinstance(s, bool))
    except TypeError as error:
        raise UnitlensError(expected) from error
    if len(sizes) != len(shape) or (ranks and len(sizes) not in ranks) or not sizes or min(sizes) < 1:
        raise UnitlensError(expected)
    return sizes


def _as_real(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a finite float (and > 0 if ``positive``)."""
    what = "a finite number > 0" if positive else "a finite number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnitlensError(f"{name} must be {what}, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or (positive and number <= 0):
        raise UnitlensError(f"{name} must be {what}, got {value!r}")
    return number


def _as_box(value: object) -> tuple[float, float] | None:
    """``box`` as ``(lo, hi)`` floats with lo < hi, or None."""
    if value is None:
        return None
    expected = f"box must be (lo, hi) with finite lo < hi, or None, got {value!r}"
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise UnitlensError(expected)
    lo, hi = (_as_real("box", v) for v in value)
    if not lo < hi:
        raise UnitlensError(expected)
    return lo, hi


def _as_count(count: object) -> int:
    if isinstance(count, bool):
        raise UnitlensError(f"count must be an integer >= 0, got {count!r}")
    try:
        n = operator.index(count)  # type: ignore[arg-type]
    except TypeError as error:
        raise UnitlensError(f"count must be an integer >= 0, got {count!r}") from error
    if n < 0:
        raise UnitlensError(f"count must be an integer >= 0, got {count!r}")
    return n


def _as_tensor(name: str, value: object, shape: tuple[int, ...]) -> Tensor:
    """A private float64 CPU copy of a finite real tensor of ``shape``, safe from later edits."""
    if not isinstance(value, Tensor) or value.is_complex() or not value.is_floating_point():
        raise UnitlensError(f"{name} must be a real floating-point tensor of shape {shape}, got {value!r}")
    if tuple(value.shape) != shape:
        raise UnitlensError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    copy = value.detach().to(device="cpu", dtype=torch.float64).clone()
    if not torch.isfinite(copy).all():
        raise UnitlensError(f"{name} must be finite")
    return copy


def _check_params(params: Tensor, param_shape: tuple[int, ...]) -> None:
    if not isinstance(params, Tensor) or tuple(params.shape[1:]) != param_shape:
        got = tuple(params.shape) if isinstance(params, Tensor) else type(params).__name__
        raise UnitlensError(f"params must have shape (n, *{param_shape}), got {got}")


def _draw_rows(
    count: int,
    param_shape: tuple[int, ...],
    generator: torch.Generator,
    dtype: torch.dtype,
    device: torch.device,
    *,
    normal_sd: float | None,
) -> Tensor:
    """``count`` rows of U[0, 1) (``normal_sd`` None) or N(0, normal_sd^2) numbers.

    One draw per row on the generator's device: a single draw of all rows would not be prefix-consistent
    (torch's CPU normal sampler pairs numbers differently for different sizes).
    """
    count = _as_count(count)
    rows = []
    for _ in range(count):
        if normal_sd is None:
            row = torch.rand(param_shape, generator=generator, dtype=dtype, device=generator.device)
        else:
            row = torch.randn(param_shape, generator=generator, dtype=dtype, device=generator.device)
            row = row * normal_sd
        rows.append(row)
    if not rows:
        return torch.empty((0, *param_shape), dtype=dtype, device=device)
    return torch.stack(rows).to(device)


def _squash(x: Tensor, box: tuple[float, float]) -> Tensor:
    lo, hi = box
    return lo + (hi - lo) * torch.sigmoid(x)


# -- pixels ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pixels:
    """The image is the parameters (``param_shape == shape``), optionally constrained smoothly.

    * ``norm``: ``image = norm * p / ||p||`` per row (the norm over all channels and positions). A smooth
      version of Erhan et al.'s hard constraint ``||x|| = rho`` that plain optimizers such as Adam can
      follow. Starts i.i.d. Uniform[0, 1], the paper's start.
    * ``box = (lo, hi)``: ``image = lo + (hi - lo) * sigmoid(p)``. Starts N(0, 0.01^2), Lucid's
      ``pixel_image`` default sd, i.e. images close to the box's middle.
    * neither: ``image = p``, starts i.i.d. Uniform[0, 1].

    ``norm`` and ``box`` together are refused: a sigmoid image does not keep a norm.
    """

    shape: tuple[int, ...]
    norm: float | None = None
    box: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        # Pixels take any input: flat features (D,), signals, images, volumes.
        object.__setattr__(self, "shape", _as_shape("shape", self.shape, ranks=()))
        if self.norm is not None:
            object.__setattr__(self, "norm", _as_real("norm", self.norm, positive=True))
        object.__setattr__(self, "box", _as_box(self.box))
        if self.norm is not None and self.box is not None:
            raise UnitlensError("norm and box cannot both be set: give one of them, or neither")

    @property
    def param_shape(self) -> tuple[int, ...]:
        return self.shape

    def init(
        self, count: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device
    ) -> Tensor:
        """``(count, *shape)`` starts: N(0, 0.01^2) with ``box``, else i.i.d. Uniform[0, 1)."""
        sd = LUCID_SD if self.box is not None else None
        return _draw_rows(count, self.shape, generator, dtype, torch.device(device), normal_sd=sd)

    def image(self, params: Tensor) -> Tensor:
        """``(n, *shape) -> (n, *shape)``."""
        _check_params(params, self.shape)
        if self.norm is not None:
            # F.normalize divides by max(||p||, eps): a zero row stays zero instead of becoming NaN.
            return self.norm * F.normalize(params.flatten(1), dim=1).view_as(params)
        if self.box is not None:
            return _squash(params, self.box)
        return params


# -- Fourier --------------------------------------------------------------------------------------------


def frequency_magnitudes(spatial: Sequence[int]) -> Tensor:
    """|f| in cycles per pixel on the rfft grid of ``spatial`` (1 or 2 sizes), float64.

    ``fftfreq`` on the leading axis and ``rfftfreq`` on the last, as ``torch.fft.rfftn`` lays them out:
    shape ``(L // 2 + 1,)`` or ``(H, W // 2 + 1)``. Lucid's ``rfft2d_freqs`` keeps one extra column for
    odd widths (its TF inverse needed it and cropped a pixel afterwards); ``torch.fft.irfftn`` with
    ``s=`` needs only the exact grid.
    """
    *lead, last = spatial
    axes = [torch.fft.fftfreq(n, dtype=torch.float64) for n in lead]
    axes.append(torch.fft.rfftfreq(last, dtype=torch.float64))
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.sqrt(torch.stack([g * g for g in grids]).sum(0))


def power_law_spectrum(spatial: Sequence[int], decay: float = 1.0) -> Tensor:
    """Lucid's frequency scale ``1 / max(|f|, 1 / max(spatial))^decay`` on the rfft grid, float64.

    The clamp gives the constant (DC) term the scale of the lowest frequency instead of infinity.
    """
    f = frequency_magnitudes(spatial)
    return 1.0 / f.clamp_min(1.0 / max(spatial)) ** decay


def decorrelate_colors(x: Tensor, matrix: Tensor) -> Tensor:
    """Mix the channels of ``x`` (n, C, *spatial) by ``matrix`` (C, C): ``out[:, c] = sum_d M[c, d] x[:, d]``.

    With C = 3 and Lucid's matrix this is Lucid's ``_linear_decorrelate_color`` (``t @ M.T`` on
    channels-last images): the parameters are colours along decorrelated axes (luminance first), and the
    matrix maps them back to RGB with natural images' colour correlations.
    """
    if x.ndim < 2:
        raise UnitlensError(f"x must be (n, C, *spatial), got shape {tuple(x.shape)}")
    channels = x.shape[1]
    if matrix.shape != (channels, channels):
        raise UnitlensError(
            f"matrix must be ({channels}, {channels}) for {channels} channels, got {tuple(matrix.shape)}"
        )
    return torch.einsum("cd,nd...->nc...", matrix.to(dtype=x.dtype, device=x.device), x)


def _check_images(images: object) -> Tensor:
    if not isinstance(images, Tensor) or images.ndim not in (3, 4) or images.is_complex():
        raise UnitlensError(
            "images must be a real tensor (N, C, L) or (N, C, H, W), got "
            + (str(tuple(images.shape)) if isinstance(images, Tensor) else type(images).__name__)
        )
    if images.shape[0] < 1 or min(images.shape[1:]) < 1:
        raise UnitlensError(f"images must hold at least one image, got shape {tuple(images.shape)}")
    x = images.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(x).all():
        raise UnitlensError("images must be finite")
    return x


def color_matrix_from_data(images: Tensor) -> Tensor:
    """The data's colour matrix, as Lucid's: a square root of the channel covariance, float64 (C, C).

    ``images`` (N, C, *spatial); the covariance is over all images and positions (channel means
    subtracted). With ``Cov = V diag(lambda) V^T`` (eigh, equivalently the SVD of the centred data), the
    matrix is ``V diag(sqrt(lambda))`` with columns in decreasing variance, each column's sign chosen so that
    its first entry is >= 0 (as in Lucid's matrix), divided by its largest column norm ``sqrt(lambda_max)``.
    So ``M @ M.T = Cov / lambda_max`` and mixing white parameters by ``M`` gives the data's colour
    correlations, the main axis at unit gain.
    """
    x = _check_images(images)
    channels = x.shape[1]
    flat = x.transpose(0, 1).reshape(channels, -1)
    if flat.shape[1] < 2:
        raise UnitlensError("images must hold at least two pixels to measure a channel covariance")
    flat = flat - flat.mean(dim=1, keepdim=True)
    cov = flat @ flat.T / (flat.shape[1] - 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    eigenvalues = eigenvalues.flip(0).clamp_min(0.0)  # rounding can make a zero eigenvalue slightly negative
    eigenvectors = eigenvectors.flip(1)
    if eigenvalues[0] <= 0:
        raise UnitlensError("images are constant: their channel covariance is zero")
    signs = torch.where(eigenvectors[0] < 0, -1.0, 1.0).to(torch.float64)
    matrix = eigenvectors * signs * eigenvalues.sqrt()
    return matrix / eigenvalues[0].sqrt()


@dataclass(frozen=True, eq=False)
class Fourier:
    """Lucid's ``fft_image``: parameters are rfft coefficients, scaled so low frequencies dominate.

    ``params`` (n, C, *freq_shape, 2) holds the real and imaginary parts of each channel's coefficients
    on the ``torch.fft.rfftn`` grid of the spatial axes (1 or 2). ``init`` draws them N(0, sd^2), sd = 0.01
    as in Lucid. The image is, per row and channel::

        x = irfftn(scale * complex(params), s=spatial) / 4
        scale = sqrt(prod(spatial)) * 1 / max(|f|, 1 / max(spatial))^decay

    ``|f|`` the frequency's magnitude in cycles per pixel (``fftfreq``/``rfftfreq``, see
    :func:`frequency_magnitudes`). ``irfftn`` uses torch's default ("backward", 1/prod(spatial)) norm, so
    together with ``sqrt(prod(spatial))`` the transform is unitary (Lucid's reason: step sizes like pixel
    optimization's; Lucent reaches the same with ``norm="ortho"``). The division by 4 is Lucid's constant
    (:data:`FOURIER_DIVISOR`). Hence ``rfftn(x) = scale * complex(params) / 4`` for parameters with
    Hermitian symmetry; the coefficients on the self-conjugate lines of the grid (the first and, for even
    sizes, the Nyquist column of the last axis) are redundant: ``irfftn`` keeps only their Hermitian part
    (it drops the imaginary part of the DC and Nyquist terms and averages the pairs (k, 0) and (-k, 0)),
    exactly like Lucid's inverse.

    ``spectrum``: a nonnegative magnitude spectrum of shape ``freq_shape`` (e.g. from :meth:`from_data`)
    that replaces the 1/f^decay law, as in MaCo; ``scale = sqrt(prod(spatial)) * spectrum``. ``decay`` has
    no effect then, and a non-default ``decay`` with a ``spectrum`` is refused. A spectrum measured on real
    images is mirror-symmetric on the self-conjugate lines (``|X(-k, 0)| = |X(k, 0)|``); if a given one is
    not, each pair there acts with the root mean square of its two magnitudes.

    Then, if ``decorrelate`` and C == 3, colours are mixed by ``color_matrix`` (default
    :data:`LUCID_COLOR_MATRIX`), see :func:`decorrelate_colors`; for C != 3 (grey, N-channel)
    decorrelation is a no-op. A ``color_matrix`` is used as given (not renormalized); it needs C == 3 and
    ``decorrelate``. Last, ``box = (lo, hi)`` squashes: ``lo + (hi - lo) * sigmoid(x)`` (Lucid's
    ``to_valid_rgb``); ``box=None`` returns the linear image.

    Parameters must be float32 or float64 (torch's complex FFTs need them).
    """

    shape: tuple[int, ...]
    decay: float = 1.0
    spectrum: Tensor | None = None
    sd: float = LUCID_SD
    decorrelate: bool = True
    box: tuple[float, float] | None = (0.0, 1.0)
    color_matrix: Tensor | None = None
    # scale and colour matrix per (dtype, device), so an optimization loop does not rebuild them each step.
    _cache: dict[tuple[torch.dtype, torch.device], tuple[Tensor, Tensor]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "shape", _as_shape("shape", self.shape))
        set_(self, "decay", _as_real("decay", self.decay))
        set_(self, "sd", _as_real("sd", self.sd, positive=True))
        if not isinstance(self.decorrelate, bool):
            raise UnitlensError(f"decorrelate must be True or False, got {self.decorrelate!r}")
        set_(self, "box", _as_box(self.box))
        freq_shape = self.freq_shape
        if self.spectrum is not None:
            if self.decay != 1.0:
                raise UnitlensError(
                    f"decay has no effect when spectrum is given: leave decay at 1.0, got {self.decay}"
                )
            spectrum = _as_tensor("spectrum", self.spectrum, freq_shape)
            if (spectrum < 0).any() or not (spectrum > 0).any():
                raise UnitlensError("spectrum must be >= 0 everywhere and > 0 somewhere")
            set_(self, "spectrum", spectrum)
        if self.color_matrix is not None:
            if self.shape[0] != 3 or not self.decorrelate:
                raise UnitlensError(
                    "color_matrix needs 3 channels and decorrelate=True (it would be ignored), got "
                    f"{self.shape[0]} channels and decorrelate={self.decorrelate}"
                )
            set_(self, "color_matrix", _as_tensor("color_matrix", self.color_matrix, (3, 3)))

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.shape[1:]

    @property
    def freq_shape(self) -> tuple[int, ...]:
        """The rfft grid of the spatial axes: ``(L // 2 + 1,)`` or ``(H, W // 2 + 1)``."""
        *lead, last = self.spatial
        return (*lead, last // 2 + 1)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return (self.shape[0], *self.freq_shape, 2)

    @property
    def scale(self) -> Tensor:
        """``sqrt(prod(spatial))`` times the 1/f^decay law or the given spectrum, float64 ``freq_shape``."""
        law = self.spectrum if self.spectrum is not None else power_law_spectrum(self.spatial, self.decay)
        return math.sqrt(math.prod(self.spatial)) * law

    @property
    def mixing(self) -> Tensor | None:
        """The colour matrix applied, or None when decorrelation is off or a no-op (C != 3)."""
        if not self.decorrelate or self.shape[0] != 3:
            return None
        return self.color_matrix if self.color_matrix is not None else LUCID_COLOR_MATRIX.clone()

    def init(
        self, count: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device
    ) -> Tensor:
        """``(count, *param_shape)`` starts, i.i.d. N(0, sd^2)."""
        return _draw_rows(count, self.param_shape, generator, dtype, torch.device(device), normal_sd=self.sd)

    def _constants(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
        key = (dtype, device)
        if key not in self._cache:
            mixing = self.mixing
            self._cache[key] = (
                self.scale.to(dtype=dtype, device=device),
                (mixing if mixing is not None else torch.eye(self.shape[0], dtype=torch.float64)).to(
                    dtype=dtype, device=device
                ),
            )
        return self._cache[key]

    def image(self, params: Tensor) -> Tensor:
        """``(n, C, *freq_shape, 2) -> (n, C, *spatial)``."""
        _check_params(params, self.param_shape)
        if params.dtype not in (torch.float32, torch.float64):
            raise UnitlensError(f"params must be float32 or float64 for the FFT, got {params.dtype}")
        scale, matrix = self._constants(params.dtype, params.device)
        coefficients = torch.complex(params[..., 0], params[..., 1]) * scale
        dims = tuple(range(-len(self.spatial), 0))
        x = torch.fft.irfftn(coefficients, s=self.spatial, dim=dims) / FOURIER_DIVISOR
        if self.decorrelate and self.shape[0] == 3:
            x = decorrelate_colors(x, matrix)
        if self.box is not None:
            x = _squash(x, self.box)
        return x

    @classmethod
    def from_data(
        cls,
        images: Tensor,
        *,
        decorrelate: bool = True,
        box: tuple[float, float] | None = (0.0, 1.0),
        sd: float = LUCID_SD,
        shape: Sequence[int] | None = None,
    ) -> Fourier:
        """A :class:`Fourier` whose spectrum (and, for 3 channels, colour matrix) is measured on ``images``.

        ``images`` (N, C, L) or (N, C, H, W), e.g. a few hundred training images. The spectrum is measured
        in three steps:

        1. the mean over images and channels of ``|rfftn(x - mean(x))|``, the mean per image and channel
           (only the DC entry depends on the mean, and step 2 replaces it, so the mean is not subtracted);
        2. the DC entry gets the largest other entry: the 1/f law likewise gives the constant term the scale
           of the lowest frequency; the data's DC (their mean brightness, zero once centred) would make it
           far too large or freeze the image's mean brightness;
        3. the whole is divided by its mean over the rfft grid and multiplied by the mean of the 1/f law
           (decay 1, :func:`power_law_spectrum`) over the same grid, so step sizes stay comparable to the
           1/f parameterization's.

        With ``decorrelate`` and 3 channels the colour matrix is :func:`color_matrix_from_data`.

        ``shape``: the image shape the caller needs; it must equal the data's ``(C, *spatial)``. The
        spectrum is measured at the image size and not resampled (resampling a spectrum would change
        what it says about pixel-scale structure), so a mismatch is refused.
        """
        x = _check_images(images)
        data_shape = tuple(x.shape[1:])
        if shape is not None and _as_shape("shape", shape) != data_shape:
            raise UnitlensError(
                f"shape {tuple(shape)} differs from the images' (C, *spatial) {data_shape}: the spectrum "
                "must be measured on images of the size it will generate; resize the images first"
            )
        spatial = data_shape[1:]
        if math.prod(spatial) < 2:
            raise UnitlensError("images must have at least two pixels to measure a spectrum")
        dims = tuple(range(-len(spatial), 0))
        spectrum = torch.fft.rfftn(x, dim=dims).abs().mean(dim=(0, 1))
        dc = (0,) * len(spatial)
        others = spectrum.flatten()[1:]
        if not (others > 0).any():
            raise UnitlensError("images are constant: they have no spectrum to measure")
        spectrum[dc] = others.max()
        spectrum = spectrum / spectrum.mean() * power_law_spectrum(spatial).mean()
        matrix = color_matrix_from_data(x) if decorrelate and data_shape[0] == 3 else None
        return cls(
            data_shape, spectrum=spectrum, sd=sd, decorrelate=decorrelate, box=box, color_matrix=matrix
        )
