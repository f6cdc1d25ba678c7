"""Does pre-training help? Fine-tune pre-trained stacks and a randomly initialised MLP on the same budget."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from unitlens.data.dataset import Dataset
from unitlens.errors import UnitlensError
from unitlens.models.classifier import StackClassifier
from unitlens.models.stack import LayerStack
from unitlens.training.finetune import FinetuneConfig, FinetuneResult, finetune


@dataclass(frozen=True)
class Comparison:
    """Held-out errors after fine-tuning: one per pre-trained stack, and the random baseline."""

    results: dict[str, FinetuneResult]

    def errors(self) -> dict[str, float]:
        return {name: r.test_error for name, r in self.results.items()}


def compare_with_random(
    stacks: dict[str, LayerStack], data: Dataset, config: FinetuneConfig, seed: int, *, quiet: bool = True
) -> Comparison:
    """Fine-tune a classifier from each stack, and one from random weights of the same sizes.

    Every classifier gets the same output-layer initialisation seed, batch order seed and budget; the
    stacks themselves are not modified. The random MLP takes the first stack's sizes, and every one of its
    layers learns at ``config.learning_rate`` (it has no pre-trained features for ``hidden_learning_rate``
    to keep), as in the ``reproduce`` pipeline.
    """
    if data.y_train is None or data.y_test is None:
        raise UnitlensError("fine-tuning needs a labelled data set")
    if not stacks:
        raise UnitlensError("give at least one pre-trained stack")
    n_classes = int(data.y_train.max()) + 1
    classifiers = {
        name: StackClassifier.from_stack(stack, n_classes, generator=torch.Generator().manual_seed(seed))
        for name, stack in stacks.items()
    }
    sizes = next(iter(stacks.values())).layer_sizes
    classifiers["random"] = StackClassifier.random(
        sizes, n_classes, generator=torch.Generator().manual_seed(seed)
    )
    random_config = dataclasses.replace(config, hidden_learning_rate=None)
    results = {
        name: finetune(
            clf,
            data.x_train,
            data.y_train,
            data.x_test,
            data.y_test,
            random_config if name == "random" else config,
            torch.Generator().manual_seed(seed + 1),
            quiet=quiet,
        )
        for name, clf in classifiers.items()
    }
    return Comparison(results)
