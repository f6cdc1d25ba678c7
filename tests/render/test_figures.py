"""Tests for unitlens.render.figures on synthetic results whose every tile identifies itself.

Unit k's image is a one-hot pattern: its brightest pixel sits at flat index k (and, for restarts and
samples, a second marker encodes the restart or sample number), so decoding the argmax of each tile of a
rendered panel tells which unit, restart or sample landed in which grid cell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from unitlens.errors import UnitlensError
from unitlens.render.figures import (
    PLACEHOLDER,
    FigureImage,
    figure1,
    figure2,
    figure3,
    figure4,
    layer_figure,
    read_manifest,
    read_training_log,
    selectivity_figure,
    write_figures,
)
from unitlens.render.png import load_png, save_png
from unitlens.render.tiles import BORDER_VALUE, scale_tile, upscale
from unitlens.results import StackResults, save_arrays

SHAPE = (6, 6)  # 36 pixels: room for one marker position per unit of a 36-unit panel


def _e(d: int, *pairs: tuple[int, float]) -> np.ndarray:
    v = np.zeros(d, dtype=np.float32)
    for index, value in pairs:
        v[index % d] = value
    return v


def make_stack(
    n_units: int = 36,
    restarts: int = 9,
    n_samples: int = 4,
    layers: tuple[int, ...] = (1, 2, 3),
    shape: tuple[int, int] = SHAPE,
    samples: bool = True,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Results arrays (format of ``unitlens.results``, every required key) with self-identifying images.

    - filters[k]: +1 at k, -1 at k+1 (signed);
    - am_x[k, r]: +1 at k for the best restart, else +1 at k+1+r, with -0.25 at k+20 (signed);
    - samples[k, s]: 1 at k, 0.5 at k+10+s (unsigned); samples_mean[k]: 0.8 at k, 0.2 elsewhere;
    - lc[k]: +1 at k, -0.5 at k+2.
    """
    rng = np.random.default_rng(seed)
    d = shape[0] * shape[1]
    out: dict[str, np.ndarray] = {"image_shape": np.array(shape, dtype=np.int64)}
    for j in layers:
        p = f"layer{j}/"
        activation = rng.permutation(n_units * restarts).reshape(n_units, restarts).astype(np.float32)
        best = activation.argmax(axis=1)
        am_x = np.stack(
            [
                np.stack(
                    [
                        _e(d, (k, 1.0), (k + 20, -0.25))
                        if r == best[k]
                        else _e(d, (k + 1 + r, 1.0), (k + 20, -0.25))
                        for r in range(restarts)
                    ]
                )
                for k in range(n_units)
            ]
        )
        out[p + "units"] = np.arange(n_units, dtype=np.int64) + 100 * j
        out[p + "am_x"] = am_x
        out[p + "am_activation"] = activation
        out[p + "am_best"] = best.astype(np.int64)
        out[p + "am_steps"] = rng.integers(3, 8, size=(n_units, restarts)).astype(np.int64)
        out[p + "am_converged"] = np.ones((n_units, restarts), dtype=np.int64)
        out[p + "am_history"] = np.cumsum(rng.random((8, n_units, restarts)), axis=0).astype(np.float32)
        out[p + "lc"] = np.stack([_e(d, (k, 1.0), (k + 2, -0.5)) for k in range(n_units)])
        out[p + "exemplars"] = rng.uniform(0.0, 1.0, size=(n_units, 2, d)).astype(np.float32)
        out[p + "exemplar_activations"] = rng.normal(size=(n_units, 2)).astype(np.float32)
        sel = rng.uniform(0.0, 0.9, size=(min(n_units, 36), min(n_units, 36))).astype(np.float32)
        np.fill_diagonal(sel, 1.0)
        out[p + "selectivity"] = sel
        out[p + "restart_mean_cosine"] = rng.uniform(0.8, 1.0, size=n_units).astype(np.float32)
        out[p + "energy_concentration"] = rng.uniform(0.1, 0.9, size=n_units).astype(np.float32)
        out[p + "lc_vs_am"] = rng.uniform(-1.0, 1.0, size=n_units).astype(np.float32)
        if j == 1:
            out[p + "filters"] = np.stack([_e(d, (k, 1.0), (k + 1, -1.0)) for k in range(n_units)])
        elif samples:
            out[p + "samples"] = np.stack(
                [
                    np.stack([_e(d, (k, 1.0), (k + 10 + s, 0.5)) for s in range(n_samples)])
                    for k in range(n_units)
                ]
            )
            out[p + "samples_mean"] = np.stack(
                [np.full(d, 0.2, np.float32) + _e(d, (k, 0.6)) for k in range(n_units)]
            )
    return out


