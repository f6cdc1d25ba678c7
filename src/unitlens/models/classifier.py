"""A sigmoid MLP with a softmax output, built from a pre-trained stack or initialised at random.

Fine-tuning (used in the paper to select hyper-parameters on MNIST) trains this classifier by
back-propagation. It holds copies of the stack's weights, so the pre-trained model that is visualized
stays untouched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack


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
        if len(sizes) < 2 or n_classes < 2:
            raise UnitlensError("a classifier needs inputs, at least one hidden layer and at least 2 classes")
        self.sizes = [int(s) for s in sizes]
        self.n_classes = int(n_classes)
        self.hidden = nn.ModuleList(
            nn.Linear(self.sizes[k - 1], self.sizes[k], dtype=dtype, device=device)
            for k in range(1, len(sizes))
        )
        self.output = nn.Linear(self.sizes[-1], n_classes, dtype=dtype, device=device)

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

    def config(self) -> dict[str, object]:
        return {"kind": "classifier", "sizes": self.sizes, "n_classes": self.n_classes}
