from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import unitlens.data.dataset as dataset_module
from unitlens.data.files import load_data_file
from unitlens.data.idx import write_idx
from unitlens.errors import UnitlensError


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_npz_with_every_split_keeps_shapes_labels_and_picks_bernoulli_for_unit_values(tmp_path: Path) -> None:
    r = _rng()
    path = tmp_path / "colour.npz"
    np.savez(
        path,
        x_train=r.random((30, 3, 8, 8)).astype(np.float32),
        y_train=r.integers(0, 4, 30),
        x_test=r.random((7, 3, 8, 8)),
        y_test=r.integers(0, 4, 7),
    )
    data = load_data_file(path)
    assert data.shape == (3, 8, 8) and data.is_image and data.n_inputs == 192
    assert data.x_train.shape == (30, 3, 8, 8) and data.x_test.shape == (7, 3, 8, 8)
    assert data.x_test.dtype == np.float32
    assert data.y_train is not None and data.y_train.dtype == np.int64 and data.y_test is not None
    assert (data.kind, data.visible) == ("unit", "bernoulli")
    assert data.rows(slice(0, 5)).shape == (5, 192)
    assert "30 training and 7 held-out images of shape (3, 8, 8)" in data.describe()


def test_binary_vectors_are_vectors_and_the_held_out_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    x = (_rng(1).random((200, 100)) < 0.3).astype(np.float64)
    x[:, 0] = np.arange(200)  # row ids, to follow the rows through the split
    x[:, 0] /= 200  # keep values in [0, 1): "unit", not "binary"
    path = tmp_path / "spins.npz"
    np.savez(path, x=x, y_train=np.arange(200) % 3)
    a, b = load_data_file(path, seed=5), load_data_file(path, seed=5)
    assert not a.is_image and a.shape == (100,) and a.kind == "unit"
    ids_train = np.round(a.x_train[:, 0] * 200).astype(int)
    ids_test = np.round(a.x_test[:, 0] * 200).astype(int)
    assert len(ids_test) == 20 and set(ids_train).isdisjoint(ids_test)
    assert sorted([*ids_train, *ids_test]) == list(range(200))
    assert a.y_train is not None and list(a.y_train) == list(ids_train % 3)  # labels follow their rows
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(load_data_file(path, seed=6).x_test, a.x_test)
    pure = tmp_path / "binary.npz"
    np.savez(pure, x_train=(x > 0.5).astype(np.int8))
    assert load_data_file(pure).kind == "binary"


def test_real_values_get_gaussian_visible_units(tmp_path: Path) -> None:
    path = tmp_path / "real.npz"
    np.savez(path, x_train=_rng(2).normal(size=(50, 6)))
    data = load_data_file(path)
    assert (data.kind, data.visible) == ("real", "gaussian")


def test_npy_is_memory_mapped_read_in_blocks_and_scaled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_module, "BLOCK_ROWS", 7)  # several blocks, so the block loop is exercised
    x = _rng(3).integers(0, 256, (60, 28, 28), dtype=np.uint8)
    path = tmp_path / "digits.npy"
    np.save(path, x)
    data = load_data_file(path)
    assert isinstance(data.x_train, np.memmap) and data.x_train.shape == (54, 28, 28)
    assert data.kind == "unit" and data.is_image and data.scale == pytest.approx(1 / 255)
    torch.testing.assert_close(
        data.rows(slice(3, 5)), torch.from_numpy(x[3:5].reshape(2, -1) / 255.0).float()
    )
    np.testing.assert_allclose(data.x_test, x[54:] / 255.0, rtol=1e-6)  # a memory map holds out its last rows
    assert "(memory-mapped)" in data.describe()


def test_nan_is_reported_with_its_row_even_in_a_later_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_module, "BLOCK_ROWS", 4)
    x = _rng(4).random((20, 5))
    x[13, 2] = np.nan
    path = tmp_path / "bad.npy"
    np.save(path, x)
    with pytest.raises(UnitlensError, match=r"bad.npy: field 'x_train' holds NaN or inf \(first in row 13\)"):
        load_data_file(path)


def test_idx_of_any_shape_with_its_labels_file(tmp_path: Path) -> None:
    # Fashion-MNIST's layout: 28x28 uint8 images and uint8 labels, MNIST's file names.
    images = _rng(5).integers(0, 256, (40, 28, 28), dtype=np.uint8)
    labels = (np.arange(40) % 10).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    data = load_data_file(tmp_path / "train-images-idx3-ubyte")
    assert data.is_image and data.shape == (28, 28) and data.kind == "unit"
    assert data.y_train is not None and data.y_test is not None
    assert data.n_train + data.x_test.shape[0] == 40
    write_idx(tmp_path / "volumes-idx4-ubyte", images.reshape(40, 4, 7, 28))
    assert load_data_file(tmp_path / "volumes-idx4-ubyte").shape == (4, 7, 28)


def _save_image(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path)