def res(arrays: dict[str, np.ndarray]) -> StackResults:
    """The validated results of ``arrays`` (what ``StackResults.load`` gives for the saved file)."""
    return StackResults.from_arrays(arrays)


def tiles(
    panel: np.ndarray, grid: tuple[int, int], shape: tuple[int, int] = SHAPE, scale: int = 1
) -> np.ndarray:
    """Cut a ``tile_images`` panel (enlarged by ``scale``) into its tiles ``(rows, cols, h, w)``.

    Also checks the layout: the panel size and that every border pixel is white.
    """
    rows, cols = grid
    h, w = shape
    assert panel.shape == ((rows * (h + 1) + 1) * scale, (cols * (w + 1) + 1) * scale)
    small = panel[::scale, ::scale]
    np.testing.assert_array_equal(upscale(small, scale), panel)
    border = np.ones(small.shape, dtype=bool)
    out = np.empty((rows, cols, h, w))
    for r in range(rows):
        for c in range(cols):
            top, left = 1 + r * (h + 1), 1 + c * (w + 1)
            out[r, c] = small[top : top + h, left : left + w]
            border[top : top + h, left : left + w] = False
    assert (small[border] == BORDER_VALUE).all()
    return out


def argmax_grid(t: np.ndarray) -> np.ndarray:
    """The flat index of each tile's brightest pixel, ``(rows, cols)``."""
    return t.reshape(*t.shape[:2], -1).argmax(axis=2)


# ------------------------------------------------------------------------------------------ Figure 1


def test_figure1_layout_tiles_and_borders() -> None:
    dbn, sdae = res(make_stack(seed=1)), res(make_stack(seed=2))
    fig = figure1(dbn, sdae)
    assert isinstance(fig, FigureImage)
    assert fig.missing == ()
    assert fig.image.ndim == 2 and fig.image.min() >= 0.0 and fig.image.max() <= 1.0
    expected_units = np.arange(36).reshape(6, 6)
    for model in ("dbn", "sdae"):
        for layer in (1, 2, 3):
            t = tiles(fig.crop(f"{model}/layer{layer}"), (6, 6))
            np.testing.assert_array_equal(argmax_grid(t), expected_units)
    # Layer-1 filters are signed: +1 white, -1 black, zero mid grey, each tile on its own scale.
    t = tiles(fig.crop("dbn/layer1"), (6, 6)).reshape(36, 36)
    for k in range(36):
        want = np.full(36, 0.5)
        want[k], want[(k + 1) % 36] = 1.0, 0.0
        np.testing.assert_array_equal(t[k], want)
    # Panels: DBN above SDAE, layers left to right.
    b = fig.boxes
    assert b["dbn/layer1"][0] < b["sdae/layer1"][0] and b["dbn/layer1"][1] == b["sdae/layer1"][1]
    assert b["dbn/layer1"][1] < b["dbn/layer2"][1] < b["dbn/layer3"][1] < b["restarts/0"][1]
    # np.asarray / save_png accept the figure as an image.
    np.testing.assert_array_equal(np.asarray(fig), fig.image)


def test_figure1_scale_enlarges_every_panel_exactly() -> None:
    dbn, sdae = res(make_stack(seed=1)), res(make_stack(seed=2))
    small, big = figure1(dbn, sdae), figure1(dbn, sdae, scale=3)
    for name in small.boxes:
        np.testing.assert_array_equal(big.crop(name), upscale(small.crop(name), 3))
    tiles(big.crop("sdae/layer2"), (6, 6), scale=3)


