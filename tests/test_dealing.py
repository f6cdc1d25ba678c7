"""Dealing units out to processes: every unit in exactly one block, in order; histories held."""

from __future__ import annotations

import torch

from unitlens.dealing import _held, deals, my_block
from unitlens.distributed import World


def test_blocks_cover_every_unit_once_in_order() -> None:
    for n_units in (2, 5, 7, 36, 100):
        units = torch.arange(n_units) * 3  # unit ids, not positions
        for size in (2, 3, 4):
            if n_units < size:
                assert not deals(units, World(0, size))
                continue
            assert deals(units, World(0, size))
            blocks = [my_block(units, World(rank, size)) for rank in range(size)]
            assert torch.equal(torch.cat(blocks), units)
            sizes = [b.numel() for b in blocks]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    assert not deals(torch.arange(10), World())  # one process: nothing dealt out


def test_a_shorter_history_holds_its_last_row() -> None:
    history = torch.arange(6.0).reshape(3, 1, 2)  # 2 steps of one unit's two restarts
    held = _held(history, 5)
    assert held.shape == (5, 1, 2)
    assert torch.equal(held[:3], history) and torch.equal(held[3:], history[-1:].expand(2, 1, 2))
    assert _held(history, 3) is history
