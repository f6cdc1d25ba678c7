"""Objectives: values against hand computations, arithmetic, axes, reductions, capture and its errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unitlens.errors import UnitlensError
from unitlens.visualize.objectives import (
    L1,
    L2,
    Capture,
    ClassLogit,
    Context,
    Direction,
    Diversity,
    TotalVariation,
    Unit,
)


def context(outputs: dict[str, torch.Tensor], image: torch.Tensor, owners: list[int], groups=None) -> Context:
    owner = torch.tensor(owners)
    return Context(outputs, image, owner, owner if groups is None else torch.tensor(groups))


def test_unit_picks_each_rows_owner_or_a_fixed_unit() -> None:
    out = torch.arange(12.0).view(3, 4)
    ctx = context({"fc": out}, torch.zeros(3, 2), [2, 0, 3])
    assert Unit("fc").values(ctx).tolist() == [2.0, 4.0, 11.0]
    assert Unit("fc", 1).values(ctx).tolist() == [1.0, 5.0, 9.0]
    assert Unit("fc", -1).values(ctx).tolist() == [3.0, 7.0, 11.0]


def test_channel_centre_mean_and_position() -> None:
    out = torch.randn(2, 3, 5, 4)
    ctx = context({"conv": out}, torch.zeros(2, 1), [1, 2])
    assert torch.equal(Unit("conv").values(ctx), torch.stack([out[0, 1, 2, 2], out[1, 2, 2, 2]]))
    mean = Unit("conv", reduce="mean").values(ctx)
    assert torch.allclose(mean, torch.stack([out[0, 1].mean(), out[1, 2].mean()]))
    at = Unit("conv", reduce=(4, 0)).values(ctx)
    assert torch.equal(at, torch.stack([out[0, 1, 4, 0], out[1, 2, 4, 0]]))


def test_units_on_the_last_axis_of_a_token_sequence() -> None:
    out = torch.randn(2, 7, 5)  # (batch, tokens, D)
    ctx = context({"block": out}, torch.zeros(2, 1), [4, 0])
    assert torch.equal(Unit("block", axis=-1).values(ctx), torch.stack([out[0, 3, 4], out[1, 3, 0]]))
    means = Unit("block", axis=-1, reduce="mean").values(ctx)
    assert torch.allclose(means, torch.stack([out[0, :, 4].mean(), out[1, :, 0].mean()]))
    first = Unit("block", axis=-1, reduce=(0,)).values(ctx)
    assert torch.equal(first, torch.stack([out[0, 0, 4], out[1, 0, 0]]))
    assert Unit("block", axis=-1).n_units({"block": out}) == 5
    assert Unit("block").n_units({"block": out}) == 7


def test_arithmetic_equals_the_hand_computed_sum() -> None:
    out = torch.randn(3, 4)
    image = torch.randn(3, 2, 3, 3)
    ctx = context({"fc": out}, image, [0, 1, 2])
    objective = Unit("fc") - 0.5 * Unit("fc", 3) + 2 * (-L1()) / 4 - 1e-2 * TotalVariation()
    tv = image.diff(dim=2).abs().flatten(1).sum(1) + image.diff(dim=3).abs().flatten(1).sum(1)
    by_hand = (
        out[torch.arange(3), [0, 1, 2]] - 0.5 * out[:, 3] - 0.5 * image.abs().flatten(1).sum(1) - 1e-2 * tv
    )
    assert torch.allclose(objective.values(ctx), by_hand, atol=1e-6)
    assert objective.layers() == frozenset({"fc"})
    assert objective.n_units({"fc": out}) == 4


def test_l2_and_minimizing_by_negation() -> None:
    image = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    ctx = context({}, image, [0, 0])
    assert torch.allclose(L2(epsilon=0.0).values(ctx), torch.tensor([5.0, 0.0]))
    assert torch.allclose((-L2(constant=1.0, epsilon=0.0)).values(ctx), -torch.tensor([13.0, 2.0]).sqrt())


def test_direction_shared_per_owner_and_cosine() -> None:
    out = torch.randn(2, 3, 4, 4)
    vector = torch.tensor([1.0, -2.0, 0.5])
    ctx = context({"conv": out}, torch.zeros(2, 1), [1, 0])
    reduced = out.mean(dim=(2, 3))
    assert torch.allclose(Direction("conv", vector).values(ctx), reduced @ vector, atol=1e-6)
    matrix = torch.randn(2, 3)
    per_owner = Direction("conv", matrix).values(ctx)
    assert torch.allclose(per_owner, (reduced * matrix[[1, 0]]).sum(1), atol=1e-6)
    assert Direction("conv", matrix).n_units({"conv": out}) == 2
    cos = Direction("conv", vector, cosine=True).values(ctx)
    assert torch.allclose(cos, torch.nn.functional.cosine_similarity(reduced, vector[None], dim=1), atol=1e-6)
    with pytest.raises(UnitlensError, match="vectors of length 2"):
        Direction("conv", torch.ones(2)).values(ctx)


def test_diversity_compares_only_restarts_of_one_unit() -> None:
    out = torch.randn(4, 2, 3, 3)
    ctx = context({"conv": out}, torch.zeros(4, 1), [0, 0, 1, 1], groups=[0, 0, 1, 1])
    flat = out.reshape(4, 2, 9)
    gram = torch.bmm(flat, flat.transpose(1, 2)).reshape(4, -1)
    cos = torch.nn.functional.cosine_similarity
    expected = -torch.stack(
        [cos(gram[0], gram[1], dim=0), cos(gram[1], gram[0], dim=0), cos(gram[2], gram[3], dim=0)] * 1
        + [cos(gram[3], gram[2], dim=0)]
    )
    assert torch.allclose(Diversity("conv").values(ctx), expected, atol=1e-5)
    alone = context({"conv": out}, torch.zeros(4, 1), [0, 1, 2, 3])
    assert torch.equal(Diversity("conv").values(alone), torch.zeros(4))
    assert (Unit("conv") + Diversity("conv")).couples_restarts()
    assert not (Unit("conv") - L2()).couples_restarts()


def test_class_logit_reads_the_model_output() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    capture = Capture(net, ClassLogit().layers())
    outputs = capture(x)
    ctx = context(outputs, x, [0, 1, 1, 0, 1])
    assert torch.allclose(ClassLogit().values(ctx), net(x)[torch.arange(5), [0, 1, 1, 0, 1]])
    capture.remove()


def test_capture_stops_after_the_last_needed_layer() -> None:
    calls = []

    class Spy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            return x

    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), Spy())
    capture = Capture(net, frozenset({"0", "1"}))
    outputs = capture(torch.randn(2, 3))
    assert set(outputs) == {"0", "1"} and not calls
    capture.remove()
    assert not net[0]._forward_hooks


def test_capture_errors_name_the_layer_and_the_shape() -> None:
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(UnitlensError, match=r"not modules of the model.*valid names"):
        Capture(net, frozenset({"nope"}))
    capture = Capture(net, frozenset({"2"}), input_shape=(3,))
    with pytest.raises(UnitlensError, match=r"shape \(2, 3\).*\['2'\]"):
        capture(torch.randn(2, 3))


def test_invalid_objectives_are_refused() -> None:
    with pytest.raises(UnitlensError, match="reduce"):
        Unit("fc", reduce="max")
    with pytest.raises(UnitlensError, match="axis"):
        Unit("fc", axis=0)
    with pytest.raises(UnitlensError, match="layer"):
        Unit(3)  # type: ignore[arg-type]
    with pytest.raises(UnitlensError, match="finite"):
        Unit("fc") * float("nan")
    out = torch.randn(2, 3, 4)
    with pytest.raises(UnitlensError, match="position"):
        Unit("x", reduce=(9,)).values(context({"x": out}, torch.zeros(2, 1), [0, 0]))
