import json
from pathlib import Path

import pytest

import unitlens
from unitlens.cli import main
from unitlens.render.png import load_png


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert unitlens.__version__ in capsys.readouterr().out
    assert main([]) == 0
    assert "data" in capsys.readouterr().out


def test_data_command_summarises_and_writes_tiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "--out", str(tmp_path), "--patches", "2000"]) == 0
    out = capsys.readouterr().out
    assert "mnist" in out and "elastic" in out and "patches 12x12" in out
    rows = {row["name"]: row for row in json.loads((tmp_path / "summary.json").read_text())}
    mnist = rows["mnist"]
    assert mnist["train_shape"] == [4000, 784] and mnist["test_shape"] == [1000, 784]
    assert mnist["class_counts"] == [400] * 10
    assert 8.5 < mnist["rho"] < 10.5
    assert rows["elastic"]["min"] >= 0.0 and rows["elastic"]["max"] <= 1.0
    assert rows["patches 12x12"]["train_shape"] == [2000, 144]
    for name in ("mnist.png", "elastic.png", "patches.png"):
        image = load_png(tmp_path / name)
        assert image.ndim == 2 and image.shape[0] > 100 and image.std() > 0.1


def test_bad_data_dir_is_a_clear_error_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-folder"
    assert main(["data", "--out", str(tmp_path / "o"), "--data-dir", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unitlens: error:") and "no-such-folder" in err and "Traceback" not in err


def test_train_then_visualize_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "train",
        "--model",
        "dbn",
        "--hidden",
        "12,8",
        "--examples",
        "1000",
        "--out",
        str(tmp_path / "ck"),
    ]
    assert main([*args, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "layer 2: held-out reconstruction error" in out
    checkpoint = tmp_path / "ck" / "mnist-dbn.safetensors"
    assert checkpoint.exists()
    assert (
        main(
            [
                "visualize",
                str(checkpoint),
                "--out",
                str(tmp_path / "vis"),
                "--units",
                "4",
                "--restarts",
                "3",
                "--max-steps",
                "30",
            ]
        )
        == 0
    )
    assert (tmp_path / "vis" / "results" / "mnist-dbn.npz").exists()
    assert (tmp_path / "vis" / "report" / "index.html").exists()
    assert main(["visualize", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
