"""Whitening against closed forms: synthetic images with known spectra, and the filter's exact transfer."""

from __future__ import annotations

import numpy as np
import pytest

from unitlens.data.images import bundled_photo_paths, read_grey_image
from unitlens.data.whitening import (
    radial_amplitude_spectrum,
    radial_frequency,
    spectral_slope,
    whiten,
    whitening_filter,
)
from unitlens.errors import UnitlensError

BAND = (0.02, 0.2)


def power_law_image(shape: tuple[int, int], exponent: float, seed: int) -> np.ndarray:
    """Real image with random phases and amplitude exactly f^-exponent at every frequency (0 at f = 0)."""
    rng = np.random.default_rng(seed)
    # The phases of a real white-noise image's FFT are Hermitian-symmetric, so the inverse FFT is real.
    phase = np.angle(np.fft.fft2(rng.standard_normal(shape)))
    f = radial_frequency(shape)
    amplitude = np.zeros(shape)
    amplitude[f > 0] = f[f > 0] ** -exponent
    return np.fft.ifft2(amplitude * np.exp(1j * phase)).real


def expected_log_slope(freqs: np.ndarray, values: np.ndarray, band: tuple[float, float]) -> float:
    sel = (freqs >= band[0]) & (freqs <= band[1])
    return float(np.polyfit(np.log(freqs[sel]), np.log(values[sel]), 1)[0])


def test_radial_frequency_matches_fftfreq_on_a_non_square_grid() -> None:
    f = radial_frequency((6, 4))
    assert f.shape == (6, 4)
    assert f[0, 0] == 0.0
    assert f[1, 0] == pytest.approx(1 / 6)
    assert f[0, 1] == pytest.approx(1 / 4)
    assert f[3, 2] == pytest.approx(np.hypot(0.5, 0.5))


def test_radial_spectrum_peaks_at_a_cosine_frequency() -> None:
    x = np.arange(128)
    image = np.cos(2 * np.pi * 10 / 128 * x)[None, :] * np.ones((128, 1))
    freqs, amplitude = radial_amplitude_spectrum(image)
    assert freqs.shape == amplitude.shape
    assert np.all(np.diff(freqs) > 0)
    assert freqs[np.argmax(amplitude)] == pytest.approx(10 / 128, abs=0.5 / 128)


@pytest.mark.parametrize("exponent", [1.0, 1.5, 0.0])
def test_spectral_slope_recovers_a_power_law(exponent: float) -> None:
    image = power_law_image((256, 256), exponent, seed=1)
    assert spectral_slope(image, *BAND) == pytest.approx(-exponent, abs=0.02)


def test_whitening_flattens_a_one_over_f_image() -> None:
    image = power_law_image((256, 256), 1.0, seed=0)
    before = spectral_slope(image, *BAND)
    white = whiten(image)
    after = spectral_slope(white, *BAND)
    assert before == pytest.approx(-1.0, abs=0.02)
    # After the filter the amplitude is (1/f) * f exp(-(f/f0)^4): flat but for the cut-off's gentle start.
    freqs, _ = radial_amplitude_spectrum(white)
    reference = expected_log_slope(freqs, np.exp(-((freqs / 0.4) ** 4)), BAND)
    assert after == pytest.approx(reference, abs=0.02)
    assert abs(after) < 0.1


def test_whitened_white_noise_has_the_filter_shape() -> None:
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((256, 256))
    f0 = 0.3
    freqs, amplitude = radial_amplitude_spectrum(whiten(noise, f0))
    band = (freqs >= 0.05) & (freqs <= 0.45)
    ratio = amplitude[band] / whitening_filter(freqs[band], f0)
    # Each ring averages >= 80 Rayleigh-distributed amplitudes (relative spread 0.52), so ~6% per ring.
    assert ratio.std() / ratio.mean() < 0.1
    assert expected_log_slope(freqs[band], ratio, (0.05, 0.45)) == pytest.approx(0.0, abs=0.1)


def test_transfer_function_is_exactly_the_filter_on_a_non_square_image() -> None:
    rng = np.random.default_rng(3)
    image = rng.standard_normal((96, 160)) * 3.0 + 7.0
    f0 = 0.25
    normalised = (image - image.mean()) / image.std()
    transfer = np.fft.fft2(whiten(image, f0))[1:, 1:] / np.fft.fft2(normalised)[1:, 1:]
    expected = whitening_filter(radial_frequency(image.shape), f0)[1:, 1:]
    scale = np.vdot(expected, transfer.real) / np.vdot(expected, expected)
    np.testing.assert_allclose(transfer, scale * expected, rtol=1e-8, atol=1e-10)


def test_output_has_zero_mean_unit_variance_and_ignores_brightness_and_contrast() -> None:
    image = power_law_image((64, 80), 1.0, seed=4)
    white = whiten(image)
    assert white.shape == image.shape
    assert white.dtype == np.float64
    assert white.mean() == pytest.approx(0.0, abs=1e-12)
    assert white.std() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(whiten(5.0 * image + 3.0), white, atol=1e-10)


def test_whitening_raises_a_photographs_spectral_slope_by_the_filters_slope() -> None:
    photo = read_grey_image(bundled_photo_paths()[0])  # camera.png, 512x512
    before = spectral_slope(photo, *BAND)
    after = spectral_slope(whiten(photo), *BAND)
    freqs, _ = radial_amplitude_spectrum(photo)
    filter_slope = expected_log_slope(freqs, whitening_filter(freqs), BAND)
    assert before < -0.7  # a natural image: amplitude falls about as 1/f or faster
    assert after - before == pytest.approx(filter_slope, abs=0.03)


@pytest.mark.parametrize(
    ("image", "f0", "match"),
    [
        (np.ones((8, 8)), 0.4, "constant"),
        (np.zeros(16), 0.4, "2-D"),
        (np.full((8, 8), np.nan), 0.4, "NaN"),
        (np.eye(8), 0.0, "f0"),
        (np.eye(8), float("inf"), "f0"),
    ],
)
def test_whiten_rejects_bad_input(image: np.ndarray, f0: float, match: str) -> None:
    with pytest.raises(UnitlensError, match=match):
        whiten(image, f0)


def test_spectral_slope_rejects_bad_bands() -> None:
    image = power_law_image((32, 32), 1.0, seed=5)
    with pytest.raises(UnitlensError, match="f_min"):
        spectral_slope(image, 0.3, 0.2)
    with pytest.raises(UnitlensError, match="rings"):
        spectral_slope(image, 0.1, 0.11)
