"""The modern recipe through maximize_activation: known optima, batching, diversity, modes and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unitlens.analysis.restarts import mean_pairwise_cosine
from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.visualize.activation_maximization import maximize_activation
from unitlens.visualize.feature_vis import TorchOptimizer
from unitlens.visualize.objectives import L2, ClassLogit, Diversity, Unit
from unitlens.visualize.parameterizations import Fourier, Pixels
from unitlens.visualize.recipe import Recipe, lucid_recipe
from unitlens.visualize.transforms import Compose, Jitter, Pad, standard_transforms

RHO = 3.0


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.detach().flatten(), b.detach().flatten(), dim=0))


@pytest.fixture
def linear() -> nn.Linear:
    torch.manual_seed(1)
    return nn.Linear(12, 4)


def test_pixels_on_the_sphere_with_adam_reach_the_linear_closed_form(linear: nn.Linear) -> None:
    # max w . x + b subject to ||x|| = rho: x* = rho w / ||w||.
    result = maximize_activation(
        linear,
        linear,
        restarts=3,
        generator=gen(),
        parameterization=Pixels((12,), norm=RHO),
        optimizer=TorchOptimizer(learning_rate=0.1, steps=300),
    )
    for p, unit in enumerate(result.units.tolist()):
        w = linear.weight[unit].detach()
        for r in range(3):
            assert cosine(result.x[p, r], w) > 0.999
        best = float(RHO * w.norm() + linear.bias[unit].detach())
        assert float(result.activation[p].max()) == pytest.approx(best, rel=1e-3)


@pytest.mark.parametrize("kind", ["pixels", "fourier"])
def test_box_parameterizations_reach_the_box_optimum_of_a_linear_unit(linear: nn.Linear, kind: str) -> None:
    # max w . x over [0, 1]^d: x* = 1 where w > 0, 0 where w < 0.
    shape = (1, 3, 4)
    net = nn.Sequential(nn.Flatten(), linear)
    param = Pixels(shape, box=(0.0, 1.0)) if kind == "pixels" else Fourier(shape, decorrelate=False)
    result = maximize_activation(
        net,
        "1",
        [0, 2],
        restarts=2,
        generator=gen(),
        parameterization=param,
        optimizer=TorchOptimizer(learning_rate=0.5, steps=400),
    )
    for p, unit in enumerate([0, 2]):
        target = (linear.weight[unit] > 0).float()
        for r in range(2):
            assert float((result.x[p, r].flatten() - target).abs().max()) < 0.1


def test_conv_channel_centre_reaches_its_kernel() -> None:
    # A 3x3 conv channel's centre output on a 7x7 image reads only the centre 3x3: x* = rho K / ||K|| there.
    torch.manual_seed(2)
    conv = nn.Conv2d(1, 2, 3)
    result = maximize_activation(
        conv,
        conv,
        restarts=2,
        generator=gen(),
        parameterization=Pixels((1, 7, 7), norm=RHO),
        optimizer=TorchOptimizer(learning_rate=0.05, steps=400),
    )
    for c in range(2):
        expected = torch.zeros(1, 7, 7)
        expected[0, 2:5, 2:5] = conv.weight[c, 0].detach()
        assert cosine(result.x[c, 0], expected) > 0.999


def test_tokens_with_units_on_the_last_axis_follow_the_closed_form() -> None:
    # A token-wise linear map (B, T, E) -> (B, T, D): unit d at token t reads only token t.
    torch.manual_seed(3)
    layer = nn.Linear(5, 3)
    model = nn.Sequential(layer)
    result = maximize_activation(
        model,
        "0",
        restarts=2,
        generator=gen(),
        norm=RHO,
        input_shape=(4, 5),
        unit_axis=-1,
        channel_reduce=(1,),
        gtol=1e-6,
        max_steps=2000,
    )
    assert result.units.tolist() == [0, 1, 2]
    for d in range(3):
        expected = torch.zeros(4, 5)
        expected[1] = layer.weight[d].detach()
        assert cosine(result.x[d, 0], expected) > 0.9999


def small_cnn() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 5, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 4),
    )


def test_lucid_results_do_not_depend_on_chunks_or_on_the_units_asked_for() -> None:
    net = small_cnn()
    recipe = lucid_recipe((3, 16, 16), steps=12, snapshots=(4, 12))
    kwargs = {"restarts": 3, "recipe": recipe, "channel_reduce": "mean"}
    whole = maximize_activation(net, "2", generator=gen(7), **kwargs)  # type: ignore[arg-type]
    for chunk in (1, 7):
        chunked = maximize_activation(net, "2", generator=gen(7), chunk_size=chunk, **kwargs)  # type: ignore[arg-type]
        assert torch.allclose(chunked.x, whole.x, atol=1e-5)
        assert torch.allclose(chunked.history, whole.history, atol=1e-5)
    subset = maximize_activation(net, "2", [3, 1], generator=gen(7), **kwargs)  # type: ignore[arg-type]
    assert torch.allclose(subset.x, whole.x[[3, 1]], atol=1e-5)
    assert whole.snapshots is not None and whole.snapshots.shape == (2, 5, 3, 3, 16, 16)
    assert torch.allclose(whole.snapshots[-1], whole.x)
    assert whole.history.shape == (13, 5, 3)
    assert bool(((whole.x >= 0) & (whole.x <= 1)).all())


def test_diversity_lowers_the_agreement_of_restarts() -> None:
    net = small_cnn()
    param = Pixels((3, 10, 10), norm=RHO)
    optimizer = TorchOptimizer(learning_rate=0.05, steps=150)
    settings = {"restarts": 4, "parameterization": param, "optimizer": optimizer}
    plain = maximize_activation(
        net, None, [0, 1], objective=Unit("2", reduce="mean"), generator=gen(), **settings
    )  # type: ignore[arg-type]
    diverse = maximize_activation(
        net,
        None,
        [0, 1],
        objective=Unit("2", reduce="mean") + 2.0 * Diversity("0"),
        generator=gen(),
        **settings,  # type: ignore[arg-type]
    )
    agree = mean_pairwise_cosine(plain.x.flatten(2))
    spread = mean_pairwise_cosine(diverse.x.flatten(2))
    assert bool((agree > 0.9).all()), agree
    assert bool((spread < agree - 0.1).all()), (agree, spread)


def test_class_logit_minus_a_penalty_runs_for_every_class() -> None:
    net = small_cnn()
    result = maximize_activation(
        net,
        objective=ClassLogit() - 1e-3 * L2(),
        restarts=2,
        generator=gen(),
        parameterization=Fourier((3, 12, 12)),
        transforms=Compose((Pad(2), Jitter(2))),
        optimizer=TorchOptimizer(steps=30),
    )
    assert result.units.tolist() == [0, 1, 2, 3]
    # the optimized images raise their class's logit above where they started
    assert bool((result.activation.max(dim=1).values > result.history[0].max(dim=1).values).all())


def test_one_dimensional_signals_with_the_lucid_recipe() -> None:
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv1d(2, 4, 5), nn.ReLU(), nn.Conv1d(4, 3, 5))
    result = maximize_activation(
        net, "2", restarts=2, generator=gen(), recipe=lucid_recipe((2, 40), steps=10)
    )
    assert result.x.shape == (3, 2, 2, 40)
    assert bool(torch.isfinite(result.activation).all())


def test_an_image_size_other_than_the_models_input_is_resized() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    recipe = Recipe("big", Fourier((3, 20, 20)), None, TorchOptimizer(steps=5))
    result = maximize_activation(net, "1", restarts=1, generator=gen(), recipe=recipe, input_shape=(3, 8, 8))
    assert result.x.shape == (2, 1, 3, 20, 20)


def test_inference_mode_gives_the_same_result(linear: nn.Linear) -> None:
    settings = {"restarts": 2, "norm": RHO, "input_shape": (12,), "max_steps": 50}
    outside = maximize_activation(linear, linear, generator=gen(3), **settings)  # type: ignore[arg-type]
    with torch.inference_mode():
        inside = maximize_activation(linear, linear, generator=gen(3), **settings)  # type: ignore[arg-type]
    assert torch.equal(outside.x, inside.x)


def test_modes_are_restored_through_train() -> None:
    calls: list[bool] = []

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 3))
            self.head = nn.Linear(3, 2)

        def train(self, mode: bool = True) -> Net:
            calls.append(mode)
            return super().train(mode)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    net = Net()
    net.train()
    net.head.eval()  # a mixed state must come back as it was
    calls.clear()
    maximize_activation(net, "body.2", restarts=1, generator=gen(), norm=1.0, input_shape=(4,), max_steps=5)
    assert calls[-1] is True
    assert net.training and net.body.training and net.body[1].training and not net.head.training


def test_forward_fn_feeds_a_model_that_takes_a_dict() -> None:
    class DictNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.fc(batch["pixels"] * batch["mask"])

    net = DictNet()
    mask = torch.ones(6)
    result = maximize_activation(
        net,
        "fc",
        restarts=1,
        generator=gen(),
        norm=RHO,
        input_shape=(6,),
        forward_fn=lambda model, x: model({"pixels": x, "mask": mask}),
        gtol=1e-6,
    )
    assert cosine(result.x[1, 0], net.fc.weight[1]) > 0.9999


def test_a_shape_error_in_the_users_model_names_the_layer_and_the_shape() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(UnitlensError, match=r"shape \(1, 1, 3, 5\).*input_shape \(1, 3, 5\).*\['1'\]"):
        maximize_activation(net, "1", restarts=1, generator=gen(), norm=1.0, input_shape=(1, 3, 5))


def test_modern_settings_are_refused_where_they_do_not_apply(linear: nn.Linear) -> None:
    with pytest.raises(UnitlensError, match="torch optimizer"):
        maximize_activation(linear, linear, generator=gen(), norm=1.0, input_shape=(12,), transforms=Pad(1))
    with pytest.raises(UnitlensError, match="projected ascent"):
        maximize_activation(
            linear,
            linear,
            generator=gen(),
            learning_rate=0.1,
            parameterization=Pixels((12,)),
            optimizer=TorchOptimizer(steps=2),
        )
    with pytest.raises(UnitlensError, match="Diversity"):
        maximize_activation(
            linear, objective=Unit("") + Diversity(""), generator=gen(), norm=1.0, input_shape=(12,)
        )
    dbn = DBN.build([6, 4], generator=gen())
    with pytest.raises(UnitlensError, match="DBN or SDAE"):
        maximize_activation(dbn, 1, generator=gen(), recipe=lucid_recipe((1, 2, 3), steps=2))
    with pytest.raises(UnitlensError, match="recipe must be one of"):
        maximize_activation(linear, linear, generator=gen(), recipe="deepdream")
    assert standard_transforms().n_random == 6
