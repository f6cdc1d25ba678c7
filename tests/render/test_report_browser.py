"""The report in a real headless Chromium: no console errors, figures load, the explorer switches units.

Chromium and chromedriver come from Debian's packages. When they are missing, the session installs them
once (``apt-get install chromium chromium-driver``, as CI runs as root); the tests skip, saying why, only
where that is impossible (not root, no apt-get, apt failed or timed out).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from unitlens.render.figures import FigureEntry, write_manifest
from unitlens.render.png import save_png
from unitlens.render.report import write_report
from unitlens.render.report.builder import quantise_images
from unitlens.results import save_arrays

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)
APT_TIMEOUT_S = 900
WAIT_S = 15

SHAPE = (6, 7)
D = SHAPE[0] * SHAPE[1]
U, R, S, N = 4, 3, 2, 3


def _install_chromium() -> str | None:
    """Make sure Chromium and chromedriver are installed; return why not, or None when they are."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return f"{CHROMIUM} or {CHROMEDRIVER} missing and not root: cannot apt-get install chromium"
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} or {CHROMEDRIVER} missing and no apt-get to install them"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium", "chromium-driver"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)} did not finish in {APT_TIMEOUT_S} s"
        if done.returncode != 0:
            return f"{' '.join(command)} failed ({done.returncode}): {(done.stderr or done.stdout)[-400:]}"
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return f"apt-get installed chromium but {CHROMIUM} or {CHROMEDRIVER} is still missing"
    return None


@pytest.fixture(scope="session")
def chromium() -> None:
    """Install Chromium once per session, or skip with the reason."""
    reason = _install_chromium()
    if reason is not None:
        pytest.skip(reason)


def _layer(rng: np.random.Generator, j: int, model: str) -> dict[str, np.ndarray]:
    act = rng.normal(size=(U, R)).astype(np.float32)
    a = {
        "units": np.arange(U, dtype=np.int64),
        "am_x": rng.normal(size=(U, R, D)).astype(np.float32),
        "am_activation": act,
        "am_steps": rng.integers(5, 50, size=(U, R)),
        "am_converged": np.ones((U, R), dtype=np.int64),
        "am_history": rng.normal(size=(5, U, R)).astype(np.float32),
        "am_best": act.argmax(axis=1).astype(np.int64),
        "lc": rng.normal(size=(U, D)).astype(np.float32),
        "exemplars": rng.uniform(0.0, 1.0, size=(U, N, D)).astype(np.float32),
        "exemplar_activations": rng.normal(size=(U, N)).astype(np.float32),
        "selectivity": rng.uniform(0.0, 1.0, size=(U - 1, U - 1)).astype(np.float32),
        "restart_mean_cosine": rng.uniform(0.8, 1.0, size=U).astype(np.float32),
        "energy_concentration": rng.uniform(0.1, 0.9, size=U).astype(np.float32),
        "lc_vs_am": np.array([np.nan, *rng.uniform(-1, 1, size=U - 1)], dtype=np.float32),
    }
    if j == 1:
        a["filters"] = rng.normal(size=(U, D)).astype(np.float32)
    if model == "dbn" and j >= 2:
        a["samples"] = rng.uniform(0.0, 1.0, size=(U, S, D)).astype(np.float32)
        a["samples_mean"] = a["samples"].mean(axis=1)
        a["samples_vs_am"] = rng.uniform(-1, 1, size=U).astype(np.float32)
    return a


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """A finished synthetic run with figures and claims, its report written."""
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    stacks = {}
    for name in ("mnist-dbn", "mnist-sdae"):
        arrays = {"image_shape": np.array(SHAPE, dtype=np.int64)}
        for j in (1, 2):
            arrays.update({f"layer{j}/{k}": v for k, v in _layer(rng, j, name.split("-")[1]).items()})
        save_arrays(root / "results" / f"{name}.npz", arrays)
        stacks[name] = arrays
    claims = [
        {
            "id": "1",
            "claim": "Layer-1 AM equals the filter",
            "measured": "0.9999",
            "holds": True,
            "detail": "",
        },
        {"id": "4", "claim": "Samples look like digits", "measured": "0.2", "holds": False, "detail": "slow"},
        {"id": "7", "claim": "Fine-tuning barely changes AM", "measured": "-", "holds": None, "detail": ""},
    ]
    (root / "results" / "claims.json").write_text(json.dumps(claims))
    save_png(root / "figures" / "figure1_mnist.png", rng.uniform(0, 1, size=(20, 30)), scale=2)
    save_png(root / "figures" / "figure4_mnist.png", rng.uniform(0, 1, size=(10, 10)))
    # Not one of the paper's figures; its name sorts first, the manifest lists it in the middle.
    save_png(root / "figures" / "am_history_mnist-dbn.png", rng.uniform(0, 1, size=(4, 12)))
    write_manifest(
        root / "figures",
        [
            FigureEntry("figure4_mnist.png", "figure4", "Figure 4 (MNIST)", "mnist", "dbn", 2),
            FigureEntry("am_history_mnist-dbn.png", "am_history", "AM history (MNIST DBN)", "mnist", "dbn"),
            FigureEntry("figure1_mnist.png", "figure1", "Figure 1 (MNIST)", "mnist"),
        ],
    )
    (root / "run.json").write_text(json.dumps({"seed": 0, "preset": "test", "versions": {}, "seconds": {}}))
    write_report(root)
    return root, stacks


