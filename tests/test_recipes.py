"""Settings in, objects out: the builders every caller shares, and the data recipe a checkpoint records."""

import dataclasses
from pathlib import Path

import pytest
import torch

from unitlens.config import FinetuneSettings, apply_overrides, preset
from unitlens.data.dataset import DataRecipe
from unitlens.data.patches import load_patches
from unitlens.data.recipe import load_data
from unitlens.errors import UnitlensError
from unitlens.recipes import data_recipe, finetune_config, mnist_finetune, study_config, training_config


def test_the_experiments_finetune_as_the_pipeline_does() -> None:
    # The pipeline's pre-trained layers fine-tune at hidden_learning_rate; the recipe used to drop it.
    settings = FinetuneSettings()
    recipe = mnist_finetune()
    assert recipe.hidden_learning_rate == settings.hidden_learning_rate == 0.005
    assert recipe == finetune_config(settings, settings.hidden_learning_rate, eval_every=4_000)
    assert finetune_config(settings, None).hidden_rate == settings.learning_rate  # the random baseline


def test_each_model_reads_its_own_block_and_the_study_its_data_sets_units() -> None:
    c = apply_overrides(preset("quick"), ["mnist.sdae.upper_learning_rate=0.5", "patches.units=7"])
    assert training_config("sdae", c.mnist).sgd_for(2).learning_rate == 0.5
    assert training_config("dbn", c.mnist).sgd_for(2).learning_rate == 0.05
    assert study_config("patches", c).units == 7 and study_config("mnist", c).units == 36
    assert study_config("patches20", c).units == 7
    assert dataclasses.replace(study_config("mnist", c), units=None) == c.study


def test_a_data_recipe_rebuilds_the_same_tensors() -> None:
    data = load_patches(size=8, n_train=300, n_test=20, seed=3, f0=0.25)
    assert data.recipe is not None
    again = load_data(DataRecipe.from_dict(data.recipe.to_dict(), where="test"))
    for name in ("x_train", "x_test", "pixel_mean", "pixel_scale"):
        assert torch.equal(getattr(data, name), getattr(again, name)), name
    config = apply_overrides(preset("quick"), ["seed=3", "patches.f0=0.25"])
    assert data_recipe("patches20", config).size == 20
    assert data_recipe("patches", config).f0 == 0.25 and data_recipe("patches", config).seed == 3


def test_a_bad_recipe_names_its_field(tmp_path: Path) -> None:
    good = DataRecipe("patches", standardised=True).to_dict()
    cases = [
        ({**good, "f0": "0.2"}, "'f0' must be float"),
        ({**good, "size": True}, "'size' must be int"),
        ({**good, "colour": 1}, "unknown data recipe fields"),
        ({k: v for k, v in good.items() if k != "seed"}, r"lacks the fields \['seed'\]"),
        ({**good, "loader": "cifar"}, "'loader': expected one of"),
        ([], "must be an object"),
    ]
    for values, message in cases:
        with pytest.raises(UnitlensError, match=message):
            DataRecipe.from_dict(values, where="ck.json: field data.recipe")
    assert DataRecipe("mnist", path="/d").to_dict() == {
        "loader": "mnist",
        "path": "/d",
        "standardised": False,
    }
