"""Deep Belief Network: RBMs stacked greedily (Hinton, Osindero & Teh 2006)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.configs import as_config, check_field_types
from unitlens.models.rbm import RBM, RBMConfig
from unitlens.models.stack import LayerStack, check_stack_layers


@dataclass(frozen=True)
class DBNConfig:
    """A DBN's architecture: its RBMs' configs, bottom first; :meth:`DBN.config` is its JSON-able dict.

    Attributes:
        layers: one :class:`RBMConfig` per layer; sizes chain, one dtype, and every layer above the first
            has bernoulli visible units (they are fed the binary units of the layer below).
        kind: ``"dbn"``, the tag that tells a DBN's dict from an SDAE's (not an argument).
    """

    layers: tuple[RBMConfig, ...]
    kind: str = field(default="dbn", init=False)

    def __post_init__(self) -> None:
        check_field_types(self)
        check_stack_layers(self, self.layers)
        for k, layer in enumerate(self.layers[1:], start=2):
            if layer.visible != "bernoulli":
                raise UnitlensError(f"DBN layer {k} must have bernoulli visible units, got {layer.visible!r}")


class DBN(LayerStack):
    """A stack of RBMs; the first may have Gaussian visible units, the others are binary-binary.

    The top two layers form an undirected RBM; the layers below are a directed sigmoid belief net
    generating downwards with the lower RBMs' visible conditionals.
    """

    kind = "dbn"

    def __init__(self, layers: Sequence[RBM]) -> None:
        if not all(isinstance(rbm, RBM) for rbm in layers):
            raise UnitlensError(f"a DBN is a stack of RBMs, got {[type(m).__name__ for m in layers]}")
        DBNConfig(tuple(rbm.cfg for rbm in layers))  # validates the stack
        super().__init__(list(layers))

    @property
    def cfg(self) -> DBNConfig:
        """The DBN's config: its RBMs' configs (see :class:`DBNConfig`)."""
        return DBNConfig(tuple(self.rbm(k).cfg for k in range(1, self.n_layers + 1)))

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
    def from_config(
        cls,
        config: DBNConfig | dict[str, Any],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> DBN:
        """A freshly initialised DBN with the architecture and dtype of ``config`` (weights not included).

        Args:
            config: a :class:`DBNConfig` or its dict (:meth:`config`).
            generator, device: as for :meth:`build`.
        """
        cfg = as_config(DBNConfig, config, where="DBN config")
        return cls([RBM.from_config(c, generator=generator, device=device) for c in cfg.layers])

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
