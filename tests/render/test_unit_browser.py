"""The report's unit browser in a real headless Chromium: its index, keys, links, pins, scales, downloads.

A synthetic run of two stacks (``mnist-dbn``, ``mnist-sdae``) x two layers x 12 units, saved with
``unitlens.results.save_arrays``; every expectation is computed here from the saved arrays, not read back
from the report. One browser serves the whole module; each test loads the page afresh. Chromium is
installed, or the tests skipped, by ``test_report_browser``'s logic.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_report_browser import WAIT_S, _install_chromium, _severe, start_driver

from unitlens.render.figures import FigureEntry, write_manifest
from unitlens.render.png import save_png
from unitlens.render.report import write_report
from unitlens.results import save_arrays

SHAPE = (5, 6)  # (h, w)
D = SHAPE[0] * SHAPE[1]
U, R, S, N, US = 12, 3, 2, 3, 6  # units, restarts, samples, exemplars, units in the selectivity matrix
STACKS = ("mnist-dbn", "mnist-sdae")
NAN_COSINE = (3, 7)  # unit indices without a restart agreement
FLAT = (1, 4, 9)  # unit indices flagged; the dead ones among them:
DEAD = (1, 9)
DESKTOP, PHONE = (1440, 900), (390, 844)

Arrays = dict[str, dict[str, np.ndarray]]


def _units(j: int) -> np.ndarray:
    """Layer 1 studies units 0..11, layer 2 the odd units 1..23: a unit's id is not its index there."""
    return np.arange(U, dtype=np.int64) if j == 1 else 2 * np.arange(U, dtype=np.int64) + 1