def test_figure1_restarts_sorted_by_activation() -> None:
    sdae = make_stack(seed=3)
    fig = figure1(res(make_stack(seed=4)), res(sdae), restart_units=(5, 0, 17, 35))
    activation = sdae["layer3/am_activation"]
    best = sdae["layer3/am_best"]
    for k, unit in enumerate((5, 0, 17, 35)):
        pos = argmax_grid(tiles(fig.crop(f"restarts/{k}"), (3, 3))).ravel()
        # Decode the restart from the marker: best restart at the unit's index, restart r at unit + 1 + r.
        shown = [best[unit] if p == unit else (p - unit - 1) % 36 for p in pos]
        np.testing.assert_array_equal(shown, np.argsort(-activation[unit]))
        assert shown[0] == best[unit]


def test_figure1_without_sdae_keeps_dbn_and_labels_the_gap() -> None:
    dbn = res(make_stack(seed=5))
    fig = figure1(dbn, None)
    assert set(fig.missing) == {"sdae/layer1", "sdae/layer2", "sdae/layer3", "restarts"}
    for layer in (1, 2, 3):
        np.testing.assert_array_equal(
            argmax_grid(tiles(fig.crop(f"dbn/layer{layer}"), (6, 6))), np.arange(36).reshape(6, 6)
        )
    gap = fig.crop("sdae/layer2")
    assert gap.shape == fig.crop("dbn/layer2").shape  # same size as the panel it stands for
    # Mostly the placeholder grey, with some darker text pixels.
    assert np.median(gap) == pytest.approx(PLACEHOLDER, abs=1 / 255)
    assert gap.min() < PLACEHOLDER - 0.2


def test_figure1_missing_layer_and_missing_dbn() -> None:
    dbn = {k: v for k, v in make_stack(seed=6).items() if not k.startswith("layer3/")}
    fig = figure1(res(dbn), res(make_stack(seed=7)))
    assert fig.missing == ("dbn/layer3",)
    np.testing.assert_array_equal(
        argmax_grid(tiles(fig.crop("sdae/layer3"), (6, 6))), np.arange(36).reshape(6, 6)
    )
    fig = figure1(None, res(make_stack(seed=7)))
    assert set(fig.missing) == {"dbn/layer1", "dbn/layer2", "dbn/layer3"}
    with pytest.raises(UnitlensError, match="no results"):
        figure1(None, None)


def test_figure2_shows_144_units_or_fewer() -> None:
    shape = (12, 13)  # 156 pixels: a marker position for each of 150 units
    many = res(make_stack(n_units=150, restarts=2, layers=(1, 2), shape=shape, samples=False, seed=8))
    fig = figure2(many, None)
    t = tiles(fig.crop("dbn/layer2"), (12, 12), shape)
    np.testing.assert_array_equal(argmax_grid(t), np.arange(144).reshape(12, 12))
    few = res(make_stack(n_units=20, restarts=2, layers=(1, 2), shape=shape, samples=False, seed=9))
    fig = figure2(few, None)
    # 20 units: 5 columns, 4 rows.
    t = tiles(fig.crop("dbn/layer1"), (4, 5), shape)
    np.testing.assert_array_equal(argmax_grid(t), np.arange(20).reshape(4, 5))
    # Restarts of a unit beyond the studied ones are left out, not an error.
    fig = layer_figure(few, few, n_units=144, layers=(1, 2), restart_layer=2, restart_units=(1, 30))
    assert "restarts/0" in fig.boxes and "restarts/1" not in fig.boxes


