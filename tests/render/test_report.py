"""Tests for unitlens.render.report: the static HTML report of a run folder (no browser here)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest

from unitlens.errors import UnitlensError
from unitlens.render.figures import FigureEntry, write_figures, write_manifest
from unitlens.render.png import save_png
from unitlens.render.report import write_report
from unitlens.render.report.builder import INDEX_GLOBAL, read_run
from unitlens.render.report.layer_files import (
    WINDOWS_1252,
    LayerFile,
    decode_bytes_literal,
    encode_bytes_literal,
    image_ranges,
    quantise_images,
    read_layer,
    read_shared_file,
)
from unitlens.results import load_arrays, save_arrays

SHAPE = (4, 5)  # not square, so a swapped height and width would show
D = SHAPE[0] * SHAPE[1]
U, R, S, N, US = 5, 3, 2, 4, 3


def _layer_arrays(rng: np.random.Generator, j: int, model: str) -> dict[str, np.ndarray]:
    act = rng.normal(size=(U, R)).astype(np.float32)
    sel = rng.uniform(0.1, 1.0, size=(US, US)).astype(np.float32)
    a: dict[str, np.ndarray] = {
        "units": np.arange(U, dtype=np.int64),
        "am_x": rng.normal(size=(U, R, D)).astype(np.float32),
        "am_activation": act,
        "am_steps": rng.integers(5, 50, size=(U, R)),
        "am_converged": np.ones((U, R), dtype=np.int64),
        "am_history": rng.normal(size=(7, U, R)).astype(np.float32),
        "am_best": act.argmax(axis=1).astype(np.int64),
        "lc": rng.normal(size=(U, D)).astype(np.float32),
        "exemplars": rng.uniform(0.0, 1.0, size=(U, N, D)).astype(np.float32),
        "exemplar_activations": rng.normal(size=(U, N)).astype(np.float32),
        "selectivity": sel / sel.max(axis=0, keepdims=True),
        "restart_mean_cosine": rng.uniform(0.8, 1.0, size=U).astype(np.float32),
        "energy_concentration": rng.uniform(0.1, 0.9, size=U).astype(np.float32),
        "lc_vs_am": np.array([np.nan, *rng.uniform(-1, 1, size=U - 1)], dtype=np.float32),
    }
    if j == 1:
        a["filters"] = a["lc"].copy()
    if model == "dbn" and j >= 2:
        a["samples"] = rng.uniform(0.0, 1.0, size=(U, S, D)).astype(np.float32)
        a["samples_mean"] = a["samples"].mean(axis=1)
        a["samples_vs_am"] = rng.uniform(-1, 1, size=U).astype(np.float32)
    return a


def make_run(
    root: Path,
    stacks: tuple[str, ...] = ("mnist-dbn", "mnist-sdae"),
    *,
    claims: bool = True,
    figures: bool = True,
    summaries: bool = True,
    run_json: bool = True,
    seed: int = 0,
) -> Path:
    """A small synthetic finished run folder in ``root``."""
    rng = np.random.default_rng(seed)
    for name in stacks:
        model = name.rsplit("-", 1)[1]
        arrays: dict[str, np.ndarray] = {"image_shape": np.array(SHAPE, dtype=np.int64)}
        rows = []
        for j in (1, 2, 3):
            for k, v in _layer_arrays(rng, j, model).items():
                arrays[f"layer{j}/{k}"] = v
            rows.append(
                {
                    "layer": j,
                    "n_units": U,
                    "restarts": {
                        "median_mean_cosine": 0.9 + j / 100,
                        "fraction_above": 0.8,
                        "n_units_capped": 0,
                    },
                    "selectivity": {"fraction_diagonal": 1.0, "fraction_strict": 0.5},
                    "degenerate": {"fraction_flagged": 0.25, "threshold": 0.5},
                    "lc_vs_am": {"median": 0.66},
                }
            )
        save_arrays(root / "results" / f"{name}.npz", arrays)
        if summaries:
            (root / "results" / f"{name}.json").write_text(json.dumps({"layers": rows}))
    if claims:
        doc = [
            {
                "id": "1",
                "claim": "Layer-1 AM equals the filter",
                "measured": "cosine 0.99999",
                "holds": True,
                "detail": "all stacks",
            },
            {
                "id": "2",
                "claim": "Restarts <agree>",
                "measured": "median 0.98",
                "holds": False,
                "detail": "x & y",
            },
            {
                "id": "6",
                "claim": "20x20 restarts disagree more",
                "measured": "not run",
                "holds": None,
                "detail": "",
            },
            {
                "id": "3",
                "claim": "Strong diagonal",
                "verdict": "holds_control_too",
                "measured": "median margin 0.39",
                "control": "shuffled: 0.93",
                "rule": "median margin > 0",
                "holds": None,
                "detail": "",
            },
        ]
        (root / "results" / "claims.json").write_text(json.dumps(doc))
    if figures:
        save_png(root / "figures" / "figure1_mnist.png", rng.uniform(0, 1, size=(8, 12)))
        save_png(root / "figures" / "figure 3 mnist.png", rng.uniform(0, 1, size=(6, 6)))
        write_manifest(
            root / "figures",
            [
                FigureEntry("figure1_mnist.png", "figure1", "Figure 1: filters and AM (MNIST)", "mnist"),
                FigureEntry(
                    "figure 3 mnist.png", "figure3", "Figure 3: clamped samples", model="dbn", layer=2
                ),
            ],
        )
    if run_json:
        run = {
            "seed": seed,
            "preset": "quick",
            "versions": {"unitlens": "0.1.0", "torch": "2.x"},
            "stages": {"train": "done", "study": "done"},
            "seconds": {"train": 12.5, "study": 75.0},
        }
        (root / "run.json").write_text(json.dumps(run))
    return root


def index_of(report: Path) -> dict[str, Any]:
    """The JSON inside data/index.js (the assignment's right-hand side)."""
    text = (report / "data" / "index.js").read_text(encoding="ascii")
    prefix = f"window.{INDEX_GLOBAL} = "
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix) : -2])