def _layer(rng: np.random.Generator, j: int, model: str) -> dict[str, np.ndarray]:
    # Unit u's AM images reach max|x| of about amp[u]: unit 0's are far fainter than the layer's largest.
    amp = np.linspace(0.2, 2.0, U)
    act = rng.normal(size=(U, R)).astype(np.float32)
    cosine = rng.permutation(np.linspace(0.5, 0.99, U)).astype(np.float32)
    cosine[list(NAN_COSINE)] = np.nan
    flat = np.zeros(U, np.int64)
    flat[list(FLAT)] = 1
    dead = np.zeros(U, np.int64)
    dead[list(DEAD)] = 1
    sel = rng.uniform(0.05, 1.0, size=(US, US))
    stationarity = rng.uniform(0, 1e-3, size=(U, R)).astype(np.float32)
    stationarity[0, 0] = np.nan
    a = {
        "units": _units(j),
        "am_x": (rng.uniform(-1, 1, size=(U, R, D)) * amp[:, None, None]).astype(np.float32),
        "am_activation": act,
        "am_steps": rng.integers(5, 50, size=(U, R)),
        "am_converged": np.ones((U, R), dtype=np.int64),
        "am_history": rng.normal(size=(4, U, R)).astype(np.float32),
        "am_best": act.argmax(axis=1).astype(np.int64),
        "am_stationarity": stationarity,
        "lc": rng.normal(size=(U, D)).astype(np.float32),
        "exemplars": rng.uniform(0.0, 1.0, size=(U, N, D)).astype(np.float32),
        "exemplar_activations": -np.sort(-rng.normal(size=(U, N)), axis=1).astype(np.float32),
        "selectivity": (sel / sel.sum(axis=0)).astype(np.float32),
        "restart_mean_cosine": cosine,
        "energy_concentration": rng.uniform(0.1, 0.9, size=U).astype(np.float32),
        "lc_vs_am": np.array([np.nan, *rng.uniform(-1, 1, size=U - 1)], dtype=np.float32),
        "flat": flat,
        "dead": dead,
    }
    if j == 1:
        a["filters"] = rng.normal(size=(U, D)).astype(np.float32)
    if model == "dbn" and j == 2:
        a["samples"] = rng.uniform(0.0, 1.0, size=(U, S, D)).astype(np.float32)
        a["samples_mean"] = a["samples"].mean(axis=1)
        a["samples_vs_am"] = rng.uniform(-1, 1, size=U).astype(np.float32)
    return a


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Arrays]:
    """The run folder (report written) and each stack's saved arrays, ``{stack: {"layer1/am_x": ...}}``."""
    root = tmp_path_factory.mktemp("unit-browser-run")
    rng = np.random.default_rng(1)
    stacks: Arrays = {}
    for name in STACKS:
        arrays = {"image_shape": np.array(SHAPE, dtype=np.int64)}
        for j in (1, 2):
            arrays.update({f"layer{j}/{k}": v for k, v in _layer(rng, j, name.split("-")[1]).items()})
        save_arrays(root / "results" / f"{name}.npz", arrays)
        stacks[name] = arrays
    claims = [{"id": "1", "claim": "Layer-1 AM equals the filter", "measured": "0.99", "holds": True}]
    (root / "results" / "claims.json").write_text(json.dumps(claims))
    # A figure wider than a phone: its box scrolls, the page must not.
    save_png(root / "figures" / "figure2_mnist.png", rng.uniform(0, 1, size=(20, 300)), scale=2)
    save_png(root / "figures" / "figure1_mnist.png", rng.uniform(0, 1, size=(10, 10)))
    write_manifest(
        root / "figures",
        [
            FigureEntry("figure2_mnist.png", "figure2", "Figure 2 (MNIST)", "mnist"),
            FigureEntry("figure1_mnist.png", "figure1", "Figure 1 (MNIST)", "mnist"),
        ],
    )
    (root / "run.json").write_text(json.dumps({"seed": 1, "preset": "test", "versions": {}, "seconds": {}}))
    # Chunks of 5 units: a layer's 12 units lie in 3 files, so walking the units crosses chunks.
    write_report(root, chunk_units=5)
    assert len(list((root / "report" / "data").glob("s0-l1-c*.js"))) == 3
    return root, stacks


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module, at the desktop size, its console log kept."""
    reason = _install_chromium()
    if reason is not None:
        pytest.skip(reason)
    browser = start_driver(tmp_path_factory.mktemp("chromium-profile"))
    browser.set_window_size(*DESKTOP)
    try:
        yield browser
    finally:
        browser.quit()


# ------------------------------------------------------------------------------------------------- helpers


def _wait(browser: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_S, poll_frequency=0.05).until(condition, f"waiting for {what}")


def _shown(browser: Any) -> str:
    return str(browser.find_element("id", "unit-view").get_attribute("data-shown") or "")


def _wait_shown(browser: Any, expected: str) -> None:
    _wait(browser, lambda b: _shown(b) == expected, f"unit {expected} (shown: {_shown(browser)!r})")


def _load(browser: Any, root: Path, fragment: str = "", expected: str | None = None) -> None:
    """Open the report afresh (a new document, not a same-page hash change) and wait for a unit."""
    browser.get("about:blank")
    browser.get((root / "report" / "index.html").as_uri() + fragment)
    if expected is None:
        _wait(browser, lambda b: _shown(b) != "", "a unit")
    else:
        _wait_shown(browser, expected)


@pytest.fixture
def page(driver: Any, run: tuple[Path, Arrays]) -> Iterator[Any]:
    """The report freshly loaded on the first unit; afterwards the console must hold no errors."""
    _load(driver, run[0], expected="mnist-dbn/1/0")
    yield driver
    assert _severe(driver) == []


def _select(browser: Any, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", element_id)).select_by_value(value)


def _visible_thumbs(browser: Any) -> list[int]:
    """The unit ids of the index's visible thumbnails, in the DOM's order."""
    return [
        int(u)
        for u in browser.execute_script(
            "return Array.from(document.querySelectorAll('#unit-index button.thumb'))"
            ".filter(b => !b.hidden).map(b => b.dataset.unit);"
        )
    ]


def _thumb(browser: Any, unit_id: int) -> Any:
    return browser.find_element("css selector", f'#unit-index button.thumb[data-unit="{unit_id}"]')


def _press(browser: Any, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).send_keys(key).perform()


def _click(browser: Any, element: Any) -> None:
    """Click ``element`` after scrolling it to the middle of the window, clear of the sticky picker."""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()


def _rounded(x: float, digits: int = 4) -> float:
    """What the layer file keeps of a number: ``digits`` significant digits."""
    return float(f"{x:.{digits}g}")


def _sorted_ids(ids: np.ndarray, values: np.ndarray, descending: bool) -> list[int]:
    """Units by value (ties by index), those without a value (NaN) last in index order, either way."""
    have = [(_rounded(float(v)), i) for i, v in enumerate(values) if np.isfinite(v)]
    have.sort(key=lambda t: (-t[0] if descending else t[0], t[1]))
    missing = [i for i, v in enumerate(values) if not np.isfinite(v)]
    return [int(ids[i]) for _, i in have] + [int(ids[i]) for i in missing]


def _margins(selectivity: np.ndarray) -> np.ndarray:
    """Per unit of the layer: its row's diagonal minus the row's largest other entry; NaN past the matrix."""
    s = selectivity.astype(np.float64)
    others = np.where(np.eye(len(s), dtype=bool), -np.inf, s)
    out = np.full(U, np.nan)
    out[: len(s)] = np.diag(s) - others.max(axis=1)
    return out


_CONTRAST = (
    "const [c, x, y, w, h] = arguments;"
    "const d = c.getContext('2d').getImageData(x, y, w || c.width, h || c.height).data;"
    "let m = 0; for (let i = 0; i < d.length; i += 4) { m = Math.max(m, Math.abs(d[i] - 128)); }"
    "return m;"
)


def _contrast(browser: Any, selector: str) -> int:
    """The largest distance of any grey level of the canvas from mid grey (128)."""
    canvas = browser.find_element("css selector", selector)
    return int(browser.execute_script(_CONTRAST, canvas, 0, 0, 0, 0))


def _thumb_contrast(browser: Any, unit: int) -> int:
    """``_contrast`` of a unit's thumbnail: its region of the index's sprite (``#index-sprite``)."""
    thumb = _thumb(browser, unit)
    x, y = int(thumb.get_attribute("data-x")), int(thumb.get_attribute("data-y"))
    sprite = browser.find_element("id", "index-sprite")
    return int(browser.execute_script(_CONTRAST, sprite, x, y, SHAPE[1], SHAPE[0]))


# ---------------------------------------------------------------------------------------- index: sort, filter


@pytest.mark.parametrize(
    ("sort", "descending", "label"),
    [
        ("restart", False, "restart agreement (lowest first)"),
        ("restart", True, "restart agreement (highest first)"),
        ("margin", True, "selectivity margin (highest first)"),
    ],
)
def test_index_sorts_like_the_saved_numbers(
    page: Any, run: tuple[Path, Arrays], sort: str, descending: bool, label: str
) -> None:
    dbn = run[1]["mnist-dbn"]
    ids = dbn["layer1/units"]
    assert _visible_thumbs(page) == ids.tolist()  # by unit number to begin with
    _select(page, "index-sort", sort)
    order = page.find_element("id", "index-order")
    if descending:
        _click(page, order)
    assert order.get_attribute("data-order") == ("desc" if descending else "asc")
    values = dbn["layer1/restart_mean_cosine"] if sort == "restart" else _margins(dbn["layer1/selectivity"])
    assert _visible_thumbs(page) == _sorted_ids(ids, values, descending)
    assert page.find_element("id", "index-count").text == f"Showing {U} of {U} units, by {label}."
    # Each caption shows the id and the value sorted by; a unit without one, a dash.
    u = int(np.flatnonzero(np.isfinite(values))[0])
    shown_id, shown_value = (
        _thumb(page, int(ids[u])).find_element("css selector", ".thumb-caption").text.split(" \u00b7 ")
    )
    assert shown_id == str(ids[u]) and float(shown_value) == pytest.approx(float(values[u]), abs=1e-3)
    if sort == "restart":
        caption = _thumb(page, int(ids[NAN_COSINE[0]])).find_element("css selector", ".thumb-caption")
        assert caption.text == f"{ids[NAN_COSINE[0]]} \u00b7 \u2014"
    if descending:  # the button toggles back
        _click(page, order)
        assert order.get_attribute("data-order") == "asc"
        assert _visible_thumbs(page) == _sorted_ids(ids, values, False)


def test_index_filters_flagged_units(page: Any, run: tuple[Path, Arrays]) -> None:
    ids = run[1]["mnist-dbn"]["layer1/units"]
    flagged = [int(ids[i]) for i in FLAT]
    for u in range(U):  # flagged thumbnails are marked, with a word saying which flag
        thumb = _thumb(page, int(ids[u]))
        badges = [b.text for b in thumb.find_elements("css selector", ".badge")]
        assert ("flagged" in (thumb.get_attribute("class") or "").split()) == (u in FLAT)
        assert badges == (["dead"] if u in DEAD else ["flat"] if u in FLAT else [])
    _select(page, "index-filter", "flagged")
    assert _visible_thumbs(page) == flagged
    assert page.find_element("id", "index-count").text == f"Showing {len(FLAT)} of {U} units, by unit."
    _select(page, "index-filter", "ok")
    assert _visible_thumbs(page) == [int(i) for i in ids if int(i) not in flagged]
    assert page.find_element("id", "index-count").text == f"Showing {U - len(FLAT)} of {U} units, by unit."
    _select(page, "index-filter", "all")
    assert _visible_thumbs(page) == ids.tolist()


# ----------------------------------------------------------------------------------------- clicks and keys


def test_a_thumbnail_opens_its_unit_and_arrow_keys_walk_the_index_order(
    page: Any, run: tuple[Path, Arrays]
) -> None:
    dbn = run[1]["mnist-dbn"]
    ids = dbn["layer2/units"]
    _select(page, "pick-layer", "2")
    _wait_shown(page, "mnist-dbn/2/1")
    _select(page, "index-sort", "restart")
    order = _sorted_ids(ids, dbn["layer2/restart_mean_cosine"], descending=False)
    assert order != sorted(order)  # the index order is not the unit order: the keys must follow the former

    _click(page, _thumb(page, order[4]))
    _wait_shown(page, f"mnist-dbn/2/{order[4]}")
    assert _thumb(page, order[4]).get_attribute("aria-pressed") == "true"
    assert page.find_element("id", "pick-unit").get_attribute("value") == str(ids.tolist().index(order[4]))

    def focused_unit() -> str | None:
        value = page.execute_script("return document.activeElement.dataset.unit || null;")
        return None if value is None else str(value)

    page.execute_script("arguments[0].focus();", _thumb(page, order[4]))
    _press(page, "\ue014")  # ArrowRight: the next unit in the index's order, and the focus goes with it
    _wait_shown(page, f"mnist-dbn/2/{order[5]}")
    assert focused_unit() == str(order[5])
    _press(page, "\ue015")  # ArrowDown steps on too
    _wait_shown(page, f"mnist-dbn/2/{order[6]}")
    _press(page, "\ue012")  # ArrowLeft
    _wait_shown(page, f"mnist-dbn/2/{order[5]}")
    assert [
        int(b.get_attribute("data-unit"))
        for b in page.find_elements("css selector", "[aria-pressed=true]")
        if b.tag_name == "button" and "thumb" in (b.get_attribute("class") or "")
    ] == [order[5]]

    # Filtered: the keys step over the hidden units.
    _select(page, "index-filter", "flagged")
    flagged = [u for u in order if ids.tolist().index(u) in FLAT]
    _click(page, _thumb(page, flagged[0]))
    _wait_shown(page, f"mnist-dbn/2/{flagged[0]}")
    _press(page, "\ue014")
    _wait_shown(page, f"mnist-dbn/2/{flagged[1]}")

    # Outside the browser (the page header was clicked: focus on the body) the keys are the page's.
    _click(page, page.find_element("css selector", "header.top h1"))
    assert page.execute_script("return document.activeElement === document.body;")
    _press(page, "\ue014")
    time.sleep(0.3)
    assert _shown(page) == f"mnist-dbn/2/{flagged[1]}"


# ------------------------------------------------------------------------------------------------- links


def test_a_link_opens_its_unit_and_the_page_follows_the_address(
    driver: Any, run: tuple[Path, Arrays]
) -> None:
    root = run[0]
    _load(driver, root, "#unit=mnist-sdae/2/5", expected="mnist-sdae/2/5")
    assert driver.find_element("id", "pick-model").get_attribute("value") == "mnist-sdae"
    assert driver.find_element("id", "pick-layer").get_attribute("value") == "2"
    assert driver.find_element("id", "pick-unit").get_attribute("value") == "2"  # unit 5 is layer 2's third
    assert _thumb(driver, 5).get_attribute("aria-pressed") == "true"
    assert not driver.find_element("id", "link-error").is_displayed()
    # It scrolled to the unit, which sits just below the sticky picker (its scroll margin).
    # (Polled: the scroll follows the drawing of the unit, and may land a frame later.)
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 5).until(
        lambda b: b.execute_script(
            "const e = document.getElementById('unit-browser');"
            "const m = parseFloat(getComputedStyle(e).scrollMarginTop);"
            "return window.scrollY > 0 && m > 0 && Math.abs(e.getBoundingClientRect().top - m) < 5;"
        )
    )

    driver.execute_script("location.hash = '#unit=mnist-dbn/1/3';")
    _wait_shown(driver, "mnist-dbn/1/3")
    assert driver.find_element("id", "pick-model").get_attribute("value") == "mnist-dbn"
    # The address follows the page too, as the unit changes.
    _click(driver, driver.find_element("id", "next-unit"))
    _wait_shown(driver, "mnist-dbn/1/4")
    assert driver.execute_script("return location.hash;") == "#unit=mnist-dbn/1/4"
    # A bad address in the open page says so and keeps the unit shown; a good one clears the message.
    driver.execute_script("location.hash = '#unit=mnist-dbn/2/4';")  # layer 2 holds the odd units only
    error = driver.find_element("id", "link-error")
    _wait(driver, lambda b: error.is_displayed(), "the link error")
    assert "holds no unit 4" in error.text
    assert _shown(driver) == "mnist-dbn/1/4"
    driver.execute_script("location.hash = '#unit=mnist-dbn/2/23';")
    _wait_shown(driver, "mnist-dbn/2/23")
    assert not error.is_displayed()
    assert _severe(driver) == []


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("#unit=nope/1/0", "there is no stack \u201cnope\u201d (this report has mnist-dbn, mnist-sdae)"),
        ("#unit=mnist-dbn/9/0", "mnist-dbn has no layer 9 (its layers: 1, 2)"),
        ("#unit=mnist-dbn/1/999", "mnist-dbn layer 1 holds no unit 999 (its studied units run from 0 to 11)"),
        ("#unit=mnist-dbn/1", "is not STACK/LAYER/UNIT"),
    ],
)
def test_a_bad_link_says_what_is_wrong_and_shows_the_first_unit(
    driver: Any, run: tuple[Path, Arrays], fragment: str, message: str
) -> None:
    _load(driver, run[0], fragment, expected="mnist-dbn/1/0")
    error = driver.find_element("id", "link-error")
    assert error.is_displayed() and error.get_attribute("role") == "alert"
    assert error.text.startswith("This link does not name a unit of this report: ")
    assert message in error.text
    assert _severe(driver) == []


