"""A run folder's damaged files and bad settings: one line, never a traceback, and a resume that recomputes
what was derived, ending with the same results as a run that was never damaged."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from unitlens.cli import main
from unitlens.config import apply_overrides, preset
from unitlens.reproduce import Run

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = [
    "mnist.hidden=8,6,5",
    "mnist.examples_per_layer=400",
    "mnist.units=4",
    "patches.hidden=8,6,5",
    "patches.examples_per_layer=400",
    "patches.first_layer_examples=400",
    "patches.n_train=1000",
    "patches.n_test=200",
    "patches.units=4",
    "study.restarts=2",
    "study.max_steps=20",
    "study.burn_in=5",
    "study.n_samples=2",
    "study.every=2",
    "study.lc_k=4",
    "study.n_exemplars=2",
    "study.selectivity_units=4",
    "finetune.examples=200",
    "finetune.sweep_hidden_rates=0.2",
]


def _reproduce(out: Path, *extra: str) -> int:
    return main(["reproduce", "--out", str(out), "--quiet", *(f"--set={s}" for s in [*TINY, *extra])])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished tiny run, made on one BLAS thread like the resumes it is compared with (more threads
    round differently)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("finished")
        assert _reproduce(out) == 0
        yield out
    finally:
        torch.set_num_threads(threads)


def _results(folder: Path) -> dict[str, object]:
    """Every results array and the claims of a run folder."""
    out: dict[str, object] = {}
    for path in sorted((folder / "results").glob("*.npz")):
        with np.load(path) as f:
            out.update({f"{path.stem}/{k}": f[k] for k in f.files})
    claims = json.loads((folder / "results" / "claims.json").read_text(encoding="utf-8"))
    out["claims"] = [{k: c[k] for k in ("id", "verdict", "measured")} for c in claims]
    out["finetune"] = json.loads((folder / "results" / "finetune.json").read_text(encoding="utf-8"))
    return out


def _same(a: dict[str, object], b: dict[str, object]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # type: ignore[arg-type]
        else:
            assert a[key] == b[key], key


def _garbage(p: Path) -> None:
    p.write_bytes(b"\x00\xffnot what was written\x9c")


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)])


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _delete(p: Path) -> None:
    p.unlink()


def _folder(p: Path) -> None:
    p.unlink()
    p.mkdir()


DAMAGES: dict[str, Callable[[Path], None]] = {
    "garbage": _garbage,
    "truncated": _truncate,
    "empty": _empty,
    "deleted": _delete,
    "folder": _folder,
    "a JSON list": lambda p: p.write_text("[]"),
    "stages not an object": lambda p: p.write_text('{"stages": "x"}'),
}
# One damage per kind of derived file of a finished run (each resume costs a render): the stage record,
# a study's arrays and its summary, the fine-tuning results, a training log, the figures and the report.
DERIVED = [
    ("run.json", "garbage"),
    ("results/mnist-dbn.npz", "truncated"),
    ("results/patches-sdae.npz", "deleted"),
    ("results/mnist-dbn.json", "truncated"),
    ("results/finetune.json", "empty"),
    ("checkpoints/mnist-sdae-log.jsonl", "garbage"),
    ("figures/manifest.json", "truncated"),
]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "a JSON list", "stages not an object"])
def test_a_damaged_stage_record_is_rebuilt_and_whole_outputs_are_kept(
    finished: Path, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    DAMAGES[damage](run / "run.json")
    config = apply_overrides(preset("quick"), TINY)
    folder = Run(run, config)
    assert folder.record["stages"] == {}
    assert "run.json is damaged" in caplog.text
    calls: list[str] = []
    folder.stage("study mnist-dbn", lambda: calls.append("study"), lambda: None)  # whole: kept
    folder.stage("study mnist-sdae", lambda: calls.append("redo"), lambda: "results/x.npz is missing")
    assert calls == ["redo"] and folder.done("study mnist-dbn") and folder.done("study mnist-sdae")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "damage"), DERIVED)
def test_a_damaged_derived_file_is_recomputed_on_resume(
    finished: Path, tmp_path: Path, name: str, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    DAMAGES[damage](run / name)
    capsys.readouterr()
    assert _reproduce(run) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    _same(_results(run), _results(finished))
    assert (run / name).is_file()
    log = (run / "log.txt").read_text(encoding="utf-8")
    if name.endswith((".npz", "results/mnist-dbn.json", "finetune.json")):
        assert "recomputing it" in log  # said, then done
    if name == "run.json" and damage != "deleted":
        assert "run.json is damaged" in log


@pytest.mark.parametrize("damage", ["garbage", "empty", "folder"])
def test_a_damaged_config_of_a_started_run_is_refused_in_one_line(
    finished: Path, tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    if damage == "folder":
        (run / "config.toml").unlink()
        (run / "config.toml").mkdir()
        (run / "config.toml" / "x").write_text("x")
    else:
        DAMAGES[damage](run / "config.toml")
    capsys.readouterr()
    assert _reproduce(run) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.toml" in err[0] and "restore config.toml" in err[0], err


def test_report_on_a_damaged_result_names_the_file_and_the_fix(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    _truncate(run / "results" / "mnist-dbn.json")
    capsys.readouterr()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mnist-dbn.json" in err[0] and "unitlens reproduce" in err[0], err


@pytest.mark.parametrize(
    "setting",
    [
        "study.restarts=0",
        "study.max_steps=0",
        "patches.sdae.corruption=bogus",
        "patches.sdae.corruption_level=2",
        "finetune.examples=0",
        "mnist.dbn.learning_rate=inf",
        "mnist.dbn.learning_rate=nan",
        "mnist.hidden.x=3",
        "mnist.hidden=0,5",
        "mnist.data_dir=/no/such/folder",
        "patches.photos=/no/such/folder",
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(
    tmp_path: Path, setting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _reproduce(out, setting) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("unitlens: error:"), err
    assert not out.exists()


def test_a_folder_whose_run_never_started_takes_new_settings(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.toml").write_text('preset = "quick"\nseed = 5\n', encoding="utf-8")
    (out / "run.json").write_text('{"stages": {}}', encoding="utf-8")
    assert _reproduce(out, "finetune.enabled=false") == 0
    assert "seed = 0" in (out / "config.toml").read_text(encoding="utf-8")