def test_wrong_shapes_raise_naming_the_key() -> None:
    # The figures take validated results: a wrong shape is refused when the results are made or loaded.
    good = make_stack(seed=10)
    bad = dict(good, **{"layer2/am_x": good["layer2/am_x"][:, :, :30]})
    with pytest.raises(UnitlensError, match="layer2/am_x"):
        res(bad)
    bad = dict(good, **{"layer3/am_best": np.full(36, 9, dtype=np.int64)})
    with pytest.raises(UnitlensError, match="layer3/am_best"):
        res(bad)
    bad = {k: v for k, v in good.items() if k != "image_shape"}
    with pytest.raises(UnitlensError, match="image_shape"):
        res(bad)
    bad = dict(good, **{"layer1/filters": good["layer1/filters"][:, :35]})
    with pytest.raises(UnitlensError, match="layer1/filters"):
        res(bad)
    with pytest.raises(UnitlensError, match="scale"):
        figure1(res(good), None, scale=0)


# ------------------------------------------------------------------------------------------ selectivity


def test_selectivity_inset_pixels_equal_the_matrix() -> None:
    stack = make_stack(seed=11)
    m = stack["layer3/selectivity"].astype(np.float64)
    fig = selectivity_figure(res(stack), cell=6)  # default: the top layer
    np.testing.assert_array_equal(fig.crop("matrix"), np.kron(m, np.ones((6, 6))))
    assert "matrix_stretched" not in fig.boxes  # values span [0, 1]: no stretched copy
    fig = selectivity_figure(res(stack), layer=2, cell=2, scale=2)
    np.testing.assert_array_equal(fig.crop("matrix"), np.kron(stack["layer2/selectivity"], np.ones((4, 4))))


def test_selectivity_narrow_range_gets_a_stretched_copy() -> None:
    stack = make_stack(seed=12)
    m = 0.999 + 0.001 * stack["layer3/selectivity"].astype(np.float64)
    stack["layer3/selectivity"] = m
    fig = selectivity_figure(res(stack), cell=1)
    np.testing.assert_array_equal(fig.crop("matrix"), m)
    np.testing.assert_allclose(fig.crop("matrix_stretched"), (m - m.min()) / (m.max() - m.min()), atol=1e-12)
    assert "matrix_stretched" not in selectivity_figure(res(stack), stretch=False).boxes


def test_selectivity_errors() -> None:
    stack = make_stack(seed=13)
    with pytest.raises(UnitlensError, match="square"):
        res(dict(stack, **{"layer3/selectivity": np.ones((3, 4), dtype=np.float32)}))
    with pytest.raises(UnitlensError, match=r"\[0, 1\]"):
        res(dict(stack, **{"layer3/selectivity": np.full((3, 3), 1.5)}))
    with pytest.raises(UnitlensError, match="layer5/selectivity"):
        selectivity_figure(res(stack), layer=5)
    # A layer may lack its matrix (a user model's layer with one studied unit): the figure says so.
    without = res({k: v for k, v in stack.items() if k != "layer3/selectivity"})
    with pytest.raises(UnitlensError, match=r"no layer3/selectivity \(layers with one: \[1, 2\]\)"):
        selectivity_figure(without, layer=3)
    np.testing.assert_array_equal(
        selectivity_figure(without).image, selectivity_figure(without, layer=2).image
    )


# ------------------------------------------------------------------------------------------ Figures 3 and 4


def test_figure3_and_figure4_show_the_same_units_in_the_same_order() -> None:
    mnist, patches = res(make_stack(n_samples=5, seed=14)), res(make_stack(n_samples=3, seed=15))
    units = (4, 0, 33, 7)
    fig3 = figure3(mnist, patches, units=units)
    for name, n_samples in (("mnist", 5), ("patches", 3)):
        t = tiles(fig3.crop(name), (len(units), n_samples))
        np.testing.assert_array_equal(argmax_grid(t), np.repeat(np.array(units)[:, None], n_samples, axis=1))
        # The half-bright marker at unit + 10 + s gives each sample's number: samples in order.
        for r, u in enumerate(units):
            for s in range(n_samples):
                assert t[r, s].ravel()[(u + 10 + s) % 36] == 0.5
    fig4 = figure4(mnist, units=units)
    assert fig4.missing == ()
    for name in ("samples_mean", "lc", "am"):
        t = tiles(fig4.crop(name), (len(units), 1))
        np.testing.assert_array_equal(argmax_grid(t)[:, 0], units)
    b = fig4.boxes
    assert b["samples_mean"][1] < b["lc"][1] < b["am"][1]
    assert b["samples_mean"][0] == b["lc"][0] == b["am"][0]


