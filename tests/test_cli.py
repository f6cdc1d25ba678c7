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


def test_visualize_rebuilds_the_patches_training_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The checkpoint records its data recipe, so visualize studies the very patches training saw (f0 0.2,
    not the loader's default 0.4); other photos than training's are refused, naming the mismatch."""
    import numpy as np
    import torch
    from PIL import Image

    from unitlens.data.patches import load_patches

    train = ["train", "--model", "dbn", "--data", "patches", "--hidden", "6,4", "--examples", "300"]
    assert main([*train, "--out", str(tmp_path / "ck"), "--quiet"]) == 0
    checkpoint = tmp_path / "ck" / "patches-dbn.safetensors"
    recipe = json.loads(checkpoint.with_suffix(".json").read_text(encoding="utf-8"))["data"]["recipe"]
    assert recipe["loader"] == "patches" and recipe["f0"] == 0.2 and recipe["n_train"] == 100_000
    vis = ["visualize", str(checkpoint), "--units", "3", "--restarts", "2", "--max-steps", "10", "--quiet"]
    assert main([*vis, "--out", str(tmp_path / "vis")]) == 0
    with np.load(tmp_path / "vis" / "results" / "patches-dbn.npz") as f:
        exemplars = torch.from_numpy(f["layer1/exemplars"].reshape(-1, 144))
    for f0, found in ((0.2, True), (0.4, False)):
        x = load_patches(f0=f0).x_train
        nearest = torch.cdist(exemplars, x, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
        assert bool((nearest < 1e-4).all()) is found, (f0, nearest.max())

    photos = tmp_path / "photos"
    photos.mkdir()
    g = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(g.integers(0, 256, (64, 64), dtype=np.uint8)).save(photos / f"p{k}.png")
    capsys.readouterr()
    assert main([*vis, "--out", str(tmp_path / "other"), "--photos", str(photos)]) == 2
    err = capsys.readouterr().err
    assert "not the data the model was trained on" in err and "data.pixel_mean" in err
    assert "Traceback" not in err
