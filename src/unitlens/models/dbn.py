"""Deep Belief Network: RBMs stacked greedily (Hinton, Osindero & Teh 2006)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.rbm import RBM
from unitlens.models.stack import LayerStack, layer_configs


class DBN(LayerStack):
    """A stack of RBMs; the first may have Gaussian visible units, the others are binary-binary.

    The top two layers form an undirected RBM; the layers below are a directed sigmoid belief net
    generating downwards with the lower RBMs' visible conditionals.
    """

    kind = "dbn"

    def __init__(self, layers: Sequence[RBM]) -> None:
        for k, rbm in enumerate(layers[1:], start=2):
            if rbm.visible != "bernoulli":
                raise UnitlensError(f"DBN layer {k} must have bernoulli visible units, got {rbm.visible!r}")
        super().__init__(list(layers))

    @classmethod
    def build(
        cls,
        sizes: Sequence[int],
        visible: str = "bernoulli",
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> DBN:
        """A freshly initialised DBN with units ``sizes`` = [n_inputs, h1, h2, ...]."""
        if len(sizes) < 2:
            raise UnitlensError(
                f"sizes must list the inputs and at least one hidden layer, got {list(sizes)}"
            )
        layers = [
            RBM(
                sizes[k - 1],
                sizes[k],
                visible if k == 1 else "bernoulli",
                generator=generator,
                dtype=dtype,
                device=device,
            )
            for k in range(1, len(sizes))
        ]
        return cls(layers)

    @classmethod
    def from_config(cls, config: dict[str, object]) -> DBN:
        """Rebuild the architecture described by :meth:`config` (weights not included)."""
        layers = layer_configs(config, cls.kind)
        return cls([RBM.from_config(c) for c in layers])

    def rbm(self, layer: int) -> RBM:
        """The RBM of layer ``layer`` (1-based)."""
        module = self.layer(layer)
        assert isinstance(module, RBM)
        return module

    def down_pass(self, h: Tensor, layer: int, generator: torch.Generator) -> Tensor:
        """Directed top-down pass from a state of layer ``layer`` to the input.

        Intermediate layers are sampled; the input is returned as its mean (the paper shows visible means).

        Args:
            h: (batch, units of ``layer``) state of layer ``layer`` (``layer`` >= 1).
        Returns:
            (batch, n_inputs) visible means.
        """
        self._check_layer(layer)
        for k in range(layer, 1, -1):
            h = self.rbm(k).sample_visible(h, generator)
        return self.rbm(1).visible_mean(h)
