"""Colour photographs: the bundled ten in RGB, any Pillow mode as (H, W, 3), grey replicated, no alpha."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unitlens.data.images import (
    BUNDLED_PHOTOS,
    bundled_photo_paths,
    load_bundled_photos,
    load_bundled_photos_rgb,
    read_grey_image,
    read_rgb_image,
)
from unitlens.errors import UnitlensError

GREY_PHOTOS = {"camera.png", "grass.png", "gravel.png", "brick.png"}


def test_the_ten_bundled_photographs_load_in_colour_in_the_grey_loaders_order() -> None:
    photos = load_bundled_photos_rgb()
    greys = load_bundled_photos()
    assert len(photos) == len(BUNDLED_PHOTOS) == 10
    for name, photo, grey in zip(BUNDLED_PHOTOS, photos, greys, strict=True):
        assert photo.dtype == np.float64, name
        assert photo.shape == (*grey.shape, 3), name
        assert photo.min() >= 0.0, name
        assert photo.max() <= 1.0, name
        # The same picture: its luma is the grey loader's image (which computes luma from 8-bit RGB).
        np.testing.assert_allclose(photo @ np.array([0.299, 0.587, 0.114]), grey, atol=1e-12, err_msg=name)
        spread = np.ptp(photo, axis=2).max()  # largest difference between channels anywhere
        if name in GREY_PHOTOS:
            assert spread == 0.0, name
        else:
            assert spread > 0.2, name  # a colour photograph, not grey stored as RGB
    assert photos[BUNDLED_PHOTOS.index("chelsea.png")].shape == (300, 451, 3)


def test_rgb_pixels_are_pillows_divided_by_255() -> None:
    path = bundled_photo_paths()[BUNDLED_PHOTOS.index("astronaut.png")]
    with Image.open(path) as image:
        reference = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    np.testing.assert_array_equal(read_rgb_image(path), reference)


def _pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_alpha_is_dropped(tmp_path: Path) -> None:
    rgba = _pixels((5, 7, 4))
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_rgb_image(tmp_path / "a.png"), rgba[:, :, :3] / 255.0)


def test_grey_with_or_without_alpha_is_replicated_to_three_channels(tmp_path: Path) -> None:
    grey = _pixels((6, 4))
    Image.fromarray(grey, mode="L").save(tmp_path / "l.png")
    Image.fromarray(np.stack([grey, _pixels((6, 4), 1)], axis=2), mode="LA").save(tmp_path / "la.png")
    for name in ("l.png", "la.png"):
        rgb = read_rgb_image(tmp_path / name)
        assert rgb.shape == (6, 4, 3)
        for channel in range(3):
            np.testing.assert_array_equal(rgb[:, :, channel], grey / 255.0)


def test_sixteen_bit_grey_keeps_its_scale(tmp_path: Path) -> None:
    grey = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "deep.png")
    rgb = read_rgb_image(tmp_path / "deep.png")
    np.testing.assert_allclose(rgb, np.repeat((grey / 65535.0)[:, :, None], 3, axis=2))
    np.testing.assert_allclose(rgb[:, :, 0], read_grey_image(tmp_path / "deep.png"))


def test_palette_and_one_bit_images_become_their_colours(tmp_path: Path) -> None:
    rgb = _pixels((8, 8, 3))
    palette = Image.fromarray(rgb, mode="RGB").quantize(colors=16)
    palette.save(tmp_path / "p.png")
    expected = np.asarray(palette.convert("RGB"), dtype=np.float64) / 255.0
    np.testing.assert_array_equal(read_rgb_image(tmp_path / "p.png"), expected)
    bits = _pixels((4, 4)) > 127
    Image.fromarray(bits).save(tmp_path / "bits.png")
    np.testing.assert_array_equal(
        read_rgb_image(tmp_path / "bits.png"), np.repeat(bits[:, :, None], 3, 2) * 1.0
    )


def test_jpeg_colour_is_read(tmp_path: Path) -> None:
    flat = np.zeros((16, 16, 3), dtype=np.uint8)
    flat[...] = (200, 40, 90)
    Image.fromarray(flat).save(tmp_path / "c.jpg", quality=95)
    rgb = read_rgb_image(tmp_path / "c.jpg")
    assert rgb.shape == (16, 16, 3)
    np.testing.assert_allclose(rgb.mean(axis=(0, 1)), np.array([200, 40, 90]) / 255.0, atol=4 / 255)


def test_files_that_are_not_images_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(UnitlensError, match=r"junk\.png"):
        read_rgb_image(junk)
    with pytest.raises(UnitlensError, match=r"absent\.png"):
        read_rgb_image(tmp_path / "absent.png")
