"""One greedy layer-wise loop for both stacks (Hinton et al. 2006; Bengio et al. 2007).

Layer k is trained on the mean activations of the frozen layers below, fed from any batch source (a
fixed training set, or the endless elastic stream: training length is counted in examples, like the
paper's 2.5 million). The loop is pure: it reports its state to an ``on_checkpoint`` callback, which the
edge (``unitlens.runs``) writes to disk, and it resumes exactly from such a state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from unitlens.data.stream import BatchSource
from unitlens.errors import UnitlensError
from unitlens.models.dae import DAE
from unitlens.models.rbm import RBM
from unitlens.models.stack import LayerStack
from unitlens.progress import Progress
from unitlens.training.collective import SINGLE, Reducer
from unitlens.training.contrastive_divergence import CDTrainer
from unitlens.training.denoising import DenoisingTrainer
from unitlens.training.likelihood import ais_log_partition, log_likelihood, pseudo_log_likelihood
from unitlens.training.sgd import LayerTrainer, SGDConfig


@dataclass(frozen=True)
class LayerwiseConfig:
    """Greedy pre-training of a whole stack.

    Attributes:
        examples_per_layer: training examples each layer sees (the paper: 2.5 million elastic digits).
        sgd: one SGDConfig per layer, bottom first (a single one is used for every layer).
        cd_k: Gibbs steps of CD-k for RBM layers (1 in the paper's period).
        persistent: persistent CD (Tieleman 2008) instead of CD-k.
        eval_every: examples between held-out evaluations (reconstruction error, pseudo-likelihood).
        checkpoint_every: examples between checkpoints inside a layer (0: only at the end of a layer).
        monitor_examples: held-out inputs used for monitoring (the first ones).
        ais_chains, ais_betas: an AIS estimate of the held-out log-likelihood at the end of every
            Bernoulli-visible RBM layer (Salakhutdinov & Murray 2008); ``ais_betas=0`` skips it.
        init_batches: batches averaged to set each layer's visible bias from its input mean.
        first_layer_examples: layer 1's training length when it differs (0: ``examples_per_layer``); the
            first layer's filters on patches need far longer training than the upper layers.
        sparsity_cost: the sparsity penalty on every layer's hidden units (see ``CDTrainer`` and
            ``DenoisingTrainer``); 0 is off.
        sparsity_target: the target mean activation, one per layer bottom first like ``sgd`` (the last
            serves every layer above); why the patch DBN's upper layers get their own: docs/decisions.md.
    """

    examples_per_layer: int
    sgd: tuple[SGDConfig, ...] = (SGDConfig(),)
    cd_k: int = 1
    persistent: bool = False
    eval_every: int = 20_000
    checkpoint_every: int = 0
    monitor_examples: int = 1_000
    ais_chains: int = 100
    ais_betas: int = 0
    init_batches: int = 10
    first_layer_examples: int = 0
    sparsity_cost: float = 0.0
    sparsity_target: tuple[float, ...] = (0.05,)

    def __post_init__(self) -> None:
        if self.examples_per_layer < 1 or self.eval_every < 1 or self.monitor_examples < 1:
            raise UnitlensError("examples_per_layer, eval_every and monitor_examples must be >= 1")
        if self.cd_k < 1:
            raise UnitlensError(f"cd_k must be >= 1, got {self.cd_k}")
        if not self.sgd:
            raise UnitlensError("sgd must hold at least one SGDConfig")
        targets_ok = bool(self.sparsity_target) and all(0 < t < 1 for t in self.sparsity_target)
        if self.first_layer_examples < 0 or self.sparsity_cost < 0 or not targets_ok:
            raise UnitlensError(
                "first_layer_examples and sparsity_cost must be >= 0, and sparsity_target one or more values "
                f"in (0, 1), got {self.sparsity_target}"
            )
        if self.checkpoint_every < 0 or self.ais_betas < 0 or self.ais_chains < 1 or self.init_batches < 1:
            raise UnitlensError("checkpoint_every and ais_betas must be >= 0; ais_chains, init_batches >= 1")

    def examples_for(self, layer: int) -> int:
        """The training length of ``layer`` (1-based), in examples."""
        return (
            self.first_layer_examples if layer == 1 and self.first_layer_examples else self.examples_per_layer
        )

    def sgd_for(self, layer: int) -> SGDConfig:
        """The SGD settings of ``layer`` (1-based)."""
        return self.sgd[min(layer, len(self.sgd)) - 1]

    def sparsity_target_for(self, layer: int) -> float:
        """The sparsity target of ``layer`` (1-based)."""
        return self.sparsity_target[min(layer, len(self.sparsity_target)) - 1]


@dataclass
class LayerwiseState:
    """Where greedy training stands; with the stack's weights it is enough to resume exactly.

    Attributes:
        layer: the layer being trained (1-based); ``n_layers + 1`` once training is done.
        examples_seen: examples trained on in that layer.
        trainer: the layer trainer's state dict (velocities, persistent chains).
        source: the batch source's state dict.
        generator: the sampling generator's state.
        history: monitoring rows, every layer so far.
        pending_loss, pending_count: training loss summed since the last monitoring row, so a resumed
            run reports the same rows as an uninterrupted one.
    """

    layer: int = 1
    examples_seen: int = 0
    trainer: dict[str, Tensor] = field(default_factory=dict)
    source: dict[str, Tensor] = field(default_factory=dict)
    generator: Tensor | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    pending_loss: float = 0.0
    pending_count: int = 0

    def done(self, n_layers: int) -> bool:
        return self.layer > n_layers


def make_trainer(
    layer: torch.nn.Module,
    sgd: SGDConfig,
    total_examples: int,
    config: LayerwiseConfig,
    index: int = 1,
    reducer: Reducer = SINGLE,
) -> LayerTrainer:
    """The trainer for layer ``index`` (1-based): CD for an RBM, the denoising criterion for a DAE."""
    if isinstance(layer, RBM):
        return CDTrainer(
            layer,
            sgd,
            total_examples,
            k=config.cd_k,
            persistent=config.persistent,
            sparsity_cost=config.sparsity_cost,
            sparsity_target=config.sparsity_target_for(index),
            reducer=reducer,
        )
    if isinstance(layer, DAE):
        return DenoisingTrainer(
            layer,
            sgd,
            total_examples,
            sparsity_cost=config.sparsity_cost,
            sparsity_target=config.sparsity_target_for(index),
            reducer=reducer,
        )
    raise UnitlensError(f"no greedy trainer for a layer of type {type(layer).__name__}")


@torch.no_grad()
def reconstruction_error(layer: torch.nn.Module, x: Tensor, batch_size: int = 1000) -> float:
    """Mean over examples of the squared error summed over inputs, of the layer's reconstruction of ``x``."""
    total = 0.0
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size]
        total += float(((layer.reconstruct(xb) - xb) ** 2).sum())  # type: ignore[operator]
    return total / x.shape[0]