# ------------------------------------------------------------------------------------------------- pins


def test_pins_survive_a_reload_through_the_address(page: Any) -> None:
    assert not page.find_element("id", "pins-section").is_displayed()
    _select(page, "pick-unit", "2")
    _wait_shown(page, "mnist-dbn/1/2")
    _click(page, page.find_element("id", "pin-unit"))
    _select(page, "pick-model", "mnist-sdae")
    _wait_shown(page, "mnist-sdae/1/2")
    _select(page, "pick-layer", "2")
    _wait_shown(page, "mnist-sdae/2/5")  # index 2 of layer 2 is unit 5
    _click(page, page.find_element("id", "pin-unit"))

    def pins() -> list[str]:
        return [p.get_attribute("data-unit") for p in page.find_elements("css selector", "#pins article.pin")]

    assert pins() == ["mnist-dbn/1/2", "mnist-sdae/2/5"]
    assert page.find_element("id", "pins-section").is_displayed()
    pinned = page.find_element("id", "pin-unit")
    assert not pinned.is_enabled() and pinned.text == "Pinned"
    address = "#unit=mnist-sdae/2/5&pins=mnist-dbn/1/2,mnist-sdae/2/5"
    assert page.execute_script("return location.hash;") == address

    page.refresh()
    _wait_shown(page, "mnist-sdae/2/5")
    _wait(page, lambda b: pins() == ["mnist-dbn/1/2", "mnist-sdae/2/5"], "the pins restored")
    assert page.find_elements("css selector", "#pins article.pin canvas")  # with their images
    assert not page.find_element("id", "pin-unit").is_enabled()

    # A pin's heading links to its unit.
    _click(page, page.find_element("css selector", '#pins article.pin[data-unit="mnist-dbn/1/2"] h4 a'))
    _wait_shown(page, "mnist-dbn/1/2")
    assert (
        page.execute_script("return location.hash;")
        == "#unit=mnist-dbn/1/2&pins=mnist-dbn/1/2,mnist-sdae/2/5"
    )

    _click(
        page, page.find_element("css selector", '#pins article.pin[data-unit="mnist-dbn/1/2"] button.unpin')
    )
    assert pins() == ["mnist-sdae/2/5"]
    assert page.execute_script("return location.hash;") == "#unit=mnist-dbn/1/2&pins=mnist-sdae/2/5"
    unpinned = page.find_element("id", "pin-unit")  # the unit shown is no longer pinned: it can be again
    assert unpinned.is_enabled() and unpinned.text == "Pin this unit"
    _click(page, page.find_element("css selector", "#pins article.pin button.unpin"))
    assert pins() == []
    assert not page.find_element("id", "pins-section").is_displayed()
    assert page.execute_script("return location.hash;") == "#unit=mnist-dbn/1/2"


