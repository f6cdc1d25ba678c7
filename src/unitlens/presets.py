"""Training settings that worked on the paper's two data sets, with the reason for each.

Every value is a default a user can change; ``reproduce`` and the experiments start from these.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unitlens.errors import UnitlensError
from unitlens.models.dae import Corruption, default_corruption, default_decoder
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.models.stack import LayerStack
from unitlens.training.finetune import FinetuneConfig
from unitlens.training.greedy import LayerwiseConfig
from unitlens.training.sgd import SGDConfig


@dataclass(frozen=True)
class StackRecipe:
    """How to build and pre-train one stack.

    Attributes:
        kind: ``dbn`` or ``sdae``.
        hidden: units per hidden layer, bottom first.
        training: the greedy pre-training settings.
        corruption: the SDAE's first-layer corruption (None for a DBN).
    """

    kind: str
    hidden: tuple[int, ...]
    training: LayerwiseConfig
    corruption: Corruption | None = None


def mnist_recipe(kind: str, hidden: tuple[int, ...], examples_per_layer: int) -> StackRecipe:
    """Pre-training on [0, 1] digits (Bernoulli visible units / sigmoid decoder with cross-entropy).

    DBN: CD-1 at learning rate 0.05, batch 100, momentum 0.5 then 0.9 (Hinton's practical guide); 0.05 was
    the largest rate whose held-out reconstruction error fell steadily on the elastic stream. SDAE: the
    cross-entropy is summed over 784 pixels, so its gradient is about 10x larger than CD's: rate 0.01.
    """
    if kind == "dbn":
        sgd = SGDConfig(learning_rate=0.05, momentum_warmup_examples=examples_per_layer // 10)
        training = LayerwiseConfig(
            examples_per_layer=examples_per_layer, sgd=(sgd,), eval_every=examples_per_layer // 4
        )
        return StackRecipe("dbn", hidden, training)
    if kind == "sdae":
        sgd = SGDConfig(learning_rate=0.01, momentum_warmup_examples=examples_per_layer // 10)
        training = LayerwiseConfig(
            examples_per_layer=examples_per_layer, sgd=(sgd,), eval_every=examples_per_layer // 4
        )
        return StackRecipe("sdae", hidden, training, default_corruption("binary"))
    raise UnitlensError(f"stack kind must be 'dbn' or 'sdae', got {kind!r}")


def mnist_finetune(examples: int = 20_000) -> FinetuneConfig:
    """Fine-tuning on the 4,000 embedded digits: 5 epochs at batch 20, momentum 0.9, rate 0.2 decayed
    linearly to 0. Over 3 seeds on 784-500-500-500 stacks, 0.2 gave 3.4-3.7% held-out error (DBN) and
    3.5-3.8% (SDAE); 0.1 gave 3.7-4.8%, and 0.05 gave 4.7-5.3%.
    """
    return FinetuneConfig(examples=examples, learning_rate=0.2, momentum=0.9, batch_size=20, eval_every=4_000)


def build_stack(recipe: StackRecipe, n_inputs: int, data_kind: str, generator: torch.Generator) -> LayerStack:
    """A freshly initialised stack for ``recipe`` on inputs of ``data_kind`` (``binary`` or ``real``)."""
    sizes = [n_inputs, *recipe.hidden]
    if recipe.kind == "dbn":
        return DBN.build(sizes, "bernoulli" if data_kind == "binary" else "gaussian", generator=generator)
    return SDAE.build(sizes, default_decoder(data_kind), recipe.corruption, generator=generator)