def train_layerwise(
    stack: LayerStack,
    source: BatchSource,
    held_out: Tensor,
    config: LayerwiseConfig,
    generator: torch.Generator,
    *,
    state: LayerwiseState | None = None,
    on_checkpoint: Callable[[LayerwiseState], None] | None = None,
    quiet: bool = True,
    layers: Sequence[int] | None = None,
    reducer: Reducer = SINGLE,
) -> LayerwiseState:
    """Pre-train ``stack`` greedily, in place, bottom layer first.

    Args:
        stack: the DBN or SDAE; its weights are updated in place.
        source: batches of inputs (batch, n_inputs); its state is saved and restored with the run's.
        held_out: (n, n_inputs) held-out inputs for monitoring.
        generator: every random draw of training (sampling, corruption) comes from it.
        state: a state from ``on_checkpoint`` to resume from (the stack must hold the weights saved with
            it); None starts afresh.
        on_checkpoint: called with the current state every ``config.checkpoint_every`` examples and at
            the end of each layer; the caller saves it with the stack's weights.
        layers: train only these layers (default: all, in order).
        reducer: data-parallel training (``unitlens.training.collective``): every process runs this loop
            with its own ``source`` and ``generator`` (and its own ``state`` to resume from), the updates
            and the first batches' mean are averaged over the processes, and examples are counted over all
            of them, so every process ends with the same stack. Each process's ``on_checkpoint`` gets its
            own state (its source's and generator's); the monitoring rows are the same everywhere. The
            default, one process, is training as it always was.

    Returns:
        The final state; ``state.history`` holds the monitoring rows.
    """
    state = state if state is not None else LayerwiseState()
    if state.generator is not None:
        generator.set_state(state.generator)
    if state.source:
        source.load_state_dict(state.source)
    todo = list(layers) if layers is not None else list(range(1, stack.n_layers + 1))
    monitor = held_out[: config.monitor_examples]
    with torch.no_grad():
        while not state.done(stack.n_layers):
            if state.layer not in todo:
                state = LayerwiseState(layer=state.layer + 1, history=state.history)
                continue
            _train_layer(stack, source, monitor, config, generator, state, on_checkpoint, quiet, reducer)
            state.layer += 1
            state.examples_seen = 0
            state.trainer = {}
            state.pending_loss, state.pending_count = 0.0, 0
            _snapshot(state, source, generator)
            if on_checkpoint is not None:
                on_checkpoint(state)
    return state