# ------------------------------------------------------------------------------------------------- scales


def test_layer_scale_draws_a_faint_unit_fainter(driver: Any, run: tuple[Path, Arrays]) -> None:
    dbn = run[1]["mnist-dbn"]
    am_x, best = dbn["layer2/am_x"], dbn["layer2/am_best"]
    peak = np.abs(am_x).max(axis=2)  # (U, R): each image's max|x|
    faint = int(np.argmin(peak[np.arange(U), best]))
    strong = int(np.argmax(peak[np.arange(U), best]))
    top = float(np.float32(peak.max()))  # every AM image of the layer, restarts included
    assert peak[faint, best[faint]] < top / 2
    ids = dbn["layer2/units"]
    main = "#panel-main figure:last-child canvas"
    legend = "#panel-main p.legend"

    _load(driver, run[0], f"#unit=mnist-dbn/2/{ids[faint]}", expected=f"mnist-dbn/2/{ids[faint]}")
    assert _contrast(driver, main) >= 127  # on its own scale every image spans black to white
    assert driver.find_element("css selector", legend).text.startswith("Each image on its own scale")

    _select(driver, "scale-mode", "layer")
    expected = 127.5 * peak[faint, best[faint]] / top
    faint_contrast = _contrast(driver, main)
    assert abs(faint_contrast - expected) <= 1.5
    assert driver.find_element("css selector", legend).text == (
        f"One scale for the whole layer: black {-top:.3f}, grey 0, white {top:.3f}."
    )
    # The index is drawn on the layer's scale too: the unit's part of the thumbnails' sprite.
    assert _thumb_contrast(driver, int(ids[faint])) == faint_contrast
    # The layer's strongest unit keeps its full contrast on the same scale.
    _select(driver, "pick-unit", str(strong))
    _wait_shown(driver, f"mnist-dbn/2/{ids[strong]}")
    assert _contrast(driver, main) >= 127 * peak[strong, best[strong]] / top - 1

    _select(driver, "scale-mode", "unit")
    _select(driver, "pick-unit", str(faint))
    _wait_shown(driver, f"mnist-dbn/2/{ids[faint]}")
    unit_top = float(np.float32(peak[faint].max()))
    assert driver.find_element("css selector", legend).text == (
        f"One scale for this unit's images: black {-unit_top:.3f}, grey 0, white {unit_top:.3f}."
    )
    assert abs(_contrast(driver, main) - 127.5 * peak[faint, best[faint]] / unit_top) <= 1.5
    assert _severe(driver) == []


