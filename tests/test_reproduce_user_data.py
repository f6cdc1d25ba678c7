"""`unitlens reproduce --data FILE`: both stacks trained and studied on a user's data set, resumable."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from unitlens.cli import main
from unitlens.config import load_toml
from unitlens.results import StackResults

TINY = [
    "--set", "data.hidden=60,40", "--set", "data.examples_per_layer=20000", "--set", "data.units=4",
    "--set", "study.restarts=2", "--set", "study.max_steps=30", "--set", "study.burn_in=20",
    "--set", "study.n_samples=2", "--set", "study.every=10", "--set", "finetune.examples=6000",
    "--set", "finetune.sweep_hidden_rates=0.05", "--quiet",
]  # fmt: skip


def test_a_run_on_the_users_data_trains_studies_renders_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digits = load_digits()
    data = tmp_path / "digits.npz"
    np.savez(data, x_train=digits.images[:600] / 16, y_train=digits.target[:600])
    out = tmp_path / "run"
    assert main(["reproduce", "--data", str(data), "--out", str(out), *TINY]) == 0
    config = load_toml(out / "config.toml")
    assert config.data.path == str(data.resolve()) and config.data.name == "digits"
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert sorted(record["stages"]) == [
        "finetune",
        "study digits-dbn",
        "study digits-sdae",
        "train digits-dbn",
        "train digits-sdae",
    ]  # no MNIST, no patches; labelled, so fine-tuned
    tuned = json.loads((out / "results" / "finetune.json").read_text(encoding="utf-8"))
    assert tuned["dataset"] == "digits" and set(tuned["errors"]) == {"dbn", "sdae", "random"}
    # 10 classes, chance 0.9; with these settings the DBN's held-out error was 0.167 (2026-12-04)
    assert 0.0 <= tuned["errors"]["dbn"] < 0.5
    assert (out / "checkpoints" / "finetuned-digits-dbn.json").exists()
    assert (out / "figures" / "finetune_sweep.png").exists()
    for model in ("dbn", "sdae"):
        results = StackResults.load(out / "results" / f"digits-{model}.npz")
        assert results.image_shape == (8, 8) and sorted(results.layers) == [1, 2]
        assert results.layer(2).am_x.shape == (4, 2, 64)
    assert (out / "results" / "digits-dbn.npz").exists() and not (out / "results" / "claims.json").exists()
    assert (out / "figures" / "digits-recipes.png").exists()
    page = html.unescape((out / "report" / "index.html").read_text(encoding="ascii"))
    assert "digits — DBN" in page and "digits — SDAE" in page
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()}
    assert main(["reproduce", "--data", str(data), "--out", str(out), *TINY]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()} == before  # nothing retrained
    # the same folder with other settings is refused in one line
    other = [*TINY[:-1], "--set", "data.units=3", "--quiet"]
    assert main(["reproduce", "--data", str(data), "--out", str(out), *other]) == 2
    assert "holds a run with other settings" in capsys.readouterr().err


def test_an_unlabelled_user_data_set_is_not_fine_tuned(tmp_path: Path) -> None:
    data = tmp_path / "spins.npz"
    np.savez(data, x_train=(np.random.default_rng(0).random((300, 36)) < 0.4).astype(np.uint8))
    out = tmp_path / "run"
    assert main(["reproduce", "--data", str(data), "--out", str(out), *TINY]) == 0
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert "finetune" not in record["stages"] and not (out / "results" / "finetune.json").exists()
    assert StackResults.load(out / "results" / "spins-dbn.npz").is_vector


def test_bad_user_data_for_reproduce_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["reproduce", "--data", str(tmp_path / "absent.npz"), "--out", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((5, 3)), y_train=np.arange(4))
    assert main(["reproduce", "--data", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "field 'y_train' has shape (4,); expected (5,)" in err and not out.exists()
    assert main(["reproduce", "--data", str(bad), "--name", "mnist", "--out", str(out)]) == 2
    assert "data.name must be" in capsys.readouterr().err
