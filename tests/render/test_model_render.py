"""A user's own model through render_run: RGB figures named NAME-RECIPE-*, the manifest, the report.

The run folder (``conftest.make_user_model_run``) holds what ``unitlens visualize --model`` saves: one
``StackResults`` per recipe, RGB 3x8x8 inputs, layers ``conv1`` and ``conv2``, no linear combination, NaN
stationarity for ``lucid``; no paper stack, so no claims.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import (
    DESCRIPTION,
    IMAGE_SHAPE,
    LAYER_NAMES,
    NAME,
    RECIPES,
    RESTARTS,
    UNITS,
    UserModelRun,
    make_user_model_run,
    user_model_results,
)
from unitlens.errors import UnitlensError
from unitlens.render.figures import (
    model_layers_figure,
    model_restarts_figure,
    read_manifest,
    recipes_figure,
    split_results_name,
    write_figures,
)
from unitlens.render.png import load_png
from unitlens.render.report.builder import INDEX_GLOBAL, _order_key
from unitlens.render.report.layer_files import quantise_images, read_layer, read_shared_file
from unitlens.render.tiles import tile_images, upscale
from unitlens.reproduce import render_run
from unitlens.results import StackResults

FIGURES = {f"{NAME}-{recipe}-{kind}.png" for recipe in RECIPES for kind in ("layers", "restarts")} | {
    f"{NAME}-recipes.png"
}


def _index(run: Path) -> dict[str, Any]:
    text = (run / "report" / "data" / "index.js").read_text(encoding="ascii")
    prefix = f"window.{INDEX_GLOBAL} = "
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix) : -2])


def _reference(x: np.ndarray, signed: bool) -> np.ndarray:
    """The display rule per image (rows of ``x``, every channel together), written out directly."""
    x = x.astype(np.float64)
    if signed:
        return 0.5 + 0.5 * x / np.abs(x).max(axis=1, keepdims=True)
    low, high = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    return (x - low) / (high - low)


# ------------------------------------------------------------------------------------------ figures


def test_render_run_writes_rgb_figures_and_lists_them_in_the_manifest(
    rendered_user_model_run: UserModelRun,
) -> None:
    figures = rendered_user_model_run.root / "figures"
    names = {p.name for p in figures.glob("*.png")}
    assert names >= FIGURES
    for name in FIGURES:
        image = load_png(figures / name)
        assert image.ndim == 3 and image.shape[2] == 3, name  # colour PNGs
        assert np.ptp(image, axis=2).max() > 0.2, name  # and really coloured, not grey written as RGB
    entries = {e.file: e for e in read_manifest(figures) or ()}
    assert set(entries) == names  # every figure written is listed, nothing else
    for recipe in RECIPES:
        layers = entries[f"{NAME}-{recipe}-layers.png"]
        assert (layers.kind, layers.model, layers.recipe, layers.dataset) == (
            "model_layers",
            NAME,
            recipe,
            None,
        )
        assert "conv1, conv2" in layers.caption and recipe in layers.caption
        assert entries[f"{NAME}-{recipe}-restarts.png"].kind == "model_restarts"
        assert entries[f"{NAME}-{recipe}-restart_agreement.png"].kind == "restart_agreement"
        assert entries[f"{NAME}-{recipe}-am_history.png"].kind == "am_history"
        # Selectivity only where a matrix exists: conv1, not conv2.
        assert entries[f"{NAME}-{recipe}-selectivity-layer1.png"].layer == 1
        assert f"{NAME}-{recipe}-selectivity-layer2.png" not in entries
    recipes = entries[f"{NAME}-recipes.png"]
    assert (recipes.kind, recipes.model, recipes.recipe) == ("recipes", NAME, None)
    assert "paper, lucid" in recipes.caption
    # No paper stack: no claims were measured.
    assert not (rendered_user_model_run.root / "results" / "claims.json").exists()


def test_the_recipes_figure_is_layers_by_recipes_of_the_same_units(
    rendered_user_model_run: UserModelRun,
) -> None:
    run = rendered_user_model_run
    fig = recipes_figure(run.results, title=NAME)  # as write_figures draws it
    boxes = {(j, r): fig.boxes[f"layer{j}/{r}"] for j in (1, 2) for r in RECIPES}
    assert len(fig.boxes) == 4 and not fig.missing
    # 2 rows (layers) x 2 columns (recipes): a row shares its top, a column its left edge.
    for j in (1, 2):
        assert boxes[j, "paper"][0] == boxes[j, "lucid"][0]
        assert boxes[j, "paper"][1] < boxes[j, "lucid"][1]
    for r in RECIPES:
        assert boxes[1, r][1] == boxes[2, r][1]
        assert boxes[1, r][0] < boxes[2, r][0]
    # Each cell is exactly the tiled best AM images of its recipe and layer, in colour.
    scale = fig.crop("layer1/paper").shape[0] // (tile_images(np.zeros((UNITS, *IMAGE_SHAPE))).shape[0])
    for (j, r), _ in boxes.items():
        best = run.results[r].layers[j].best_x()
        expected = upscale(tile_images(best, IMAGE_SHAPE), scale)
        assert expected.shape[2] == 3
        np.testing.assert_array_equal(fig.crop(f"layer{j}/{r}"), expected)
    # The PNG render_run wrote is this figure.
    png = load_png(run.root / "figures" / f"{NAME}-recipes.png")
    assert png.shape == fig.image.shape
    assert np.abs(png - fig.image).max() <= 0.5 / 255 + 1e-9


def test_the_recipes_figure_shows_the_units_every_recipe_studied() -> None:
    paper, lucid = user_model_results("paper"), user_model_results("lucid", seed=1)
    # lucid studied conv1's units in another order and without the first one.
    layer = lucid.layers[1]
    order = np.array([3, 2, 1])
    shifted = StackResults(
        image_shape=IMAGE_SHAPE,
        layers={
            1: type(layer)(
                **{
                    k: v[:, order] if k == "am_history" else v[order] if v.shape[:1] == (UNITS,) else v
                    for k, v in layer.arrays()
                }
            ),
            2: lucid.layers[2],
        },
        layer_names=LAYER_NAMES,
    )
    fig = recipes_figure({"paper": paper, "lucid": shifted}, n_units=3)
    # The units in common, in paper's order: 11, 12, 13; lucid holds them at positions 2, 1, 0.
    scale = fig.crop("layer1/paper").shape[0] // tile_images(np.zeros((3, *IMAGE_SHAPE))).shape[0]
    expected_paper = tile_images(paper.layers[1].best_x()[[1, 2, 3]], IMAGE_SHAPE)
    expected_lucid = tile_images(shifted.layers[1].best_x()[[2, 1, 0]], IMAGE_SHAPE)
    np.testing.assert_array_equal(fig.crop("layer1/paper"), upscale(expected_paper, scale))
    np.testing.assert_array_equal(fig.crop("layer1/lucid"), upscale(expected_lucid, scale))


def test_layers_and_restarts_figures_label_layers_by_name_and_mark_dead_units() -> None:
    results = user_model_results("paper")
    layers = model_layers_figure(results, title=NAME, scale=2)
    assert set(layers.boxes) == {"layer1", "layer2"}
    top1, left1, _, _ = layers.boxes["layer1"]
    top2, left2, _, _ = layers.boxes["layer2"]
    assert top1 == top2 and left1 < left2  # one block per layer, side by side
    np.testing.assert_array_equal(
        layers.crop("layer2"), upscale(tile_images(results.layers[2].best_x(), IMAGE_SHAPE), 2)
    )
    restarts = model_restarts_figure(results, units=(0, 1), scale=2)
    assert set(restarts.boxes) == {f"layer{j}/restarts/{k}" for j in (1, 2) for k in (0, 1)}
    x = results.layers[1].am_x[1]
    order = np.argsort(-results.layers[1].am_activation[1], kind="stable")
    np.testing.assert_array_equal(
        restarts.crop("layer1/restarts/1"), upscale(tile_images(x[order], IMAGE_SHAPE), 2)
    )
    assert restarts.image.shape[0] > 0 and len(restarts.boxes["layer1/restarts/0"]) == 4
    # The dead unit (conv2, position 1, unit 21) is named under both figures, as in the DBN figures: the
    # figure with a dead unit differs from the same figure without the flag only below the panels.
    unflagged = StackResults(
        image_shape=IMAGE_SHAPE,
        layers={
            1: results.layers[1],
            2: type(results.layers[2])(
                **{k: v for k, v in results.layers[2].arrays() if k not in ("flat", "dead")}
            ),
        },
        layer_names=LAYER_NAMES,
        summary=results.summary,
    )
    plain = model_layers_figure(unflagged, title=NAME, scale=2)
    assert layers.image.shape[0] > plain.image.shape[0]  # the "dead or flat" line
    for box in ("layer1", "layer2"):
        np.testing.assert_array_equal(layers.crop(box), plain.crop(box))


def test_paper_stacks_are_not_user_models_and_names_split_at_the_recipe() -> None:
    assert split_results_name("model-lucid", "lucid") == ("model", "lucid")
    assert split_results_name("my-net-paper", "paper") == ("my-net", "paper")
    assert split_results_name("my-net-v2") == ("my-net", "v2")
    assert split_results_name("net", "lucid") == ("net", "lucid")
    assert split_results_name("net") == ("net", None)
    # The paper's stacks first, in the catalogue's order; then models by name, recipes paper, lucid, others.
    stems = ["zeta-lucid", "patches-sdae", "alpha", "zeta-paper", "mnist-dbn", "zeta-fancy", "a.b-c-lucid"]
    assert sorted(stems, key=_order_key) == [
        "mnist-dbn",
        "patches-sdae",
        "a.b-c-lucid",
        "alpha",
        "zeta-paper",
        "zeta-lucid",
        "zeta-fancy",
    ]


def test_one_recipe_gives_no_recipes_figure_and_grey_models_give_grey_figures(tmp_path: Path) -> None:
    results = user_model_results("paper")
    results.save(tmp_path / "results" / "net-paper.npz")
    grey = StackResults(
        image_shape=(1, 8, 8),
        layers={
            j: type(lr)(**{k: (v[..., :64] if k in ("am_x", "exemplars") else v) for k, v in lr.arrays()})
            for j, lr in results.layers.items()
        },
        summary={"recipe": "lucid", "layers": []},
    )
    grey.save(tmp_path / "results" / "grey-lucid.npz")
    write_figures(tmp_path / "results", tmp_path / "figures")
    names = {e.file for e in read_manifest(tmp_path / "figures") or ()}
    assert "net-paper-layers.png" in names and "grey-lucid-layers.png" in names
    assert not any(n.endswith("-recipes.png") for n in names)
    assert load_png(tmp_path / "figures" / "grey-lucid-layers.png").ndim == 2  # (1, H, W) is grey
    assert load_png(tmp_path / "figures" / "net-paper-restarts.png").ndim == 3


# ------------------------------------------------------------------------------------------ report


def test_the_report_lists_the_model_its_layers_and_recipes_without_claims(
    rendered_user_model_run: UserModelRun,
) -> None:
    text = html.unescape((rendered_user_model_run.root / "report" / "index.html").read_text(encoding="ascii"))
    for word in ("conv1", "conv2", "lucid", "paper recipe", DESCRIPTION):
        assert word in text, word
    assert "no paper claims for this model" in text and 'id="claims-table"' not in text
    stacks = re.search(r'<table id="stacks-table".*?</table>', text, re.S)
    assert stacks is not None and "8×8 RGB" in stacks.group(0) and "conv1, conv2" in stacks.group(0)
    for recipe in RECIPES:
        table = re.search(
            rf'<table class="data layer-table" id="stack-{NAME}-{recipe}".*?</table>', text, re.S
        )
        assert table is not None
        rows = re.findall(r'<tr><th scope="row">([^<]*)</th>', table.group(0))
        assert rows == list(LAYER_NAMES)
        # Columns that no layer of a user's model fills (linear combination, samples, control) are left out.
        assert "LC vs AM" not in table.group(0) and "Samples vs AM" not in table.group(0)
        assert "Restart agreement" in table.group(0)
    # The figures are shown with their captions, the recipes figure among them.
    assert f'src="../figures/{NAME}-recipes.png"' in text


def test_the_layer_files_carry_rgb_images_that_decode_to_the_saved_ones(
    rendered_user_model_run: UserModelRun,
) -> None:
    run = rendered_user_model_run
    index = _index(run.root)
    assert index["format"] == 3
    stacks = {s["name"]: s for s in index["stacks"]}
    assert list(stacks) == [f"{NAME}-paper", f"{NAME}-lucid"]
    for recipe in RECIPES:
        stack = stacks[f"{NAME}-{recipe}"]
        assert stack["kind"] == "model" and stack["recipe"] == recipe and stack["description"] == DESCRIPTION
        assert stack["dataset"] == NAME and stack["group"] == f"model:{NAME}"
        assert stack["channels"] == 3 and stack["spatial"] == [8, 8] and stack["image_shape"] == [3, 8, 8]
        assert [layer["name"] for layer in stack["layers"]] == list(LAYER_NAMES)
        saved = StackResults.load(run.npz(recipe))
        files = {}
        data = run.root / "report" / "data"
        shared = {p.stem: read_shared_file(p.read_bytes()) for p in data.glob("e*.js")}
        for entry in stack["layers"]:
            chunks = {p.stem: p.read_bytes() for p in data.glob(f"{entry['key']}-c*.js")}
            layer = read_layer((data / f"{entry['key']}.js").read_bytes(), chunks, shared)
            files[entry["layer"]] = layer
            arrays = saved.layers[entry["layer"]]
            assert set(layer.levels) == {"am_x", "exemplars"}  # no filters, lc or samples
            for key in ("am_x", "exemplars"):
                info = layer.meta["kinds"][key]
                x = getattr(arrays, key)
                k = x.shape[0] * x.shape[1]
                q = layer.levels[key]
                flat = x.reshape(k, -1)
                # Channel-major and scaled per image over its three channels together.
                assert np.abs(q / 255.0 - _reference(flat, info["signed"])).max() <= 0.5 / 255 + 1e-9
                np.testing.assert_array_equal(q, quantise_images(flat, IMAGE_SHAPE, info["signed"]))
            numbers = layer.meta["numbers"]
            assert numbers["flat"] == arrays.flat.tolist()  # type: ignore[union-attr]
            assert len(numbers["restart_mean_cosine"]) == UNITS
            stationarity = numbers["am_stationarity"]
            assert len(stationarity) == UNITS and len(stationarity[0]) == RESTARTS
            if recipe == "lucid":
                assert all(v is None for row in stationarity for v in row)  # NaN travels as null
            assert ("selectivity" in layer.meta) == (entry["layer"] == 1)
        assert files[2].meta["numbers"]["dead"][1] == 1


def test_render_run_measures_claims_on_the_paper_stacks_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import unitlens.reproduce as reproduce_module

    run = make_user_model_run(tmp_path)
    # A paper stack beside the model (its summary is all the claims read).
    paper = user_model_results("paper")
    grey = StackResults(
        image_shape=(8, 8),
        layers={
            j: type(lr)(**{k: (v[..., :64] if k in ("am_x", "exemplars") else v) for k, v in lr.arrays()})
            for j, lr in paper.layers.items()
        },
        summary={"layers": [{"layer": 1, "n_units": UNITS}, {"layer": 2, "n_units": UNITS}]},
    )
    grey.save(run.root / "results" / "mnist-dbn.npz")
    seen: list[list[str]] = []

    def measure(summaries: dict[str, Any], finetune: Any) -> list[dict[str, Any]]:
        seen.append(sorted(summaries))
        return [{"id": "1", "claim": "c", "measured": "m", "holds": None}]

    monkeypatch.setattr(reproduce_module, "measure_claims", measure)
    index = render_run(run.root)
    assert seen == [["mnist-dbn"]]
    text = index.read_text(encoding="utf-8")
    assert 'id="claims-table"' in text and "no paper claims for this model" not in text
    assert "figure1_mnist.png" in {e.file for e in read_manifest(run.root / "figures") or ()}


def test_a_rerender_of_a_user_model_run_is_identical(
    rendered_user_model_run: UserModelRun, tmp_path: Path
) -> None:
    again = make_user_model_run(tmp_path)
    render_run(again.root)
    for name in FIGURES:
        first = (rendered_user_model_run.root / "figures" / name).read_bytes()
        assert (again.root / "figures" / name).read_bytes() == first, name


def test_a_manifest_written_before_recipes_existed_still_reads(tmp_path: Path) -> None:
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "figure1_mnist.png").write_bytes(b"")
    row = {"file": "figure1_mnist.png", "kind": "figure1", "dataset": "mnist", "model": None, "layer": None}
    (figures / "manifest.json").write_text(json.dumps({"format": 1, "figures": [{**row, "caption": "c"}]}))
    (entry,) = read_manifest(figures) or ()
    assert entry.recipe is None and entry.dataset == "mnist"
    (figures / "manifest.json").write_text(json.dumps({"figures": [{**row, "caption": "c", "recipe": 3}]}))
    with pytest.raises(UnitlensError, match=r"field 'recipe' must be a string or null"):
        read_manifest(figures)


def test_many_dead_units_are_counted_not_listed_one_by_one() -> None:
    from unitlens.render.figures import _model_flagged, _Stack

    lr = user_model_results("paper").layers[1]
    grown = {
        k: np.repeat(v, 3, axis=1)
        if k == "am_history"
        else np.repeat(v, 3, axis=0)
        if v.shape[:1] == (UNITS,)
        else v
        for k, v in lr.arrays()
    }
    grown |= {
        "units": np.arange(3 * UNITS),
        "flat": np.ones(3 * UNITS, np.int64),
        "dead": np.ones(3 * UNITS, np.int64),
    }
    results = StackResults(image_shape=IMAGE_SHAPE, layers={1: type(lr)(**grown)}, layer_names=["conv1"])
    stack = _Stack(results, "net")
    assert (
        _model_flagged(stack, 1, range(12), "conv1")
        == "conv1: 12 of 12 shown units, 0, 1, 2, 3, 4, 5, 6, 7, ..."
    )
    assert _model_flagged(stack, 1, [2, 5], "conv1") == "conv1 units [2, 5]"
    assert _model_flagged(stack, 1, [5], "conv1") == "conv1 unit [5]"
