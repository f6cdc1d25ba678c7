"""The finetune stage on tiny stacks: the rate sweep, finetune.json, the saved fine-tuned weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import unitlens.reproduce as reproduce_module
from unitlens.catalogue import MODELS
from unitlens.checkpoint import load_model
from unitlens.config import ReproduceConfig, apply_overrides, preset
from unitlens.data.dataset import Dataset, dataset_norm
from unitlens.models.stack import LayerStack
from unitlens.recipes import build_stack
from unitlens.reproduce import Run, finetune_rates, finetune_stack

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = [
    "mnist.hidden=6,5,4",
    "mnist.examples_per_layer=200",
    "mnist.units=3",
    "study.max_steps=15",
    "finetune.examples=120",
    "finetune.batch_size=20",
]


def tiny_data() -> Dataset:
    """8x8 binary "digits" with 10 labels: enough for a classifier and AM to run, not to learn much."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(160, 64, generator=g) < 0.3).float()
    y = torch.randint(0, 10, (160,), generator=g)
    return Dataset(x[:120], y[:120], x[120:], y[120:], (8, 8), dataset_norm(x[:120]), "synthetic")


def tiny_stacks(config: ReproduceConfig, data: Dataset) -> dict[str, LayerStack]:
    return {
        f"mnist-{m}": build_stack(m, data, config.mnist, torch.Generator().manual_seed(10 + i))
        for i, m in enumerate(MODELS)
    }


def run_stage(
    folder: Path, overrides: list[str]
) -> tuple[ReproduceConfig, dict[str, Any], Dataset, dict[str, LayerStack]]:
    config = apply_overrides(preset("quick"), [*TINY, *overrides])
    data = tiny_data()
    stacks = tiny_stacks(config, data)
    reproduce_module._finetune_stage(Run(folder, config), stacks, data)
    result = json.loads((folder / "results" / "finetune.json").read_text(encoding="utf-8"))
    return config, result, data, stacks


def test_finetune_json_holds_the_sweep_and_the_judged_rate_on_top(tmp_path: Path) -> None:
    # The judged rate (0.005) is not in the sweep: it is measured all the same, in descending order.
    config, result, _, _ = run_stage(tmp_path, ["finetune.sweep_hidden_rates=0.02,0.2"])
    assert set(result) == {
        "dataset",
        "hidden_learning_rate",
        "learning_rate",
        "errors",
        "am_cosine",
        "sweep",
        "weights",
    }
    assert result["dataset"] == "mnist"
    assert result["hidden_learning_rate"] == 0.005 and result["learning_rate"] == 0.2
    rates = [row["hidden_learning_rate"] for row in result["sweep"]]
    assert rates == [0.2, 0.02, 0.005] == finetune_rates(config)
    cosine_keys = {"dbn L2", "dbn L3", "sdae L2", "sdae L3"}
    for row in result["sweep"]:
        assert set(row) == {"hidden_learning_rate", "errors", "am_cosine"}
        assert set(row["errors"]) == {"dbn", "sdae"} and set(row["am_cosine"]) == cosine_keys
        assert all(0 <= v <= 1 for v in row["errors"].values())
        assert all(-1 <= v <= 1.0 + 1e-6 for v in row["am_cosine"].values())
    judged = result["sweep"][-1]
    assert result["am_cosine"] == judged["am_cosine"]
    assert result["errors"] == {**judged["errors"], "random": result["errors"]["random"]}
    assert 0 <= result["errors"]["random"] <= 1
    # Rates 40x apart fine-tune the hidden layers differently, so the AM images move differently.
    assert result["sweep"][0]["am_cosine"] != judged["am_cosine"]
    assert result["weights"] == {m: f"checkpoints/finetuned-mnist-{m}.safetensors" for m in MODELS}


def test_saved_weights_are_the_judged_rates_finetuned_stacks(tmp_path: Path) -> None:
    config, result, data, stacks = run_stage(tmp_path, ["finetune.sweep_hidden_rates=0.2"])
    for model in MODELS:
        stack = stacks[f"mnist-{model}"]
        loaded, ckpt = load_model(tmp_path / result["weights"][model], kind=model)
        assert type(loaded) is type(stack) and isinstance(loaded, LayerStack)
        assert ckpt.meta["finetune"]["hidden_learning_rate"] == 0.005
        assert ckpt.meta["test_error"] == result["errors"][model]
        # The stage's seeds do not depend on the rate: fine-tuning again at the judged rate gives the same
        # classifier, whose hidden layers the checkpoint holds.
        clf, error = finetune_stack(stack, data, config, 0.005)
        assert error == result["errors"][model]
        for k, linear in enumerate(clf.hidden_layers(), start=1):
            torch.testing.assert_close(loaded.layer(k).weight, linear.weight, rtol=0, atol=0)
            torch.testing.assert_close(loaded.layer(k).hidden_bias, linear.bias, rtol=0, atol=0)
            assert not torch.equal(loaded.layer(k).weight, stack.layer(k).weight)  # fine-tuning moved them
        # Everything fine-tuning does not touch (visible biases, decoders) stays the pre-trained stack's.
        for name, value in stack.state_dict().items():
            if not name.endswith(("weight", "hidden_bias")):
                torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)


def test_the_judged_rate_gives_the_same_numbers_with_or_without_a_sweep(tmp_path: Path) -> None:
    _, alone, _, _ = run_stage(tmp_path / "alone", ["finetune.sweep_hidden_rates="])
    _, swept, _, _ = run_stage(tmp_path / "swept", ["finetune.sweep_hidden_rates=0.2,0.05"])
    assert [row["hidden_learning_rate"] for row in alone["sweep"]] == [0.005]
    assert alone["errors"] == swept["errors"] and alone["am_cosine"] == swept["am_cosine"]
