"""`unitlens train --data FILE` on a user's own data, and `unitlens visualize` on what it made."""

from __future__ import annotations

import contextlib
import ctypes
import html
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unitlens.checkpoint import load_model
from unitlens.cli import main
from unitlens.data.idx import write_idx
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM
from unitlens.models.sdae import SDAE
from unitlens.results import StackResults
from unitlens.training.likelihood import ais_log_partition, log_likelihood, log_partition_exact

TINY_VIS = ["--units", "3", "--restarts", "2", "--max-steps", "20", "--quiet"]


def _train(data: Path, out: Path, model: str, *extra: str) -> None:
    args = ["train", "--model", model, "--data", str(data), "--out", str(out), "--quiet", *extra]
    assert main(args) == 0


def _meta(path: Path) -> dict[str, object]:
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def test_fashion_shaped_idx_files_train_a_dbn_that_visualize_opens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    images = (rng.random((300, 28, 28)) ** 2 * 255).astype(np.uint8)
    write_idx(tmp_path / "fashion-images-idx3-ubyte", images)
    write_idx(tmp_path / "fashion-labels-idx1-ubyte", (np.arange(300) % 10).astype(np.uint8))
    out = tmp_path / "out"
    with caplog.at_level("INFO", logger="unitlens"):
        _train(tmp_path / "fashion-images-idx3-ubyte", out, "dbn", "--hidden", "16,8", "--examples", "600")
    assert "shape (28, 28), labelled; values unit -> bernoulli visible units" in caplog.text
    model, ckpt = load_model(out / "fashion-dbn")
    assert (
        isinstance(model, DBN) and model.rbm(1).visible == "bernoulli" and model.layer_sizes == [784, 16, 8]
    )
    data = ckpt.meta["data"]
    assert data["image_shape"] == [28, 28] and data["recipe"]["loader"] == "file"
    assert data["recipe"]["path"] == str((tmp_path / "fashion-images-idx3-ubyte").resolve())
    vis = tmp_path / "vis"
    assert main(["visualize", str(out / "fashion-dbn"), "--out", str(vis), *TINY_VIS]) == 0
    results = StackResults.load(vis / "results" / "fashion-dbn.npz")
    assert results.image_shape == (28, 28)
    # the exemplars are rows of the training data, scaled to [0, 1]
    layer = results.layer(1)
    flat = images.reshape(300, -1) / 255.0
    assert layer.exemplar_labels is not None and layer.exemplar_labels.shape == layer.exemplars.shape[:2]
    for unit in range(layer.n_units):
        for k in range(2):
            row = int(np.abs(flat - layer.exemplars[unit, k]).max(axis=1).argmin())
            assert np.abs(flat[row] - layer.exemplars[unit, k]).max() < 1e-6  # a row of the training data
            assert layer.exemplar_labels[unit, k] == row % 10  # with its own label
    assert "fashion — DBN" in html.unescape((vis / "report" / "index.html").read_text(encoding="ascii"))


