"""Bundled photographs and the folder loader: grey conversion against Pillow, file errors named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unitlens.data.images import (
    BUNDLED_PHOTOS,
    bundled_photo_paths,
    image_files,
    load_bundled_photos,
    load_image_folder,
    photo_sources,
    read_grey_image,
)
from unitlens.errors import UnitlensError


def test_the_ten_bundled_photographs_load_as_grey_images_in_unit_range() -> None:
    photos = load_bundled_photos()
    assert len(BUNDLED_PHOTOS) == len(set(BUNDLED_PHOTOS)) == 10
    assert len(photos) == 10
    for name, photo in zip(BUNDLED_PHOTOS, photos, strict=True):
        assert photo.ndim == 2, name
        assert photo.dtype == np.float64, name
        assert min(photo.shape) >= 300, name
        assert max(photo.shape) <= 640, name
        assert photo.min() >= 0.0, name
        assert photo.max() <= 1.0, name
        assert photo.std() > 0.03, name  # a real picture, not a blank
    assert photos[BUNDLED_PHOTOS.index("camera.png")].shape == (512, 512)
    assert photos[BUNDLED_PHOTOS.index("chelsea.png")].shape == (300, 451)


def test_bundled_paths_and_source_name_every_photograph() -> None:
    paths = bundled_photo_paths()
    assert [p.name for p in paths] == list(BUNDLED_PHOTOS)
    assert all(p.is_file() for p in paths)
    source = photo_sources()
    assert all(name in source for name in BUNDLED_PHOTOS)
    assert "scikit-image" in source
    assert "scikit-learn" in source


def test_colour_becomes_the_same_luma_as_pillows_l_conversion() -> None:
    path = bundled_photo_paths()[BUNDLED_PHOTOS.index("astronaut.png")]
    with Image.open(path) as image:
        assert image.mode == "RGB"
        reference = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    # Pillow rounds the luma to 8 bits; unitlens keeps it in float64.
    np.testing.assert_allclose(read_grey_image(path), reference, atol=0.5 / 255 + 1e-9)


def _write(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def test_folder_loader_reads_every_image_sorted_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    rgb = rng.integers(0, 256, (25, 35, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (25, 35, 1), dtype=np.uint8)], axis=2)
    deep = rng.integers(0, 65536, (16, 18), dtype=np.uint16)
    _write(tmp_path / "c_grey.png", grey)
    _write(tmp_path / "a_rgb.PNG", rgb)
    _write(tmp_path / "b_rgba.png", rgba)
    _write(tmp_path / "d_deep.png", deep)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()  # a folder with an image-like name is not a file

    assert [p.name for p in image_files(tmp_path)] == ["a_rgb.PNG", "b_rgba.png", "c_grey.png", "d_deep.png"]
    images = load_image_folder(tmp_path)
    assert [im.shape for im in images] == [(25, 35), (25, 35), (20, 30), (16, 18)]
    luma = (rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0
    np.testing.assert_allclose(images[0], luma, atol=1e-12)
    np.testing.assert_allclose(images[1], luma, atol=1e-12)  # alpha dropped
    np.testing.assert_allclose(images[2], grey / 255.0, atol=1e-12)
    np.testing.assert_allclose(images[3], deep / 65535.0, atol=1e-12)


def test_folder_loader_reads_jpeg_and_float_tiff(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    smooth = np.clip(np.cumsum(rng.normal(0, 4, (40, 40)), axis=1) + 128, 0, 255).astype(np.uint8)
    _write(tmp_path / "photo.jpeg", np.stack([smooth] * 3, axis=2))
    floats = rng.uniform(0, 1, (12, 14)).astype(np.float32)
    _write(tmp_path / "values.tif", floats)
    jpeg, tiff = load_image_folder(tmp_path)
    assert jpeg.shape == (40, 40)
    assert np.abs(jpeg - smooth / 255.0).mean() < 0.02  # lossy, but the same picture
    np.testing.assert_allclose(tiff, floats, atol=1e-7)


def test_missing_or_file_instead_of_folder(tmp_path: Path) -> None:
    with pytest.raises(UnitlensError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(UnitlensError, match="is not a folder"):
        load_image_folder(tmp_path / "file.png")


def test_folder_without_images(tmp_path: Path) -> None:
    with pytest.raises(UnitlensError, match="no image files"):
        load_image_folder(tmp_path)
    (tmp_path / "readme.md").write_text("# nothing")
    with pytest.raises(UnitlensError, match="no image files"):
        load_image_folder(tmp_path)


def test_corrupt_and_truncated_files_are_named(tmp_path: Path) -> None:
    _write(tmp_path / "a_good.png", np.zeros((10, 10), dtype=np.uint8))
    (tmp_path / "b_garbage.png").write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(UnitlensError, match=r"b_garbage\.png"):
        load_image_folder(tmp_path)

    (tmp_path / "b_garbage.png").unlink()
    rng = np.random.default_rng(2)
    _write(tmp_path / "c_full.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
    data = (tmp_path / "c_full.png").read_bytes()
    (tmp_path / "c_full.png").unlink()
    (tmp_path / "c_truncated.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnitlensError, match=r"c_truncated\.png"):
        load_image_folder(tmp_path)
