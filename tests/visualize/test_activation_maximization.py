"""Activation maximization against closed forms, brute force and autograd, on tiny models."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.models.stack import LayerStack
from unitlens.visualize.activation_maximization import (
    DEFAULT_GTOL,
    AMResult,
    best_restart,
    maximize_activation,
)

RHO = 3.0


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see tests/conftest.py


def random_stack(kind: str, sizes: list[int], seed: int = 0, std: float = 0.3) -> LayerStack:
    """A float64 DBN or SDAE with weights N(0, std²) and biases N(0, 0.5²)."""
    g = torch.Generator().manual_seed(seed)
    model: LayerStack
    if kind == "dbn":
        model = DBN.build(sizes, generator=g, dtype=torch.float64)
    else:
        model = SDAE.build(sizes, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for k in range(1, model.n_layers + 1):
            model.layer(k).weight.normal_(0.0, std, generator=g)
            model.layer(k).hidden_bias.normal_(0.0, 0.5, generator=g)
    return model


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------- reference optima


@pytest.mark.parametrize("kind", ["dbn", "sdae"])
def test_layer1_matches_closed_form(kind: str) -> None:
    model = random_stack(kind, [30, 12, 8])
    result = maximize_activation(model, 1, norm=RHO, generator=gen())
    w, b = model.layer(1).weight.detach(), model.layer(1).hidden_bias.detach()
    optimum = RHO * w / w.norm(dim=1, keepdim=True)  # x* = rho w / ||w||
    assert result.x.shape == (12, 9, 30)
    assert torch.all(F.cosine_similarity(result.x, optimum[:, None, :], dim=-1) > 0.999)
    expected = RHO * w.norm(dim=1) + b
    # Stopped at stationarity sin(angle to w) <= gtol, so rho ||w|| cos(angle) is short of its maximum by at
    # most 1 - sqrt(1 - gtol^2) of it.
    shortfall = 1 - math.sqrt(1 - DEFAULT_GTOL**2)
    assert torch.all(result.activation <= expected[:, None] + 1e-9)
    assert torch.all(
        result.activation - b[:, None] >= (RHO * w.norm(dim=1))[:, None] * (1 - shortfall) - 1e-9
    )
    assert result.converged.all()


def test_linear_module_optimum_is_normalised_weight() -> None:
    torch.manual_seed(0)  # nn.Linear's own initialisation only
    linear = nn.Linear(10, 4)
    result = maximize_activation(linear, linear, norm=RHO, input_shape=(10,), generator=gen())
    w, b = linear.weight.detach(), linear.bias.detach()
    assert torch.all(F.cosine_similarity(result.x, w[:, None, :], dim=-1) > 0.999)
    torch.testing.assert_close(
        result.activation, (RHO * w.norm(dim=1) + b)[:, None].expand(4, 9), rtol=1e-4, atol=1e-5
    )


def test_layer2_unit_driven_by_one_layer1_unit() -> None:
    # Layer-2 unit 0 listens with weight 8 to layer-1 unit 3 and with negligible weights to the others, so
    # it is maximal where layer-1 unit 3 is: at x* = rho w_3 / ||w_3|| (sigmoid is monotone).
    model = random_stack("dbn", [20, 6, 2], seed=3)
    with torch.no_grad():
        w1 = model.layer(1).weight
        w1[3] *= 1.0 / (RHO * w1[3].norm())  # w_3 . x* = 1: the sigmoid is far from saturation
        model.layer(2).weight[0].normal_(0.0, 1e-4, generator=gen(9))
        model.layer(2).weight[0, 3] = 8.0
    result = maximize_activation(model, 2, [0], norm=RHO, generator=gen(), gtol=1e-9)
    target = model.layer(1).weight.detach()[3]
    assert torch.all(F.cosine_similarity(result.x[0], target[None], dim=-1) > 0.999)


def test_two_dimensional_optimum_matches_brute_force_scan() -> None:
    # A layer-2 unit on a 2-D input: two layer-1 bumps on the circle ||x|| = rho, at angles -0.5 (weight 3,
    # the global maximum) and 2.0 (weight 2, a local one). Starts in [0, 1]^2 fall into both basins.
    model = random_stack("dbn", [2, 2, 1], seed=0)
    directions = torch.tensor([[math.cos(-0.5), math.sin(-0.5)], [math.cos(2.0), math.sin(2.0)]])
    with torch.no_grad():
        model.layer(1).weight.copy_(2.0 * directions)
        model.layer(1).hidden_bias.fill_(-4.0)
        model.layer(2).weight.copy_(torch.tensor([[3.0, 2.0]]))
    angles = torch.linspace(0, 2 * math.pi, 400_001, dtype=torch.float64)
    circle = RHO * torch.stack([angles.cos(), angles.sin()], dim=1)
    scan = model.preactivation(circle, 2)[:, 0].detach()
    peaks = (scan > scan.roll(1)) & (scan > scan.roll(-1))
    assert int(peaks.sum()) == 2
    result = maximize_activation(model, 2, norm=RHO, restarts=16, generator=gen(), gtol=1e-12)
    assert result.activation[0, result.best[0]].item() == pytest.approx(scan.max().item(), rel=1e-8)
    assert F.cosine_similarity(result.best_x()[0], circle[scan.argmax()], dim=0) > 0.99999
    # Some restarts ended on the lower peak, exactly: the best one was picked.
    lower = scan[peaks].min().item()
    assert result.activation.min().item() == pytest.approx(lower, rel=1e-8)


def test_hand_backpropagation_matches_autograd_on_same_network() -> None:
    model = random_stack("dbn", [16, 10, 8, 6], seed=5)
    layers: list[nn.Module] = []
    for k in range(1, 4):
        linear = nn.Linear(model.layer_sizes[k - 1], model.layer_sizes[k], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(model.layer(k).weight)
            linear.bias.copy_(model.layer(k).hidden_bias)
        layers += [linear, nn.Sigmoid()]
    net = nn.Sequential(*layers[:-1])  # pre-sigmoid output of layer 3 is module "4"
    by_hand = maximize_activation(model, 3, [0, 2, 5], norm=RHO, generator=gen(4))
    by_autograd = maximize_activation(net, "4", [0, 2, 5], norm=RHO, input_shape=(16,), generator=gen(4))
    assert by_hand.learning_rate == pytest.approx(by_autograd.learning_rate, rel=1e-12)
    torch.testing.assert_close(by_hand.x, by_autograd.x)
    torch.testing.assert_close(by_hand.activation, by_autograd.activation)
    assert torch.equal(by_hand.steps, by_autograd.steps)


# ------------------------------------------------------------------------------------- batching, seeds


def test_batch_equals_one_unit_at_a_time_and_chunks() -> None:
    model = random_stack("sdae", [24, 12, 10], seed=2)
    units = [0, 3, 4, 9]
    settings = {"norm": RHO, "restarts": 3, "learning_rate": 0.5}
    batch = maximize_activation(model, 2, units, generator=gen(11), **settings)  # type: ignore[arg-type]
    for i, unit in enumerate(units):
        alone = maximize_activation(model, 2, [unit], generator=gen(11), **settings)  # type: ignore[arg-type]
        torch.testing.assert_close(alone.x[0], batch.x[i])
        torch.testing.assert_close(alone.activation[0], batch.activation[i])
        assert torch.equal(alone.steps[0], batch.steps[i])
    for chunk in (1, 5, 100):  # 5 splits a unit's restarts across two batches
        chunked = maximize_activation(model, 2, units, generator=gen(11), chunk_size=chunk, **settings)  # type: ignore[arg-type]
        torch.testing.assert_close(chunked.x, batch.x)
        torch.testing.assert_close(chunked.history, batch.history)
        assert torch.equal(chunked.steps, batch.steps)
        assert torch.equal(chunked.converged, batch.converged)


def _user_mlp() -> nn.Module:
    torch.manual_seed(0)  # the module's own initialisation; float32, as a user's model would be
    return nn.Sequential(nn.Linear(64, 50), nn.Sigmoid(), nn.Linear(50, 10))


# float32 matrix products over 1, 7 or 450 rows round differently; results must agree up to that.
X_TOLERANCE = 1e-4  # of the norm, on every pixel of every restart
ACTIVATION_RTOL = 1e-5


def _assert_same_optima(a: AMResult, b: AMResult) -> None:
    assert torch.equal(a.units, b.units)
    assert (a.x - b.x).abs().max().item() <= X_TOLERANCE * a.norm
    torch.testing.assert_close(a.activation, b.activation, rtol=ACTIVATION_RTOL, atol=1e-6)
    assert torch.equal(a.best, b.best)
    assert torch.equal(a.converged, b.converged)
    assert a.learning_rate == b.learning_rate


@pytest.mark.parametrize("chunk", [1, 7, None])
def test_user_mlp_results_do_not_depend_on_chunk_size(chunk: int | None) -> None:
    net = _user_mlp()
    kwargs = {"norm": 5.0, "input_shape": (64,)}
    whole = maximize_activation(net, "0", generator=gen(3), chunk_size=450, **kwargs)  # type: ignore[arg-type]
    chunked = maximize_activation(net, "0", generator=gen(3), chunk_size=chunk, **kwargs)  # type: ignore[arg-type]
    _assert_same_optima(chunked, whole)


def test_subset_of_units_reproduces_the_full_layer_run() -> None:
    net = _user_mlp()
    kwargs = {"norm": 5.0, "input_shape": (64,)}
    full = maximize_activation(net, "0", generator=gen(5), **kwargs)  # type: ignore[arg-type]
    units = [40, 3, 17]
    subset = maximize_activation(net, "0", units, generator=gen(5), chunk_size=4, **kwargs)  # type: ignore[arg-type]
    picked = AMResult(
        **{
            **{f: getattr(full, f) for f in AMResult.__dataclass_fields__},
            "units": full.units[units],
            "x": full.x[units],
            "activation": full.activation[units],
            "best": full.best[units],
            "converged": full.converged[units],
        }
    )
    _assert_same_optima(subset, picked)
    # The step size comes from the layer's reference units, not from the request.
    stack = random_stack("dbn", [30, 80, 60], seed=12)
    assert (
        maximize_activation(stack, 2, [50], norm=RHO, generator=gen()).learning_rate
        == maximize_activation(stack, 2, norm=RHO, generator=gen()).learning_rate
    )


@pytest.mark.parametrize("model_kind", ["stack", "module"])
def test_reference_gradient_norm_is_the_same_read_from_the_run_or_computed_apart(model_kind: str) -> None:
    # With learning_rate given, a run that holds every reference unit reads their start gradients from
    # its own starts; a run that does not evaluates them apart. Both give the same figure.
    if model_kind == "stack":
        model: nn.Module = random_stack("sdae", [30, 40, 20], seed=4)
        kwargs: dict[str, object] = {"norm": RHO, "learning_rate": 0.3, "lr_selection_units": 6}
        layer: object = 2
    else:
        model = _user_mlp()
        kwargs = {"norm": 5.0, "learning_rate": 0.3, "input_shape": (64,), "lr_selection_units": 6}
        layer = "0"
    holding = maximize_activation(model, layer, list(range(8)), generator=gen(6), **kwargs)  # type: ignore[arg-type]
    apart = maximize_activation(model, layer, [7, 12], generator=gen(6), **kwargs)  # type: ignore[arg-type]
    reference = holding.start_gradient_norm[:6].flatten().median()
    assert holding.reference_gradient_norm == pytest.approx(float(reference), rel=1e-6)
    assert apart.reference_gradient_norm == pytest.approx(holding.reference_gradient_norm, rel=1e-5)


def test_without_gtol_inputs_stop_after_rejected_steps_at_their_maximum() -> None:
    # Layer 1's optimum is exact (rho w / ||w||): once there, no step raises the activation, every step is
    # rejected, and the input stops, converged, long before the cap.
    stack = random_stack("dbn", [30, 12], seed=2)
    result = maximize_activation(stack, 1, norm=RHO, gtol=None, max_steps=5000, generator=gen(1))
    assert bool(result.converged.all())
    assert int(result.steps.max()) < 5000
    assert int(result.history.shape[0]) < 5001


def test_best_restart_ignores_rounding_level_differences() -> None:
    activation = torch.tensor([[2.0, 2.0 + 1e-6, 1.0], [1.0, 3.0, 3.0 - 1e-7], [-5.0, -5.0 + 1e-7, -4.0]])
    assert best_restart(activation).tolist() == [0, 1, 2]


def test_same_seed_same_result_and_restarts_differ() -> None:
    model = random_stack("dbn", [20, 8, 5], seed=1)
    first = maximize_activation(model, 2, norm=RHO, generator=gen(3))
    again = maximize_activation(model, 2, norm=RHO, generator=gen(3))
    other = maximize_activation(model, 2, norm=RHO, generator=gen(4))
    assert torch.equal(first.x, again.x) and first.learning_rate == again.learning_rate
    assert not torch.equal(first.history[0], other.history[0])
    # Each restart of a unit starts elsewhere.
    assert (first.history[0, :, 1:] != first.history[0, :, :1]).all()


# ------------------------------------------------------------------------------ stop rule, history, norm


def _tangential_ratio(model: LayerStack, layer: int, result: AMResult) -> Tensor:
    """(U, R) ||g_t|| / ||g|| at every x*, recomputed with autograd: the projected-gradient criterion."""
    u, r = result.activation.shape
    x = result.x.reshape(u * r, -1).clone().requires_grad_(True)
    owners = result.units.repeat_interleave(r)
    act = model.preactivation(x, layer)[torch.arange(x.shape[0]), owners]
    (g,) = torch.autograd.grad(act.sum(), x)
    radial = (g * x).sum(1, keepdim=True) / (x * x).sum(1, keepdim=True)
    return ((g - radial * x).norm(dim=1) / g.norm(dim=1)).detach().view(u, r)


def test_stop_rule_is_the_projected_gradient() -> None:
    model = random_stack("dbn", [20, 10, 6], seed=4)
    gtol = 1e-3
    # lr 30 overshoots: steps that would lower the activation are rejected and halve the step instead.
    for learning_rate in (1.0, 30.0):
        result = maximize_activation(
            model, 2, norm=RHO, gtol=gtol, learning_rate=learning_rate, generator=gen()
        )
        hist = result.history
        assert hist.shape[1:] == (6, 9)
        assert torch.equal(hist[-1], result.activation)
        assert torch.all(hist[1:] >= hist[:-1])  # a rejected step keeps the activation
        assert result.converged.all()
        ratio = _tangential_ratio(model, 2, result)
        assert torch.all(ratio <= gtol * 1.001)
        torch.testing.assert_close(result.stationarity, ratio)
        if learning_rate == 30.0:  # some steps were rejected: fewer accepted steps than tries
            assert bool((result.steps < hist.shape[0] - 1).any())
        # x* is the input of the last step kept: its activation is the one reported.
        pre = model.preactivation(result.x.reshape(-1, 20), 2).detach().view(6, 9, 6)
        torch.testing.assert_close(pre.diagonal(dim1=0, dim2=2).T, result.activation)


def test_looser_gtol_stops_earlier_and_further_from_the_optimum() -> None:
    model = random_stack("dbn", [20, 10, 6], seed=4)
    loose = maximize_activation(model, 2, norm=RHO, gtol=0.1, learning_rate=0.05, generator=gen())
    tight = maximize_activation(model, 2, norm=RHO, gtol=1e-6, learning_rate=0.05, generator=gen())
    assert torch.all(loose.steps <= tight.steps) and bool((loose.steps < tight.steps).any())
    assert torch.all(_tangential_ratio(model, 2, loose)[loose.converged] <= 0.1 * 1.001)
    assert torch.all(tight.activation >= loose.activation - 1e-12)


def test_step_cap_and_unstopped_runs() -> None:
    model = random_stack("dbn", [20, 10, 6], seed=4)
    capped = maximize_activation(
        model, 2, norm=RHO, max_steps=2, gtol=1e-12, learning_rate=0.05, generator=gen()
    )
    assert capped.history.shape == (3, 6, 9)
    assert not capped.converged.any()
    assert torch.equal(capped.steps, torch.full((6, 9), 2))
    free = maximize_activation(
        model, 2, norm=RHO, max_steps=7, gtol=None, learning_rate=50.0, generator=gen()
    )
    # Without gtol only the cap (7 tries, some rejected at this overshooting rate) or 10 rejections stop.
    assert torch.all(free.steps <= 7) and not free.converged.any()
    assert free.history.shape == (8, 6, 9)


def test_history_is_monotone_for_a_linear_objective() -> None:
    model = random_stack("dbn", [30, 7], seed=6)
    result = maximize_activation(model, 1, norm=RHO, learning_rate=0.05, gtol=1e-10, generator=gen())
    assert torch.all(result.history[1:] >= result.history[:-1])
    assert result.history[0].lt(result.history[-1]).all()


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_norm_is_preserved_for_every_restart(layer: int) -> None:
    model = random_stack("sdae", [25, 9, 8, 7], seed=7)
    result = maximize_activation(model, layer, norm=RHO, generator=gen())
    torch.testing.assert_close(
        result.x.norm(dim=-1), torch.full(result.x.shape[:2], RHO, dtype=torch.float64)
    )


def test_box_is_respected_and_matches_its_closed_forms() -> None:
    # With x in [0, 1] and ||x|| <= rho small enough that no pixel reaches 1, the best input for a linear
    # unit is rho w+ / ||w+|| (w+: the positive part of its filter).
    model = random_stack("dbn", [20, 5], seed=8)
    w = model.layer(1).weight.detach()
    rho = 0.5
    result = maximize_activation(model, 1, norm=rho, box=(0.0, 1.0), generator=gen(), gtol=1e-10)
    assert result.x.min() >= 0.0 and result.x.max() <= 1.0
    assert torch.all(result.x.norm(dim=-1) <= rho + 1e-9)
    assert torch.all(F.cosine_similarity(result.x, w.clamp_min(0.0)[:, None, :], dim=-1) > 0.999)
    unboxed = maximize_activation(model, 1, norm=rho, generator=gen(), gtol=1e-10)
    assert unboxed.x.min() < 0.0
    # With a norm too large to bind, the optimum is the box's corner 1[w > 0], shorter than rho.
    corner = maximize_activation(model, 1, norm=100.0, box=(0.0, 1.0), generator=gen(), gtol=1e-10)
    expected = (w > 0).to(w.dtype)[:, None, :].expand_as(corner.x)
    torch.testing.assert_close(corner.x, expected)


def test_automatic_step_size_is_the_best_candidate() -> None:
    model = random_stack("dbn", [20, 10, 6], seed=9)
    candidates = (0.01, 0.1, 1.0)
    auto = maximize_activation(model, 2, norm=RHO, lr_candidates=candidates, max_steps=30, generator=gen())
    # The median gradient norm at the starts (a run of 0 steps returns them), recomputed with autograd.
    at_start = maximize_activation(model, 2, norm=RHO, max_steps=0, learning_rate=1.0, generator=gen())
    assert at_start.history.shape == (1, 6, 9) and not at_start.converged.any()
    torch.testing.assert_close(at_start.history[0], auto.history[0])
    x = at_start.x.reshape(-1, 20).clone().requires_grad_(True)
    owners = at_start.units.repeat_interleave(9)
    act = model.preactivation(x, 2)[torch.arange(x.shape[0]), owners]
    (grad,) = torch.autograd.grad(act.sum(), x)
    median = grad.norm(dim=1).median().item()
    rates = [c * RHO / median for c in candidates]
    means = []
    for rate in rates:
        fixed = maximize_activation(model, 2, norm=RHO, learning_rate=rate, max_steps=30, generator=gen())
        means.append(fixed.activation.mean().item())
        if rate == pytest.approx(auto.learning_rate, rel=1e-9):
            assert torch.equal(fixed.x, auto.x) and torch.equal(fixed.steps, auto.steps)
    assert auto.learning_rate == pytest.approx(rates[max(range(3), key=means.__getitem__)], rel=1e-9)
    again = maximize_activation(model, 2, norm=RHO, lr_candidates=candidates, max_steps=30, generator=gen())
    assert again.learning_rate == auto.learning_rate and torch.equal(again.x, auto.x)


def test_best_restart_and_result_fields() -> None:
    model = random_stack("dbn", [12, 6, 4], seed=10)
    result = maximize_activation(model, 2, [3, 1], norm=RHO, restarts=4, input_shape=(3, 4), generator=gen())
    assert isinstance(result, AMResult)
    assert result.units.tolist() == [3, 1] and result.units.dtype == torch.int64
    assert result.x.shape == (2, 4, 3, 4) and result.best_x().shape == (2, 3, 4)
    assert torch.equal(result.best, best_restart(result.activation))
    assert torch.equal(result.best_x()[1], result.x[1, result.best[1]])
    assert result.steps.dtype == torch.int64 and result.converged.dtype == torch.bool
    pre = model.preactivation(result.x.reshape(-1, 12), 2).detach().view(2, 4, 4)
    torch.testing.assert_close(result.activation, pre[:, :, [3, 1]].diagonal(dim1=0, dim2=2).T)


# ----------------------------------------------------------------------------------- generic modules


class Recorder(nn.Module):
    """Identity that remembers the training flags it ran under and how often it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.modes.append(self.training)
        return x


