"""The pipeline end to end on the embedded data with tiny settings, including an interrupted run."""

import json
from pathlib import Path

import pytest

import unitlens.reproduce as reproduce_module
from unitlens.cli import main
from unitlens.config import apply_overrides, preset
from unitlens.errors import UnitlensError
from unitlens.results import load_arrays

TINY = [
    "mnist.hidden=12,10,8",
    "mnist.examples_per_layer=1000",
    "patches.hidden=12,10,8",
    "patches.examples_per_layer=1000",
    "patches.first_layer_examples=1000",
    "patches.n_train=2000",
    "patches.n_test=500",
    "mnist.units=6",
    "patches.units=6",
    "study.restarts=3",
    "study.max_steps=40",
    "study.burn_in=10",
    "study.n_samples=3",
    "study.every=5",
    "study.lc_k=5",
    "study.n_exemplars=3",
    "finetune.examples=400",
]


def test_interrupted_run_resumes_without_redoing_finished_stages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = apply_overrides(preset("quick"), TINY)
    calls: list[str] = []
    real_study = reproduce_module._study

    def study_then_interrupt(run, name, stack, datasets):  # type: ignore[no-untyped-def]
        calls.append(name)
        if name == "mnist-sdae" and calls.count(name) == 1:
            raise KeyboardInterrupt
        real_study(run, name, stack, datasets)

    monkeypatch.setattr(reproduce_module, "_study", study_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        reproduce_module.reproduce(config, tmp_path, quiet=True)
    record = json.loads((tmp_path / "run.json").read_text())
    assert set(record["stages"]) == {"train mnist-dbn", "study mnist-dbn", "train mnist-sdae"}
    checkpoint = tmp_path / "checkpoints" / "mnist-dbn.safetensors"
    stamp = checkpoint.stat().st_mtime_ns
    study_stamp = (tmp_path / "results" / "mnist-dbn.npz").stat().st_mtime_ns

    report = reproduce_module.reproduce(config, tmp_path, quiet=True)
    assert calls == ["mnist-dbn", "mnist-sdae", "mnist-sdae", "patches-dbn", "patches-sdae"]
    assert checkpoint.stat().st_mtime_ns == stamp
    assert (tmp_path / "results" / "mnist-dbn.npz").stat().st_mtime_ns == study_stamp
    assert report == tmp_path / "report" / "index.html" and report.exists()
    record = json.loads((tmp_path / "run.json").read_text())
    assert all(record["stages"][s]["done"] for s in record["stages"])
    assert "finetune" in record["stages"]
    arrays = load_arrays(tmp_path / "results" / "mnist-dbn.npz")
    assert arrays["layer2/am_x"].shape == (6, 3, 784)
    assert arrays["layer2/samples"].shape == (6, 3, 784)
    assert arrays["layer1/filters"].shape == (6, 784)
    assert "layer2/samples" not in load_arrays(tmp_path / "results" / "mnist-sdae.npz")
    claims = {c["id"]: c for c in json.loads((tmp_path / "results" / "claims.json").read_text())}
    assert claims["1"]["holds"] is True  # layer-1 AM reaches the closed form even on tiny models
    assert list((tmp_path / "figures").glob("*.png"))
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_folder_with_another_run_is_refused_once_a_stage_has_started(tmp_path: Path) -> None:
    config = apply_overrides(preset("quick"), [*TINY, "finetune.enabled=false"])
    (tmp_path / "config.toml").write_text('preset = "paper"\n')
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "mnist-dbn-resume.json").write_text("{}")
    with pytest.raises(UnitlensError, match="other settings"):
        reproduce_module.reproduce(config, tmp_path, quiet=True)
    assert config.preset == "quick"


def test_cli_reproduce_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [f"--set={s}" for s in TINY]
    assert (
        main(["reproduce", "--out", str(tmp_path), "--quiet", "--set", "finetune.enabled=false", *args]) == 0
    )
    assert "report:" in capsys.readouterr().out
    (tmp_path / "report" / "index.html").unlink()
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report" / "index.html").exists()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no results" in capsys.readouterr().err