def test_a_folder_of_small_colour_images_trains_an_sdae_drawn_in_colour(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(12):
        Image.fromarray(rng.integers(0, 256, (10 + k % 3, 9, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    out = tmp_path / "out"
    _train(folder, out, "sdae", "--hidden", "12", "--examples", "300", "--image-size", "8,8")
    model, ckpt = load_model(out / "photos-sdae")
    assert isinstance(model, SDAE) and model.n_inputs == 3 * 8 * 8
    assert ckpt.meta["data"]["image_shape"] == [3, 8, 8]
    vis = tmp_path / "vis"
    assert main(["visualize", str(out / "photos-sdae"), "--out", str(vis), *TINY_VIS]) == 0
    results = StackResults.load(vis / "results" / "photos-sdae.npz")
    assert results.image_shape == (3, 8, 8) and results.channels == 3
    assert results.layer(1).exemplar_labels is None  # unlabelled: no classes


def test_real_valued_vectors_get_gaussian_units_standardised_and_are_drawn_as_bars(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(loc=5.0, scale=3.0, size=(400, 30))
    x[:, 0] = 7.0  # a constant input keeps scale 1
    np.savez(tmp_path / "sensors.npz", x_train=x)
    out = tmp_path / "out"
    _train(tmp_path / "sensors.npz", out, "dbn", "--hidden", "6", "--examples", "800")
    model, ckpt = load_model(out / "sensors-dbn")
    assert isinstance(model, DBN) and model.rbm(1).visible == "gaussian"
    mean, scale = ckpt.tensors["data.pixel_mean"], ckpt.tensors["data.pixel_scale"]
    assert float(mean[0]) == pytest.approx(7.0) and float(scale[0]) == 1.0
    assert float(scale[1:].mean()) == pytest.approx(3.0, rel=0.15)
    assert ckpt.meta["data"]["kind"] == "real" and ckpt.meta["data"]["image_shape"] == [30]
    vis = tmp_path / "vis"
    assert main(["visualize", str(out / "sensors-dbn"), "--out", str(vis), *TINY_VIS]) == 0
    assert StackResults.load(vis / "results" / "sensors-dbn.npz").is_vector


def _known_rbm(weight_scale: float) -> RBM:
    g = torch.Generator().manual_seed(0)
    rbm = RBM(100, 8, generator=g, dtype=torch.float64)
    with torch.no_grad():
        rbm.weight.copy_(torch.randn(8, 100, generator=g, dtype=torch.float64) * weight_scale)
        rbm.hidden_bias.copy_(torch.randn(8, generator=g, dtype=torch.float64) * 0.5)
        rbm.visible_bias.copy_(torch.randn(100, generator=g, dtype=torch.float64) * 0.5)
    return rbm


def test_an_rbm_trained_on_spins_of_a_known_model_nearly_reaches_its_likelihood(tmp_path: Path) -> None:
    # Binary vectors of length 100 from a known RBM (100 visible, 8 hidden: its log Z is exact by
    # enumerating the hidden states), 500 Gibbs sweeps from uniform spins. The true model's held-out
    # log-likelihood bounds what training can reach; independent units (each spin's own mean) ignore every
    # correlation. Measured 2026-12-04 over 5 data seeds x 2 training seeds (CD-1, 200k examples, AIS with
    # 100 chains x 10k temperatures): the trained RBM fell 0.29-0.78 nats per example short of the truth
    # and recovered 55-85% of the truth's gain over independent units. Floors: within 1 nat of the truth,
    # and at least half the gain.
    true = _known_rbm(1.5)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        v = (torch.rand(12_000, 100, generator=g, dtype=torch.float64) < 0.5).double()
        for _ in range(500):
            v = true.gibbs_step(v, g)
    train, test = v[:10_000], v[10_000:]
    np.savez(
        tmp_path / "spins.npz", x_train=train.numpy().astype(np.uint8), x_test=test.numpy().astype(np.uint8)
    )
    out = tmp_path / "out"
    _train(tmp_path / "spins.npz", out, "dbn", "--hidden", "8", "--examples", "200000")
    model, ckpt = load_model(out / "spins-dbn")
    assert isinstance(model, DBN) and ckpt.meta["data"]["kind"] == "binary"
    trained = model.rbm(1).double()
    log_z, _ = ais_log_partition(
        trained, n_chains=100, n_betas=10_000, generator=torch.Generator().manual_seed(2)
    )
    with torch.no_grad():
        reached = float(log_likelihood(trained, test, log_z).mean())
        truth = float(log_likelihood(true, test, log_partition_exact(true)).mean())
    p = train.mean(0).clamp(1e-3, 1 - 1e-3)
    independent = float((test * p.log() + (1 - test) * (1 - p).log()).sum(1).mean())
    assert truth - 1.0 <= reached <= truth + 0.1, (truth, reached, independent)
    assert reached - independent >= 0.5 * (truth - independent), (truth, reached, independent)


def test_bad_data_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["train", "--model", "dbn", "--data", str(tmp_path / "absent.npz"), "--out", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad.npz"
    x = np.ones((10, 4))
    x[3, 1] = np.nan
    np.savez(bad, x_train=x)
    assert main(["train", "--model", "dbn", "--data", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "field 'x_train' holds NaN or inf (first in row 3)" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["train", "--model", "dbn", "--data", str(bad), "--name", "mnist", "--out", str(out)]) == 2
    assert "data.name must be" in capsys.readouterr().err


def _anonymous_memory() -> int | None:
    """Bytes of this process's anonymous memory (RssAnon) once glibc has returned what is free (so only
    live data counts), or None where /proc does not say."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@pytest.mark.skipif(_anonymous_memory() is None, reason="needs /proc/self/status (Linux)")
def test_a_float32_npy_is_streamed_from_the_file_not_copied_into_memory(tmp_path: Path) -> None:
    from unitlens.data.dataset import DataRecipe
    from unitlens.data.recipe import load_data

    path = tmp_path / "big.npy"
    rows, d = 200_000, 250  # 200 MB of float32 in [0, 1], written block by block
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, d))
    rng = np.random.default_rng(3)
    for start in range(0, rows, 10_000):
        array[start : start + 10_000] = rng.random((10_000, d), dtype=np.float32)
    array.flush()
    del array
    before = _anonymous_memory()
    data = load_data(DataRecipe("file", path=str(path), seed=0))
    grown = (_anonymous_memory() or 0) - (before or 0)
    assert data.x_train.shape == (180_000, d) and data.kind == "binary"  # Bernoulli units for [0, 1] values
    # The held-out tenth (20 MB) is in memory, and the checks' blocks pass through it; the 180 MB of
    # training rows stay the file's pages (a copy would add at least 180 MB).
    assert grown < 100 * 2**20, f"anonymous memory grew by {grown / 2**20:.0f} MB"
    assert data.rho == pytest.approx(float(np.sqrt(d / 3)), rel=0.02)  # E||x|| for uniform values
    out = tmp_path / "out"
    _train(path, out, "dbn", "--hidden", "8", "--examples", "2000")
    _, ckpt = load_model(out / "big-dbn")
    assert ckpt.meta["data"]["n_train"] == 180_000


@pytest.mark.skipif(_anonymous_memory() is None, reason="needs /proc/self/status (Linux)")
@pytest.mark.parametrize("kind", ["uint8 pixels", "real values"])
def test_a_memory_map_that_needs_converting_streams_from_a_converted_copy(tmp_path: Path, kind: str) -> None:
    from unitlens.data.dataset import DataRecipe
    from unitlens.data.recipe import load_data

    path = tmp_path / "big.npy"
    rows, d = 200_000, 250
    dtype = np.uint8 if kind == "uint8 pixels" else np.float32
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(rows, d))
    rng = np.random.default_rng(4)
    for start in range(0, rows, 10_000):
        block = rng.integers(0, 256, (10_000, d)) if dtype == np.uint8 else rng.normal(3.0, 2.0, (10_000, d))
        array[start : start + 10_000] = block.astype(dtype)
    array.flush()
    del array
    cache = tmp_path / "out" / "data-cache"
    recipe = DataRecipe("file", path=str(path), seed=0)
    before = _anonymous_memory()
    data = load_data(recipe, cache=cache)
    grown = (_anonymous_memory() or 0) - (before or 0)
    # The training rows (180 MB as float32) are a converted copy's pages; only the held-out tenth is held.
    assert grown < 100 * 2**20, f"anonymous memory grew by {grown / 2**20:.0f} MB"
    copies = list(cache.glob("big-*.f32.npy"))
    assert len(copies) == 1 and copies[0].stat().st_size >= 180_000_000  # 180k rows x 250 x 4 bytes
    first = data.x_train[:5].clone()
    if kind == "uint8 pixels":
        assert data.kind == "binary" and data.pixel_mean is None  # [0, 1] after scaling: Bernoulli units
        source = np.load(path, mmap_mode="r")
        np.testing.assert_allclose(first.numpy(), source[:5].reshape(5, -1) / 255.0, rtol=1e-6)
    else:
        assert data.kind == "real" and data.pixel_mean is not None and data.pixel_scale is not None
        column_means = data.x_train[:20_000].double().mean(0)
        assert float(column_means.abs().max()) < 0.05  # standardised, block by block
        assert float(data.pixel_mean.mean()) == pytest.approx(3.0, abs=0.01)
    # Reused while the source is unchanged; rebuilt (under a new name) when it changes.
    stamp = copies[0].stat().st_mtime_ns
    again = load_data(recipe, cache=cache)
    assert copies[0].stat().st_mtime_ns == stamp and torch.equal(again.x_train[:5], first)
    source = np.load(path, mmap_mode="r+")
    source[0] = source[1]
    source.flush()
    del source
    changed = load_data(recipe, cache=cache)
    assert len(list(cache.glob("big-*.f32.npy"))) == 2
    assert torch.equal(changed.x_train[0], changed.x_train[1])
