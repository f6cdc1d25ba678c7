"""Stacked Denoising Auto-Encoder: DAEs stacked greedily (Vincent et al. 2008, 2010)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from unitlens.errors import UnitlensError
from unitlens.models.configs import as_config, check_field_types
from unitlens.models.dae import DAE, Corruption, DAEConfig
from unitlens.models.stack import LayerStack, check_stack_layers


@dataclass(frozen=True)
class SDAEConfig:
    """An SDAE's architecture: its DAEs' configs, bottom first; :meth:`SDAE.config` is its JSON-able dict.

    Attributes:
        layers: one :class:`DAEConfig` per layer; sizes chain, one dtype, and every layer above the first
            has a sigmoid decoder (its inputs, the codes of the layer below, lie in [0, 1]).
        kind: ``"sdae"``, the tag that tells an SDAE's dict from a DBN's (not an argument).
    """

    layers: tuple[DAEConfig, ...]
    kind: str = field(default="sdae", init=False)

    def __post_init__(self) -> None:
        check_field_types(self)
        check_stack_layers(self, self.layers)
        for k, layer in enumerate(self.layers[1:], start=2):
            if layer.decoder != "sigmoid":
                raise UnitlensError(f"SDAE layer {k} codes lie in [0, 1]: it needs a sigmoid decoder")


class SDAE(LayerStack):
    """A stack of tied-weight DAEs; each is trained on the clean codes of the layer below."""

    kind = "sdae"

    def __init__(self, layers: Sequence[DAE]) -> None:
        if not all(isinstance(dae, DAE) for dae in layers):
            raise UnitlensError(f"an SDAE is a stack of DAEs, got {[type(m).__name__ for m in layers]}")
        SDAEConfig(tuple(dae.cfg for dae in layers))  # validates the stack
        super().__init__(list(layers))

    @property
    def cfg(self) -> SDAEConfig:
        """The SDAE's config: its DAEs' configs (see :class:`SDAEConfig`)."""
        return SDAEConfig(tuple(self.dae(k).cfg for k in range(1, self.n_layers + 1)))

    @classmethod
    def build(
        cls,
        sizes: Sequence[int],
        decoder: str = "sigmoid",
        corruption: Corruption | None = None,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> SDAE:
        """A freshly initialised SDAE with units ``sizes`` = [n_inputs, h1, h2, ...].

        The first layer uses ``decoder`` (``linear`` for real-valued inputs) and ``corruption``; the upper
        layers see codes in [0, 1], so they decode with a sigmoid and corrupt with the same kind and level,
        salt and pepper being 1 and 0.
        """
        if len(sizes) < 2:
            raise UnitlensError(
                f"sizes must list the inputs and at least one hidden layer, got {list(sizes)}"
            )
        first = corruption if corruption is not None else Corruption()
        upper = Corruption(kind=first.kind, level=first.level, salt=1.0, pepper=0.0)
        layers = [
            DAE(
                sizes[k - 1],
                sizes[k],
                decoder if k == 1 else "sigmoid",
                first if k == 1 else upper,
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
        config: SDAEConfig | dict[str, Any],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> SDAE:
        """A freshly initialised SDAE with the architecture and dtype of ``config`` (weights not included).

        Args:
            config: an :class:`SDAEConfig` or its dict (:meth:`config`).
            generator, device: as for :meth:`build`.
        """
        cfg = as_config(SDAEConfig, config, where="SDAE config")
        return cls([DAE.from_config(c, generator=generator, device=device) for c in cfg.layers])

    def dae(self, layer: int) -> DAE:
        """The DAE of layer ``layer`` (1-based)."""
        module = self.layer(layer)
        assert isinstance(module, DAE)
        return module
