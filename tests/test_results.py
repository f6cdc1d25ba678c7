"""Tests for unitlens.results: the one results format, its one reader and its one writer."""

from __future__ import annotations

import ast
import json
import math
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import unitlens.results as results_module
from unitlens.errors import UnitlensError
from unitlens.results import LayerResults, StackResults, load_arrays, read_summary, save_arrays

SHAPE = (4, 5)
D = SHAPE[0] * SHAPE[1]
U, R, T, S, N, US = 5, 3, 7, 2, 4, 3


def layer_arrays(rng: np.random.Generator, j: int, *, optional: bool = True) -> dict[str, np.ndarray]:
    """One layer's arrays as the study writes them (every optional field too, unless ``optional``)."""
    act = rng.normal(size=(U, R)).astype(np.float32)
    sel = rng.uniform(0.1, 1.0, size=(US, US)).astype(np.float32)
    sel /= sel.sum(axis=0)
    a: dict[str, np.ndarray] = {
        "units": np.arange(U, dtype=np.int64) + 10 * j,
        "am_x": rng.normal(size=(U, R, D)).astype(np.float32),
        "am_activation": act,
        "am_steps": rng.integers(5, 50, size=(U, R)),
        "am_converged": np.ones((U, R), dtype=np.int64),
        "am_history": rng.normal(size=(T, U, R)).astype(np.float32),
        "am_best": act.argmax(axis=1).astype(np.int64),
        "lc": rng.normal(size=(U, D)).astype(np.float32),
        "exemplars": rng.uniform(0.0, 1.0, size=(U, N, D)).astype(np.float32),
        "exemplar_activations": rng.normal(size=(U, N)).astype(np.float32),
        "selectivity": sel,
        "restart_mean_cosine": rng.uniform(0.8, 1.0, size=U).astype(np.float32),
        "energy_concentration": rng.uniform(0.1, 0.9, size=U).astype(np.float32),
        "lc_vs_am": np.array([np.nan, *rng.uniform(-1, 1, size=U - 1)], dtype=np.float32),
    }
    if optional:
        a |= {
            "am_stationarity": rng.uniform(0, 1e-3, size=(U, R)).astype(np.float32),
            "am_start_gradient_norm": rng.uniform(0, 1, size=(U, R)).astype(np.float32),
            "selectivity_margin": rng.normal(size=US).astype(np.float32),
            "exemplar_selectivity": sel.copy(),
            "flat": np.array([0, 1, 0, 0, 0], dtype=np.int64),
            "dead": np.zeros(U, dtype=np.int64),
        }
        if j == 1:
            a["filters"] = rng.normal(size=(U, D)).astype(np.float32)
        else:
            a["control_selectivity"] = sel[::-1].copy()
            a["samples"] = rng.uniform(0.0, 1.0, size=(U, S, D)).astype(np.float32)
            a["samples_mean"] = a["samples"].mean(axis=1)
            a["samples_vs_am"] = rng.uniform(-1, 1, size=U).astype(np.float32)
    return a


