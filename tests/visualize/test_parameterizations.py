"""Parameterizations: shapes, constraints, reproducible starts, the Fourier maths, colours, data spectra."""

import math
from collections.abc import Callable

import pytest
import torch
from torch.autograd import gradcheck

from unitlens.errors import UnitlensError
from unitlens.visualize.parameterizations import (
    FOURIER_DIVISOR,
    LUCID_COLOR_MATRIX,
    LUCID_COLOR_SVD_SQRT,
    Fourier,
    Parameterization,
    Pixels,
    color_matrix_from_data,
    decorrelate_colors,
    power_law_spectrum,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")
SHAPES = [(1, 28, 28), (3, 32, 32), (5, 16, 16), (2, 64), (3, 15, 17)]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _freq_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    *lead, last = shape[1:]
    return (*lead, last // 2 + 1)


def _random_spectrum(shape: tuple[int, ...], seed: int = 5) -> torch.Tensor:
    return 0.2 + 1.8 * torch.rand(_freq_shape(shape), generator=_gen(seed), dtype=torch.float64)


FACTORIES: dict[str, Callable[[tuple[int, ...]], Parameterization]] = {
    "pixels": lambda s: Pixels(s),
    "pixels-norm": lambda s: Pixels(s, norm=3.0),
    "pixels-box": lambda s: Pixels(s, box=(-1.0, 2.0)),
    "fourier": lambda s: Fourier(s),
    "fourier-linear": lambda s: Fourier(s, decay=1.5, decorrelate=False, box=None),
    "fourier-spectrum": lambda s: Fourier(s, spectrum=_random_spectrum(s)),
}


def _rfftn(x: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    return torch.fft.rfftn(x, dim=tuple(range(-spatial_dims, 0)))


def _bin_classes(spatial: tuple[int, ...]) -> torch.Tensor:
    """Per rfft bin: 0 free, 1 on a self-conjugate line but paired with its mirror, 2 self-conjugate.

    irfftn keeps only the Hermitian part of the coefficients on the first (and, for even sizes, the
    Nyquist) column of the last axis: a self-conjugate bin keeps its real part, a paired bin the mean of
    itself and its mirror's conjugate.
    """
    *lead, last = spatial
    classes = torch.zeros((*lead, last // 2 + 1), dtype=torch.long)
    lines = [0] + ([last // 2] if last % 2 == 0 else [])
    for kx in lines:
        if not lead:
            classes[kx] = 2
            continue
        (height,) = lead
        for ky in range(height):
            classes[ky, kx] = 2 if ky == (-ky) % height else 1
    return classes


def _hermitian_part(z: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """What irfftn keeps of coefficients z (..., *freq_shape), by hand from the bin classes."""
    out = z.clone()
    classes = _bin_classes(spatial)
    for index in (classes > 0).nonzero().tolist():
        if len(spatial) == 1:
            out[..., index[0]] = z[..., index[0]].real.to(z.dtype)
        else:
            ky, kx = index
            mirror = (-ky) % spatial[0]
            out[..., ky, kx] = (z[..., ky, kx] + z[..., mirror, kx].conj()) / 2
    return out


# -- shapes and the protocol ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", FACTORIES)
def test_every_parameterization_makes_images_of_its_shape(kind: str, shape: tuple[int, ...]) -> None:
    param = FACTORIES[kind](shape)
    assert isinstance(param, Parameterization)
    assert param.shape == shape
    for dtype in (torch.float32, torch.float64):
        params = param.init(4, _gen(), dtype, CPU)
        assert params.shape == (4, *param.param_shape) and params.dtype == dtype  # type: ignore[attr-defined]
        images = param.image(params)
        assert images.shape == (4, *shape) and images.dtype == dtype
        assert torch.isfinite(images).all()


def test_fourier_parameters_are_the_rfft_grid_with_real_and_imaginary_parts() -> None:
    assert Fourier((3, 15, 17)).param_shape == (3, 15, 9, 2)
    assert Fourier((3, 16, 16)).param_shape == (3, 16, 9, 2)
    assert Fourier((2, 64)).param_shape == (2, 33, 2)
    assert Fourier((2, 63)).param_shape == (2, 32, 2)
    assert Pixels((3, 15, 17)).param_shape == (3, 15, 17)


@pytest.mark.parametrize("kind", FACTORIES)
def test_rows_are_independent(kind: str) -> None:
    param = FACTORIES[kind]((3, 6, 7))
    params = param.init(5, _gen(), torch.float64, CPU)
    images = param.image(params)
    for i in range(5):
        torch.testing.assert_close(param.image(params[i : i + 1])[0], images[i], rtol=1e-12, atol=1e-12)


# -- Pixels ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_pixels_norm_puts_every_row_on_the_sphere(shape: tuple[int, ...]) -> None:
    param = Pixels(shape, norm=7.5)
    params = param.init(6, _gen(), torch.float64, CPU)
    params[1] *= 1e-3  # a tiny row and a large one land on the same sphere
    params[2] *= 1e4
    norms = torch.linalg.vector_norm(param.image(params).flatten(1), dim=1)
    torch.testing.assert_close(norms, torch.full((6,), 7.5, dtype=torch.float64), rtol=1e-12, atol=0)


def test_pixels_norm_keeps_a_zero_row_finite() -> None:
    image = Pixels((1, 3, 3), norm=2.0).image(torch.zeros(1, 1, 3, 3))
    assert torch.equal(image, torch.zeros(1, 1, 3, 3))


def test_pixels_without_constraint_is_the_identity_and_starts_uniform() -> None:
    param = Pixels((2, 40, 40))
    params = param.init(10, _gen(), torch.float64, CPU)
    assert params.min() >= 0 and params.max() < 1
    # 32,000 U[0, 1) draws: mean 1/2 with standard error 0.0016.
    assert abs(params.mean().item() - 0.5) < 0.01
    assert param.image(params) is params


def test_pixels_norm_starts_uniform_like_the_paper() -> None:
    params = Pixels((1, 28, 28), norm=1.0).init(3, _gen(), torch.float32, CPU)
    assert params.min() >= 0 and params.max() < 1


def test_pixels_box_starts_with_lucids_sd_and_stays_in_the_box() -> None:
    param = Pixels((3, 30, 30), box=(-1.0, 2.0))
    params = param.init(10, _gen(), torch.float64, CPU)
    # 27,000 N(0, 0.01^2) draws: the sample sd is 0.01 within 1%.
    assert abs(params.std().item() - 0.01) < 1e-4
    torch.testing.assert_close(param.image(params), -1.0 + 3.0 * torch.sigmoid(params))
    wild = param.image(params * 1e4)
    assert wild.min() >= -1.0 and wild.max() <= 2.0
    assert wild.min() < -0.99 and wild.max() > 1.99  # the whole box is reachable


# -- reproducible starts --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FACTORIES)
def test_starts_depend_on_the_generator_alone(kind: str) -> None:
    param = FACTORIES[kind]((3, 9, 8))
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    a = param.init(5, _gen(7), torch.float32, CPU)
    assert torch.equal(torch.get_rng_state(), global_state)  # the global generator is not touched
    torch.manual_seed(999)
    b = param.init(5, _gen(7), torch.float32, CPU)
    assert torch.equal(a, b)
    assert not torch.equal(a, param.init(5, _gen(8), torch.float32, CPU))
    # Prefix-consistent: more restarts keep the first ones.
    assert torch.equal(param.init(2, _gen(7), torch.float32, CPU), a[:2])
    assert torch.equal(param.init(9, _gen(7), torch.float32, CPU)[:5], a)
    assert param.init(0, _gen(7), torch.float32, CPU).shape == (0, *param.param_shape)  # type: ignore[attr-defined]


def test_starts_are_drawn_on_the_generators_device_then_moved() -> None:
    param = Fourier((3, 8, 8))
    moved = param.init(2, _gen(3), torch.float32, torch.device("meta"))
    assert moved.device.type == "meta" and moved.shape == (2, *param.param_shape)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_starts_on_cuda_equal_the_cpu_generators_draws() -> None:
    param = Fourier((3, 8, 8))
    on_gpu = param.init(3, _gen(3), torch.float32, torch.device("cuda"))
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu.cpu(), param.init(3, _gen(3), torch.float32, CPU))


def test_fourier_starts_have_lucids_sd() -> None:
    params = Fourier((3, 32, 32)).init(10, _gen(), torch.float64, CPU)
    # 10 * 3 * 32 * 17 * 2 = 32,640 draws: the sample sd is within 1% of 0.01.
    assert abs(params.std().item() - 0.01) < 1e-4
    params = Fourier((3, 32, 32), sd=0.5).init(10, _gen(), torch.float64, CPU)
    assert abs(params.std().item() - 0.5) < 5e-3


# -- the Fourier maths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spatial", [(6, 8), (5, 7), (4, 9), (9,), (10,)], ids=str)
@pytest.mark.parametrize("decay", [1.0, 1.5, 0.0])
def test_fourier_scale_is_lucids_law_by_hand(spatial: tuple[int, ...], decay: float) -> None:
    """scale = sqrt(prod(spatial)) / max(|f|, 1 / max(spatial))^decay, |f| in cycles per pixel."""
    param = Fourier((1, *spatial), decay=decay)
    pixels = math.prod(spatial)
    *lead, last = spatial

    def signed(k: int, n: int) -> float:  # fftfreq: k / n for k < n / 2, else (k - n) / n
        return (k if k <= (n - 1) // 2 else k - n) / n

    expected = torch.empty(_freq_shape((1, *spatial)), dtype=torch.float64)
    for index in torch.cartesian_prod(*[torch.arange(n) for n in expected.shape]).reshape(-1, len(spatial)):
        *ky, kx = index.tolist()
        f2 = (kx / last) ** 2 + sum(signed(k, n) ** 2 for k, n in zip(ky, lead, strict=True))
        expected[tuple(index.tolist())] = math.sqrt(pixels) / max(math.sqrt(f2), 1 / max(spatial)) ** decay
    torch.testing.assert_close(param.scale, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(param.scale, math.sqrt(pixels) * power_law_spectrum(spatial, decay))


@pytest.mark.parametrize(
    ("spatial", "frequency"), [((6, 8), (2, 3)), ((5, 7), (4, 1)), ((11,), (3,))], ids=str
)
def test_fourier_single_coefficient_is_a_cosine_by_hand(
    spatial: tuple[int, ...], frequency: tuple[int, ...]
) -> None:
    """One coefficient a + ib at an interior bin k: x = 2 / N * s_k / 4 * (a cos(theta) - b sin(theta))."""
    param = Fourier((2, *spatial), decorrelate=False, box=None)
    params = torch.zeros(1, *param.param_shape, dtype=torch.float64)
    a, b = 0.7, -0.3
    params[(0, 1, *frequency, 0)] = a
    params[(0, 1, *frequency, 1)] = b
    s = param.scale[frequency].item()
    pixels = math.prod(spatial)
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in spatial], indexing="ij")
    theta = 2 * math.pi * sum(k * g / n for k, g, n in zip(frequency, grids, spatial, strict=True))
    expected = 2 / pixels * s / 4 * (a * torch.cos(theta) - b * torch.sin(theta))
    image = param.image(params)
    torch.testing.assert_close(image[0, 1], expected, rtol=1e-12, atol=1e-15)
    assert torch.equal(image[0, 0], torch.zeros(spatial, dtype=torch.float64))


@pytest.mark.parametrize("spatial", [(6, 8), (5, 7), (16, 9), (12,), (13,)], ids=str)
def test_fourier_image_spectrum_is_scale_times_params_over_4(spatial: tuple[int, ...]) -> None:
    """For Hermitian parameters (those of a real image) rfftn(image) = scale * complex(params) / 4 exactly."""
    param = Fourier((3, *spatial), decay=1.3, decorrelate=False, box=None)
    target = torch.randn(2, 3, *spatial, generator=_gen(), dtype=torch.float64)
    z = _rfftn(target, len(spatial)) * FOURIER_DIVISOR / param.scale
    params = torch.view_as_real(z).contiguous()
    image = param.image(params)
    torch.testing.assert_close(image, target, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        _rfftn(image, len(spatial)), param.scale * torch.view_as_complex(params) / 4, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("spatial", [(6, 8), (5, 7), (12,), (13,)], ids=str)
def test_fourier_keeps_the_hermitian_part_of_redundant_coefficients(spatial: tuple[int, ...]) -> None:
    """For any parameters rfftn(image) = scale * H(complex(params)) / 4, H the Hermitian part by hand."""
    param = Fourier((2, *spatial), decorrelate=False, box=None)
    params = param.init(3, _gen(), torch.float64, CPU) * 100
    z = torch.view_as_complex(params.contiguous())
    expected = param.scale * _hermitian_part(z, spatial) / 4
    torch.testing.assert_close(_rfftn(param.image(params), len(spatial)), expected, rtol=1e-12, atol=1e-12)
    assert (_bin_classes(spatial) == 0).any()  # the free bins, where H changes nothing, exist


@pytest.mark.parametrize("spatial", [(12, 10), (33,)], ids=str)
def test_fourier_images_follow_a_given_spectrum_on_average(spatial: tuple[int, ...]) -> None:
    """E|rfftn(image)| over random starts = sqrt(N) * spectrum * sd / 4 * c, c by bin class.

    The coefficient per bin is complex normal with sd per part sd' = sqrt(N) * spectrum * sd / 4 (halved
    variance on paired redundant bins): its modulus is Rayleigh, mean sd' * sqrt(pi / 2), or for a
    self-conjugate bin a half-normal |N(0, sd'^2)|, mean sd' * sqrt(2 / pi). The tolerance is 5 standard
    errors of each bin's sample mean (coefficient of variation 0.523 Rayleigh, 0.756 half-normal).
    """
    shape = (2, *spatial)
    spectrum = _random_spectrum(shape, seed=11)
    param = Fourier(shape, spectrum=spectrum, decorrelate=False, box=None, sd=0.02)
    count = 2000
    magnitudes = _rfftn(param.image(param.init(count, _gen(), torch.float64, CPU)), len(spatial)).abs()
    mean = magnitudes.mean(dim=(0, 1))
    samples = count * shape[0]
    classes = _bin_classes(spatial)
    factor = torch.tensor([math.sqrt(math.pi / 2), math.sqrt(math.pi / 4), math.sqrt(2 / math.pi)])[classes]
    cv = torch.tensor([math.sqrt(4 / math.pi - 1), math.sqrt(4 / math.pi - 1), math.sqrt(math.pi / 2 - 1)])
    # A paired bin mixes its own and its mirror's coefficient, (s_k Z_k + s_m conj(Z_m)) / 2: it acts with
    # the root mean square of s_k and s_m (the 1 / sqrt(2) is in its class factor). The random spectrum here
    # is not mirror-symmetric, unlike one measured on real images.
    effective = spectrum.clone()
    for ky, kx in (classes == 1).nonzero().tolist():
        effective[ky, kx] = torch.sqrt((spectrum[ky, kx] ** 2 + spectrum[-ky, kx] ** 2) / 2)
    expected = math.sqrt(math.prod(spatial)) * effective * 0.02 / 4 * factor.double()
    relative = (mean / expected - 1).abs()
    assert (relative < 5 * cv.double()[classes] / math.sqrt(samples)).all(), relative.max()


def test_fourier_default_makes_smooth_images() -> None:
    """The 1/f law puts most of a random start's energy at low frequencies (Lucid's point)."""
    param = Fourier((1, 32, 32), decorrelate=False, box=None)
    power = _rfftn(param.image(param.init(50, _gen(), torch.float64, CPU)), 2).abs().pow(2).mean(dim=(0, 1))
    f = torch.sqrt(torch.fft.fftfreq(32)[:, None] ** 2 + torch.fft.rfftfreq(32)[None, :] ** 2)
    assert power[(f > 0) & (f < 0.1)].mean() > 50 * power[f > 0.4].mean()


# -- colours --------------------------------------------------------------------------------------------


def test_lucid_color_matrix_is_the_svd_sqrt_over_its_largest_column_norm() -> None:
    raw = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]]
    largest = max(math.sqrt(sum(raw[r][c] ** 2 for r in range(3))) for c in range(3))
    assert largest == pytest.approx(math.sqrt(0.26**2 + 2 * 0.27**2))
    expected = torch.tensor(raw, dtype=torch.float64) / largest
    torch.testing.assert_close(LUCID_COLOR_SVD_SQRT, torch.tensor(raw, dtype=torch.float64))
    torch.testing.assert_close(LUCID_COLOR_MATRIX, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("spatial", [(4, 5), (7,)], ids=str)
def test_decorrelate_colors_mixes_channels_by_the_matrix(spatial: tuple[int, ...]) -> None:
    x = torch.randn(2, 3, *spatial, generator=_gen(), dtype=torch.float64)
    matrix = torch.randn(3, 3, generator=_gen(1), dtype=torch.float64)
    by_hand = torch.stack([sum(matrix[c, d] * x[:, d] for d in range(3)) for c in range(3)], dim=1)
    torch.testing.assert_close(decorrelate_colors(x, matrix), by_hand, rtol=1e-12, atol=1e-12)
    # Lucid's form: channels-last pixels times the matrix's transpose.
    channels_last = x.movedim(1, -1) @ matrix.T
    torch.testing.assert_close(decorrelate_colors(x, matrix), channels_last.movedim(-1, 1))


def test_fourier_decorrelation_applies_the_matrix_before_the_box() -> None:
    shape = (3, 8, 9)
    params = Fourier(shape).init(3, _gen(), torch.float64, CPU) * 50
    plain = Fourier(shape, decorrelate=False, box=None).image(params)
    mixed = torch.einsum("cd,ndhw->nchw", LUCID_COLOR_MATRIX, plain)
    torch.testing.assert_close(Fourier(shape, box=None).image(params), mixed, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(Fourier(shape).image(params), torch.sigmoid(mixed), rtol=1e-12, atol=1e-12)
    custom = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(
        Fourier(shape, box=None, color_matrix=custom).image(params), plain[:, [1, 2, 0]]
    )


@pytest.mark.parametrize("shape", [(1, 8, 8), (5, 6, 7), (2, 16)], ids=str)
def test_decorrelation_is_a_no_op_without_three_channels(shape: tuple[int, ...]) -> None:
    params = Fourier(shape).init(2, _gen(), torch.float64, CPU) * 50
    torch.testing.assert_close(Fourier(shape).image(params), Fourier(shape, decorrelate=False).image(params))


def test_fourier_box_bounds_the_image() -> None:
    param = Fourier((3, 10, 11), box=(-2.0, 0.5))
    images = param.image(param.init(4, _gen(), torch.float64, CPU) * 1e3)
    assert images.min() >= -2.0 and images.max() <= 0.5
    assert images.min() < -1.9 and images.max() > 0.4


# -- colour matrix and spectrum measured on data --------------------------------------------------------


def _colour_data(mixing: torch.Tensor, images: int = 100, seed: int = 0) -> torch.Tensor:
    z = torch.randn(3, images * 40 * 50, generator=_gen(seed), dtype=torch.float64)
    return (mixing @ z + 0.3).reshape(3, images, 40, 50).transpose(0, 1)


def test_color_matrix_from_data_is_a_normalized_square_root_of_the_covariance() -> None:
    mixing = torch.tensor([[1.0, 0.2, 0.0], [0.5, 0.8, -0.3], [0.1, 0.4, 0.6]], dtype=torch.float64)
    data = _colour_data(mixing)
    matrix = color_matrix_from_data(data)
    pixels = data.transpose(0, 1).reshape(3, -1)
    centred = pixels - pixels.mean(dim=1, keepdim=True)
    cov = centred @ centred.T / (pixels.shape[1] - 1)
    largest = torch.linalg.eigvalsh(cov).max()
    torch.testing.assert_close(matrix @ matrix.T, cov / largest, rtol=1e-10, atol=1e-12)  # exact: sample cov
    gram = matrix.T @ matrix  # orthogonal columns, norms descending, the first of unit norm
    torch.testing.assert_close(gram, torch.diag(torch.diagonal(gram)), rtol=0, atol=1e-12)
    norms = torch.diagonal(gram).sqrt()
    assert norms[0] == pytest.approx(1.0) and norms[0] >= norms[1] >= norms[2]
    assert (matrix[0] >= 0).all()
    # Against the population covariance: 200,000 pixels, entries of the sample covariance within ~1%.
    true = mixing @ mixing.T
    torch.testing.assert_close(matrix @ matrix.T, true / torch.linalg.eigvalsh(true).max(), rtol=0, atol=0.02)


def test_color_matrix_from_data_recovers_lucids_matrix() -> None:
    """Data with Lucid's covariance give back Lucid's matrix, up to sampling and to Lucid's rounding.

    Lucid's printed entries are rounded to 0.01, so its columns are only nearly orthogonal; the recovered
    matrix has exactly orthogonal ones, hence the tolerance of 0.03 (it is 0.015 at this seed).
    """
    matrix = color_matrix_from_data(_colour_data(LUCID_COLOR_SVD_SQRT))
    torch.testing.assert_close(matrix, LUCID_COLOR_MATRIX, rtol=0, atol=0.03)


def _spectrum_class_factor(spatial: tuple[int, ...]) -> torch.Tensor:
    """Mean modulus per bin of a unit complex-normal coefficient after irfftn's Hermitian projection."""
    factors = torch.tensor([math.sqrt(math.pi / 2), math.sqrt(math.pi / 4), math.sqrt(2 / math.pi)])
    return factors.double()[_bin_classes(spatial)]


def test_from_data_on_white_noise_measures_a_flat_spectrum() -> None:
    spatial = (16, 16)
    data = 0.5 + 0.2 * torch.randn(400, 1, *spatial, generator=_gen(), dtype=torch.float64)
    param = Fourier.from_data(data)
    spectrum = param.spectrum
    assert spectrum is not None and spectrum.shape == (16, 9)
    # White noise: E|X_k| is flat but for the real-valued (self-conjugate) bins: sqrt(N) sigma * sqrt(pi) / 2
    # on complex bins, sqrt(N) sigma * sqrt(2 / pi) on real ones, i.e. 1 : 0.9 in the class factors' ratio.
    classes = _bin_classes(spatial)
    shape_by_class = torch.where(classes == 2, math.sqrt(2 / math.pi), math.sqrt(math.pi) / 2).double()
    ratio = (spectrum / shape_by_class).flatten()[1:]  # the DC bin is set by rule, below
    # 400 images per bin: each bin's mean has a relative standard error <= 0.756 / 20 = 0.038.
    assert ((ratio / ratio.mean() - 1).abs() < 5 * 0.756 / 20).all()
    assert spectrum[0, 0] == spectrum.flatten()[1:].max()  # DC: the largest other entry
    # Normalized to the 1/f law's mean over the grid.
    assert spectrum.mean().item() == pytest.approx(power_law_spectrum(spatial).mean().item(), rel=1e-12)
    assert param.color_matrix is None and param.decay == 1.0


@pytest.mark.parametrize(("spatial", "decay"), [((16, 16), 1.0), ((12, 15), 2.0), ((48,), 1.0)], ids=str)
def test_from_data_on_power_law_noise_measures_the_law(spatial: tuple[int, ...], decay: float) -> None:
    """Images drawn from Fourier(decay) give back a spectrum proportional to the law times class factors."""
    source = Fourier((2, *spatial), decay=decay, decorrelate=False, box=None, sd=1.0)
    data = source.image(source.init(300, _gen(), torch.float64, CPU))
    spectrum = Fourier.from_data(data, box=None).spectrum
    assert spectrum is not None
    ratio = (spectrum / (power_law_spectrum(spatial, decay) * _spectrum_class_factor(spatial))).flatten()[1:]
    # 600 samples per bin: 5 standard errors are 5 * 0.756 / sqrt(600) = 0.155 at worst.
    assert ((ratio / ratio.mean() - 1).abs() < 0.155).all()
    f = power_law_spectrum(spatial, 1.0).flatten()[1:]  # decaying: the lowest frequencies are the largest
    assert spectrum.flatten()[1:][f == f.max()].min() > 5 * spectrum.flatten()[1:][f == f.min()].max()


def test_from_data_with_three_channels_measures_the_colours_too() -> None:
    data = _colour_data(LUCID_COLOR_SVD_SQRT, images=20)
    param = Fourier.from_data(data, sd=0.05, box=(-1.0, 1.0), shape=(3, 40, 50))
    assert param.shape == (3, 40, 50) and param.sd == 0.05 and param.box == (-1.0, 1.0)
    assert param.color_matrix is not None
    torch.testing.assert_close(param.color_matrix, color_matrix_from_data(data))
    plain = Fourier.from_data(data, decorrelate=False)
    assert plain.color_matrix is None and not plain.decorrelate
    assert plain.spectrum is not None and param.spectrum is not None
    torch.testing.assert_close(plain.spectrum, param.spectrum)
    images = param.image(param.init(2, _gen(), torch.float32, CPU))
    assert images.shape == (2, 3, 40, 50) and images.min() >= -1 and images.max() <= 1


def test_spectrum_is_copied_on_creation() -> None:
    spectrum = _random_spectrum((1, 6, 6))
    param = Fourier((1, 6, 6), spectrum=spectrum)
    before = param.scale.clone()
    spectrum.mul_(10)
    torch.testing.assert_close(param.scale, before)


# -- differentiability ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "param",
    [
        Pixels((2, 3, 3)),
        Pixels((2, 3, 3), norm=2.0),
        Pixels((1, 5), box=(0.0, 1.0)),
        Fourier((3, 4, 5)),
        Fourier((3, 5, 4), box=None),
        Fourier((1, 5, 4), decay=0.7, decorrelate=False, box=None),
        Fourier((2, 7)),
        Fourier((2, 3, 3), spectrum=_random_spectrum((2, 3, 3))),
    ],
    ids=[
        "pixels",
        "pixels-norm",
        "pixels-box-1d",
        "fourier",
        "fourier-no-box",
        "fourier-grey",
        "fourier-1d",
        "fourier-spectrum",
    ],
)
def test_images_are_differentiable(param: Parameterization) -> None:
    params = param.init(2, _gen(), torch.float64, CPU)
    params = (
        params + 0.3 * torch.randn(params.shape, generator=_gen(1), dtype=torch.float64)
    ).requires_grad_()
    assert gradcheck(param.image, (params,))


# -- invalid settings -----------------------------------------------------------------------------------

GOOD = (3, 8, 8)
INVALID: list[tuple[Callable[[], object], str]] = [
    (lambda: Pixels(()), "shape"),
    (lambda: Fourier((1, 2, 3, 4)), "shape"),
    (lambda: Pixels((0, 4, 4)), "shape"),
    (lambda: Pixels((3, 4.5)), "shape"),  # type: ignore[arg-type]
    (lambda: Pixels((True, 4)), "shape"),
    (lambda: Pixels("abc"), "shape"),  # type: ignore[arg-type]
    (lambda: Pixels(GOOD, norm=0.0), "norm"),
    (lambda: Pixels(GOOD, norm=-1.0), "norm"),
    (lambda: Pixels(GOOD, norm=math.inf), "norm"),
    (lambda: Pixels(GOOD, norm="1"), "norm"),  # type: ignore[arg-type]
    (lambda: Pixels(GOOD, box=(1.0, 0.0)), "box"),
    (lambda: Pixels(GOOD, box=(0.0,)), "box"),  # type: ignore[arg-type]
    (lambda: Pixels(GOOD, box=(0.0, math.nan)), "box"),
    (lambda: Pixels(GOOD, norm=1.0, box=(0.0, 1.0)), "norm and box"),
    (lambda: Fourier((3,)), "shape"),
    (lambda: Fourier(GOOD, sd=0.0), "sd"),
    (lambda: Fourier(GOOD, decay=math.nan), "decay"),
    (lambda: Fourier(GOOD, decorrelate=1), "decorrelate"),  # type: ignore[arg-type]
    (lambda: Fourier(GOOD, box=(2.0, 2.0)), "box"),
    (lambda: Fourier(GOOD, spectrum=torch.ones(8, 8)), "spectrum"),
    (lambda: Fourier(GOOD, spectrum=-torch.ones(8, 5)), "spectrum"),
    (lambda: Fourier(GOOD, spectrum=torch.zeros(8, 5)), "spectrum"),
    (lambda: Fourier(GOOD, spectrum=torch.ones(8, 5, dtype=torch.complex64)), "spectrum"),
    (lambda: Fourier(GOOD, spectrum=torch.full((8, 5), math.nan)), "spectrum"),
    (lambda: Fourier(GOOD, spectrum=[1.0]), "spectrum"),  # type: ignore[arg-type]
    (lambda: Fourier(GOOD, spectrum=torch.ones(8, 5), decay=2.0), "decay"),
    (lambda: Fourier((1, 8, 8), color_matrix=torch.eye(3)), "color_matrix"),
    (lambda: Fourier(GOOD, decorrelate=False, color_matrix=torch.eye(3)), "color_matrix"),
    (lambda: Fourier(GOOD, color_matrix=torch.eye(3)[:, :2]), "color_matrix"),
    (lambda: Pixels(GOOD).init(-1, _gen(), torch.float32, CPU), "count"),
    (lambda: Fourier(GOOD).init(2.0, _gen(), torch.float32, CPU), "count"),  # type: ignore[arg-type]
    (lambda: Pixels(GOOD).image(torch.zeros(2, 3, 8, 7)), "params"),
    (lambda: Fourier(GOOD).image(torch.zeros(2, 3, 8, 8)), "params"),
    (lambda: Fourier(GOOD).image(torch.zeros(2, 3, 8, 5, 2, dtype=torch.float16)), "params"),
    (lambda: decorrelate_colors(torch.zeros(2, 4, 3, 3), torch.eye(3)), "matrix"),
    (lambda: color_matrix_from_data(torch.zeros(2, 3)), "images"),
    (lambda: color_matrix_from_data(torch.ones(2, 3, 4, 4)), "constant"),
    (lambda: Fourier.from_data(torch.ones(4, 1, 8, 8)), "constant"),
    (lambda: Fourier.from_data(torch.ones(4, 1, 1, 1)), "two pixels"),
    (lambda: Fourier.from_data(torch.rand(4, 1, 8, 8), shape=(1, 16, 16)), "shape"),
    (lambda: Fourier.from_data(torch.rand(4, 1, 8, 8), shape=(3, 8, 8)), "shape"),
    (lambda: Fourier.from_data(torch.rand(1, 4, 8, 8, 8)), "images"),
    (lambda: Fourier.from_data(torch.full((2, 1, 4, 4), math.inf)), "images"),
]


@pytest.mark.parametrize(("make", "field"), INVALID, ids=[f"{i}-{f}" for i, (_, f) in enumerate(INVALID)])
def test_invalid_settings_are_refused_naming_the_field(make: Callable[[], object], field: str) -> None:
    with pytest.raises(UnitlensError, match=field):
        make()
