"""What a DBN and an SDAE share: a stack of sigmoid layers seen through its deterministic up-pass.

Every visualization needs "the activations of layer j for a batch of inputs". A stack exposes it as
``preactivation(x, layer)``: the pre-sigmoid input of layer ``layer`` (1-based, like the paper), with the
layers below computed deterministically (mean-field sigmoids).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from unitlens.errors import UnitlensError
from unitlens.models.configs import config_to_dict


class SigmoidLayer(Protocol):
    """One layer of a stack: an RBM or a DAE. ``weight`` is (hidden, visible)."""

    weight: nn.Parameter
    hidden_bias: nn.Parameter
    visible_bias: nn.Parameter

    @property
    def n_visible(self) -> int: ...

    @property
    def n_hidden(self) -> int: ...

    def hidden_preactivation(self, x: Tensor) -> Tensor: ...

    def hidden_probs(self, x: Tensor) -> Tensor: ...

    def config(self) -> dict[str, Any]: ...


class LayerConfig(Protocol):
    """What a stack config needs of its layers' configs (``RBMConfig``, ``DAEConfig``)."""

    @property
    def n_visible(self) -> int: ...

    @property
    def n_hidden(self) -> int: ...

    @property
    def dtype(self) -> str: ...


def check_stack_layers(config: object, layers: Sequence[LayerConfig]) -> None:
    """Refuse the ``layers`` of a stack config (named by ``config``'s class) that are empty, whose sizes do
    not chain (layer k's ``n_visible`` equal to layer k-1's ``n_hidden``) or that mix dtypes (each layer is
    fed the one below's activations, so a stack has a single dtype)."""
    name = type(config).__name__
    if not layers:
        raise UnitlensError(f"{name}.layers must hold at least one layer config")
    for k in range(1, len(layers)):
        below, above = layers[k - 1], layers[k]
        if above.n_visible != below.n_hidden:
            raise UnitlensError(
                f"{name}: layer {k + 1} expects {above.n_visible} inputs but layer {k} has "
                f"{below.n_hidden} units"
            )
        if above.dtype != layers[0].dtype:
            raise UnitlensError(
                f"{name}: layer {k + 1} is {above.dtype} but layer 1 is {layers[0].dtype}; "
                "a stack has one dtype"
            )


class LayerStack(nn.Module, abc.ABC):
    """A stack of sigmoid layers, each fed the mean activations of the one below.

    Args:
        layers: the layers, bottom first; layer k's ``n_visible`` must equal layer k-1's ``n_hidden``.
    """

    kind = "stack"

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        if not layers:
            raise UnitlensError("a stack needs at least one layer")
        for k in range(1, len(layers)):
            below, above = layers[k - 1], layers[k]
            if above.n_visible != below.n_hidden:
                raise UnitlensError(
                    f"layer {k + 1} expects {above.n_visible} inputs but layer {k} has {below.n_hidden} units"
                )
        self.layers = nn.ModuleList(layers)

    @property
    def n_layers(self) -> int:
        """Number of hidden layers."""
        return len(self.layers)

    @property
    def n_inputs(self) -> int:
        """Number of input (visible) units."""
        return int(self.layer(1).n_visible)

    @property
    def layer_sizes(self) -> list[int]:
        """Units per layer, input first: [n_visible, n_hidden_1, ..., n_hidden_L]."""
        return [self.n_inputs] + [int(self.layer(k).n_hidden) for k in range(1, self.n_layers + 1)]

    def layer(self, layer: int) -> SigmoidLayer:
        """Layer ``layer`` (1-based, like the paper)."""
        self._check_layer(layer)
        module: SigmoidLayer = self.layers[layer - 1]  # type: ignore[assignment]
        return module

    def weight(self, layer: int) -> Tensor:
        """Layer ``layer``'s weights, (n_hidden, n_visible): row j is unit j's filter."""
        return self.layer(layer).weight

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or not 1 <= layer <= len(self.layers):
            raise UnitlensError(f"layer must be an int in 1..{len(self.layers)} (1-based), got {layer!r}")

    def up_pass(self, x: Tensor, layer: int) -> Tensor:
        """Mean activations of layer ``layer`` for inputs ``x`` (batch, n_inputs); layer 0 returns ``x``.

        Returns:
            (batch, n_units of ``layer``).
        """
        if layer != 0:
            self._check_layer(layer)
        h = x
        for k in range(1, layer + 1):
            h = self.layer(k).hidden_probs(h)
        return h

    def preactivation(self, x: Tensor, layer: int) -> Tensor:
        """Pre-sigmoid activation of every unit of ``layer`` (1-based).

        Args:
            x: (batch, n_inputs) inputs.
        Returns:
            (batch, units of ``layer``).
        """
        self._check_layer(layer)
        return self.layer(layer).hidden_preactivation(self.up_pass(x, layer - 1))

    @property
    @abc.abstractmethod
    def cfg(self) -> Any:
        """The stack's frozen config (``DBNConfig``, ``SDAEConfig``): its kind and its layers' configs."""

    def config(self) -> dict[str, Any]:
        """JSON-able description ``{"kind", "layers": [layer config, ...]}``: :attr:`cfg` as a dict."""
        return config_to_dict(self.cfg)

    @property
    def device(self) -> torch.device:
        return self.layer(1).weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.layer(1).weight.dtype