def test_figure3_and_figure4_default_to_the_first_six_units() -> None:
    stack = res(make_stack(seed=16))
    fig3, fig4 = figure3(stack, stack), figure4(stack)
    np.testing.assert_array_equal(argmax_grid(tiles(fig3.crop("mnist"), (6, 4)))[:, 0], range(6))
    np.testing.assert_array_equal(argmax_grid(tiles(fig4.crop("am"), (6, 1)))[:, 0], range(6))


def test_figure3_and_figure4_missing_samples_are_labelled() -> None:
    sdae_like = res(make_stack(samples=False, seed=17))
    fig4 = figure4(sdae_like, units=(2, 3))
    assert fig4.missing == ("samples_mean",)
    np.testing.assert_array_equal(argmax_grid(tiles(fig4.crop("lc"), (2, 1)))[:, 0], [2, 3])
    fig3 = figure3(res(make_stack(seed=18)), None)
    assert fig3.missing == ("patches",)
    fig3 = figure3(None, sdae_like)
    assert set(fig3.missing) == {"mnist", "patches"}
    with pytest.raises(UnitlensError, match="unit positions"):
        figure4(sdae_like, units=(36,))
    with pytest.raises(UnitlensError, match="no samples, linear combination or AM"):
        figure4(res(make_stack(layers=(1,), seed=19)))


def test_standardised_data_is_shown_in_pixel_units() -> None:
    rng = np.random.default_rng(20)
    stack = make_stack(seed=21)
    d = 36
    scale = rng.uniform(0.5, 2.0, size=d).astype(np.float32)
    mean = rng.uniform(-0.1, 0.1, size=d).astype(np.float32)
    stack["pixel_scale"], stack["pixel_mean"] = scale, mean
    fig = figure4(res(stack), units=(3,))
    t = tiles(fig.crop("lc"), (1, 1))[0, 0]
    # Weights act on standardised inputs: on raw pixels they are w / scale.
    np.testing.assert_allclose(
        t, scale_tile((stack["layer2/lc"][3] / scale).reshape(SHAPE), signed=True), atol=1e-7
    )
    t = tiles(fig.crop("am"), (1, 1))[0, 0]
    x = stack["layer2/am_x"][3, stack["layer2/am_best"][3]].astype(np.float64) * scale + mean
    np.testing.assert_allclose(t, scale_tile(x.reshape(SHAPE), signed=True), atol=1e-7)
    t = tiles(fig.crop("samples_mean"), (1, 1))[0, 0]
    x = stack["layer2/samples_mean"][3].astype(np.float64) * scale + mean
    np.testing.assert_allclose(t, scale_tile(x.reshape(SHAPE), signed=False), atol=1e-7)