def test_image_folder_grey_or_colour_resized_to_the_size_asked(tmp_path: Path) -> None:
    r = _rng(6)
    _save_image(tmp_path / "a.png", r.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    _save_image(tmp_path / "b.png", r.integers(0, 256, (20, 16, 3), dtype=np.uint8))
    _save_image(tmp_path / "c.png", r.integers(0, 256, (10, 12), dtype=np.uint8))
    with pytest.raises(UnitlensError, match=r"[23] different sizes"):
        load_data_file(tmp_path)
    colour = load_data_file(tmp_path, image_size=(8, 6))
    assert colour.shape == (3, 8, 6) and colour.is_image and colour.kind == "unit"
    assert colour.n_train + colour.x_test.shape[0] == 3
    grey = load_data_file(tmp_path, image_size=(8, 6), channels=1)
    assert grey.shape == (1, 8, 6)
    same = tmp_path / "same"
    same.mkdir()
    pixels = r.integers(0, 256, (5, 7), dtype=np.uint8)
    _save_image(same / "x.png", pixels)
    _save_image(same / "y.png", pixels)
    one = load_data_file(same)
    assert one.shape == (1, 5, 7)  # all grey: grey; their common size is kept
    np.testing.assert_allclose(np.concatenate([one.x_train, one.x_test])[0, 0], pixels / 255.0, rtol=1e-6)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.arange(10.0)}, r"field 'x_train' has shape \(10,\); expected \(n, \.\.\.\)"),
        ({"x_train": np.zeros((4, 3)), "y_train": np.zeros(5, dtype=int)}, r"'y_train' has shape \(5,\)"),
        ({"x_train": np.zeros((4, 3)), "y_train": np.array([0.5, 1, 2, 3])}, "expected integer class labels"),
        ({"x_train": np.zeros((4, 3)), "y_train": -np.ones(4, dtype=int)}, "negative labels"),
        ({"x_train": np.zeros((4, 3)), "x_test": np.zeros((2, 4))}, r"'x_test' has examples of shape \(4,\)"),
        ({"x_train": np.zeros((4, 3)), "y_test": np.zeros(2, dtype=int)}, "'y_test' but no 'x_test'"),
        ({"x_train": np.zeros((4, 3)), "x_test": np.full((2, 3), np.inf)}, "'x_test' holds NaN or inf"),
        ({"x_train": np.array([["a", "b"], ["c", "d"]])}, "has dtype <U1; expected numbers"),
        ({"images": np.zeros((4, 3))}, r"expected an array named 'x_train' \(or 'x'\)"),
    ],
)
def test_bad_npz_fields_get_one_line_errors_naming_file_and_field(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    with pytest.raises(UnitlensError, match=message) as info:
        load_data_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_pickles_unknown_files_and_missing_paths_are_refused(tmp_path: Path) -> None:
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, x_train=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(UnitlensError, match="pickled objects, which unitlens never loads"):
        load_data_file(pickled)
    pickled_npy = tmp_path / "objects.npy"
    np.save(pickled_npy, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(UnitlensError, match="pickled objects"):
        load_data_file(pickled_npy)
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(UnitlensError, match=r"data.csv: expected an \.npz, an \.npy, an IDX file"):
        load_data_file(tmp_path / "data.csv")
    with pytest.raises(UnitlensError, match="no such file or folder"):
        load_data_file(tmp_path / "absent.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(UnitlensError, match=r"cannot read it as an \.npz file"):
        load_data_file(tmp_path / "broken.npz")
    (tmp_path / "broken.npy").write_bytes(b"not an array")
    with pytest.raises(UnitlensError, match=r"cannot read it as an \.npy file \(no \.npy header\)"):
        load_data_file(tmp_path / "broken.npy")


def test_uint8_zeros_and_ones_stay_binary_while_uint8_pixels_are_scaled(tmp_path: Path) -> None:
    spins = (_rng(7).random((30, 16)) < 0.5).astype(np.uint8)
    np.savez(tmp_path / "spins.npz", x_train=spins)
    data = load_data_file(tmp_path / "spins.npz")
    assert data.kind == "binary"
    assert set(np.unique(np.concatenate([data.x_train, data.x_test]))) == {0.0, 1.0}
    pixels = spins * 255
    np.savez(tmp_path / "ink.npz", x_train=pixels)
    ink = load_data_file(tmp_path / "ink.npz")
    assert ink.kind == "binary" and float(ink.x_train.max()) == 1.0


def test_image_folder_cropped_about_the_centre_or_refused_when_too_small(tmp_path: Path) -> None:
    r = _rng(8)
    big = r.integers(0, 256, (10, 12), dtype=np.uint8)  # H x W
    _save_image(tmp_path / "a.png", big)
    _save_image(tmp_path / "b.png", r.integers(0, 256, (9, 9), dtype=np.uint8))
    data = load_data_file(tmp_path, image_size=(6, 8), image_fit="crop", test_fraction=0.5, seed=0)
    rows = np.concatenate([data.x_train, data.x_test])[:, 0]
    expected = big[2:8, 2:10] / 255.0  # the central 6 x 8 pixels
    assert any(np.allclose(r_, expected, atol=1e-6) for r_ in rows)
    with pytest.raises(UnitlensError, match=r"b.png: 9 x 9 pixels \(W x H\) is smaller than the 10 x 6 crop"):
        load_data_file(tmp_path, image_size=(6, 10), image_fit="crop")
    with pytest.raises(UnitlensError, match="image_fit must be one of"):
        load_data_file(tmp_path, image_size=(6, 8), image_fit="stretch")