@pytest.mark.parametrize("reduce", ["center", "mean"])
def test_conv_channel_optimum(reduce: str) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, kernel_size=3)
    net = nn.Sequential(OrderedDict(conv=conv, act=nn.Sigmoid()))
    result = maximize_activation(
        net, "conv", norm=RHO, input_shape=(1, 5, 5), channel_reduce=reduce, generator=gen(), gtol=1e-9
    )
    assert result.x.shape == (2, 9, 1, 5, 5)
    for channel in range(2):
        # The channel's activation is linear in x: its optimum is rho times its normalised gradient.
        x = torch.zeros(1, 1, 5, 5, requires_grad=True)
        out = conv(x)[0, channel]
        value = out[1, 1] if reduce == "center" else out.mean()
        (direction,) = torch.autograd.grad(value, x)
        if reduce == "center":
            expected = torch.zeros(5, 5)
            expected[1:4, 1:4] = conv.weight[channel, 0].detach()
            torch.testing.assert_close(direction[0, 0], expected)
        sims = F.cosine_similarity(result.x[channel].reshape(9, -1), direction.reshape(1, -1), dim=-1)
        assert torch.all(sims > 0.999)


def test_dotted_names_hook_removal_and_training_mode() -> None:
    torch.manual_seed(0)
    recorder, above = Recorder(), Recorder()
    lin = nn.Linear(8, 5)
    encoder = nn.Sequential(OrderedDict(probe=recorder, lin=lin))
    net = nn.Sequential(OrderedDict(enc=encoder, act=nn.Sigmoid(), above=above, head=nn.Linear(5, 2)))
    net.train()
    result = maximize_activation(net, "enc.lin", [4, 0], norm=RHO, input_shape=(8,), generator=gen())
    w = lin.weight.detach()[[4, 0]]
    assert torch.all(F.cosine_similarity(result.x, w[:, None, :], dim=-1) > 0.999)
    assert recorder.modes and not any(recorder.modes)  # evaluation mode during the run
    assert above.modes == []  # the forward pass ends at the target layer
    assert all(m.training for m in net.modules())  # and the modes are restored
    assert all(not m._forward_hooks for m in net.modules())
    # The module object works like its name.
    by_object = maximize_activation(net, lin, [4, 0], norm=RHO, input_shape=(8,), generator=gen())
    assert torch.equal(by_object.x, result.x)