def layer_of(report: Path, stack: int, layer: int) -> LayerFile:
    """A layer's data file, decoded as the browser decodes it (with the shared tables it names)."""
    data = report / "data"
    shared = {p.stem: read_shared_file(p.read_bytes()) for p in data.glob("e*.js")}
    chunks = {p.stem: p.read_bytes() for p in data.glob(f"s{stack}-l{layer}-c*.js")}
    return read_layer((data / f"s{stack}-l{layer}.js").read_bytes(), chunks, shared)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.links.append(value)
            if name == "id" and value is not None:
                self.ids.append(value)


def _reference_scale(x: np.ndarray, signed: bool) -> np.ndarray:
    """The paper's display rule per image (rows of ``x``), written out directly."""
    x = x.astype(np.float64)
    if signed:
        return 0.5 + 0.5 * x / np.abs(x).max(axis=1, keepdims=True)
    low, high = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    return (x - low) / (high - low)


def test_report_files_exist_and_every_reference_resolves(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    index = write_report(run)
    assert index == run / "report" / "index.html"
    files = ["index.html", "explorer.js", "style.css", "data/index.js"]
    files += [f"data/s{i}-l{j}{c}.js" for i in (0, 1) for j in (1, 2, 3) for c in ("", "-c0")]
    files += ["data/e0.js"]  # the MNIST stacks' exemplars, shared by their six layers
    for name in files:
        assert (run / "report" / name).stat().st_size > 0
    parser = _Links()
    parser.feed(index.read_text(encoding="utf-8"))
    local = [link for link in parser.links if not link.startswith(("#", "data:"))]
    assert {"data/index.js", "explorer.js", "style.css", "../figures/figure1_mnist.png"} <= set(local)
    assert "../figures/figure%203%20mnist.png" in local  # the space is URL-encoded
    for link in local:
        assert (index.parent / unquote(link)).is_file(), link
    # In-page links point at sections that exist.
    for link in parser.links:
        if link.startswith("#"):
            assert link[1:] in parser.ids, link
    # Nothing reaches for the network.
    for name in ("index.html", "explorer.js", "style.css", "data/index.js"):
        # ASCII only: the page is windows-1252 (the layer files' bytes rely on it), so anything else
        # would be misread; non-ASCII text travels as HTML character references or \\u escapes.
        text = (run / "report" / name).read_text(encoding="ascii")
        assert "http://" not in text and "https://" not in text, name
    js = (run / "report" / "explorer.js").read_text(encoding="utf-8")
    assert "fetch(" not in js and "XMLHttpRequest" not in js
    # No temporary files of the atomic writes are left behind.
    assert sorted(p.relative_to(run / "report").as_posix() for p in (run / "report").rglob("*")) == sorted(
        [*files, "data"]
    )
    assert '<meta charset="windows-1252">' in index.read_text(encoding="ascii")


def test_layer_files_hold_every_image_within_one_level_and_its_value_range(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    arrays = load_arrays(run / "results" / "mnist-dbn.npz")
    report = write_report(run).parent
    index = index_of(report)
    assert [s["name"] for s in index["stacks"]] == ["mnist-dbn", "mnist-sdae"]
    dbn = index["stacks"][0]
    assert dbn["image_shape"] == list(SHAPE) and dbn["display"] == list(SHAPE) and dbn["channels"] == 1
    assert [layer["layer"] for layer in dbn["layers"]] == [1, 2, 3]
    assert [layer["key"] for layer in dbn["layers"]] == ["s0-l1", "s0-l2", "s0-l3"]
    for layer in dbn["layers"]:
        files = [report / "data" / f"{layer['key']}.js", *(report / "data").glob(f"{layer['key']}-c*.js")]
        assert layer["bytes"] == sum(p.stat().st_size for p in files)
    layer2 = layer_of(report, 0, 2)
    assert set(layer2.levels) == {"am_x", "samples", "samples_mean", "lc", "exemplars"}
    assert set(layer_of(report, 0, 1).levels) == {"filters", "am_x", "lc", "exemplars"}
    for key, per_unit, signed in (("am_x", R, True), ("samples", S, False), ("exemplars", N, False)):
        info = layer2.meta["kinds"][key]
        assert info["per_unit"] == per_unit and info["signed"] is signed
        q = layer2.levels[key]
        # Image u * per_unit + i is item i of unit u, pixels in row-major (h, w) order.
        x = arrays[f"layer2/{key}"].reshape(U * per_unit, D).astype(np.float64)
        assert np.abs(q / 255.0 - _reference_scale(x, signed)).max() <= 0.5 / 255.0 + 1e-9
        # Each image's range gives its values back: value = lo + (hi - lo) * level / 255.
        lo, hi = layer2.ranges[key][:, :1].astype(np.float64), layer2.ranges[key][:, 1:].astype(np.float64)
        step = (hi - lo) / 255.0
        assert np.all(np.abs(lo + step * q - x) <= 0.5 * step + 1e-5 * np.abs(x).max())


def test_no_image_is_stored_twice_and_agreeing_restarts_are_differences(tmp_path: Path) -> None:
    run = make_run(tmp_path, ("mnist-dbn",))
    arrays = load_arrays(run / "results" / "mnist-dbn.npz")
    arrays["layer2/am_x"] = np.repeat(arrays["layer2/am_x"][:, :1], R, axis=1)  # restarts that agree
    arrays["layer2/am_x"][:, 1:] += np.float32(1e-3) * np.random.default_rng(1).normal(
        size=arrays["layer2/am_x"][:, 1:].shape
    ).astype(np.float32)
    arrays["layer2/exemplars"] = arrays["layer1/exemplars"][::-1].copy()  # the same training rows
    save_arrays(run / "results" / "mnist-dbn.npz", arrays)
    report = write_report(run).parent
    layer1 = layer_of(report, 0, 1)
    # make_run's layer-1 linear combination is the filter itself: its images are the filters' rows.
    # The filters are the thumbnails (rows 0 .. U - 1 of the layer); the chunk holds only the restarts.
    np.testing.assert_array_equal(layer1.thumbs, layer1.levels["filters"])
    assert sum(c["table_rows"] for c in layer1.chunks) == U * R
    # Exemplars are training rows, stored once for every layer of the data set's stacks (e0.js).
    assert all(layer_of(report, 0, j).meta["kinds"]["exemplars"]["shared"] == "e0" for j in (1, 2, 3))
    shared = read_shared_file((report / "data" / "e0.js").read_bytes())
    assert shared.shape == (2 * U * N, D)  # layers 1 and 3: their own rows; layer 2 repeats layer 1's
    np.testing.assert_array_equal(
        layer_of(report, 0, 2).levels["exemplars"],
        layer1.levels["exemplars"].reshape(U, N, D)[::-1].reshape(-1, D),
    )
    layer2 = layer_of(report, 0, 2)
    x = arrays["layer2/am_x"].reshape(U * R, D)
    np.testing.assert_array_equal(layer2.levels["am_x"], quantise_images(x, SHAPE, signed=True))
    # Each unit's best restart is its thumbnail; its other restarts are stored as differences from it
    # where that compresses better (the judge is zlib, so on these 20-pixel images not always), and
    # equal differences are stored once.
    best = arrays["layer2/am_best"]
    assert layer2.thumbs is not None
    np.testing.assert_array_equal(layer2.thumbs, layer2.levels["am_x"].reshape(U, R, D)[np.arange(U), best])
    assert layer2.bases is not None
    deltas = np.flatnonzero(layer2.bases >= 0)
    assert len(deltas) >= U * (R - 1) // 2
    assert np.all(layer2.bases[deltas] < U)  # differences from a thumbnail
    # Independent restarts (layer 3) decode to their own levels too.
    np.testing.assert_array_equal(
        layer_of(report, 0, 3).levels["am_x"],
        quantise_images(arrays["layer3/am_x"].reshape(U * R, D), SHAPE, signed=True),
    )


def test_quantise_images_follows_the_display_rule() -> None:
    x = np.array([[-2.0, 0.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.0], [3.0, 1.0, 2.0, 3.0]])
    signed = quantise_images(x, (2, 2), signed=True)
    assert signed.dtype == np.uint8 and signed.shape == (3, 4)
    # -max -> black, zero -> grey (127.5 rounds to 128), +max -> white; an all-zero image is grey.
    assert signed[0].tolist() == [0, 128, 191, 255]
    assert signed[1].tolist() == [128, 128, 128, 128]
    unsigned = quantise_images(x[2:], (2, 2), signed=False)
    assert unsigned[0].tolist() == [255, 0, 128, 255]
    rng = np.random.default_rng(3)
    y = rng.normal(size=(6, 20)) * rng.uniform(0.01, 100, size=(6, 1))
    for s in (True, False):
        q = quantise_images(y, (4, 5), signed=s)
        assert np.abs(q / 255.0 - _reference_scale(y, s)).max() <= 0.5 / 255.0 + 1e-12


def test_image_ranges_give_the_values_of_levels_0_and_255() -> None:
    x = np.array([[-2.0, 0.0, 1.0, 2.0], [0.5, 0.5, 0.5, 0.5], [3.0, 3.0, 3.0, 3.0], [1.0, 2.0, 4.0, 3.0]])
    np.testing.assert_array_equal(image_ranges(x[:1], signed=True), [[-2.0, 2.0]])
    # Unsigned: min and max; a constant image in [0, 1] keeps its value (levels = 255 * value), any other
    # constant image is grey, so both of its ends are its value.
    np.testing.assert_array_equal(image_ranges(x[1:], signed=False), [[0.0, 1.0], [3.0, 3.0], [1.0, 4.0]])
    for signed, rows in ((True, x[:1]), (False, x[1:])):
        q = quantise_images(rows, (2, 2), signed).astype(np.float64)
        r = image_ranges(rows, signed)
        np.testing.assert_allclose(r[:, :1] + (r[:, 1:] - r[:, :1]) * q / 255.0, rows, atol=4.0 / 255.0)


def test_bytes_travel_in_a_windows_1252_string_literal() -> None:
    everything = bytes(range(256)) * 3 + np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes()
    body = encode_bytes_literal(everything)
    assert decode_bytes_literal(body) == everything
    # Nothing in the body can end the literal or the line, and every backslash starts an escape.
    assert b'"' not in body.replace(b'\\"', b"") and b"\n" not in body and b"\r" not in body
    assert b"\x00" not in body
    assert re.fullmatch(rb"(?:[^\\]|\\(?:x00|[\\\"nr]))*", body, re.S) is not None
    # The table of code points that differ from their byte is the WHATWG windows-1252 decoder's: the
    # bytes Python's cp1252 codec defines, with the other five decoding to their own code point.
    for b in range(256):
        try:
            expected = ord(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            expected = b  # 0x81, 0x8D, 0x8F, 0x90, 0x9D
        assert WINDOWS_1252.get(b, b) == expected, hex(b)


def test_layer_file_numbers_and_selectivity(tmp_path: Path) -> None:
    run = make_run(tmp_path, ("patches-dbn",))
    arrays = load_arrays(run / "results" / "patches-dbn.npz")
    layer = layer_of(write_report(run).parent, 0, 3)
    num = layer.meta["numbers"]
    assert num["units"] == list(range(U))
    assert num["am_best"] == arrays["layer3/am_best"].tolist()
    assert num["lc_vs_am"][0] is None  # NaN (undefined correlation) travels as null
    np.testing.assert_allclose(num["lc_vs_am"][1:], arrays["layer3/lc_vs_am"][1:], rtol=1e-3)
    np.testing.assert_allclose(num["am_activation"], arrays["layer3/am_activation"], rtol=1e-6)
    np.testing.assert_allclose(num["samples_vs_am"], arrays["layer3/samples_vs_am"], rtol=1e-3)
    s = arrays["layer3/selectivity"].astype(np.float64)
    sel = layer.meta["selectivity"]
    assert sel["n"] == US
    np.testing.assert_allclose(sel["diagonal"], np.diag(s), rtol=1e-3)
    for i in range(US):
        others = [s[i, j] if j != i else -np.inf for j in range(US)]
        assert sel["argmax_other"][i] == int(np.argmax(others))
        assert sel["max_other"][i] == pytest.approx(max(others), rel=1e-3)
    assert layer.selectivity is not None
    assert (
        np.abs(layer.selectivity / 255.0 * sel["scale_max"] - s).max()
        <= 0.5 / 255.0 * sel["scale_max"] + 1e-6
    )


def test_overview_shows_run_claims_figures_and_layer_tables(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    text = write_report(run).read_text(encoding="utf-8")
    assert "<title>unitlens report &#8212; preset quick, seed 0</title>" in text
    assert "2.x" in text and "12.5 s" in text and "1 min 15 s" in text
    # The claims table: every claim, its measurement and a verdict in words, text escaped.
    table = re.search(r'<table id="claims-table".*?</table>', text, re.S)
    assert table is not None
    rows = re.findall(r"<tr class=\"claim-(\w+)\" data-verdict=\"(\w+)\">(.*?)</tr>", table.group(0), re.S)
    # Files written before verdicts (only "holds") read as holds / fails / not measured.
    assert [v for _, v, _ in rows] == ["holds", "fails", "not_measured", "holds_control_too"]
    assert len({cls for cls, _, _ in rows}) == 4  # four distinct styles ...
    words = [re.search(r'class="verdict \w+">(.*?)</span></td>', r).group(1) for _, _, r in rows]  # type: ignore[union-attr]
    # ... and four distinct marks and words, so colour is not the only cue.
    assert len(set(words)) == 4 and "holds, but so does the control" in words[3]
    assert "Restarts &lt;agree&gt;" in rows[1][2] and "x &amp; y" in rows[1][2]
    assert "shuffled: 0.93" in rows[3][2] and "median margin &gt; 0" in rows[3][2]
    assert (
        "1 hold, 1 hold but so does the shuffled-weights control" in text and "1 fail, 1 not measured" in text
    )
    # Figures, and one summary table per stack with a row per layer.
    assert text.count("<img ") == 2
    for name in ("mnist-dbn", "mnist-sdae"):
        t = re.search(rf'<table class="data layer-table" id="stack-{name}".*?</table>', text, re.S)
        assert t is not None
        body = t.group(0).split("<tbody>")[1]
        assert body.count("<tr>") == 3
        assert "0.910" in body and "0.930" in body  # restart agreement of layers 1 and 3 from the JSON
    # The order: claims, the unit browser, figures, layers, and the run's provenance last.
    order = [
        text.index(f'<section id="{name}"') for name in ("claims", "explorer", "figures", "layers", "run")
    ]
    assert order == sorted(order)
    # The browser's labelled controls.
    for control in ("pick-dataset", "pick-model", "pick-layer", "pick-unit", "index-sort", "index-filter"):
        assert f'<label for="{control}">' in text and f'<select id="{control}">' in text
    assert 'id="prev-unit"' in text and 'id="next-unit"' in text


def test_missing_optional_parts_still_give_a_report(tmp_path: Path) -> None:
    run = make_run(tmp_path, ("mnist-sdae",), claims=False, figures=False, summaries=False, run_json=False)
    index = write_report(run)
    text = index.read_text(encoding="utf-8")
    assert "the claims were not measured" in text
    assert "No figures" in text and "<img " not in text
    assert "No <code>run.json</code>" in text
    # Without the study's summary the table shows only what the results hold (the unit counts): the report
    # never re-derives the study's figures with thresholds of its own.
    assert "the study's summary is missing" in text
    table = re.search(r'<table class="data layer-table" id="stack-mnist-sdae".*?</table>', text, re.S)
    assert table is not None
    body = table.group(0).split("<tbody>")[1]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", body)
    assert cells.count(str(U)) == 3
    assert set(cells) == {str(U), "&#8212;"}
    stack = index_of(index.parent)["stacks"][0]
    assert stack["model"] == "sdae"
    assert all("samples" not in layer_of(index.parent, 0, j).levels for j in (1, 2, 3))


def test_rerun_regenerates_the_report_and_removes_what_it_no_longer_uses(tmp_path: Path) -> None:
    run = make_run(tmp_path, ("mnist-dbn", "mnist-sdae"), claims=False, figures=False)
    first = write_report(run).read_text(encoding="ascii")
    assert "claims-table" not in first and "figure1_mnist.png" not in first
    old_layer = (run / "report" / "data" / "s0-l1.js").read_bytes()
    # An older report's single data file, which the new page no longer reads.
    (run / "report" / "data.js").write_text("window.UNITLENS_REPORT_DATA = {};\n")
    (run / "results" / "mnist-sdae.npz").unlink()
    make_run(tmp_path, ("mnist-dbn",), seed=1)
    text = write_report(run).read_text(encoding="ascii")
    assert "claims-table" in text and "figure1_mnist.png" in text
    assert "seed 1" in text
    assert (run / "report" / "data" / "s0-l1.js").read_bytes() != old_layer
    assert not (run / "report" / "data.js").exists()
    assert sorted(p.name for p in (run / "report" / "data").iterdir()) == [
        "e0.js",
        "index.js",
        "s0-l1-c0.js",
        "s0-l1.js",
        "s0-l2-c0.js",
        "s0-l2.js",
        "s0-l3-c0.js",
        "s0-l3.js",
    ]


def test_no_results_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    with pytest.raises(UnitlensError, match=re.escape(str(tmp_path)) + ".*no results"):
        write_report(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "claims.json").write_text("[]")
    with pytest.raises(UnitlensError, match="no results"):
        write_report(tmp_path)
    with pytest.raises(UnitlensError, match="does not exist"):
        write_report(tmp_path / "missing")
    assert not (tmp_path / "report").exists()


def test_malformed_files_are_errors_naming_the_file(tmp_path: Path) -> None:
    run = make_run(tmp_path, ("mnist-dbn",))
    (run / "results" / "claims.json").write_text('[{"id": "1", "claim": "c"}]')
    with pytest.raises(UnitlensError, match=r"claims\.json.*'measured'"):
        read_run(run)
    (run / "results" / "claims.json").write_text("{not json")
    with pytest.raises(UnitlensError, match=r"claims\.json: not valid JSON"):
        read_run(run)
    (run / "results" / "claims.json").unlink()
    (run / "results" / "mnist-dbn.json").write_text('{"layers": 3}')
    with pytest.raises(UnitlensError, match=r"mnist-dbn\.json"):
        read_run(run)
    (run / "results" / "mnist-dbn.json").unlink()
    # Damaged results files, written around the validating writer (save_arrays would refuse them).
    np.savez(run / "results" / "mnist-dbn.npz", image_shape=np.array(SHAPE), **{"layer1/units": np.arange(3)})
    with pytest.raises(UnitlensError, match=r"mnist-dbn\.npz: field layer1/am_x is missing"):
        read_run(run)
    bad = {
        "image_shape": np.array(SHAPE),
        **{f"layer1/{k}": v for k, v in _layer_arrays(np.random.default_rng(0), 1, "dbn").items()},
    }
    bad["layer1/lc"] = np.zeros((U, D + 1), dtype=np.float32)
    np.savez(run / "results" / "mnist-dbn.npz", **bad)  # type: ignore[arg-type]
    with pytest.raises(
        UnitlensError, match=r"field layer1/lc has shape \(5, 21\), expected \(U, d\) = \(5, 20\)"
    ):
        read_run(run)


def test_the_finetune_sweep_figure_is_shown_with_its_caption(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", figures=False)
    results = tmp_path / "finetune-only"
    row = {"hidden_learning_rate": 0.005, "errors": {"dbn": 0.05}, "am_cosine": {"dbn L2": 0.999}}
    results.mkdir()
    (results / "finetune.json").write_text(json.dumps({"hidden_learning_rate": 0.005, "sweep": [row]}))
    write_figures(results, run / "figures")  # the manifest lists the sweep with its caption
    text = write_report(run).read_text(encoding="utf-8")
    figure = re.search(r'<details class="paper-figure" data-kind="finetune_sweep">.*?</details>', text)
    assert figure is not None
    # Its own caption (not "finetune" plus a data-set suffix), saying the verdict hangs on the rate.
    assert "verdict depends on this rate and is judged at the marked one" in figure.group(0)
    assert "(sweep)" not in figure.group(0)


def test_the_report_shows_what_the_figure_manifest_lists(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    # A PNG the manifest does not list (left over from an older render, or anyone's) is not shown.
    save_png(run / "figures" / "stray.png", np.zeros((4, 4)))
    text = write_report(run).read_text(encoding="utf-8")
    assert "stray.png" not in text
    assert text.count("<img ") == 2
    # Captions come from the manifest, not from the file names.
    assert "Figure 1: filters and AM (MNIST)" in text and "Figure 3: clamped samples" in text
    write_manifest(
        run / "figures",
        [FigureEntry("stray.png", "selectivity", "a caption from the manifest", "mnist", "dbn", 2)],
    )
    text = write_report(run).read_text(encoding="utf-8")
    assert text.count("<img ") == 1 and 'src="../figures/stray.png"' in text
    assert "a caption from the manifest" in text and "figure1_mnist.png" not in text
    # No manifest at all: no figures, and a note saying how to render them.
    (run / "figures" / "manifest.json").unlink()
    text = write_report(run).read_text(encoding="utf-8")
    assert "<img " not in text and "manifest.json</code> is missing" in text


def test_a_bad_figure_manifest_is_an_error_naming_it(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    manifest = run / "figures" / "manifest.json"
    write_manifest(run / "figures", [FigureEntry("gone.png", "figure1", "c")])
    with pytest.raises(UnitlensError, match=r"manifest\.json: figure \[0\]: gone\.png does not exist"):
        read_run(run)
    write_manifest(run / "figures", [FigureEntry("../run.json", "figure1", "c")])
    with pytest.raises(
        UnitlensError, match=r"manifest\.json: figure \[0\]: field 'file' must be a file name"
    ):
        read_run(run)
    manifest.write_text('{"figures": [{"file": "figure1_mnist.png", "kind": "figure1"}]}')
    with pytest.raises(UnitlensError, match=r"manifest\.json: figure \[0\]: field 'caption'"):
        read_run(run)
    manifest.write_text("{")
    with pytest.raises(UnitlensError, match=r"manifest\.json is damaged"):
        read_run(run)


def test_chunks_of_units_decode_to_the_same_images_as_one_chunk(tmp_path: Path) -> None:
    one = write_report(make_run(tmp_path / "one", ("mnist-dbn",))).parent
    run = make_run(tmp_path / "two", ("mnist-dbn",))
    two = write_report(run, chunk_units=2).parent
    for j in (1, 2, 3):
        a, b = layer_of(one, 0, j), layer_of(two, 0, j)
        assert [c["n_units"] for c in b.meta["chunks"]] == [2, 2, 1]  # U = 5 units
        assert [c["first_unit"] for c in b.meta["chunks"]] == [0, 2, 4]
        assert set(a.levels) == set(b.levels)
        for kind in a.levels:
            np.testing.assert_array_equal(a.levels[kind], b.levels[kind])
            np.testing.assert_array_equal(a.ranges[kind], b.ranges[kind])
        assert a.meta["numbers"] == b.meta["numbers"]
    with pytest.raises(UnitlensError, match="chunk_units must be a positive integer, got 0"):
        write_report(run, chunk_units=0)
    # A chunk file that is missing is named.
    (two / "data" / "s0-l1-c1.js").unlink()
    with pytest.raises(UnitlensError, match=r"s0-l1-c1\.js is missing"):
        layer_of(two, 0, 1)
