import pytest
import torch
from torch import Tensor

from unitlens.data.stream import ShuffledBatches
from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.models.stack import LayerStack
from unitlens.training.greedy import LayerwiseConfig, LayerwiseState, reconstruction_error, train_layerwise
from unitlens.training.sgd import SGDConfig


def prototypes_data(n: int, seed: int) -> Tensor:
    """Binary images made from 4 prototypes with 5% of the pixels flipped."""
    g = torch.Generator().manual_seed(123)
    protos = (torch.rand(4, 36, generator=g) < 0.4).float()
    g.manual_seed(seed)
    x = protos[torch.randint(0, 4, (n,), generator=g)]
    flip = torch.rand(n, 36, generator=g) < 0.05
    return torch.where(flip, 1 - x, x)


def make(kind: str) -> LayerStack:
    g = torch.Generator().manual_seed(0)
    return DBN.build([36, 16, 8], generator=g) if kind == "dbn" else SDAE.build([36, 16, 8], generator=g)


CONFIG = LayerwiseConfig(
    examples_per_layer=4_000,
    sgd=(SGDConfig(learning_rate=0.05, batch_size=20, momentum_warmup_examples=1_000),),
    eval_every=1_000,
    checkpoint_every=1_500,
    monitor_examples=200,
    init_batches=2,
)


def _source(seed: int = 1) -> ShuffledBatches:
    return ShuffledBatches(prototypes_data(400, 0), None, 20, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["dbn", "sdae"])
def test_each_layer_learns_and_lower_layers_stay_frozen(kind: str) -> None:
    stack = make(kind)
    held_out = prototypes_data(200, 1)
    before = reconstruction_error(stack.layer(1), held_out)
    snapshots: list[dict[str, Tensor]] = []

    def on_checkpoint(state: LayerwiseState) -> None:
        if state.examples_seen == 0 and state.layer == 2:  # layer 1 just finished
            snapshots.append({k: v.clone() for k, v in stack.layers[0].state_dict().items()})

    state = train_layerwise(
        stack, _source(), held_out, CONFIG, torch.Generator().manual_seed(2), on_checkpoint=on_checkpoint
    )
    assert state.done(2)
    rows = state.history
    assert [(r["layer"], r["examples"]) for r in rows] == [
        (k, e) for k in (1.0, 2.0) for e in (1e3, 2e3, 3e3, 4e3)
    ]
    assert reconstruction_error(stack.layer(1), held_out) < 0.5 * before
    for k in (1, 2):
        errors = [r["heldout_reconstruction"] for r in rows if r["layer"] == k]
        assert errors[-1] < errors[0]
    assert all(torch.equal(snapshots[0][k], v) for k, v in stack.layers[0].state_dict().items())
    if kind == "dbn":
        pll = [r["heldout_pseudo_log_likelihood"] for r in rows if r["layer"] == 1]
        assert pll[-1] > pll[0]


@pytest.mark.parametrize("kind", ["dbn", "sdae"])
def test_interrupted_training_resumes_to_the_same_result(kind: str) -> None:
    held_out = prototypes_data(200, 1)
    reference = make(kind)
    ref_state = train_layerwise(reference, _source(), held_out, CONFIG, torch.Generator().manual_seed(2))

    stack = make(kind)
    saved: list[tuple[LayerwiseState, dict[str, Tensor]]] = []

    def interrupt(state: LayerwiseState) -> None:
        copy = LayerwiseState(
            layer=state.layer,
            examples_seen=state.examples_seen,
            trainer={k: v.clone() for k, v in state.trainer.items()},
            source={k: v.clone() for k, v in state.source.items()},
            generator=None if state.generator is None else state.generator.clone(),
            history=[dict(r) for r in state.history],
            pending_loss=state.pending_loss,
            pending_count=state.pending_count,
        )
        saved.append((copy, {k: v.clone() for k, v in stack.state_dict().items()}))
        if len(saved) == 4:  # mid-way through layer 2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_layerwise(
            stack, _source(), held_out, CONFIG, torch.Generator().manual_seed(2), on_checkpoint=interrupt
        )
    state, weights = saved[-1]
    assert (state.layer, state.examples_seen) == (2, 1_500)
    resumed = make(kind)
    resumed.load_state_dict(weights)
    # A fresh source and generator with other seeds: the saved states must override them.
    final = train_layerwise(
        resumed, _source(seed=77), held_out, CONFIG, torch.Generator().manual_seed(5), state=state
    )
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name

    def without_time(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert without_time(final.history) == without_time(ref_state.history)


def test_config_is_validated() -> None:
    with pytest.raises(UnitlensError):
        LayerwiseConfig(examples_per_layer=0)
    with pytest.raises(UnitlensError):
        LayerwiseConfig(examples_per_layer=10, sgd=())
    c = LayerwiseConfig(
        examples_per_layer=10, sgd=(SGDConfig(learning_rate=1.0), SGDConfig(learning_rate=2.0))
    )
    assert [c.sgd_for(k).learning_rate for k in (1, 2, 3)] == [1.0, 2.0, 2.0]


def test_sparsity_target_is_set_per_layer() -> None:
    """Layer 1 held to a low target and layer 2 to a high one end with mean activations in that order."""
    config = LayerwiseConfig(
        examples_per_layer=4_000,
        sgd=(SGDConfig(learning_rate=0.05, batch_size=20),),
        eval_every=4_000,
        monitor_examples=200,
        init_batches=2,
        sparsity_cost=5.0,
        sparsity_target=(0.05, 0.6),
    )
    assert [config.sparsity_target_for(k) for k in (1, 2, 3)] == [0.05, 0.6, 0.6]
    stack = make("dbn")
    train_layerwise(stack, _source(), prototypes_data(200, 1), config, torch.Generator().manual_seed(2))
    x = prototypes_data(400, 2)
    with torch.no_grad():
        q1, q2 = float(stack.up_pass(x, 1).mean()), float(stack.up_pass(x, 2).mean())
    assert abs(q1 - 0.05) < 0.05 and abs(q2 - 0.6) < 0.15
    with pytest.raises(UnitlensError, match="sparsity_target"):
        LayerwiseConfig(examples_per_layer=10, sparsity_target=())
    with pytest.raises(UnitlensError, match="sparsity_target"):
        LayerwiseConfig(examples_per_layer=10, sparsity_target=(0.1, 1.0))


def test_sdae_layers_get_the_sparsity_penalty_too() -> None:
    from unitlens.training.denoising import DenoisingTrainer
    from unitlens.training.greedy import make_trainer

    config = LayerwiseConfig(examples_per_layer=100, sparsity_cost=2.0, sparsity_target=(0.1, 0.3))
    stack = make("sdae")
    trainers = [make_trainer(stack.layer(k), config.sgd_for(k), 100, config, k) for k in (1, 2)]
    assert all(isinstance(t, DenoisingTrainer) for t in trainers)
    assert [(t.sparsity_cost, t.sparsity_target) for t in trainers] == [(2.0, 0.1), (2.0, 0.3)]  # type: ignore[attr-defined]