# ------------------------------------------------------------------------------------------ files


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_write_figures_writes_every_figure_and_is_idempotent(tmp_path: Path) -> None:
    results, figures, checkpoints = tmp_path / "results", tmp_path / "figures", tmp_path / "checkpoints"
    results.mkdir()
    checkpoints.mkdir()
    mnist_dbn, mnist_sdae = make_stack(seed=22), make_stack(samples=False, seed=23)
    save_arrays(results / "mnist-dbn.npz", mnist_dbn)
    save_arrays(results / "mnist-sdae.npz", mnist_sdae)
    save_arrays(results / "patches-dbn.npz", make_stack(n_units=12, restarts=3, shape=(4, 4), seed=24))
    (results / "notes.txt").write_text("ignored")
    rows = [
        {
            "layer": float(j),
            "examples": float(n),
            "train_loss": 1.0 / n,
            "heldout_reconstruction": 2.0 / n,
            "seconds": 1.0,
        }
        for j in (1, 2)
        for n in (100, 200, 300)
    ]
    _write_log(checkpoints / "mnist-dbn-log.jsonl", rows)
    _write_log(checkpoints / "mnist-sdae-log.jsonl", [])

    written = write_figures(results, figures, checkpoints_dir=checkpoints)
    names = {p.name for p in written}
    assert names == {
        "figure1_mnist.png",
        "figure2_patches.png",
        "figure3.png",
        "figure4_mnist.png",
        "figure4_patches.png",
        "selectivity_mnist_dbn_layer2.png",
        "selectivity_mnist_sdae_layer2.png",
        "selectivity_patches_dbn_layer2.png",
        "selectivity_mnist_dbn_layer3.png",
        "selectivity_mnist_sdae_layer3.png",
        "selectivity_patches_dbn_layer3.png",
        "restart_agreement_mnist_dbn.png",
        "restart_agreement_mnist_sdae.png",
        "restart_agreement_patches_dbn.png",
        "am_history_mnist_dbn.png",
        "am_history_mnist_sdae.png",
        "am_history_patches_dbn.png",
        "training_mnist-dbn.png",
        "training_mnist-sdae.png",
    }
    assert len(written) == len(names)
    # No temporary files left behind; the manifest lists exactly the figures written.
    assert {p.name for p in figures.iterdir()} == names | {"manifest.json"}
    assert {e.file for e in read_manifest(figures) or ()} == names
    for p in written:
        assert load_png(p).size > 0
    # The PNG holds the figure at the enlargement write_figures picks: tiles of about 36 pixels, 6x here.
    expected = figure1(res(mnist_dbn), res(mnist_sdae), scale=6).image
    np.testing.assert_array_equal(load_png(figures / "figure1_mnist.png"), np.rint(expected * 255) / 255)

    before = {p.name: p.read_bytes() for p in written}
    again = write_figures(results, figures, checkpoints_dir=checkpoints)
    assert again == written
    assert {p.name: p.read_bytes() for p in again} == before


