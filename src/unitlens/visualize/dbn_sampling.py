"""Method 2: samples of p(x | h_ji = 1), by clamping one unit of a DBN (Erhan et al. 2009, section 4).

For unit i of layer j >= 2, block Gibbs sampling runs in the top RBM of the sub-DBN, the RBM between layers
j-1 and j, with h_ji held at 1 at every step while all other units are sampled normally. Its stationary
distribution over layer j-1 is

    p(h_{j-1} | h_ji = 1) ∝ Σ_{h_j : h_ji = 1} exp(-E(h_{j-1}, h_j)).

Every ``every`` steps after a burn-in, the layer j-1 state is taken down to the input by the DBN's directed
top-down pass (intermediate layers sampled, visible means shown): a sample of p_j(x | h_ji = 1). Their mean
estimates E[x | h_ji = 1], the summary the paper shows beside activation maximization.

Layer j = 1 is allowed too: the chain runs in RBM 1 itself, clamping a first-layer unit, and each sample is
the visible mean E[x | h_1] of the chain's layer-1 state (the same last step as the top-down pass, which
ends with RBM 1's visible means); for a Gaussian-visible RBM the chain's visible states are Gaussian.

All requested units' chains run together as one batch of B = U x chains_per_unit chains: each Gibbs step is
two (B, n) x (n, m) matrix products, with preallocated buffers and uniform draws compared with the
probabilities (:func:`~unitlens.models.sampling.sample_bernoulli`, about 4x faster than ``torch.bernoulli`` on
CPU). Only a DBN can be sampled: an SDAE defines no
distribution over its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM
from unitlens.models.sampling import sample_bernoulli
from unitlens.models.stack import LayerStack
from unitlens.progress import Progress
from unitlens.visualize.filters import Units, unit_indices

STARTS = ("bernoulli", "zeros")


class ClampedChains:
    """B block-Gibbs chains in one RBM; chain b holds hidden unit ``clamped[b]`` at 1 at every step.

    One step samples h ~ p(h | v) for every hidden unit, sets the clamped one to 1 (the hidden units are
    conditionally independent given v, so this is exact Gibbs sampling of the clamped model), then samples
    v ~ p(v | h). Buffers are allocated once; the state tensors below are overwritten in place by each
    step, so copy what you keep.

    Args:
        rbm: the RBM to sample (Bernoulli or Gaussian visible units).
        clamped: (B,) int64 hidden unit held at 1 in each chain.
        generator: the source of every random draw (start included).
        start: ``"bernoulli"``: visible units start i.i.d. Bernoulli(0.5) (the paper's default);
            ``"zeros"``: all visible units start at 0.

    Attributes:
        visible: (B, V) current visible state.
        hidden: (B, H) hidden state drawn in the last step (the one ``visible`` was drawn from).
        visible_mean: (B, V) E[v | hidden]: sigmoid(c + Wᵀh) (Bernoulli) or c + Wᵀh (Gaussian).
        steps: Gibbs steps run so far.
    """

    def __init__(
        self, rbm: RBM, clamped: Tensor, generator: torch.Generator, start: str = "bernoulli"
    ) -> None:
        if start not in STARTS:
            raise UnitlensError(f"start must be one of {STARTS}, got {start!r}")
        if clamped.ndim != 1 or clamped.numel() == 0:
            raise UnitlensError(
                f"clamped must list one hidden unit per chain, got shape {tuple(clamped.shape)}"
            )
        self.generator = generator
        self.gaussian = rbm.visible == "gaussian"
        self._W = rbm.weight.detach()  # (H, V)
        self._b = rbm.hidden_bias.detach()
        self._c = rbm.visible_bias.detach()
        n_hidden, n_visible = self._W.shape
        if bool(((clamped < 0) | (clamped >= n_hidden)).any()):
            raise UnitlensError(f"clamped units must lie in 0..{n_hidden - 1}")
        n_chains = clamped.numel()
        dtype, device = self._W.dtype, self._W.device
        self._rows = torch.arange(n_chains, device=self._W.device)
        self._clamped = clamped.to(device=self._W.device, dtype=torch.int64)
        self.visible = torch.zeros(n_chains, n_visible, dtype=dtype, device=device)
        if start == "bernoulli":
            sample_bernoulli(0.5, generator, out=self.visible)
        self.hidden = torch.zeros(n_chains, n_hidden, dtype=dtype, device=device)
        self.hidden[self._rows, self._clamped] = 1.0
        self.visible_mean = torch.zeros(n_chains, n_visible, dtype=dtype, device=device)
        self._hidden_probs = torch.empty(n_chains, n_hidden, dtype=dtype, device=device)
        self._clamped_on = torch.zeros(n_chains, dtype=dtype, device=device)
        self.steps = 0

    @torch.no_grad()
    def run(self, n_steps: int, progress: Progress | None = None) -> None:
        """Run ``n_steps`` block Gibbs steps on every chain."""
        for _ in range(n_steps):
            # h ~ p(h | v): one GEMM, one uniform draw (into the state buffer, compared in place).
            torch.addmm(self._b, self.visible, self._W.t(), out=self._hidden_probs)
            torch.sigmoid(self._hidden_probs, out=self._hidden_probs)
            sample_bernoulli(self._hidden_probs, self.generator, out=self.hidden)
            self.hidden[self._rows, self._clamped] = 1.0
            # Read the clamp back from the state the next half-step uses: the check reported to the user.
            self._clamped_on += self.hidden[self._rows, self._clamped]
            # v ~ p(v | h).
            torch.addmm(self._c, self.hidden, self._W, out=self.visible_mean)
            if self.gaussian:
                torch.randn(self.visible.shape, generator=self.generator, out=self.visible)
                self.visible.add_(self.visible_mean)
            else:
                torch.sigmoid(self.visible_mean, out=self.visible_mean)
                sample_bernoulli(self.visible_mean, self.generator, out=self.visible)
            self.steps += 1
            if progress is not None:
                progress.update()

    @property
    def clamped_fraction(self) -> Tensor:
        """(B,) fraction of the steps run in which each chain's clamped unit was 1 (1.0 when correct)."""
        return self._clamped_on / max(self.steps, 1)


@dataclass(frozen=True)
class ClampedSamples:
    """Samples of p(x | h_ji = 1) for each selected unit.

    Attributes:
        layer: 1-based layer j of the clamped units.
        units: (U,) int64 clamped units of that layer.
        samples: (U, chains_per_unit · n_samples, d) visible means, one every ``every`` Gibbs steps after the
            burn-in; sample s of chain c of unit u is ``samples[u, c * n_samples + s]``.
        mean: (U, d) the mean of each unit's samples, an estimate of E[x | h_ji = 1].
        clamped_fraction: (U,) fraction of Gibbs steps in which the clamped unit was 1, averaged over its
            chains: a check that must read 1.0.
        burn_in: Gibbs steps before the first sample period.
        every: Gibbs steps between samples.
        chains_per_unit: independent chains per unit.
    """

    layer: int
    units: Tensor
    samples: Tensor
    mean: Tensor
    clamped_fraction: Tensor
    burn_in: int
    every: int
    chains_per_unit: int = 1


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UnitlensError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def total_steps(burn_in: int, n_samples: int, every: int) -> int:
    """Gibbs steps one call of :func:`sample_clamped` runs: samples are taken after steps
    burn_in + every, burn_in + 2·every, ..., burn_in + n_samples·every."""
    return burn_in + n_samples * every


@torch.no_grad()
def sample_clamped(
    dbn: LayerStack,
    layer: int,
    units: Units = None,
    *,
    burn_in: int = 1000,
    n_samples: int = 18,
    every: int = 100,
    chains_per_unit: int = 1,
    generator: torch.Generator,
    start: str = "bernoulli",
    progress: Progress | None = None,
) -> ClampedSamples:
    """Clamp each selected unit of ``layer`` to 1 and sample the input, all units' chains in one batch.

    Args:
        dbn: a :class:`~unitlens.models.dbn.DBN` (Bernoulli or Gaussian visible units).
        layer: 1-based layer j; j >= 2 samples in RBM j and takes layer j-1 down to the input, j = 1 samples
            in RBM 1 and shows the visible means of its layer-1 states.
        units: units of ``layer`` (see :func:`~unitlens.visualize.filters.unit_indices`); ``None`` for all.
        burn_in: Gibbs steps before sampling starts (paper: 1000; its follow-up: 20,000).
        n_samples: samples per chain (paper: 18).
        every: Gibbs steps between samples (paper: 100); see :func:`total_steps`.
        chains_per_unit: independent chains per unit, all in the same batch.
        generator: the source of every random draw; same seed and same arguments, same samples. A unit's
            samples depend on the other units in the batch (they share the random stream), not their law.
        start: the chains' initial layer j-1 state, ``"bernoulli"`` (Bernoulli(0.5), the paper's default) or
            ``"zeros"``.
        progress: advanced by one per Gibbs step (give it :func:`total_steps` as its total).
    Returns:
        :class:`ClampedSamples`: (U, chains_per_unit · n_samples, d) samples and their (U, d) mean.
    Raises:
        UnitlensError: ``dbn`` is not a DBN (an SDAE is not a generative model), or an argument is invalid.
    """
    if not isinstance(dbn, DBN):
        raise UnitlensError(
            f"sampling from a clamped unit needs a DBN, got a {type(dbn).__name__} "
            f"(kind {getattr(dbn, 'kind', '?')!r}): an SDAE is not a generative model, it defines no "
            "distribution over its inputs; use activation maximization or the linear combination instead"
        )
    index = unit_indices(dbn, layer, units)
    burn_in = _count("burn_in", burn_in, 0)
    n_samples = _count("n_samples", n_samples, 1)
    every = _count("every", every, 1)
    chains_per_unit = _count("chains_per_unit", chains_per_unit, 1)

    n_units = index.numel()
    # Chain b belongs to unit b // chains_per_unit, so the samples reshape to (U, chains, ...) directly.
    chains = ClampedChains(dbn.rbm(layer), index.repeat_interleave(chains_per_unit), generator, start)
    samples = torch.empty(
        n_units * chains_per_unit, n_samples, dbn.n_inputs, dtype=dbn.dtype, device=dbn.device
    )
    chains.run(burn_in, progress)
    for s in range(n_samples):
        chains.run(every, progress)
        if layer == 1:
            samples[:, s] = chains.visible_mean  # E[x | h_1], RBM 1's visible means
        else:
            samples[:, s] = dbn.down_pass(chains.visible, layer - 1, generator)
    samples = samples.reshape(n_units, chains_per_unit * n_samples, dbn.n_inputs)
    return ClampedSamples(
        layer=layer,
        units=index,
        samples=samples,
        mean=samples.mean(dim=1),
        clamped_fraction=chains.clamped_fraction.reshape(n_units, chains_per_unit).mean(dim=1),
        burn_in=burn_in,
        every=every,
        chains_per_unit=chains_per_unit,
    )
