"""Supervised fine-tuning of a :class:`StackClassifier` by back-propagation, with held-out error."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from unitlens.data.stream import BatchSource, ShuffledBatches
from unitlens.errors import UnitlensError
from unitlens.models.classifier import StackClassifier
from unitlens.progress import Progress


@dataclass(frozen=True)
class FinetuneConfig:
    """How the classifier is fine-tuned.

    Attributes:
        examples: training examples seen in all (epochs x training-set size for a fixed set).
        learning_rate: SGD step size on the batch-mean cross-entropy (the new output layer's, and the
            hidden layers' unless ``hidden_learning_rate`` is set).
        hidden_learning_rate: the step size of the pre-trained hidden layers (None: ``learning_rate``). A
            smaller one keeps the features close to what pre-training found while the randomly started
            output layer learns fast; docs/decisions.md says what it changed on MNIST.
        momentum: SGD momentum.
        batch_size: examples per step (small batches generalise better on 4,000 digits).
        weight_decay: L2 penalty on all parameters.
        eval_every: examples between held-out evaluations.
        schedule: ``linear`` decays the rate to 0 at the end, so the final weights are not one noisy SGD
            step among many (the held-out error at the end of a constant-rate run wandered by +-1% here);
            ``constant`` keeps it.
    """

    examples: int = 20_000
    learning_rate: float = 0.1
    hidden_learning_rate: float | None = None
    momentum: float = 0.9
    batch_size: int = 20
    weight_decay: float = 0.0
    eval_every: int = 4_000
    schedule: str = "linear"

    def __post_init__(self) -> None:
        if self.schedule not in ("linear", "constant"):
            raise UnitlensError(f"schedule must be 'linear' or 'constant', got {self.schedule!r}")
        if self.examples < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise UnitlensError("examples, batch_size and eval_every must be >= 1")
        rates_ok = self.learning_rate > 0 and self.hidden_rate > 0
        if not rates_ok or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise UnitlensError(
                "learning_rate and hidden_learning_rate must be > 0, momentum in [0, 1), weight_decay >= 0"
            )

    @property
    def hidden_rate(self) -> float:
        """The hidden layers' step size: ``hidden_learning_rate``, or ``learning_rate`` when that is None."""
        return self.learning_rate if self.hidden_learning_rate is None else self.hidden_learning_rate


@dataclass
class FinetuneResult:
    """History of one fine-tuning run: rows of (examples seen, train loss, held-out error)."""

    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def test_error(self) -> float:
        """Held-out classification error (fraction) at the end."""
        return self.history[-1]["test_error"]


def classification_error(model: StackClassifier, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``x`` (n, d) misclassified against labels ``y`` (n,)."""
    wrong = 0
    for i in range(0, x.shape[0], batch_size):
        wrong += int((model.predict(x[i : i + batch_size]) != y[i : i + batch_size]).sum())
    return wrong / x.shape[0]


def finetune(
    model: StackClassifier,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    config: FinetuneConfig,
    generator: torch.Generator,
    *,
    source: BatchSource | None = None,
    quiet: bool = True,
) -> FinetuneResult:
    """Train ``model`` in place on the cross-entropy; return the history.

    Args:
        x_train, y_train: (n, d) inputs and (n,) labels, shuffled each epoch; ignored for batches when
            ``source`` (for instance an elastic stream over the same digits) is given.
        x_test, y_test: held-out set for the error report.
        generator: draws the batch order.
    """
    if y_train.dtype != torch.int64 or y_test.dtype != torch.int64:
        raise UnitlensError("fine-tuning needs int64 class labels")
    batches: BatchSource = source or ShuffledBatches(x_train, y_train, config.batch_size, generator)
    rates = (config.hidden_rate, config.learning_rate)
    optimizer = torch.optim.SGD(
        [
            {"params": list(model.hidden.parameters()), "lr": config.hidden_rate},
            {"params": list(model.output.parameters()), "lr": config.learning_rate},
        ],
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    result = FinetuneResult()
    seen, running, count = 0, 0.0, 0
    progress = Progress(config.examples, "fine-tune", quiet=quiet, unit="examples")
    start = time.perf_counter()
    while seen < config.examples:
        x, y = batches.next_batch()
        if y is None:
            raise UnitlensError("the fine-tuning batch source gives no labels")
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += x.shape[0]
        if config.schedule == "linear":
            for group, rate in zip(optimizer.param_groups, rates, strict=True):
                group["lr"] = rate * max(0.0, 1.0 - seen / config.examples)
        value = float(loss.detach())
        running += value * x.shape[0]
        count += x.shape[0]
        progress.update(x.shape[0], loss=value)
        if seen % config.eval_every < x.shape[0] or seen >= config.examples:
            result.history.append(
                {
                    "examples": float(seen),
                    "train_loss": running / count,
                    "test_error": classification_error(model, x_test, y_test),
                    "seconds": time.perf_counter() - start,
                }
            )
            running, count = 0.0, 0
    progress.close()
    return result