def test_write_figures_partial_and_errors(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    assert write_figures(results, tmp_path / "empty") == []
    save_arrays(results / "mnist-sdae.npz", make_stack(samples=False, seed=25))
    names = {p.name for p in write_figures(results, tmp_path / "figures")}
    # No DBN: no Figure 3 or 4; Figure 1 has a labelled DBN gap.
    assert names == {
        "figure1_mnist.png",
        "selectivity_mnist_sdae_layer2.png",
        "selectivity_mnist_sdae_layer3.png",
        "restart_agreement_mnist_sdae.png",
        "am_history_mnist_sdae.png",
    }
    with pytest.raises(UnitlensError, match="does not exist"):
        write_figures(tmp_path / "nowhere", tmp_path / "figures")
    bad = make_stack(seed=26)
    bad["layer2/am_x"] = bad["layer2/am_x"][:, :, :5]
    with pytest.raises(UnitlensError, match=r"mnist-dbn\.npz: field layer2/am_x has shape"):
        save_arrays(results / "mnist-dbn.npz", bad)  # the writer refuses it ...
    np.savez(results / "mnist-dbn.npz", **bad)  # type: ignore[arg-type]
    with pytest.raises(UnitlensError, match=r"mnist-dbn\.npz: field layer2/am_x has shape"):
        write_figures(results, tmp_path / "figures")  # ... and so does the reader
    (results / "mnist-dbn.npz").unlink()
    (results / "patches-dbn.npz").write_bytes(b"not a zip")
    with pytest.raises(UnitlensError, match=r"patches-dbn\.npz"):
        write_figures(results, tmp_path / "figures")


def test_read_training_log_reports_the_bad_line(tmp_path: Path) -> None:
    log = tmp_path / "x-log.jsonl"
    log.write_text('{"layer": 1, "examples": 10}\n\n{"layer": 1,\n')
    with pytest.raises(UnitlensError, match="line 3"):
        read_training_log(log)
    log.write_text('{"layer": 1, "examples": 10}\n\n[1, 2]\n')
    with pytest.raises(UnitlensError, match="line 3"):
        read_training_log(log)
    log.write_text('{"layer": 1, "examples": 10}\n')
    assert read_training_log(log) == [{"layer": 1, "examples": 10}]


def test_save_png_accepts_a_figure(tmp_path: Path) -> None:
    fig = figure4(res(make_stack(seed=26)))
    back = load_png(save_png(tmp_path / "f.png", fig))
    np.testing.assert_array_equal(back, np.rint(fig.image * 255) / 255)


def test_write_figures_plots_the_finetune_sweep_and_names_a_damaged_file(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    row = {"hidden_learning_rate": 0.005, "errors": {"dbn": 0.05}, "am_cosine": {"dbn L2": 0.999}}
    finetune = {"hidden_learning_rate": 0.005, "errors": {"dbn": 0.05, "random": 0.08}, "sweep": [row]}
    (results / "finetune.json").write_text(json.dumps(finetune))
    written = write_figures(results, tmp_path / "figures")
    assert [p.name for p in written] == ["finetune_sweep.png"]
    assert load_png(written[0]).shape[1] > 400  # the two-panel plot, not a note
    # An older run's finetune.json without a sweep: no plot.
    (results / "finetune.json").write_text(json.dumps({"errors": {"dbn": 0.05}, "am_cosine": {}}))
    assert write_figures(results, tmp_path / "older") == []
    (results / "finetune.json").write_text('{"errors": {"dbn": 0.05},')
    with pytest.raises(UnitlensError, match=r"finetune\.json is damaged: not valid JSON") as damaged:
        write_figures(results, tmp_path / "figures")
    assert "\n" not in str(damaged.value)
    (results / "finetune.json").write_text("[1, 2]")
    with pytest.raises(UnitlensError, match=r"finetune\.json: expected a JSON object"):
        write_figures(results, tmp_path / "figures")
    (results / "finetune.json").write_text(json.dumps({"sweep": [dict(row, hidden_learning_rate="fast")]}))
    with pytest.raises(UnitlensError, match=r"finetune\.json: finetune sweep\[0\]\.hidden_learning_rate"):
        write_figures(results, tmp_path / "figures")


def test_layer_figure_names_dead_and_flat_units_in_its_caption() -> None:
    from unitlens.render.figures import _flagged_caption, _Stack

    arrays = make_stack(seed=31)
    n = arrays["layer2/units"].shape[0]
    flags = np.zeros(n, dtype=np.int64)
    flags[1] = 1
    arrays["layer2/flat"] = flags
    caption = _flagged_caption({"dbn": _Stack(res(arrays), "dbn"), "sdae": None}, (1, 2, 3), 36)
    assert caption == f"dead or flat, not features: DBN L2 unit [{int(arrays['layer2/units'][1])}]"
    assert _flagged_caption({"dbn": _Stack(res(make_stack(seed=31)), "dbn")}, (1, 2, 3), 36) == ""
    with_caption = layer_figure(res(arrays), None)
    assert with_caption.image.shape[0] > layer_figure(res(make_stack(seed=31)), None).image.shape[0]


def test_write_figures_takes_the_restart_threshold_from_the_study_summary(tmp_path: Path) -> None:
    from unitlens.render.plots import restart_agreement_plot

    arrays = make_stack(samples=False, seed=32)
    summary = {"layers": [{"layer": j, "restarts": {"threshold": 0.5}} for j in (1, 2, 3)]}
    for name, doc in (("with", summary), ("without", None)):
        (tmp_path / name).mkdir()
        StackResults.from_arrays(arrays, summary=doc).save(tmp_path / name / "mnist-sdae.npz")
        write_figures(tmp_path / name, tmp_path / f"figures-{name}")
    plot = "restart_agreement_mnist_sdae.png"
    title = "MNIST SDAE"
    assert (tmp_path / "figures-with" / plot).read_bytes() == restart_agreement_plot(
        res(arrays), threshold=0.5, title=title
    )
    # Without a summary the plot keeps its default line (0.9, the study's default).
    assert (tmp_path / "figures-without" / plot).read_bytes() == restart_agreement_plot(
        res(arrays), title=title
    )