def stack_arrays(
    seed: int = 0, *, optional: bool = True, layers: tuple[int, ...] = (1, 2)
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {"image_shape": np.array(SHAPE, dtype=np.int64)}
    if optional:
        out["pixel_mean"] = rng.normal(size=D).astype(np.float32)
        out["pixel_scale"] = rng.uniform(0.5, 2.0, size=D).astype(np.float32)
    for j in layers:
        out |= {f"layer{j}/{k}": v for k, v in layer_arrays(rng, j, optional=optional).items()}
    return out


SUMMARY = {
    "layers": [
        {"layer": 1, "n_units": U, "restarts": {"threshold": 0.9, "median_mean_cosine": math.nan}},
        {"layer": 2, "n_units": U, "degenerate": {"threshold": 0.5}},
    ],
    "filter_match": 0.5,
}


# ------------------------------------------------------------------------------------------ round trip


def test_save_load_round_trip_is_equal_and_keeps_the_key_layout(tmp_path: Path) -> None:
    arrays = stack_arrays()
    original = StackResults.from_arrays(arrays, summary=SUMMARY)
    path = original.save(tmp_path / "results" / "mnist-dbn.npz")
    back = StackResults.load(path)
    assert back == original  # every array (dtype, shape, values, NaN too) and the summary
    assert back.source == str(path)
    assert back.image_shape == SHAPE and list(back.layers) == [1, 2]
    assert back.layers[2].samples is not None and back.layers[1].samples is None
    assert back.layer_summary(2) == SUMMARY["layers"][1] and back.layer_summary(3) is None
    # On disk: an uncompressed .npz with the documented keys, and the summary JSON beside it.
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
        assert {n.removesuffix(".npy") for n in z.namelist()} == set(arrays)
    assert json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["filter_match"] == 0.5
    assert sorted(p.name for p in path.parent.iterdir()) == ["mnist-dbn.json", "mnist-dbn.npz"]
    # The flat view matches what was written, dtypes included.
    flat = load_arrays(path)
    assert set(flat) == set(arrays)
    for k, v in arrays.items():
        assert flat[k].dtype == v.dtype and np.array_equal(flat[k], v, equal_nan=True), k
    # A change anywhere makes the results unequal.
    changed = dict(arrays, **{"layer2/lc": arrays["layer2/lc"] + 1})
    assert StackResults.from_arrays(changed, summary=SUMMARY) != original
    assert StackResults.from_arrays(arrays) != original  # no summary


def test_files_of_the_earlier_writer_still_load(tmp_path: Path) -> None:
    # A run folder written before this format had classes: a plain np.savez of the flat arrays, and
    # without the fields added later (am_stationarity, am_start_gradient_norm, selectivity_margin).
    arrays = stack_arrays(optional=False)
    np.savez(tmp_path / "old.npz", **arrays)  # type: ignore[arg-type]
    back = StackResults.load(tmp_path / "old.npz")
    assert back.summary is None and back.pixel_mean is None
    assert back.layers[1].am_stationarity is None and back.layers[1].selectivity_margin is None
    assert back.to_arrays().keys() == arrays.keys()


def test_earlier_run_folders_keep_loading_exactly_as_before(tmp_path: Path) -> None:
    # Grey (H, W) image_shape, lc present, no layer_names: the arrays, the shape and the derived sizes are
    # what they were before colour images and user models existed.
    arrays = stack_arrays()
    np.savez(tmp_path / "mnist-dbn.npz", **arrays)  # type: ignore[arg-type]
    back = StackResults.load(tmp_path / "mnist-dbn.npz")
    assert back.image_shape == SHAPE and back.channels == 1 and back.spatial == SHAPE and back.n_inputs == D
    assert back.layer_names is None and back.layer_name(2) == "layer 2"
    assert back.recipe is None and back.model_description is None
    assert back.layers[2].lc is not None and back.layers[2].lc_vs_am is not None
    flat = back.to_arrays()
    assert set(flat) == set(arrays)  # no key added (layer_names) or dropped
    for k, v in arrays.items():
        assert flat[k].dtype == v.dtype and np.array_equal(flat[k], v, equal_nan=True), k


def _user_model_arrays(shape: tuple[int, ...] = (3, 4, 5)) -> dict[str, np.ndarray]:
    """A user model's arrays: (C, H, W) images, no lc / lc_vs_am, all-NaN stationarity, never converged."""
    d = int(np.prod(shape))
    rng = np.random.default_rng(7)
    arrays = {k: v for k, v in stack_arrays(optional=False).items() if not k.endswith(("/lc", "/lc_vs_am"))}
    arrays["image_shape"] = np.array(shape, dtype=np.int64)
    for j in (1, 2):
        arrays[f"layer{j}/am_x"] = rng.normal(size=(U, R, d)).astype(np.float32)
        arrays[f"layer{j}/exemplars"] = rng.uniform(size=(U, N, d)).astype(np.float32)
        arrays[f"layer{j}/am_stationarity"] = np.full((U, R), np.nan, np.float32)
        arrays[f"layer{j}/am_converged"] = np.zeros((U, R), np.int64)
    del arrays["layer2/selectivity"]  # a layer too small for a selectivity matrix has none
    return arrays


def test_rgb_image_shape_layer_names_and_no_lc_round_trip(tmp_path: Path) -> None:
    arrays = _user_model_arrays() | {"layer_names": np.array(["conv1", "features.3"])}
    summary = {"model": "a small CNN", "recipe": "lucid", "layers": [{"layer": 1}, {"layer": 2}]}
    original = StackResults.from_arrays(arrays, summary=summary)
    assert original.image_shape == (3, 4, 5) and original.channels == 3 and original.spatial == (4, 5)
    assert original.n_inputs == 60
    assert [original.layer_name(j) for j in (1, 2)] == ["conv1", "features.3"]
    assert original.recipe == "lucid" and original.model_description == "a small CNN"
    path = original.save(tmp_path / "results" / "model-lucid.npz")
    back = StackResults.load(path)
    assert back == original
    assert back.image_shape == (3, 4, 5) and back.layers[1].lc is None and back.layers[2].selectivity is None
    assert np.isnan(back.layers[1].am_stationarity).all()  # type: ignore[arg-type]
    assert back.layer_name(2) == "features.3" and back.recipe == "lucid"
    # On disk the names are a plain unicode array: they load without pickle.
    with np.load(path, allow_pickle=False) as f:
        assert f["layer_names"].dtype.kind == "U" and f["layer_names"].tolist() == ["conv1", "features.3"]
        assert f["image_shape"].tolist() == [3, 4, 5]
    # The names take part in equality; a sequence of strings is stored as the same array.
    assert StackResults.from_arrays(
        arrays | {"layer_names": np.array(["a", "b"])}
    ) != StackResults.from_arrays(arrays)
    listed = StackResults(
        image_shape=(3, 4, 5), layers=dict(back.layers), layer_names=["conv1", "features.3"]
    )
    assert listed.layer_name(1) == "conv1"
    # One grey channel (1, H, W) is a grey image.
    grey = StackResults.from_arrays(_user_model_arrays((1, 4, 5)))
    assert grey.channels == 1 and grey.spatial == (4, 5) and grey.n_inputs == D


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"image_shape": np.array([2, 4, 5])},
            r"field image_shape .* has 2 channels, expected 1 \(grey\) or 3",
        ),
        (
            {"image_shape": np.array([3, 1, 4, 5])},
            r"field image_shape must be \(values,\), \(height, width\) or \(channels",
        ),
        (
            {"image_shape": np.array([3, 0, 5])},
            r"field image_shape must be .* positive integers, got \[3, 0, 5\]",
        ),
        ({"image_shape": np.array([0, 0])}, r"field image_shape must be .* positive integers"),
        ({"image_shape": np.array([3.0, 4.0, 5.0])}, r"field image_shape must be .* integers"),
        (
            {"image_shape": np.array([1, 4, 5])},
            r"field layer1/am_x has shape \(5, 3, 60\), expected .* = \(5, 3, 20\)",
        ),
        ({"layer_names": np.array(["conv1"])}, r"field layer_names has 1 names for 2 layers"),
        ({"layer_names": np.array(["a", "b", "c"])}, r"field layer_names has 3 names for 2 layers"),
        ({"layer_names": np.array([1, 2])}, r"field layer_names must be a \(L,\) array of strings"),
        ({"layer_names": np.array([b"a", b"b"])}, r"field layer_names must be a \(L,\) array of strings"),
        ({"layer_names": np.array([["a", "b"]])}, r"field layer_names must be a \(L,\) array"),
        ({"layer_names": np.array(["a", "a"])}, r"field layer_names must be distinct non-empty names"),
        ({"layer_names": np.array(["a", " "])}, r"field layer_names must be distinct non-empty names"),
    ],
)
def test_bad_image_shapes_and_layer_names_are_refused_naming_the_field(
    tmp_path: Path, change: dict[str, np.ndarray], message: str
) -> None:
    path = _write(tmp_path, _user_model_arrays() | change)
    assert re.search(message, _load_error(path)), _load_error(path)


