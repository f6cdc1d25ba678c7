"""Whitening of natural images with the filter of Olshausen & Field (1996), and spectrum measurements.

Natural images have an amplitude spectrum that falls roughly as 1/f (f the spatial frequency): most of
their variance sits in the lowest frequencies, so a model trained on raw patches spends its capacity on
smooth brightness gradients. Olshausen & Field multiply the image's Fourier transform by

    R(f) = f * exp(-(f / f0)^4).

The factor f cancels the 1/f fall-off and flattens the spectrum (whitening); the factor exp(-(f/f0)^4) is
close to 1 below f0 and cuts the highest frequencies, where sensor noise and aliasing of the rectangular
sampling grid live (and where the grid is anisotropic: frequencies above 0.5 cycles/pixel exist only in
the diagonal corners of the 2-D spectrum). The paper used f0 = 200 cycles/picture on 512-pixel images,
that is 200 / 512 = 0.39 cycles/pixel; unitlens states f0 in cycles per pixel so it applies to images of
any size, with default 0.4.

Frequencies here are in cycles per pixel, as ``np.fft.fftfreq`` gives them (from -0.5 to 0.5 along each
axis). The FFT treats the image as periodic, so the whitened image has artefacts within a few pixels of
its borders (the filter responds to the jump between opposite edges); ``patches.sample_patches`` keeps a
margin away from the borders for that reason. This is numpy code: it runs once per image, not in a
training loop.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from unitlens.errors import UnitlensError

DEFAULT_F0 = 0.4
"""Cut-off of the whitening filter in cycles/pixel (the paper's 200 cycles/picture on 512 pixels)."""


def _check_image(image: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(image)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise UnitlensError(f"{what} expects a 2-D (H, W) image with H, W >= 2, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise UnitlensError(f"{what} expects a real-valued image, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise UnitlensError(f"{what}: the image holds NaN or infinite values")
    return x


def radial_frequency(shape: tuple[int, int]) -> np.ndarray:
    """(H, W) radial frequency sqrt(fy^2 + fx^2), cycles/pixel, of each entry of ``np.fft.fft2``'s output."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return np.hypot(fy, fx)


def whitening_filter(f: np.ndarray, f0: float = DEFAULT_F0) -> np.ndarray:
    """R(f) = f exp(-(f/f0)^4), elementwise on frequencies ``f`` in cycles/pixel (any shape)."""
    return f * np.exp(-((f / f0) ** 4))


def whiten(image: np.ndarray, f0: float = DEFAULT_F0) -> np.ndarray:
    """Whiten a grey image with the Olshausen & Field filter.

    The image is first normalised to zero mean and unit variance (so the result does not depend on its
    brightness or contrast), its 2-D FFT is multiplied by R(f) = f exp(-(f/f0)^4), and the real part of
    the inverse FFT is scaled to unit variance. R(0) = 0, so the result has zero mean.

    Args:
        image: (H, W) real image, H, W >= 2, not constant.
        f0: cut-off frequency in cycles/pixel, > 0 (default 0.4, the paper's 200 cycles/picture at 512 px).

    Returns:
        (H, W) float64 whitened image with zero mean and unit variance.

    Raises:
        UnitlensError: the image is not 2-D, holds non-finite values or is constant, or f0 is not > 0.
    """
    x = _check_image(image, "whiten")
    if isinstance(f0, bool) or not isinstance(f0, numbers.Real) or not math.isfinite(f0) or f0 <= 0:
        raise UnitlensError(f"whiten: f0 must be a finite number > 0 (cycles/pixel), got {f0!r}")
    std = x.std()
    # A constant image has nothing to whiten; relative test because pixel scales vary.
    if std <= 1e-12 * max(1.0, float(np.abs(x).max())):
        raise UnitlensError("whiten: the image is constant (zero variance), there is nothing to whiten")
    x = (x - x.mean()) / std
    filtered = np.fft.ifft2(np.fft.fft2(x) * whitening_filter(radial_frequency(x.shape), f0)).real
    filtered -= filtered.mean()  # zero up to rounding already, since R(0) = 0
    out_std = filtered.std()
    if out_std == 0.0:  # only if every frequency the filter passes is absent, e.g. a 2x2 checkerboard
        raise UnitlensError("whiten: the image has no energy in the filter's pass band")
    return filtered / out_std


def radial_amplitude_spectrum(image: np.ndarray, n_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged amplitude spectrum |FFT| of an image, in rings of equal width.

    The mean is removed first (it only affects f = 0). Rings cover radial frequencies (0, 0.5] cycles/pixel;
    the corners of the spectrum beyond 0.5 are left out because only diagonal directions reach them.

    Args:
        image: (H, W) real image.
        n_bins: number of rings; default min(H, W) // 2, rings one frequency step wide.

    Returns:
        freqs: (k,) mean radial frequency of the entries in each non-empty ring, increasing.
        amplitude: (k,) mean |FFT| over each ring.
    """
    x = _check_image(image, "radial_amplitude_spectrum")
    if n_bins is None:
        n_bins = min(x.shape) // 2
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise UnitlensError(f"radial_amplitude_spectrum: n_bins must be an int >= 1, got {n_bins!r}")
    amplitude = np.abs(np.fft.fft2(x - x.mean())).ravel()
    f = radial_frequency(x.shape).ravel()
    keep = (f > 0) & (f <= 0.5)
    f, amplitude = f[keep], amplitude[keep]
    ring = np.minimum((f / 0.5 * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(ring, minlength=n_bins)
    nonempty = counts > 0
    freqs = np.bincount(ring, weights=f, minlength=n_bins)[nonempty] / counts[nonempty]
    mean_amplitude = np.bincount(ring, weights=amplitude, minlength=n_bins)[nonempty] / counts[nonempty]
    return freqs, mean_amplitude


def spectral_slope(image: np.ndarray, f_min: float, f_max: float) -> float:
    """Least-squares slope of log amplitude against log frequency over rings with f_min <= f <= f_max.

    About -1 for natural images (amplitude ~ 1/f), about 0 for white noise or a whitened image.

    Raises:
        UnitlensError: the band is empty or not inside (0, 0.5], or holds fewer than 3 rings.
    """
    if not (0 < f_min < f_max <= 0.5):
        raise UnitlensError(
            f"spectral_slope: need 0 < f_min < f_max <= 0.5 cycles/pixel, got f_min={f_min}, f_max={f_max}"
        )
    freqs, amplitude = radial_amplitude_spectrum(image)
    band = (freqs >= f_min) & (freqs <= f_max) & (amplitude > 0)
    if band.sum() < 3:
        raise UnitlensError(
            f"spectral_slope: only {int(band.sum())} frequency rings in [{f_min}, {f_max}] for an image of "
            f"shape {np.shape(image)}; widen the band or use a larger image"
        )
    slope, _ = np.polyfit(np.log(freqs[band]), np.log(amplitude[band]), 1)
    return float(slope)