def _snapshot(state: LayerwiseState, source: BatchSource, generator: torch.Generator) -> None:
    state.source = source.state_dict()
    state.generator = generator.get_state()


def _train_layer(
    stack: LayerStack,
    source: BatchSource,
    monitor: Tensor,
    config: LayerwiseConfig,
    generator: torch.Generator,
    state: LayerwiseState,
    on_checkpoint: Callable[[LayerwiseState], None] | None,
    quiet: bool,
    reducer: Reducer = SINGLE,
) -> None:
    k = state.layer
    layer = stack.layers[k - 1]
    total = config.examples_for(k)
    trainer = make_trainer(layer, config.sgd_for(k), total, config, k, reducer)
    world = reducer.world

    def layer_input(x: Tensor) -> Tensor:
        return stack.up_pass(x, k - 1)

    if state.examples_seen == 0:
        inputs = [layer_input(source.next_batch()[0]) for _ in range(config.init_batches)]
        mean = torch.cat(inputs).mean(dim=0)
        reducer.mean_([mean])  # every process starts the layer from the same biases
        layer.set_visible_bias_from_mean(mean)  # type: ignore[operator]
    else:
        trainer.load_state_dict(state.trainer)
    monitor_codes = layer_input(monitor)
    progress = Progress(
        total,
        f"layer {k} ({type(layer).__name__})",
        quiet=quiet,
        unit="examples",
        initial=state.examples_seen,
    )
    start = time.perf_counter()
    seconds_before = next((r["seconds"] for r in reversed(state.history) if r["layer"] == k), 0.0)
    loss_sum, loss_count = state.pending_loss, state.pending_count
    next_eval = (state.examples_seen // config.eval_every + 1) * config.eval_every
    every = config.checkpoint_every
    next_checkpoint = (state.examples_seen // every + 1) * every if every else total + 1
    while state.examples_seen < total:
        x, _ = source.next_batch()
        loss = trainer.step(layer_input(x), generator)
        local = x.shape[0]
        n = local * world  # every process took a batch of the same size
        state.examples_seen += n
        loss_sum, loss_count = loss_sum + loss * local, loss_count + local
        progress.update(n, loss=loss)
        if state.examples_seen >= next_eval or state.examples_seen >= total:
            train_loss = loss_sum / loss_count
            if world > 1:  # the mean over every process's examples since the last row
                sums = torch.tensor([loss_sum, float(loss_count)], dtype=torch.float64, device=x.device)
                reducer.sum_([sums])
                train_loss = float(sums[0] / sums[1])
            row = {
                "layer": float(k),
                "examples": float(state.examples_seen),
                "train_loss": train_loss,
                "heldout_reconstruction": reconstruction_error(layer, monitor_codes),
                "learning_rate": config.sgd_for(k).learning_rate_at(state.examples_seen, total),
                "seconds": seconds_before + time.perf_counter() - start,
            }
            if isinstance(layer, RBM) and layer.visible == "bernoulli":
                # The stochastic estimate (one flipped input per example, times d): the exact sum costs d
                # passes. Its own generator, seeded by the position, keeps the training stream untouched.
                pll_generator = torch.Generator(device=layer.weight.device).manual_seed(state.examples_seen)
                pll = pseudo_log_likelihood(layer, monitor_codes, pll_generator)
                row["heldout_pseudo_log_likelihood"] = float(pll.mean())
            state.history.append(row)
            loss_sum, loss_count = 0.0, 0
            next_eval += config.eval_every
        if state.examples_seen >= next_checkpoint and state.examples_seen < total:
            next_checkpoint += every
            state.pending_loss, state.pending_count = loss_sum, loss_count
            state.trainer = trainer.state_dict()
            _snapshot(state, source, generator)
            if on_checkpoint is not None:
                on_checkpoint(state)
    progress.close()
    if config.ais_betas and isinstance(layer, RBM) and layer.visible == "bernoulli":
        ais_generator = torch.Generator(device=layer.weight.device).manual_seed(k)
        log_z, _ = ais_log_partition(
            layer,
            n_chains=config.ais_chains,
            n_betas=config.ais_betas,
            generator=ais_generator,
            base_visible_bias=_base_rate_bias(monitor_codes),
        )
        state.history[-1]["heldout_log_likelihood_ais"] = float(
            log_likelihood(layer, monitor_codes, log_z).mean()
        )


def _base_rate_bias(x: Tensor) -> Tensor:
    """Visible biases of the AIS base-rate model: logit of the (smoothed) input means."""
    p = x.mean(dim=0).clamp(1e-3, 1 - 1e-3)
    return torch.log(p) - torch.log1p(-p)
