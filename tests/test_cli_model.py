"""`unitlens visualize --model ...` end to end on the example CNN: results, figures, report, refusals."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from unitlens.cli import main
from unitlens.render.png import load_png
from unitlens.results import StackResults

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SPEC = f"{EXAMPLES / 'mnist_cnn.py'}:build"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("example_mnist_cnn_cli", EXAMPLES / "mnist_cnn.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path_factory.mktemp("weights") / "mnist_cnn.safetensors"
    module.train(path, epochs=1, seed=0, limit=500)
    return path


TINY = ["--units", "3", "--restarts", "2", "--max-steps", "15", "--steps", "6", "--quiet"]


def test_visualize_the_example_cnn_with_both_recipes(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["visualize", "--model", SPEC, "--weights", str(weights), "--layer", "conv1,conv2"]
    args += ["--input-shape", "1,28,28", "--recipe", "paper,lucid", "--out", str(out), *TINY]
    assert main(args) == 0
    for recipe in ("paper", "lucid"):
        results = StackResults.load(out / "results" / f"model-{recipe}.npz")
        assert list(results.layer_names) == ["conv1", "conv2"]
        assert results.summary is not None and results.summary["recipe"] == recipe
        layer = results.layer(2)
        assert layer.am_x.shape == (3, 2, 28 * 28) and layer.exemplars.shape[:2] == (3, 9)
        assert layer.lc is None
        # each unit's exemplars are its strongest digits, strongest first
        assert bool((np.diff(layer.exemplar_activations, axis=1) <= 0).all())
    figure = out / "figures" / "model-recipes.png"
    assert figure.exists() and load_png(figure).ndim >= 2
    html = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "conv1" in html and "lucid" in html
    assert "report:" in capsys.readouterr().out


def test_an_exported_program_is_visualized_by_its_module_names(tmp_path: Path, weights: Path) -> None:
    from unitlens.models.user import load_user_model

    model, _ = load_user_model(SPEC, weights)
    program = torch.export.export(
        model, (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},)
    )
    pt2 = tmp_path / "cnn.pt2"
    torch.export.save(program, pt2)
    out = tmp_path / "run"
    args = ["visualize", "--model", str(pt2), "--layer", "conv2", "--input-shape", "1,28,28"]
    args += ["--recipe", "paper", "--out", str(out), *TINY]
    assert main(args) == 0
    assert StackResults.load(out / "results" / "model-paper.npz").layer(1).units.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--input-shape", "1,28,28"], "needs --layer"),
        (["--layer", "conv1"], "needs --input-shape"),
        (["--layer", "conv1", "--input-shape", "1,x,28"], "--input-shape must be integers"),
        (["--layer", "conv1", "--input-shape", "1,28,28", "--recipe", "dream"], "--recipe takes"),
        (["--layer", "nope", "--input-shape", "1,28,28"], "not modules of the model"),
        (["--layer", "fc2", "--input-shape", "1,27,28"], "the model takes (1, 27, 28)"),
    ],
)
def test_bad_model_flags_are_one_clear_line(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "run"
    args = ["visualize", "--model", SPEC, "--weights", str(weights), "--out", str(out), *extra, *TINY]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (out / "results").exists()


def test_a_pickled_model_is_refused_with_how_to_convert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pickled = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    args = [
        "visualize",
        "--model",
        str(pickled),
        "--layer",
        "x",
        "--input-shape",
        "2",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "torch.export" in err and "safetensors" in err


def test_visualize_the_colour_example_with_its_crops(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("example_photo_cnn_cli", EXAMPLES / "photo_cnn.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    weights, crops = tmp_path / "photo.safetensors", tmp_path / "crops.npz"
    module.main(["--out", str(weights), "--epochs", "1", "--limit", "200", "--crops", str(crops)])
    out = tmp_path / "run"
    args = ["visualize", "--model", f"{EXAMPLES / 'photo_cnn.py'}:build", "--weights", str(weights)]
    args += ["--layer", "conv2", "--input-shape", "3,32,32", "--data", str(crops), "--out", str(out), *TINY]
    assert main(args) == 0  # the default recipe for colour inputs is lucid
    results = StackResults.load(out / "results" / "model-lucid.npz")
    assert results.channels == 3 and results.layer(1).am_x.shape == (3, 2, 3 * 32 * 32)
    assert load_png(out / "figures" / "model-lucid-layers.png").shape[-1] == 3