def test_a_summary_model_or_recipe_that_is_not_a_string_is_refused(tmp_path: Path) -> None:
    path = StackResults.from_arrays(_user_model_arrays()).save(tmp_path / "model-paper.npz")
    summary = path.with_suffix(".json")
    for key in ("model", "recipe"):
        summary.write_text(json.dumps({key: 3, "layers": [{"layer": 1}]}))
        with pytest.raises(UnitlensError, match=rf"model-paper\.json: field '{key}' must be a string, got 3"):
            StackResults.load(path)
    summary.write_text(json.dumps({"model": "", "recipe": "paper", "layers": []}))
    back = StackResults.load(path)
    assert back.model_description is None and back.recipe == "paper"  # an empty description is none


def test_save_arrays_validates_before_writing(tmp_path: Path) -> None:
    bad = stack_arrays()
    bad["layer2/am_x"] = bad["layer2/am_x"][:, :, :-1]
    with pytest.raises(UnitlensError, match=r"x\.npz: field layer2/am_x"):
        save_arrays(tmp_path / "x.npz", bad)
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


# ------------------------------------------------------------------------------------------ damaged files


def _write(tmp_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write arrays around the validating writer, as a damaged or foreign file would be."""
    path = tmp_path / "results" / "mnist-dbn.npz"
    path.parent.mkdir(exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _load_error(path: Path) -> str:
    with pytest.raises(UnitlensError) as info:
        StackResults.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") or f"results file {path} " in message, message
    return message


def test_a_wrong_shaped_am_x_names_the_file_the_field_and_the_expected_shape(tmp_path: Path) -> None:
    arrays = stack_arrays()
    arrays["layer2/am_x"] = arrays["layer2/am_x"][:, :, :-1]
    path = _write(tmp_path, arrays)
    assert _load_error(path) == (
        f"{path}: field layer2/am_x has shape ({U}, {R}, {D - 1}), expected (U, R, d) = ({U}, {R}, {D})"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"layer2/units": None}, r"field layer2/units is missing"),
        ({"layer1/am_history": None}, r"field layer1/am_history is missing"),
        ({"image_shape": None}, r"field image_shape is missing"),
        (
            {"image_shape": np.array([4, 5, 1])},
            r"field image_shape \(channels, height, width\) has 4 channels, expected 1 \(grey\) or 3 \(RGB\)",
        ),
        (
            {"layer2/lc": np.zeros((U + 1, D), np.float32)},
            r"field layer2/lc has shape \(6, 20\), expected \(U, d\)",
        ),
        (
            {"layer2/am_activation": np.zeros((U, R + 1), np.float32)},
            r"layer2/am_activation .* \(U, R\) = \(5, 3\)",
        ),
        (
            {"layer1/am_history": np.zeros((T, U), np.float32)},
            r"layer1/am_history .* \(T, U, R\) = \(7, 5, 3\)",
        ),
        ({"layer2/samples_mean": np.zeros((U, S, D), np.float32)}, r"layer2/samples_mean has shape"),
        (
            {"layer2/selectivity": np.full((U + 1, U + 1), 0.1)},
            r"layer2/selectivity has shape \(6, 6\): expected \(Us, Us\) with Us <= U = 5",
        ),
        ({"layer2/selectivity": np.full((3, 4), 0.1)}, r"layer2/selectivity .* a square matrix"),
        (
            {"layer2/control_selectivity": np.full((2, 2), 0.1)},
            r"layer2/control_selectivity .* \(Us, Us\) = \(3, 3\)",
        ),
        (
            {"layer2/selectivity": np.full((US, US), 1.5)},
            r"layer2/selectivity must be normalised into \[0, 1\]",
        ),
        (
            {"layer2/units": np.arange(U, dtype=np.float64)},
            r"layer2/units has dtype float64, expected integers",
        ),
        ({"layer2/am_x": np.zeros((U, R, D), np.int64)}, r"layer2/am_x has dtype int64"),
        ({"layer2/am_best": np.full(U, R, np.int64)}, r"layer2/am_best must hold restart indices in 0\.\.2"),
        ({"layer2/flat": np.full(U, 2, np.int64)}, r"layer2/flat must hold flags 0 or 1"),
        (
            {"layer2/am_x": np.full((U, R, D), np.nan, np.float32)},
            r"layer2/am_x holds NaN or infinite values",
        ),
        ({"layer2/unknown": np.zeros(3)}, r"field layer2/unknown is not a results field"),
        ({"stray": np.zeros(3)}, r"field stray is not a results field"),
        ({"pixel_scale": np.zeros(D, np.float32)}, r"field pixel_scale must be finite and positive"),
        ({"pixel_mean": np.zeros(D + 1, np.float32)}, r"field pixel_mean must be \(d,\) = \(20,\)"),
        ({"layer1/units": np.zeros(0, np.int64)}, r"field layer1/units is empty"),
    ],
)
def test_inconsistent_fields_are_errors_naming_file_and_field(
    tmp_path: Path, change: dict[str, np.ndarray | None], message: str
) -> None:
    arrays = stack_arrays()
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = _write(tmp_path, arrays)
    assert re.search(message, _load_error(path)), _load_error(path)


def test_files_that_are_not_results_are_clear_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.npz"
    assert "does not exist" in _load_error(missing)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an npz at all")
    assert "is damaged or not an .npz" in _load_error(garbage)
    good = StackResults.from_arrays(stack_arrays()).save(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:1000])
    assert "is damaged or not an .npz" in _load_error(truncated)
    single = tmp_path / "single.npz"
    with single.open("wb") as f:
        np.save(f, np.zeros(3))
    assert "a single .npy array" in _load_error(single)
    # Reading never unpickles: an object array is refused, not executed.
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **stack_arrays(), **{"layer1/extra": np.array([{"a": 1}], dtype=object)})  # type: ignore[arg-type]
    assert "is damaged or not an .npz" in _load_error(pickled)
    only_top = _write(tmp_path, {"image_shape": np.array(SHAPE)})
    assert "no layer fields" in _load_error(only_top)


def test_a_damaged_or_inconsistent_summary_names_the_json(tmp_path: Path) -> None:
    path = StackResults.from_arrays(stack_arrays(), summary=SUMMARY).save(tmp_path / "mnist-dbn.npz")
    summary = path.with_suffix(".json")
    summary.write_text('{"layers": [{"layer": 1,')
    with pytest.raises(UnitlensError, match=r"mnist-dbn\.json is damaged: not valid JSON"):
        StackResults.load(path)
    summary.write_text('{"layers": 3}')
    with pytest.raises(UnitlensError, match=r'mnist-dbn\.json: expected \{"layers"'):
        read_summary(summary)
    summary.write_text(json.dumps({"layers": [{"layer": 4}]}))
    with pytest.raises(UnitlensError, match=r"mnist-dbn\.npz: the summary has layers \[4\]"):
        StackResults.load(path)
    summary.write_text(json.dumps({"layers": [{"layer": 1, "n_units": U + 1}]}))
    with pytest.raises(UnitlensError, match=r"summary of layer 1 has n_units 6, the results 5"):
        StackResults.load(path)


def test_layer_results_helpers() -> None:
    arrays = stack_arrays()
    layer = StackResults.from_arrays(arrays).layer(2)
    assert isinstance(layer, LayerResults)
    assert layer.n_units == U and layer.n_restarts == R
    best = arrays["layer2/am_best"]
    np.testing.assert_array_equal(layer.best_x(), arrays["layer2/am_x"][np.arange(U), best])
    with pytest.raises(UnitlensError, match="no layer 3"):
        StackResults.from_arrays(arrays).layer(3)


# ------------------------------------------------------------------------------------------ dependencies


def test_results_does_not_import_the_study() -> None:
    # The dependency runs study -> results: reading and writing results needs neither the study nor torch.
    code = (
        "import sys, tempfile, pathlib\n"
        "import numpy as np\n"
        "from unitlens.results import StackResults\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from test_results import stack_arrays, SUMMARY\n"
        "p = pathlib.Path(tempfile.mkdtemp()) / 'x.npz'\n"
        "StackResults.from_arrays(stack_arrays(), summary=SUMMARY).save(p)\n"
        "StackResults.load(p)\n"
        "heavy = ('unitlens.study', 'unitlens.analysis', 'unitlens.models', 'unitlens.visualize',"
        " 'unitlens.render')\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(heavy))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # No import statement of the module names the study (the transitional `study_arrays` forwarder
    # resolves it by name only when asked for).
    tree = ast.parse(Path(results_module.__file__).read_text(encoding="utf-8"))
    imported = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not {m for m in imported if m and m.startswith("unitlens.study")}, imported