def start_driver(profile: Path) -> Any:
    """Headless Chromium with the flags above, its console log kept, a fresh profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which could download a driver) is never consulted.
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(WAIT_S)
    return browser


@pytest.fixture(scope="module")
def driver(chromium: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    browser = start_driver(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield browser
    finally:
        browser.quit()


def _severe(browser: Any) -> list[dict[str, Any]]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def _shown(browser: Any) -> str:
    return str(browser.find_element("id", "unit-view").get_attribute("data-shown"))


def _wait_shown(browser: Any, expected: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT_S).until(lambda b: _shown(b) == expected)


@pytest.fixture
def page(driver: Any, run_folder: tuple[Path, Any]) -> Iterator[Any]:
    """The report freshly loaded; after the test, the console must hold no errors."""
    root, _ = run_folder
    driver.get((root / "report" / "index.html").as_uri())
    _wait_shown(driver, "mnist-dbn/1/0")
    yield driver
    assert _severe(driver) == []


def test_loads_without_console_errors_and_figures_render(page: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    assert _severe(page) == []
    sections = page.execute_script(
        "return Array.from(document.querySelectorAll('main > section'), s => s.id)"
    )
    assert sections == ["claims", "explorer", "figures", "layers", "run"]
    images = page.find_elements("css selector", "#figures img")
    assert len(images) == len(page.find_elements("css selector", "img")) == 3
    WebDriverWait(page, WAIT_S).until(
        lambda b: b.execute_script("return Array.from(document.images).every(i => i.complete)")
    )
    # The paper's figures first, in its order and open, whatever the file names or the manifest's order;
    # the run's other figures after them, closed.
    figures = page.find_elements("css selector", "#figures details.paper-figure")
    assert [f.get_attribute("data-kind") for f in figures] == ["figure1", "figure4", "am_history"]
    assert [f.get_attribute("open") is not None for f in figures] == [True, True, False]
    widths = page.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
    assert widths == [60, 10, 12]  # figure1 at scale 2, figure4 and am_history at scale 1
    # Shown at their native size (never scaled), inside a box that scrolls when a figure is wider.
    shown = page.execute_script(
        "return Array.from(document.querySelectorAll('#figures details[open] img'), "
        "i => [i.clientWidth, i.naturalWidth, getComputedStyle(i.closest('.figure-box'))"
        ".overflowX])"
    )
    assert [tuple(x) for x in shown] == [(60, 60, "auto"), (10, 10, "auto")]


def test_claims_table_is_present(page: Any) -> None:
    table = page.find_element("id", "claims-table")
    rows = table.find_elements("css selector", "tbody tr")
    assert [r.find_element("css selector", ".verdict").text for r in rows] == [
        "\u2714 holds",
        "\u2718 fails",
        "\u2013 not measured",
    ]
    assert "Samples look like digits" in rows[1].text


def _canvas_grey(browser: Any, selector: str) -> list[int]:
    """The red channel (= grey level) of the first canvas matching ``selector``."""
    return list(
        browser.execute_script(
            "const c = document.querySelector(arguments[0]);"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "return Array.from(d).filter((_, i) => i % 4 === 0);",
            selector,
        )
    )


def test_explorer_switches_units(
    page: Any, run_folder: tuple[Path, dict[str, dict[str, np.ndarray]]]
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    _, stacks = run_folder
    dbn = stacks["mnist-dbn"]

    def headline() -> tuple[str, list[int]]:
        caption = page.find_element("css selector", "#panel-main figure:last-child figcaption").text
        return caption, _canvas_grey(page, "#panel-main figure:last-child canvas")

    def expected_best(layer: int, unit: int) -> list[int]:
        x = dbn[f"layer{layer}/am_x"][unit, dbn[f"layer{layer}/am_best"][unit]]
        return quantise_images(x[None], SHAPE, signed=True)[0].tolist()

    before = headline()
    assert before[1] == expected_best(1, 0)  # the canvas shows exactly the quantised AM optimum

    Select(page.find_element("id", "pick-unit")).select_by_value("2")
    _wait_shown(page, "mnist-dbn/1/2")
    after = headline()
    assert after[0] != before[0] and after[1] != before[1]
    assert after[1] == expected_best(1, 2)
    assert len(page.find_elements("css selector", "#panel-restarts canvas")) == R

    page.find_element("id", "next-unit").click()
    _wait_shown(page, "mnist-dbn/1/3")
    ActionChains(page).send_keys(Keys.ARROW_RIGHT).perform()  # wraps round to the first unit
    _wait_shown(page, "mnist-dbn/1/0")
    ActionChains(page).send_keys(Keys.ARROW_LEFT).perform()
    _wait_shown(page, "mnist-dbn/1/3")
    # Unit 3 is outside the 3 x 3 selectivity matrix; unit 2 inside it gets a bar chart.
    assert "Only the first 3 units" in page.find_element("id", "panel-selectivity").text

    # DBN layer 2: clamped samples and their mean; SDAE: none, and it says why.
    Select(page.find_element("id", "pick-layer")).select_by_value("2")
    _wait_shown(page, "mnist-dbn/2/3")
    assert len(page.find_elements("css selector", "#panel-samples canvas")) == S + 1
    Select(page.find_element("id", "pick-model")).select_by_value("mnist-sdae")
    _wait_shown(page, "mnist-sdae/2/3")
    assert "not a generative model" in page.find_element("id", "panel-samples").text
    Select(page.find_element("id", "pick-unit")).select_by_value("1")
    _wait_shown(page, "mnist-sdae/2/1")
    assert len(page.find_elements("css selector", "#panel-selectivity canvas.chart")) == 1
    assert len(page.find_elements("css selector", "#panel-exemplars canvas")) == N


# ------------------------------------------------------------------------------------------ a user's model


def _canvas_rgb(browser: Any, selector: str) -> list[list[int]]:
    """The red, green and blue levels of the first canvas matching ``selector``, one list per channel."""
    data = browser.execute_script(
        "const c = document.querySelector(arguments[0]);"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);",
        selector,
    )
    return [data[k::4] for k in range(3)]


def test_explorer_shows_a_user_models_rgb_units_by_layer_name_and_recipe(
    driver: Any, rendered_user_model_run: Any
) -> None:
    from selenium.webdriver.support.ui import Select

    from conftest import IMAGE_SHAPE, NAME

    run = rendered_user_model_run
    driver.get((run.root / "report" / "index.html").as_uri())
    _wait_shown(driver, f"{NAME}-paper/1/10")  # layer 1's first studied unit is unit 10

    def text(element_id: str) -> str:
        return str(driver.find_element("id", element_id).text)

    labels = [e.text for e in driver.find_elements("css selector", ".picker label")]
    assert labels[:2] == ["Model", "Recipe"]
    assert [o.text for o in Select(driver.find_element("id", "pick-layer")).options] == ["conv1", "conv2"]
    assert [o.text for o in Select(driver.find_element("id", "pick-model")).options] == [
        "paper recipe",
        "lucid recipe",
    ]

    def expected_rgb(recipe: str, layer: int, unit: int) -> list[list[int]]:
        lr = run.results[recipe].layers[layer]
        x = lr.am_x[unit, lr.am_best[unit]]
        q = quantise_images(x[None], IMAGE_SHAPE, signed=bool((lr.am_x < 0).any()))[0]
        return q.reshape(3, -1).tolist()

    # The canvas shows the quantised AM optimum in colour: red, green and blue planes as saved.
    assert _canvas_rgb(driver, "#panel-main figure:last-child canvas") == expected_rgb("paper", 1, 0)
    assert len(driver.find_elements("css selector", "#panel-exemplars canvas")) == 2
    assert "No linear combination" in text("panel-lc") and "DBNs" in text("panel-samples")

    Select(driver.find_element("id", "pick-model")).select_by_value(f"{NAME}-lucid")
    _wait_shown(driver, f"{NAME}-lucid/1/10")
    assert _canvas_rgb(driver, "#panel-main figure:last-child canvas") == expected_rgb("lucid", 1, 0)
    numbers = text("panel-numbers")
    assert "AM stationarity\n—" in numbers  # all NaN under lucid: a dash, not NaN or an error
    assert "stopped by the cap" not in numbers  # a fixed step count is not a cap
    assert "LC vs AM" not in numbers and "Samples vs AM" not in numbers  # nothing to compare for a model

    Select(driver.find_element("id", "pick-layer")).select_by_value("2")
    Select(driver.find_element("id", "pick-unit")).select_by_value("1")
    _wait_shown(driver, f"{NAME}-lucid/2/21")
    assert "Dead unit" in text("panel-main")
    assert "conv2" in text("explorer-status")
    assert _severe(driver) == []
