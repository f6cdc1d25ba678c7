"""A sigmoid MLP with a softmax output, built from a pre-trained stack or initialised at random.

Fine-tuning (used in the paper to select hyper-parameters on MNIST) trains this classifier by
back-propagation. It holds copies of the stack's weights, so the pre-trained model that is visualized
stays untouched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from unitlens.errors import UnitlensError
from unitlens.models.configs import (
    DTYPES,
    as_config,
    check_choice,
    check_field_types,
    config_to_dict,
    dtype_name,
)
from unitlens.models.stack import LayerStack


@dataclass(frozen=True)
class ClassifierConfig:
    """A classifier's architecture; :meth:`StackClassifier.config` is its JSON-able dict.

    Attributes:
        sizes: [n_inputs, h1, ..., hL]: the inputs and at least one hidden layer, every size >= 1.
        n_classes: output classes, >= 2.
        dtype: the parameters' dtype, ``float32`` (the default) or ``float64``.
        kind: ``"classifier"``, the tag of the dict (not an argument).
    """

    sizes: tuple[int, ...]
    n_classes: int
    dtype: str = "float32"
    kind: str = field(default="classifier", init=False)

    def __post_init__(self) -> None:
        check_field_types(self)
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise UnitlensError(
                "ClassifierConfig.sizes must list the inputs and at least one hidden layer, each >= 1, "
                f"got {list(self.sizes)}"
            )
        if self.n_classes < 2:
            raise UnitlensError(f"ClassifierConfig.n_classes must be at least 2, got {self.n_classes}")
        check_choice(self, "dtype", tuple(DTYPES))

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` as a ``torch.dtype``."""
        return DTYPES[self.dtype]


class StackClassifier(nn.Module):
    """x -> sigmoid(W1 x + b1) -> ... -> sigmoid(WL h + bL) -> logits (softmax output layer).

    Args:
        sizes: [n_inputs, h1, ..., hL]; the hidden layer sizes.
        n_classes: output classes.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        n_classes: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self._cfg = ClassifierConfig(tuple(sizes), n_classes, dtype_name(dtype))
        self.hidden = nn.ModuleList(
            nn.Linear(self.sizes[k - 1], self.sizes[k], dtype=dtype, device=device)
            for k in range(1, len(self.sizes))
        )
        self.output = nn.Linear(self.sizes[-1], n_classes, dtype=dtype, device=device)

    @property
    def cfg(self) -> ClassifierConfig:
        """This classifier's config; its ``dtype`` is the parameters'."""
        name = dtype_name(self.output.weight.dtype)
        return self._cfg if name == self._cfg.dtype else replace(self._cfg, dtype=name)

    @property
    def sizes(self) -> list[int]:
        """[n_inputs, h1, ..., hL]."""
        return list(self._cfg.sizes)

    @property
    def n_classes(self) -> int:
        """Output classes."""
        return self._cfg.n_classes

    def config(self) -> dict[str, Any]:
        """The JSON-able config ``{"sizes", "n_classes", "dtype", "kind"}``; see :class:`ClassifierConfig`."""
        return config_to_dict(self.cfg)

    @classmethod
    def from_config(
        cls, config: ClassifierConfig | dict[str, Any], *, device: torch.device | str | None = None
    ) -> StackClassifier:
        """An untrained classifier (torch's default initialisation) with the architecture of ``config``.

        Args:
            config: a :class:`ClassifierConfig` or its dict (:meth:`config`); a dict without ``dtype`` is
                float32.
        """
        cfg = as_config(ClassifierConfig, config, where="classifier config")
        return cls(cfg.sizes, cfg.n_classes, dtype=cfg.torch_dtype, device=device)

    @classmethod
    def from_stack(cls, stack: LayerStack, n_classes: int, *, generator: torch.Generator) -> StackClassifier:
        """Hidden layers copied from ``stack``'s encoder weights and biases; a fresh output layer."""
        clf = cls(stack.layer_sizes, n_classes, dtype=stack.dtype, device=stack.device)
        with torch.no_grad():
            for k, linear in enumerate(clf.hidden_layers(), start=1):
                layer = stack.layer(k)
                linear.weight.copy_(layer.weight)
                linear.bias.copy_(layer.hidden_bias)
        clf.init_output(generator)
        return clf

    @classmethod
    def random(cls, sizes: Sequence[int], n_classes: int, *, generator: torch.Generator) -> StackClassifier:
        """The baseline fine-tuning is compared with: every layer initialised at random.

        Hidden weights are uniform in +-4 sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010's range
        for sigmoid units): with torch's default initialisation a sigmoid MLP stayed at chance over a
        short budget (measured, specification section 2).
        """
        clf = cls(sizes, n_classes)
        with torch.no_grad():
            for linear in clf.hidden_layers():
                fan_out, fan_in = linear.weight.shape
                bound = 4.0 * math.sqrt(6.0 / (fan_in + fan_out))
                linear.weight.uniform_(-bound, bound, generator=generator)
                linear.bias.zero_()
        clf.init_output(generator)
        return clf

    def init_output(self, generator: torch.Generator) -> None:
        """Output layer: uniform +-sqrt(6 / (fan_in + fan_out)), zero bias."""
        with torch.no_grad():
            fan_out, fan_in = self.output.weight.shape
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            self.output.weight.uniform_(-bound, bound, generator=generator)
            self.output.bias.zero_()

    def hidden_layers(self) -> list[nn.Linear]:
        """The hidden layers, bottom first."""
        return [m for m in self.hidden if isinstance(m, nn.Linear)]

    def forward(self, x: Tensor) -> Tensor:
        """(batch, n_inputs) -> (batch, n_classes) logits."""
        h = x
        for linear in self.hidden_layers():
            h = torch.sigmoid(linear(h))
        out: Tensor = self.output(h)
        return out

    def predict(self, x: Tensor) -> Tensor:
        """(batch, n_inputs) -> (batch,) most probable class."""
        with torch.no_grad():
            return self.forward(x).argmax(dim=1)