# ------------------------------------------------------------------------------------------------- downloads

_RECORD = """
window.__saved = {};
const create = URL.createObjectURL.bind(URL);
URL.createObjectURL = function (blob) {
  const url = create(blob);
  const rec = { type: blob.type, size: blob.size, done: false };
  window.__saved[url] = rec;
  const done = blob.type === "image/png"
    ? createImageBitmap(blob).then((b) => { rec.width = b.width; rec.height = b.height; })
    : blob.text().then((t) => { rec.text = t; });
  done.then(() => { rec.done = true; });
  return url;
};
// Record the file name each download gets, and keep the browser from saving the file.
document.addEventListener("click", (e) => {
  const a = e.target;
  if (a instanceof HTMLAnchorElement && a.download) {
    e.preventDefault();
    window.__saved[a.href].name = a.download;
  }
}, true);
"""


def test_downloads_hold_the_units_images_and_numbers(driver: Any, run: tuple[Path, Arrays]) -> None:
    dbn = run[1]["mnist-dbn"]
    u = NAN_COSINE[0]  # a unit without a restart agreement: its number is null, not NaN
    unit_id = int(dbn["layer2/units"][u])
    _load(driver, run[0], f"#unit=mnist-dbn/2/{unit_id}", expected=f"mnist-dbn/2/{unit_id}")
    driver.execute_script(_RECORD)
    for button in ("download-png", "download-png-large", "download-json", "download-csv"):
        _click(driver, driver.find_element("id", button))
    saved = _wait(
        driver,
        lambda b: (
            (s := b.execute_script("return Object.values(window.__saved);"))
            and len(s) == 4
            and all(r["done"] and "name" in r for r in s)
            and s
        ),
        "four downloads",
    )
    files = {r["name"]: r for r in saved}
    stem = f"mnist-dbn_layer2_unit{unit_id}"
    assert set(files) == {f"{stem}.png", f"{stem}_x4.png", f"{stem}.json", f"{stem}.csv"}

    # One row per kind of image (AM restarts, samples, their mean, the LC, exemplars), 2-pixel gaps.
    png, large = files[f"{stem}.png"], files[f"{stem}_x4.png"]
    h, w = SHAPE
    assert png["type"] == large["type"] == "image/png"
    assert (png["width"], png["height"]) == (max(R, S, N) * (w + 2) - 2, 5 * (h + 2) - 2)
    assert (large["width"], large["height"]) == (4 * png["width"], 4 * png["height"])
    assert large["size"] > png["size"]

    numbers = files[f"{stem}.json"]
    assert numbers["type"] == "application/json"
    doc = json.loads(numbers["text"])
    assert (doc["stack"], doc["layer"], doc["unit"]) == ("mnist-dbn", 2, unit_id)
    assert doc["restart_mean_cosine"] is None
    for key in ("energy_concentration", "lc_vs_am", "samples_vs_am"):
        assert doc[key] == pytest.approx(float(dbn[f"layer2/{key}"][u]), rel=5e-4), key
    for key, rel in (("am_activation", 1e-6), ("exemplar_activations", 5e-4), ("am_stationarity", 5e-4)):
        assert doc[key] == pytest.approx(dbn[f"layer2/{key}"][u].tolist(), rel=rel), key
    for key in ("am_steps", "am_best", "am_converged", "flat", "dead"):
        assert doc[key] == dbn[f"layer2/{key}"][u].tolist(), key
    margin = _margins(dbn["layer2/selectivity"])[u]
    assert doc["selectivity_margin"] == pytest.approx(margin, rel=5e-4)
    sel = dbn["layer2/selectivity"]
    assert doc["selectivity_row"] == pytest.approx(sel[u].tolist(), abs=float(sel.max()) / 255)

    table = files[f"{stem}.csv"]
    assert table["type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(table["text"])))
    assert rows[0] == ["field", "index", "value"]
    cells = {(f, i): v for f, i, v in rows[1:]}
    assert cells[("stack", "")] == "mnist-dbn" and cells[("unit", "")] == str(unit_id)
    assert cells[("restart_mean_cosine", "")] == ""
    for r in range(R):
        assert float(cells[("am_activation", str(r))]) == pytest.approx(
            float(dbn["layer2/am_activation"][u, r]), rel=1e-6
        )
    assert _severe(driver) == []


# ------------------------------------------------------------------------------------------------- tips


def test_a_term_explains_itself_on_focus_hover_and_tap(page: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    term = page.find_element("css selector", "#panel-numbers .term[data-tip]")
    tip = term.find_element("css selector", ".tip")
    header = page.find_element("css selector", "header.top h1")
    assert term.get_attribute("tabindex") == "0"
    assert tip.get_attribute("textContent") == term.get_attribute("data-tip")
    assert not tip.is_displayed()

    def is_open() -> bool:
        return "open" in (term.get_attribute("class") or "").split()

    def leave() -> None:
        """The mouse off the term and the focus nowhere: only the click's ``open`` can show the tip."""
        ActionChains(page).move_to_element(header).perform()
        page.execute_script("document.activeElement.blur();")

    page.execute_script("arguments[0].focus();", term)  # keyboard focus shows it
    assert tip.is_displayed()
    leave()
    assert not tip.is_displayed()

    _click(page, term)  # a tap opens it, and it stays open when the focus and the pointer go
    assert is_open()
    leave()
    assert tip.is_displayed()
    _click(page, term)  # a second tap closes it
    assert not is_open()
    leave()
    assert not tip.is_displayed()
    _click(page, term)
    _click(page, header)  # a tap elsewhere closes it too
    assert not is_open() and not tip.is_displayed()

    ActionChains(page).move_to_element(term).perform()  # hovering shows it
    assert tip.is_displayed()
    leave()
    assert not tip.is_displayed()


# ---------------------------------------------------------------------------------- console and phone layout

_OVERFLOW = """
const width = document.documentElement.clientWidth, out = [];  // the viewport less any scroll bar
const clips = (e) => ["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(e).overflowX);
for (const e of document.querySelectorAll("body *")) {
  const r = e.getBoundingClientRect();
  if ((r.width === 0 && r.height === 0) || (r.left >= -0.5 && r.right <= width + 0.5)) { continue; }
  let p = e.parentElement, inside = false;
  for (; p && p !== document.body; p = p.parentElement) { if (clips(p)) { inside = true; break; } }
  if (!inside) {
    out.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "") +
      " [" + Math.round(r.left) + ", " + Math.round(r.right) + "]");
  }
}
return out;
"""


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_no_console_errors_and_nothing_wider_than_the_screen(
    driver: Any, run: tuple[Path, Arrays], size: tuple[int, int]
) -> None:
    driver.set_window_size(*size)
    try:
        _load(
            driver, run[0], "#unit=mnist-dbn/2/7&pins=mnist-dbn/1/2,mnist-sdae/2/5", expected="mnist-dbn/2/7"
        )
        _wait(driver, lambda b: len(b.find_elements("css selector", "#pins article.pin")) == 2, "two pins")
        driver.execute_script("document.querySelectorAll('details').forEach((d) => { d.open = true; });")
        _wait(
            driver,
            lambda b: b.execute_script("return Array.from(document.images).every((i) => i.complete);"),
            "the figures",
        )
        width = driver.execute_script("return window.innerWidth;")
        assert abs(width - size[0]) <= 20  # the window is the size asked for (no scroll bar in headless)
        wide = driver.execute_script(
            "return Math.max(...Array.from(document.images, (i) => i.naturalWidth));"
        )
        if size == PHONE:
            assert wide > width  # the wide figure is wider than the phone: its box must scroll
        assert driver.execute_script(_OVERFLOW) == []
        assert driver.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;"
        )
        assert _severe(driver) == []
    finally:
        driver.set_window_size(*DESKTOP)


# ------------------------------------------------------------------------------- focus and scrolling


def test_a_followed_link_leaves_the_unit_clear_of_the_sticky_picker(
    driver: Any, run: tuple[Path, Arrays]
) -> None:
    _load(driver, run[0], "#unit=mnist-sdae/2/5", expected="mnist-sdae/2/5")
    assert driver.execute_script(
        "const h = document.querySelector('#panel-main h3').getBoundingClientRect();"
        "const at = document.elementFromPoint(h.left + 4, h.top + h.height / 2);"
        "return Boolean(at && at.closest('#panel-main'));"
    )


def test_arrow_keys_keep_stepping_from_a_control_in_the_unit_view(page: Any) -> None:
    page.execute_script("document.getElementById('pin-unit').focus();")
    _press(page, "\ue014")
    _wait_shown(page, "mnist-dbn/1/1")
    _press(page, "\ue014")  # the key handler steps synchronously: no need to wait long
    time.sleep(0.3)
    assert _shown(page) == "mnist-dbn/1/2"


def test_a_link_to_a_section_keeps_its_address_until_the_browser_is_used(
    driver: Any, run: tuple[Path, Arrays]
) -> None:
    _load(driver, run[0], "#layers", expected="mnist-dbn/1/0")
    assert driver.execute_script("return location.hash") == "#layers"
    _click(driver, driver.find_element("id", "next-unit"))
    _wait_shown(driver, "mnist-dbn/1/1")
    assert driver.execute_script("return location.hash") == "#unit=mnist-dbn/1/1"


def test_a_missing_chunk_file_is_named_and_the_rest_still_opens(
    driver: Any, run: tuple[Path, Arrays], tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "damaged"
    shutil.copytree(run[0], root)
    (root / "report" / "data" / "s0-l1-c1.js").unlink()  # units 5-9 of mnist-dbn layer 1
    _load(driver, root, expected="mnist-dbn/1/0")
    _select(driver, "pick-unit", "6")
    _wait(driver, lambda b: "Could not load" in b.find_element("id", "explorer-status").text, "the error")
    status = driver.find_element("id", "explorer-status").text
    assert "data/s0-l1-c1.js" in status and "unitlens report" in status
    assert _shown(driver) == "mnist-dbn/1/0"  # the unit drawn last stays, never half of another
    _select(driver, "pick-unit", "11")  # a chunk that is there
    _wait_shown(driver, "mnist-dbn/1/11")
    # The browser's own console logs the failed script load; nothing else is an error.
    assert all("s0-l1-c1.js" in entry["message"] for entry in _severe(driver))
