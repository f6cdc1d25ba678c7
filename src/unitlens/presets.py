"""Stack recipes for experiments, taken from the ``reproduce`` pipeline's settings so the two never drift.

A recipe names a stack kind and its :class:`~unitlens.config.StackSettings`; the reasons for each default
are in ``unitlens.config``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from unitlens.config import FinetuneSettings, MnistSettings, StackSettings
from unitlens.data.dataset import Dataset
from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack
from unitlens.reproduce import build, training_config
from unitlens.training.finetune import FinetuneConfig
from unitlens.training.greedy import LayerwiseConfig


@dataclass(frozen=True)
class StackRecipe:
    """How to build and pre-train one stack: its kind (``dbn`` or ``sdae``) and its settings."""

    kind: str
    settings: StackSettings

    @property
    def training(self) -> LayerwiseConfig:
        """The greedy pre-training configuration the pipeline would use."""
        return training_config(self.kind, self.settings)


def mnist_recipe(kind: str, hidden: tuple[int, ...], examples_per_layer: int) -> StackRecipe:
    """The pipeline's MNIST settings with other layer sizes and training length."""
    if kind not in ("dbn", "sdae"):
        raise UnitlensError(f"stack kind must be 'dbn' or 'sdae', got {kind!r}")
    settings = dataclasses.replace(MnistSettings(), hidden=hidden, examples_per_layer=examples_per_layer)
    return StackRecipe(kind, settings)


def build_stack(recipe: StackRecipe, data: Dataset, generator: torch.Generator) -> LayerStack:
    """A freshly initialised stack for ``recipe`` on ``data``."""
    return build(recipe.kind, data, recipe.settings, generator)


def mnist_finetune(examples: int | None = None) -> FinetuneConfig:
    """The pipeline's fine-tuning (see ``FinetuneSettings``): 5 epochs of the 4,000 digits by default.

    Rate 0.2 decayed linearly to 0, batch 20, momentum 0.9: over 3 seeds on 784-500-500-500 stacks this
    gave 3.4-3.7% held-out error (DBN) and 3.5-3.8% (SDAE); rate 0.1 gave 3.7-4.8%, 0.05 gave 4.7-5.3%.
    """
    s = FinetuneSettings()
    n = s.examples if examples is None else examples
    return FinetuneConfig(
        examples=n, learning_rate=s.learning_rate, batch_size=s.batch_size, eval_every=4_000
    )
