"""Stacked Denoising Auto-Encoder: DAEs stacked greedily (Vincent et al. 2008, 2010)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unitlens.errors import UnitlensError
from unitlens.models.dae import DAE, Corruption
from unitlens.models.stack import LayerStack, layer_configs


class SDAE(LayerStack):
    """A stack of tied-weight DAEs; each is trained on the clean codes of the layer below."""

    kind = "sdae"

    def __init__(self, layers: Sequence[DAE]) -> None:
        for k, dae in enumerate(layers[1:], start=2):
            if dae.decoder != "sigmoid":
                raise UnitlensError(f"SDAE layer {k} codes lie in [0, 1]: it needs a sigmoid decoder")
        super().__init__(list(layers))

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
    def from_config(cls, config: dict[str, object]) -> SDAE:
        """Rebuild the architecture described by :meth:`config` (weights not included)."""
        return cls([DAE.from_config(c) for c in layer_configs(config, cls.kind)])

    def dae(self, layer: int) -> DAE:
        """The DAE of layer ``layer`` (1-based)."""
        module = self.layer(layer)
        assert isinstance(module, DAE)
        return module
