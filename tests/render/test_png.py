"""Tests for unitlens.render.png: round trips, exact 8-bit values, atomic writes and errors."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import torch
from PIL import Image

from unitlens.errors import UnitlensError
from unitlens.render.png import load_png, save_png
from unitlens.render.tiles import tile_images


def test_round_trip_grey_within_one_level(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(0.0, 1.0, size=(7, 5))
    path = save_png(tmp_path / "grey.png", image)
    assert path == tmp_path / "grey.png"
    back = load_png(path)
    assert back.shape == (7, 5)
    assert back.dtype == np.float64
    # Rounding to the nearest of 256 levels: error at most half a level.
    assert np.abs(back - image).max() <= 0.5 / 255 + 1e-12


def test_round_trip_rgb_and_file_is_8_bit_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image = rng.uniform(0.0, 1.0, size=(4, 6, 3)).astype(np.float32)
    path = save_png(tmp_path / "rgb.png", image)
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.mode == "RGB"
        assert picture.size == (6, 4)
    back = load_png(path)
    assert back.shape == (4, 6, 3)
    assert np.abs(back - image).max() <= 1 / 255


def test_exact_levels_written(tmp_path: Path) -> None:
    image = np.array([[0.0, 0.5, 1.0], [1 / 255, 0.25, 254.4 / 255]])
    path = save_png(tmp_path / "levels.png", image)
    with Image.open(path) as picture:
        assert picture.mode == "L"
        raw = np.asarray(picture)
    # round-to-nearest: 127.5 -> 128 (half to even), 63.75 -> 64, 254.4 -> 254
    np.testing.assert_array_equal(raw, [[0, 128, 255], [1, 64, 254]])
    np.testing.assert_array_equal(load_png(path), raw / 255.0)


def test_scale_enlarges_nearest_neighbour(tmp_path: Path) -> None:
    image = np.array([[0.0, 1.0], [1.0, 0.0]])
    back = load_png(save_png(tmp_path / "big.png", image, scale=3))
    assert back.shape == (6, 6)
    np.testing.assert_array_equal(back, np.kron(image, np.ones((3, 3))))


def test_tiled_panel_round_trip_and_torch_input(tmp_path: Path) -> None:
    images = torch.randn(5, 4, 4, generator=torch.Generator().manual_seed(0))
    panel = tile_images(images)
    back = load_png(save_png(tmp_path / "panel.png", torch.from_numpy(panel)))
    assert back.shape == panel.shape
    assert np.abs(back - panel).max() <= 0.5 / 255 + 1e-12


def test_creates_parent_folders_and_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.png"
    save_png(path, np.zeros((2, 2)))
    save_png(path, np.ones((3, 1)))
    np.testing.assert_array_equal(load_png(path), np.ones((3, 1)))
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.png"]


def test_failed_write_keeps_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keep.png"
    save_png(path, np.full((2, 2), 0.5))
    before = path.read_bytes()

    def failing_save(self: Image.Image, fp: IO[bytes], *args: Any, **kwargs: Any) -> None:
        fp.write(b"\x89PNG half written")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(UnitlensError, match=r"keep\.png.*disk full"):
        save_png(path, np.zeros((2, 2)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_failed_first_write_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_save(self: Image.Image, fp: IO[bytes], *args: Any, **kwargs: Any) -> None:
        raise OSError("no space")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(UnitlensError, match="no space"):
        save_png(tmp_path / "new.png", np.zeros((2, 2)))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [1.0 + 1e-9, -1e-9, 3.0, -0.5])
def test_out_of_range_is_an_error_not_clipped(tmp_path: Path, bad: float) -> None:
    image = np.full((2, 2), 0.5)
    image[1, 0] = bad
    with pytest.raises(UnitlensError, match=r"\[0, 1\]"):
        save_png(tmp_path / "bad.png", image)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros(4), "shape"),
        (np.zeros((2, 2, 4)), "shape"),
        (np.zeros((0, 3)), "shape"),
        (np.array([[0.0, np.nan]]), "finite"),
        (np.array([[0.0, np.inf]]), "finite"),
    ],
)
def test_bad_images_rejected(tmp_path: Path, image: np.ndarray, match: str) -> None:
    with pytest.raises(UnitlensError, match=match):
        save_png(tmp_path / "bad.png", image)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("scale", [0, -1, 2.0])
def test_bad_scale_rejected(tmp_path: Path, scale: object) -> None:
    with pytest.raises(UnitlensError, match="factor"):
        save_png(tmp_path / "bad.png", np.zeros((2, 2)), scale=scale)  # type: ignore[arg-type]


def test_load_other_modes(tmp_path: Path) -> None:
    grey16 = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    np.testing.assert_allclose(load_png(tmp_path / "g16.png"), grey16 / 65535.0, rtol=0, atol=1e-15)

    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 7
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    back = load_png(tmp_path / "rgba.png")
    assert back.shape == (2, 3, 3)
    np.testing.assert_array_equal(back[..., 0], 1.0)
    np.testing.assert_array_equal(back[..., 1:], 0.0)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(UnitlensError, match=r"missing\.png"):
        load_png(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(UnitlensError, match=r"junk\.png.*not a readable image"):
        load_png(junk)