def test_wrong_name_lists_valid_names_and_cleans_up() -> None:
    net = nn.Sequential(OrderedDict(enc=nn.Sequential(OrderedDict(lin=nn.Linear(4, 3))), act=nn.Sigmoid()))
    net.train()
    with pytest.raises(UnitlensError, match=r"enc\.lin"):
        maximize_activation(net, "enc.linear", norm=RHO, input_shape=(4,), generator=gen())
    with pytest.raises(UnitlensError, match="out of range"):
        maximize_activation(net, "enc.lin", [3], norm=RHO, input_shape=(4,), generator=gen())
    assert all(m.training for m in net.modules())
    assert all(not m._forward_hooks for m in net.modules())
    with pytest.raises(UnitlensError, match="not a submodule"):
        maximize_activation(net, nn.Linear(4, 3), norm=RHO, input_shape=(4,), generator=gen())


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("layer", "kwargs", "message"),
    [
        (0, {}, "layer must be an int"),
        (3, {}, "layer must be an int"),
        ("1", {}, "layer must be an int"),
        (True, {}, "layer must be an int"),
        (1, {"units": [8]}, "out of range"),
        (1, {"units": [-1]}, "out of range"),
        (1, {"units": []}, "non-empty"),
        (1, {"units": [0.5]}, "integer"),
        (1, {"units": ["a"]}, "integer"),
        (1, {"norm": 0.0}, "norm must be > 0"),
        (1, {"norm": -2.0}, "norm must be > 0"),
        (1, {"norm": math.nan}, "norm must be a finite"),
        (1, {"restarts": 0}, "restarts"),
        (1, {"learning_rate": -1.0}, "learning_rate"),
        (1, {"lr_candidates": ()}, "lr_candidates"),
        (1, {"max_steps": -1}, "max_steps"),
        (1, {"gtol": -1e-3}, "gtol"),
        (1, {"gtol": 1.0}, "gtol"),
        (1, {"chunk_size": 0}, "chunk_size"),
        (1, {"box": (0.2, 1.0)}, "box"),
        (1, {"channel_reduce": "max"}, "channel_reduce"),
        (1, {"input_shape": (3, 3)}, "input_shape"),
        (1, {"generator": 3}, "generator"),
    ],
)
def test_errors(layer: object, kwargs: dict[str, object], message: str) -> None:
    model = random_stack("dbn", [10, 8, 4])
    arguments: dict[str, object] = {"norm": RHO, "generator": gen()}
    arguments.update(kwargs)
    units = arguments.pop("units", None)
    with pytest.raises(UnitlensError, match=message):
        maximize_activation(model, layer, units, **arguments)  # type: ignore[arg-type]


