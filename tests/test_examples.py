"""The worked examples in examples/: they train, write safetensors, and load back through load_user_model.

The tiny settings below were measured before the thresholds were set (seeds 0-4, on a shared 2-core
machine): MNIST on 500 digits for 2 epochs misclassified 42-52% of the held-out digits, the photo task on
500 crops for 5 epochs 54-69% of the held-out crops; chance is 90% for both. A threshold of 80% leaves room
for other CPUs' arithmetic while still failing a network that learned nothing (one epoch of a few hundred
examples is only a handful of Adam steps, too few to tell apart from chance reliably).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from unitlens.data.images import load_bundled_photos_rgb
from unitlens.data.mnist import load_mnist
from unitlens.errors import UnitlensError
from unitlens.models.user import load_user_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BELOW_CHANCE = 0.8


def _example(name: str) -> ModuleType:
    """Import examples/<name>.py by path, as a user's script that is not part of any package."""
    spec = importlib.util.spec_from_file_location(f"unitlens_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mnist_cnn() -> ModuleType:
    return _example("mnist_cnn")


@pytest.fixture(scope="module")
def photo_cnn() -> ModuleType:
    return _example("photo_cnn")


def test_the_mnist_example_trains_and_loads_back_with_the_same_error(mnist_cnn: ModuleType, tmp_path: Path):
    out = tmp_path / "mnist.safetensors"
    result = mnist_cnn.train(out, epochs=2, seed=0, limit=500)
    assert set(result) == {"test_error", "seconds"}
    assert result["test_error"] < BELOW_CHANCE
    assert out.is_file()
    model, description = load_user_model(f"{EXAMPLES / 'mnist_cnn.py'}:build", out)
    assert "MnistCNN" in description
    assert not model.training
    assert [name for name, _ in model.named_children()] == ["conv1", "conv2", "fc1", "fc2"]
    # The loaded weights are the trained ones: the held-out error comes out the same to the digit.
    data = load_mnist(None)
    assert data.y_test is not None
    assert mnist_cnn.error_rate(model, data.x_test, data.y_test) == result["test_error"]
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["example"] == "mnist_cnn"


def test_the_mnist_example_is_the_same_network_for_the_same_seed(mnist_cnn: ModuleType, tmp_path: Path):
    first, second, other = (tmp_path / f"{name}.safetensors" for name in ("first", "second", "other"))
    mnist_cnn.train(first, epochs=1, seed=3, limit=128)
    mnist_cnn.train(second, epochs=1, seed=3, limit=128)
    mnist_cnn.train(other, epochs=1, seed=4, limit=128)
    a, b, c = load_file(first), load_file(second), load_file(other)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_the_mnist_example_exports_to_a_program_with_the_same_layers(mnist_cnn: ModuleType, tmp_path: Path):
    weights = tmp_path / "mnist.safetensors"
    mnist_cnn.train(weights, epochs=1, seed=0, limit=64)
    model, _ = load_user_model(f"{EXAMPLES / 'mnist_cnn.py'}:build", weights)
    program = tmp_path / "mnist.pt2"
    batch = ({0: torch.export.Dim.DYNAMIC},)
    torch.export.save(torch.export.export(model, (torch.rand(2, 1, 28, 28),), dynamic_shapes=batch), program)
    exported, description = load_user_model(str(program))
    assert {"conv1", "conv2", "fc1", "fc2"} <= {name for name, _ in exported.named_modules()}
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x))
    assert "(N, 1, 28, 28)" in description


def test_the_photo_example_trains_and_loads_back_with_the_same_error(photo_cnn: ModuleType, tmp_path: Path):
    out = tmp_path / "photo.safetensors"
    result = photo_cnn.train(out, epochs=5, seed=0, limit=500)
    assert set(result) == {"test_error", "seconds"}
    assert result["test_error"] < BELOW_CHANCE
    model, description = load_user_model(f"{EXAMPLES / 'photo_cnn.py'}:build", out)
    assert "PhotoCNN" in description
    assert [name for name, _ in model.named_children()] == ["conv1", "conv2", "conv3", "fc"]
    x_test, y_test = photo_cnn.crops(photo_cnn.N_TEST, seed=0, split="test")
    assert photo_cnn.error_rate(model, x_test, y_test) == result["test_error"]


def test_photo_crops_are_balanced_colour_images_and_repeat_with_the_seed(photo_cnn: ModuleType) -> None:
    images, labels = photo_cnn.crops(25, seed=7, split="train")
    assert images.shape == (25, 3, 32, 32)
    assert images.dtype == torch.float32
    assert labels.shape == (25,)
    assert labels.dtype == torch.int64
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert sorted(torch.bincount(labels, minlength=10).tolist()) == [2] * 5 + [3] * 5
    again, again_labels = photo_cnn.crops(25, seed=7, split="train")
    assert torch.equal(images, again) and torch.equal(labels, again_labels)
    other, _ = photo_cnn.crops(25, seed=8, split="train")
    assert not torch.equal(images, other)
    assert photo_cnn.crops(0, seed=0, split="test")[0].shape == (0, 3, 32, 32)


def test_photo_crops_come_from_their_photograph(photo_cnn: ModuleType) -> None:
    images, labels = photo_cnn.crops(10, seed=0, split="test")
    photos = photo_cnn._photos()
    for image, label in zip(images.numpy(), labels.tolist(), strict=True):
        photo = photos[label]
        # Find the crop's top-left pixel in the (halved) photograph it is labelled with.
        matches = np.argwhere((photo == image[:, :1, :1]).all(axis=0))
        assert any(
            np.array_equal(photo[:, y : y + 32, x : x + 32], image)
            for y, x in matches
            if x + 32 <= photo.shape[2]
        )
    # The halved photographs are the bundled ones: same count, half the size.
    assert [p.shape[1:] for p in photos] == [
        (h // 2, w // 2) for h, w, _ in map(np.shape, load_bundled_photos_rgb())
    ]


def test_train_and_held_out_crops_share_no_pixel_column(photo_cnn: ModuleType) -> None:
    for photo in photo_cnn._photos():
        width = photo.shape[2]
        covered = {}
        for split in ("train", "test"):
            edges = photo_cnn._columns(width, split)
            assert len(edges) > 0, (width, split)
            covered[split] = {int(x) + dx for x in edges for dx in range(32)}
            assert max(covered[split]) < width
        assert not covered["train"] & covered["test"], width


def test_bad_settings_are_refused(mnist_cnn: ModuleType, photo_cnn: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(UnitlensError, match="epochs"):
        mnist_cnn.train(tmp_path / "x.safetensors", epochs=0)
    with pytest.raises(UnitlensError, match="limit"):
        photo_cnn.train(tmp_path / "x.safetensors", limit=0)
    with pytest.raises(UnitlensError, match="split"):
        photo_cnn.crops(3, seed=0, split="validation")


@pytest.mark.parametrize("name", ["mnist_cnn", "photo_cnn"])
def test_each_example_runs_from_the_command_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"{name}.safetensors"
    _example(name).main(["--out", str(out), "--epochs", "1", "--seed", "1", "--limit", "64"])
    assert out.is_file()
    printed = capsys.readouterr().out
    assert "test error" in printed
    assert str(out) in printed
