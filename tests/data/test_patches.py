"""Patch sampling on images whose pixels encode their coordinates; the patch data set's standardisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unitlens.data.images import BUNDLED_PHOTOS
from unitlens.data.patches import (
    DEFAULT_MARGIN,
    load_patches,
    sample_patch_positions,
    sample_patches,
    whitened_bundled_photos,
)
from unitlens.errors import UnitlensError


def coordinate_image(index: int, height: int, width: int) -> np.ndarray:
    """Pixel (r, c) of image ``index`` holds index * 1e6 + r * 1000 + c (exact in float32: < 2^24)."""
    rows, cols = np.mgrid[:height, :width]
    return (index * 1_000_000 + rows * 1000 + cols).astype(np.float64)


def test_every_patch_is_a_contiguous_window_inside_the_margins() -> None:
    shapes = [(40, 50), (33, 33), (60, 45)]
    images = [coordinate_image(i, h, w) for i, (h, w) in enumerate(shapes)]
    size, margin = 5, 3
    patches = sample_patches(images, size, 3000, torch.Generator().manual_seed(0), margin)
    assert patches.shape == (3000, size * size)
    assert patches.dtype == torch.float32
    corner = patches[:, 0].to(torch.int64)
    index, r0, c0 = corner // 1_000_000, (corner % 1_000_000) // 1000, corner % 1000
    offsets = torch.arange(size)
    expected = (index[:, None, None] * 1_000_000 + (r0[:, None, None] + offsets[None, :, None]) * 1000) + (
        c0[:, None, None] + offsets[None, None, :]
    )
    assert torch.equal(patches.to(torch.int64), expected.reshape(3000, size * size))
    heights = torch.tensor([h for h, _ in shapes])[index]
    widths = torch.tensor([w for _, w in shapes])[index]
    assert bool((r0 >= margin).all() and (c0 >= margin).all())
    assert bool((r0 + size <= heights - margin).all() and (c0 + size <= widths - margin).all())
    assert set(index.tolist()) == {0, 1, 2}


def test_positions_reach_every_valid_corner_uniformly() -> None:
    # One 20x24 image, size 4, margin 3: corners rows 3..13 (11), cols 3..17 (15), 165 windows.
    image, row, col = sample_patch_positions([(20, 24)], 4, 66_000, torch.Generator().manual_seed(1), 3)
    assert bool((image == 0).all())
    assert set(row.tolist()) == set(range(3, 14))
    assert set(col.tolist()) == set(range(3, 18))
    counts = torch.bincount((row - 3) * 15 + (col - 3), minlength=165).double()
    # 400 expected per window, binomial sd about 20: a chi-square over 164 degrees of freedom.
    chi2 = float(((counts - 400.0) ** 2 / 400.0).sum())
    assert 164 - 5 * (2 * 164) ** 0.5 < chi2 < 164 + 5 * (2 * 164) ** 0.5


def test_images_are_chosen_in_proportion_to_their_valid_windows() -> None:
    # Size 2, margin 1: corners per axis = side - 2 * 1 - 2 + 1, so 11 x 11 = 121 and 11 x 31 = 341 windows.
    n = 40_000
    image, _, _ = sample_patch_positions([(14, 14), (14, 34)], 2, n, torch.Generator().manual_seed(2), 1)
    share = float((image == 1).double().mean())
    p = 341 / (121 + 341)
    assert share == pytest.approx(p, abs=5 * (p * (1 - p) / n) ** 0.5)


def test_same_seed_same_patches_different_seed_different() -> None:
    images = [np.random.default_rng(0).standard_normal((50, 60))]
    a = sample_patches(images, 6, 200, torch.Generator().manual_seed(7), 2)
    b = sample_patches(images, 6, 200, torch.Generator().manual_seed(7), 2)
    c = sample_patches(images, 6, 200, torch.Generator().manual_seed(8), 2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_too_small_image_is_named() -> None:
    images = [np.zeros((40, 40)), np.zeros((40, 15))]
    with pytest.raises(UnitlensError, match=r"narrow\.png is 40x15.*at least 16x16"):
        sample_patches(images, 12, 10, torch.Generator(), 2, names=["wide.png", "narrow.png"])
    with pytest.raises(UnitlensError, match="image 1"):
        sample_patches(images, 12, 10, torch.Generator(), 2)


def test_non_finite_or_non_2d_images_are_named() -> None:
    bad = np.zeros((30, 30))
    bad[4, 5] = np.nan
    with pytest.raises(UnitlensError, match=r"b\.png holds NaN"):
        sample_patches([np.zeros((30, 30)), bad], 4, 10, torch.Generator(), 2, names=["a.png", "b.png"])
    with pytest.raises(UnitlensError, match=r"image 0: expected a real \(H, W\) image"):
        sample_patches([np.zeros((30, 30, 3))], 4, 10, torch.Generator(), 2)
    with pytest.raises(UnitlensError, match="at least one image"):
        sample_patches([], 4, 10, torch.Generator(), 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 0}, "size"),
        ({"size": 2.5}, "size"),
        ({"n_train": 1}, "n_train"),
        ({"n_test": -1}, "n_test"),
        ({"seed": -3}, "seed"),
        ({"f0": 0.0}, "f0"),
        ({"margin": -1}, "margin"),
        ({"size": 300}, "chelsea.png"),
    ],
)
def test_load_patches_validates_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UnitlensError, match=match):
        load_patches(**kwargs)  # type: ignore[arg-type]


def test_bundled_patch_dataset_is_standardised_and_reproducible() -> None:
    data = load_patches(n_train=6000, n_test=1000, seed=3)
    assert data.kind == "real"
    assert data.image_shape == (12, 12)
    assert data.y_train is None
    assert data.y_test is None
    assert data.x_train.shape == (6000, 144)
    assert data.x_test.shape == (1000, 144)
    assert all(name in data.source for name in BUNDLED_PHOTOS)
    mean = data.x_train.double().mean(0)
    std = data.x_train.double().std(0, correction=0)
    assert float(mean.abs().max()) < 1e-5
    assert float((std - 1).abs().max()) < 1e-5
    # Held-out patches use the training statistics: close to, not exactly, zero mean and unit variance.
    assert float(data.x_test.double().mean(0).abs().mean()) < 0.1
    assert float(data.x_test.double().std(0).mean()) == pytest.approx(1.0, abs=0.15)
    assert data.rho == pytest.approx(float(torch.linalg.vector_norm(data.x_train.double(), dim=1).mean()))

    # Reference: the same draws straight from the whitened photographs, in whitened-image units.
    generator = torch.Generator().manual_seed(3)
    photos = whitened_bundled_photos()
    raw_train = sample_patches(photos, 12, 6000, generator, DEFAULT_MARGIN)
    raw_test = sample_patches(photos, 12, 1000, generator, DEFAULT_MARGIN)
    torch.testing.assert_close(data.to_original_units(data.x_train), raw_train, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(data.to_original_units(data.x_test), raw_test, atol=1e-5, rtol=1e-5)
    assert not torch.equal(raw_train[:1000], raw_test)

    again = load_patches(n_train=6000, n_test=1000, seed=3)
    assert torch.equal(again.x_train, data.x_train)
    assert torch.equal(again.x_test, data.x_test)
    other = load_patches(n_train=6000, n_test=1000, seed=4)
    assert not torch.equal(other.x_train, data.x_train)


def test_whitened_photographs_are_cached_and_read_only() -> None:
    first = whitened_bundled_photos()
    second = whitened_bundled_photos(0.4)
    assert all(a is b for a, b in zip(first, second, strict=True))
    assert not first[0].flags.writeable
    assert first[0].std() == pytest.approx(1.0)


def test_size_twenty_patches() -> None:
    data = load_patches(size=20, n_train=2000, n_test=100)
    assert data.image_shape == (20, 20)
    assert data.x_train.shape == (2000, 400)
    assert data.pixel_mean is not None
    assert data.pixel_mean.shape == (400,)
    assert data.pixel_scale is not None
    assert data.pixel_scale.shape == (400,)


def test_patches_from_a_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for name in ("one.png", "two.png"):
        smooth = np.cumsum(np.cumsum(rng.standard_normal((70, 80)), 0), 1)
        scaled = (smooth - smooth.min()) / np.ptp(smooth) * 255
        Image.fromarray(scaled.astype(np.uint8)).save(tmp_path / name)
    data = load_patches(tmp_path, size=8, n_train=500, n_test=50, seed=1)
    assert data.x_train.shape == (500, 64)
    assert data.x_test.shape == (50, 64)
    assert str(tmp_path.resolve()) in data.source
    assert "one.png" in data.source
    assert float(data.x_train.double().std(0, correction=0).sub(1).abs().max()) < 1e-5

    Image.fromarray(np.zeros((30, 90), dtype=np.uint8) + 7).save(tmp_path / "three_flat.png")
    with pytest.raises(UnitlensError, match=r"three_flat\.png.*constant"):
        load_patches(tmp_path, size=8, n_train=500, n_test=50)
    (tmp_path / "three_flat.png").unlink()
    Image.fromarray(rng.integers(0, 256, (30, 90), dtype=np.uint8)).save(tmp_path / "zz_small.png")
    with pytest.raises(UnitlensError, match=r"zz_small\.png is 30x90"):
        load_patches(tmp_path, size=8, n_train=500, n_test=50)