def test_generic_module_errors() -> None:
    net = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(UnitlensError, match="input_shape is required"):
        maximize_activation(net, "0", norm=RHO, generator=gen())
    with pytest.raises(UnitlensError, match="valid names"):
        maximize_activation(net, 0, norm=RHO, input_shape=(4,), generator=gen())


def test_step_size_chosen_on_the_first_units_then_applied_to_all() -> None:
    g = torch.Generator().manual_seed(3)
    dbn = DBN.build([16, 10, 8], generator=g)
    with torch.no_grad():
        for p in dbn.parameters():
            p.normal_(0, 0.7, generator=g)
    kwargs = {"restarts": 3, "norm": 3.0, "max_steps": 80}
    subset = maximize_activation(dbn, 2, range(3), generator=torch.Generator().manual_seed(0), **kwargs)
    full = maximize_activation(
        dbn, 2, range(8), lr_selection_units=3, generator=torch.Generator().manual_seed(0), **kwargs
    )
    fixed = maximize_activation(
        dbn,
        2,
        range(8),
        learning_rate=full.learning_rate,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )
    # The median gradient norm is taken over every requested unit, so compare the chosen constant c.
    assert torch.allclose(full.x, fixed.x) and torch.equal(full.steps, fixed.steps)
    assert full.x.shape == (8, 3, 16) and subset.x.shape == (3, 3, 16)
    with pytest.raises(UnitlensError, match="lr_selection_units"):
        maximize_activation(dbn, 2, range(3), lr_selection_units=0, generator=g, **kwargs)
