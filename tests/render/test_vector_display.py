"""Inputs that are not images, ``image_shape`` (d,): drawn as bar plots in figures and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unitlens.cli import main
from unitlens.errors import UnitlensError
from unitlens.render.report.builder import quantise_images
from unitlens.render.tiles import tile_images, vector_bitmaps
from unitlens.results import VECTOR_COLUMNS, VECTOR_HEIGHT, StackResults, display_shape


def test_bars_hand_computed_signed_and_unsigned() -> None:
    b = vector_bitmaps(np.array([[1.0, -0.5, 0.25, 0.0], [0.25, 0.5, 0.0, 1.0]]))
    assert b.shape == (2, VECTOR_HEIGHT, 4)
    half = VECTOR_HEIGHT // 2
    signed = b[0]  # has a negative value: zero line across the middle
    assert (signed[:half, 0] == 1).all() and (signed[half:, 0] == 0).all()  # +max: the whole top half
    assert (signed[half : half + half // 2, 1] == -1).all() and (signed[half + half // 2 :, 1] == 0).all()
    assert (signed[: half - half // 4, 2] == 0).all() and (signed[half - half // 4 : half, 2] == 1).all()
    assert (signed[:, 3] == 0).all()  # zero: no bar
    unsigned = b[1]  # non-negative: bars up from the bottom row
    assert (unsigned[:, 3] == 1).all()
    assert (unsigned[-VECTOR_HEIGHT // 2 :, 1] == 1).all() and (unsigned[: -VECTOR_HEIGHT // 2, 1] == 0).all()
    assert (unsigned[:, 2] == 0).all()


def test_a_tiny_nonzero_value_still_shows_and_long_vectors_are_binned_by_magnitude() -> None:
    assert vector_bitmaps(np.array([[1.0, 1e-6]]))[0, -1, 1] == 1
    d = 3 * VECTOR_COLUMNS
    v = np.full((1, d), 0.1)
    v[0, 5] = -2.0  # inside the second bin of three values
    b = vector_bitmaps(v)
    assert b.shape == (1, VECTOR_HEIGHT, VECTOR_COLUMNS)
    assert (b[0, VECTOR_HEIGHT // 2 :, 1] == -1).all()  # the bin shows its largest magnitude, -2
    assert display_shape((d,)) == (VECTOR_HEIGHT, VECTOR_COLUMNS) and display_shape((3, 8, 9)) == (8, 9)


def test_tile_images_and_the_report_take_vectors() -> None:
    x = np.random.default_rng(0).normal(size=(5, 20))
    panel = tile_images(x, (20,))
    assert panel.shape == (2 * VECTOR_HEIGHT + 3, 3 * 20 + 4)
    q = quantise_images(x, (20,), signed=True)
    assert q.shape == (5, VECTOR_HEIGHT * 20) and q.dtype == np.uint8
    with pytest.raises(UnitlensError, match=r"does not match image_shape \(21,\)"):
        tile_images(x, (21,))


def _mlp_file(tmp_path: Path) -> Path:
    source = tmp_path / "mlp.py"
    source.write_text(
        "from torch import nn\n\n"
        "def build():\n"
        "    return nn.Sequential(nn.Linear(20, 12), nn.Sigmoid(), nn.Linear(12, 3))\n",
        encoding="utf-8",
    )
    return source


def test_a_model_on_vectors_is_visualized_with_bar_plots_end_to_end(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 12), nn.Sigmoid(), nn.Linear(12, 3))
    weights = tmp_path / "mlp.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    data = tmp_path / "x.npz"
    np.savez(data, x=np.random.default_rng(1).normal(size=(200, 20)).astype(np.float32))
    out = tmp_path / "run"
    args = ["visualize", "--model", f"{_mlp_file(tmp_path)}:build", "--weights", str(weights)]
    args += ["--layer", "0,2", "--input-shape", "20", "--data", str(data), "--out", str(out)]
    args += ["--units", "3", "--restarts", "2", "--max-steps", "15", "--steps", "6", "--quiet"]
    assert main(args) == 0
    results = StackResults.load(out / "results" / "model-paper.npz")
    assert results.image_shape == (20,) and results.is_vector and results.spatial == (VECTOR_HEIGHT, 20)
    assert results.layer(1).am_x.shape == (3, 2, 20)
    html = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "20 values" in html
    assert any((out / "figures").glob("*.png"))
