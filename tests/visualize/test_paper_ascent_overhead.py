"""The paper ascent's fast paths give what the general paths give: a plain Sequential run child by child,
a unit read by one take from the layer's output, starts drawn in place, the history assembled at the end."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from unitlens.errors import UnitlensError
from unitlens.visualize.activation_maximization import _Starts, maximize_activation
from unitlens.visualize.objectives import Capture, Context, Unit, unit_activations
from unitlens.visualize.seeding import unit_generator

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see tests/conftest.py


def small_cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 25, 3),
    ).eval()


class Wrapped(nn.Module):
    """The same network behind a forward of its own: the hooked forward pass."""

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def general_values(unit: Unit, context: Context) -> Tensor:
    """Unit.values' general path: the reduced activations, then each row's owner."""
    activations = unit_activations(context.outputs[unit.layer], unit.axis, unit.reduce, unit.layer)
    return activations.gather(1, context.owners.view(-1, 1))[:, 0]


# ------------------------------------------------------------------------------------------------ Capture


def test_a_plain_sequential_runs_its_children_up_to_the_last_captured_one() -> None:
    net = small_cnn()
    called: list[str] = []
    for name, child in net.named_children():
        child.register_forward_hook(lambda module, inputs, output, name=name: called.append(name))
    x = torch.randn(5, 1, 5, 5)
    capture = Capture(net, frozenset({"0", "2"}))
    outputs = capture(x)
    assert all(len(child._forward_hooks) == 1 for child in net)  # the test's own hooks, no capture's
    assert called == ["0", "1", "2"]  # the children's own hooks run; nothing after conv "2"
    capture.remove()
    assert torch.equal(outputs["0"], net[0](x))
    assert torch.equal(outputs["2"], net[:3](x))


def test_root_hooks_and_nested_layers_keep_the_hooked_forward_pass() -> None:
    net = small_cnn()
    x = torch.randn(3, 1, 5, 5)
    expected = net[:3](x)
    seen: list[int] = []
    handle = net.register_forward_pre_hook(lambda module, inputs: seen.append(1))
    hooked = Capture(net, frozenset({"2"}))
    assert torch.equal(hooked(x)["2"], expected)
    assert seen == [1]  # the root's own call ran, so its hook did
    hooked.remove()
    handle.remove()
    nested = Capture(Wrapped(net), frozenset({"net.2"}))
    assert torch.equal(nested(x)["net.2"], expected)
    nested.remove()


def test_a_child_that_returns_no_tensor_is_named() -> None:
    class Pair(nn.Module):
        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            return x, x

    capture = Capture(nn.Sequential(nn.Linear(3, 3), Pair()), frozenset({"1"}))
    with pytest.raises(UnitlensError, match="layer '1' returns tuple"):
        capture(torch.randn(2, 3))


# -------------------------------------------------------------------------------------------------- Unit


@pytest.mark.parametrize(
    ("shape", "axis", "reduce"),
    [((7, 6, 5, 5), 1, "center"), ((7, 6, 5, 5), 1, (0, -1)), ((7, 4, 6), -1, (2,)), ((7, 6), 1, "center")],
)
def test_one_take_reads_the_general_paths_values_and_gradient(
    shape: tuple[int, ...], axis: int, reduce: str | tuple[int, ...]
) -> None:
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(shape, generator=generator)
    n_units = shape[axis]
    owners = torch.randint(0, n_units, (shape[0],), generator=generator)
    for layout in (base, base.transpose(-1, -2).contiguous().transpose(-1, -2)):  # contiguous or not
        fast_in = layout.clone().requires_grad_(True)
        slow_in = layout.clone().requires_grad_(True)
        unit = Unit("x", axis=axis, reduce=reduce)
        fast = unit.values(Context({"x": fast_in}, fast_in, owners, owners))
        slow = general_values(unit, Context({"x": slow_in}, slow_in, owners, owners))
        assert torch.equal(fast, slow)
        fast.sum().backward()
        slow.sum().backward()
        assert fast_in.grad is not None and slow_in.grad is not None
        assert torch.equal(fast_in.grad, slow_in.grad)


def test_the_kept_index_follows_the_owners() -> None:
    out = torch.randn(4, 3, 5, 5)
    unit = Unit("x")
    owners = torch.tensor([0, 1, 2, 0])
    first = unit.values(Context({"x": out}, out, owners, owners))
    assert torch.equal(first, out[torch.arange(4), owners, 2, 2])
    owners[0] = 2  # modified in place: the index is made again
    assert torch.equal(
        unit.values(Context({"x": out}, out, owners, owners)), out[torch.arange(4), owners, 2, 2]
    )
    other = torch.tensor([1, 1, 1, 1])
    assert torch.equal(unit.values(Context({"x": out}, out, other, other)), out[:, 1, 2, 2])
    wider = torch.randn(4, 3, 7, 7)  # another shape: another index
    assert torch.equal(unit.values(Context({"x": wider}, wider, other, other)), wider[:, 1, 3, 3])


def test_an_owner_out_of_range_is_refused_as_before() -> None:
    out = torch.randn(2, 3, 4)  # units on the last axis: a flat index past them would read the next row
    bad = torch.tensor([0, 4])
    with pytest.raises(RuntimeError, match="index"):
        Unit("x", axis=-1, reduce=(0,)).values(Context({"x": out}, out, bad, bad))


# ----------------------------------------------------------------------------------------- starts, runs


def test_starts_drawn_in_place_are_each_units_own_stream() -> None:
    units, restarts, dim = [4, 0, 9], 3, 5
    starts = _Starts(11, units, restarts, dim, torch.float32, torch.device("cpu"), torch.device("cpu"))
    expected = torch.cat(
        [torch.rand(restarts, dim, generator=unit_generator(11, u, torch.device("cpu"))) for u in units]
    )
    assert torch.equal(starts.rows(0, 9), expected)
    out = torch.empty(5, dim)
    assert torch.equal(starts.rows(2, 7, out=out), expected[2:7])  # parts of two units, one whole unit
    assert torch.equal(out, expected[2:7])


def test_the_ascent_matches_under_chunks_and_holds_stopped_restarts() -> None:
    net = small_cnn(1)
    common = {
        "units": [0, 2, 5],
        "restarts": 4,
        "norm": 2.0,
        "input_shape": (1, 5, 5),
        "max_steps": 60,
    }
    whole = maximize_activation(net, "2", generator=torch.Generator().manual_seed(3), **common)
    hooked = maximize_activation(Wrapped(net), "net.2", generator=torch.Generator().manual_seed(3), **common)
    chunked = maximize_activation(
        net, "2", generator=torch.Generator().manual_seed(3), chunk_size=5, **common
    )
    for other in (hooked, chunked):
        torch.testing.assert_close(other.x, whole.x)
        torch.testing.assert_close(other.history, whole.history)
        assert torch.equal(other.steps, whole.steps)
    # Some restarts stopped before others: after its stop a restart's history holds its final activation.
    assert whole.converged.any()
    tried = whole.history.shape[0] - 1
    for u in range(3):
        for r in range(4):
            if whole.converged[u, r]:
                last = whole.history[:, u, r]
                assert torch.equal(last[-1], whole.activation[u, r])
    assert tried <= 60
