"""Dealing units out to processes: every unit in exactly one block, in order; histories held."""

from __future__ import annotations

import torch

from unitlens.dealing import UnitDealer, deals, my_block
from unitlens.distributed import World
from unitlens.visualize.activation_maximization import _held


def test_blocks_cover_every_unit_once_in_order() -> None:
    for n_units in (2, 5, 7, 9, 36, 100):
        units = torch.arange(n_units) * 3  # unit ids, not positions
        for size in (2, 3, 4):
            if n_units < size:
                assert not deals(n_units, World(0, size))
                assert UnitDealer(World(0, size)).block(units.tolist()) == units.tolist()  # all, everywhere
                continue
            assert deals(n_units, World(0, size))
            blocks = [my_block(units, World(rank, size)) for rank in range(size)]
            assert torch.equal(torch.cat(blocks), units)
            sizes = [b.numel() for b in blocks]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
            lists = [UnitDealer(World(rank, size)).block(units.tolist()) for rank in range(size)]
            assert [b.tolist() for b in blocks] == lists
    assert not deals(10, World())  # one process: nothing dealt out


def test_a_shorter_history_holds_its_last_row() -> None:
    history = torch.arange(6.0).reshape(3, 2)  # 2 steps of two rows
    held = _held(history, 5)
    assert held.shape == (5, 2)
    assert torch.equal(held[:3], history) and torch.equal(held[3:], history[-1:].expand(2, 2))
    assert _held(history, 3) is history


def test_a_dealer_is_refused_where_it_is_not_used() -> None:
    import pytest
    from torch import nn

    from unitlens.errors import UnitlensError
    from unitlens.visualize.activation_maximization import maximize_activation

    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1))
    with pytest.raises(UnitlensError, match="paper's projected ascent only"):
        maximize_activation(
            model,
            "0",
            [0, 1],
            generator=torch.Generator().manual_seed(0),
            input_shape=(1, 8, 8),
            recipe="lucid",
            dealer=UnitDealer(World(0, 2)),
        )
