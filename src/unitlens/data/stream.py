"""Batch sources: what training reads from, resumable through a state dict."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from unitlens.errors import UnitlensError


@runtime_checkable
class BatchSource(Protocol):
    """An endless supply of (inputs, labels) batches, resumable from ``state_dict()``.

    ``next_batch`` returns ``x`` (batch, d) float32 and ``y`` (batch,) int64 or None. A source restored
    with ``load_state_dict(s)`` continues exactly as the source that produced ``s`` would have.
    """

    batch_size: int

    def next_batch(self) -> tuple[Tensor, Tensor | None]: ...

    def state_dict(self) -> dict[str, Tensor]: ...

    def load_state_dict(self, state: dict[str, Tensor]) -> None: ...


class ShuffledBatches:
    """Epochs over a fixed tensor in a fresh random order each epoch (the last partial batch is dropped).

    Args:
        x: (n, d) inputs.
        y: (n,) labels or None.
        batch_size: rows per batch, at most n.
        generator: the generator that draws every epoch's order; its state is part of ``state_dict``.
    """

    def __init__(self, x: Tensor, y: Tensor | None, batch_size: int, generator: torch.Generator) -> None:
        if not 0 < batch_size <= x.shape[0]:
            raise UnitlensError(
                f"batch_size must be in 1..{x.shape[0]} (the number of rows), got {batch_size}"
            )
        self.x, self.y, self.batch_size, self.generator = x, y, batch_size, generator
        self._order = torch.randperm(x.shape[0], generator=generator)
        self._position = 0
        self.epoch = 0

    def next_batch(self) -> tuple[Tensor, Tensor | None]:
        if self._position + self.batch_size > self.x.shape[0]:
            self._order = torch.randperm(self.x.shape[0], generator=self.generator)
            self._position = 0
            self.epoch += 1
        idx = self._order[self._position : self._position + self.batch_size]
        self._position += self.batch_size
        return self.x[idx], (None if self.y is None else self.y[idx])

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "generator": self.generator.get_state(),
            "order": self._order.clone(),
            "position": torch.tensor(self._position),
            "epoch": torch.tensor(self.epoch),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state["order"].shape != (self.x.shape[0],):
            raise UnitlensError("saved batch order does not match the data set's size")
        self.generator.set_state(state["generator"])
        self._order = state["order"].clone()
        self._position = int(state["position"])
        self.epoch = int(state["epoch"])
