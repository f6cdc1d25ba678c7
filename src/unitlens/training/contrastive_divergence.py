"""Contrastive divergence (CD-k) and persistent CD training of an RBM, with manual updates for speed.

The log-likelihood gradient of an RBM is a difference of two expectations,

    ∂ log p(v) / ∂W = E_data[h vᵀ] - E_model[h vᵀ],

and CD-k replaces the model's expectation by the statistics at the end of a k-step Gibbs chain started at the
data (Hinton 2002). Following Hinton's practical guide (section 3): the positive statistics use the hidden
*probabilities* given the data; hidden units driven by data or by the chain are *sampled*; the reconstruction
uses visible *means* (Bernoulli probabilities, Gaussian means), and the final hidden update uses
probabilities. Persistent CD (Tieleman 2008) keeps the negative chain from one update to the next instead of
restarting it at the data; its chain is a proper Markov chain, so it samples the visible units too (as
scikit-learn's BernoulliRBM does).

Speed: one CD-1 update costs 10·V·H multiply-adds per example (three matrix products for the chain, four
halves of the two weight-gradient products). The two gradient products are one GEMM here: the positive and
negative rows are stacked, the negative hidden rows negated, so ``[h⁺; -h⁻]ᵀ [v⁺; v⁻]`` is the gradient, and
``sgd_step`` folds it into the momentum buffer (``addmm_`` with beta = momentum) without a temporary. The bias
gradients are the same stacks summed over rows (a matrix-vector product). Buffers are allocated once per batch
size and reused through ``out=``; uniform draws go into a buffer and are compared with the probabilities in
place (:func:`~unitlens.models.sampling.sample_bernoulli`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.rbm import RBM
from unitlens.models.sampling import sample_bernoulli
from unitlens.training.collective import SINGLE, Reducer
from unitlens.training.sgd import LayerTrainer, SGDConfig, sparsity_pull

# Velocity keys of the trainer state before the layer trainers shared one state format.
_LEGACY_KEYS = {
    "weight_velocity": "velocity.weight",
    "hidden_bias_velocity": "velocity.hidden_bias",
    "visible_bias_velocity": "velocity.visible_bias",
}


class CDTrainer(LayerTrainer):
    """Trains ``rbm`` in place with CD-k or persistent CD and SGD with momentum (see :mod:`.sgd`).

    Args:
        rbm: the model; its parameters are updated in place (no autograd).
        sgd: learning rate, schedule, momentum warm-up and weight decay (weights only, not biases).
        total_examples: the training length in examples, for the learning-rate schedule.
        k: Gibbs steps in the negative phase (the paper's period used k = 1).
        persistent: keep the negative chain across updates (PCD). The chains are initialised from the hidden
            sample of the first batch; their number stays that batch's size.
        sparsity_cost: beta of a sparsity penalty beta * KL(target || q_j) on each hidden unit's mean
            activation q_j over the batch (Lee, Ekanadham & Ng 2008); 0 turns it off. Its gradient is a plain
            step after the momentum update. On whitened patches it turns a Gaussian RBM's noisy filters into
            localized, oriented ones.
        sparsity_target: the target mean activation rho of that penalty.
        reducer: combines the updates across data-parallel processes (see ``LayerTrainer``).

    Attributes:
        velocities: the momentum buffers by parameter name (state keys ``velocity.<name>``).
        examples_seen: training examples consumed so far; drives the schedule and the momentum warm-up.
        chain: (n_chains, H) binary hidden states of the persistent chain; None until the first batch, and
            without PCD (state key ``chain``, of shape (0, H) when there is none).
    """

    what = "CD trainer"
    extra_state_keys = ("chain",)

    def __init__(
        self,
        rbm: RBM,
        sgd: SGDConfig,
        total_examples: int,
        *,
        k: int = 1,
        persistent: bool = False,
        sparsity_cost: float = 0.0,
        sparsity_target: float = 0.05,
        reducer: Reducer = SINGLE,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UnitlensError(f"CD k (Gibbs steps) must be an integer >= 1, got {k!r}")
        super().__init__(
            rbm,
            sgd,
            total_examples,
            sparsity_cost=sparsity_cost,
            sparsity_target=sparsity_target,
            reducer=reducer,
        )
        self.rbm = rbm
        self.k, self.persistent = k, persistent
        self.chain: Tensor | None = None
        self._shape: tuple[int, int] = (-1, -1)  # (batch, chains) the buffers are sized for

    # ------------------------------------------------------------------ buffers

    def _buffers(self, batch: int, chains: int) -> None:
        """(Re)allocate the work buffers for ``batch`` data rows and ``chains`` negative rows."""
        if self._shape == (batch, chains):
            return
        W = self.rbm.weight
        H, V = W.shape
        # Rows [:batch] hold the positive phase (h⁺ probabilities, v⁺ data), rows [batch:] the negative phase
        # (-scale·h⁻ probabilities, v⁻), so that one GEMM gives the whole weight gradient.
        self._hid = W.new_empty(batch + chains, H)
        self._vis = W.new_empty(batch + chains, V)
        self._hsample = W.new_empty(chains, H)  # uniform draws, then hidden samples
        self._vtemp = W.new_empty(max(batch, chains), V)  # PCD visible probabilities or noise; reconstruction
        # Row weights turning the stacks into bias gradients: +1/B for the data, -1/N for the chain rows.
        self._hid_weights = W.new_full((batch + chains,), 1.0 / batch)
        self._vis_weights = W.new_full((batch + chains,), 1.0 / batch)
        self._vis_weights[batch:] = -1.0 / chains
        self._hid_grad = W.new_empty(H)
        self._vis_grad = W.new_empty(V)
        self._shape = (batch, chains)

    # ------------------------------------------------------------------ one update

    @torch.no_grad()
    def step(self, v0: Tensor, generator: torch.Generator) -> float:
        """One parameter update on the batch ``v0``.

        Args:
            v0: (B, V) training inputs (probabilities in [0, 1] for Bernoulli units, standardised values for
                Gaussian ones).
            generator: draws every sample of the update.

        Returns:
            The batch's reconstruction error: Σ over pixels of (v0 - v_rec)², averaged over the batch, where
            v_rec is the CD chain's final visible mean; for persistent CD (whose chain is not a reconstruction
            of the batch) it is the mean-field reconstruction ``rbm.reconstruct(v0)``.
        """
        rbm = self.rbm
        W, b, c = rbm.weight, rbm.hidden_bias, rbm.visible_bias
        if v0.ndim != 2 or v0.shape[1] != rbm.n_visible or v0.shape[0] < 1:
            raise UnitlensError(f"CD batch must have shape (batch, {rbm.n_visible}), got {tuple(v0.shape)}")
        v0 = v0.to(W)
        batch = v0.shape[0]
        if self.persistent and self.chain is None:
            self.chain = sample_bernoulli(
                rbm.hidden_probs(v0), generator, out=W.new_empty(batch, rbm.n_hidden)
            )
        chains = self.chain.shape[0] if self.chain is not None else batch
        self._buffers(batch, chains)
        hid, vis = self._hid, self._vis
        h_pos, h_neg = hid[:batch], hid[batch:]
        v_neg = vis[batch:]
        bernoulli = rbm.visible == "bernoulli"

        # Positive phase: hidden probabilities given the data.
        torch.addmm(b, v0, W.t(), out=h_pos).sigmoid_()
        vis[:batch].copy_(v0)

        if self.chain is None:
            # CD-k from the data: sample h, take visible means, repeat; hidden probabilities at the end.
            h = sample_bernoulli(h_pos, generator, out=self._hsample)
            for step in range(self.k):
                torch.addmm(c, h, W, out=v_neg)
                if bernoulli:
                    v_neg.sigmoid_()
                torch.addmm(b, v_neg, W.t(), out=h_neg).sigmoid_()
                if step + 1 < self.k:
                    h = sample_bernoulli(h_neg, generator, out=self._hsample)
            error = _squared_error(v0, v_neg, self._vtemp[:batch])
        else:
            # Persistent chain: a real Gibbs chain, so the visible units are sampled as well.
            for _ in range(self.k):
                work = self._vtemp[:chains]
                if bernoulli:
                    # Probabilities in the work buffer, the sample (uniforms first) in the negative rows.
                    probs = torch.addmm(c, self.chain, W, out=work).sigmoid_()
                    sample_bernoulli(probs, generator, out=v_neg)
                else:
                    torch.addmm(c, self.chain, W, out=v_neg)
                    v_neg.add_(torch.randn(work.shape, generator=generator, out=work))
                torch.addmm(b, v_neg, W.t(), out=h_neg).sigmoid_()
                sample_bernoulli(h_neg, generator, out=self.chain)
            recon = torch.addmm(c, h_pos, W, out=self._vtemp[:batch])
            if bernoulli:
                recon.sigmoid_()
            error = _squared_error(v0, recon, recon)

        # Negative rows carry the sign (and 1/N vs 1/B when the chain count differs from the batch size): the
        # weight ascent (h⁺ᵀv⁺ - h⁻ᵀv⁻)/B is the factor pair ([h⁺; -h⁻], [v⁺; v⁻]) times 1/B.
        h_neg.mul_(-batch / chains)
        torch.mv(hid.t(), self._hid_weights, out=self._hid_grad)
        torch.mv(vis.t(), self._vis_weights, out=self._vis_grad)
        lr = self._update((hid, vis), self._hid_grad, self._vis_grad, batch, weight_scale=1.0 / batch)
        if self.sparsity_cost:
            self._sparsity_step(v0, h_pos, lr)
        return error

    def _sparsity_step(self, v0: Tensor, h_pos: Tensor, lr: float) -> None:
        """A plain gradient step (no momentum) down beta * sum_j KL(rho || q_j), q_j the batch mean of h_j.

        -d/dq KL(rho || q) = rho / q - (1 - rho) / (1 - q); through q_j = mean_n sigmoid(a_nj) this gives
        s_nj = h_nj (1 - h_nj) g_j / B per example, hence db = sum_n s_n and dW = s^T v0.
        """
        s = h_pos * (1 - h_pos) * sparsity_pull(h_pos, self.sparsity_target, self.sparsity_cost)
        if self.reducer.world > 1:  # data-parallel: the processes' steps are averaged, like the update's
            dw, db = torch.mm(s.t(), v0), s.sum(dim=0)
            self.reducer.mean_([dw, db])
            self.rbm.weight.add_(dw, alpha=lr)
            self.rbm.hidden_bias.add_(db, alpha=lr)
            return
        self.rbm.weight.addmm_(s.t(), v0, alpha=lr)
        self.rbm.hidden_bias.add_(s.sum(dim=0), alpha=lr)

    # ------------------------------------------------------------------ resume

    def _extra_state(self) -> dict[str, Tensor]:
        H = self.rbm.n_hidden
        chain = self.chain if self.chain is not None else self.rbm.hidden_bias.new_empty(0, H)
        return {"chain": chain.detach().clone()}

    def _load_extra_state(self, state: Mapping[str, Tensor]) -> None:
        chain = state["chain"]
        if chain.ndim != 2 or chain.shape[1] != self.rbm.n_hidden:
            raise UnitlensError(
                f"CD trainer state 'chain' has shape {tuple(chain.shape)}, "
                f"expected (n_chains, {self.rbm.n_hidden})"
            )
        if chain.shape[0] and not self.persistent:
            raise UnitlensError(
                "CD trainer state holds a persistent chain, but this trainer is not persistent"
            )
        self.chain = chain.to(self.rbm.weight).clone() if chain.shape[0] else None

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore a :meth:`state_dict`, or one saved before the layer trainers shared their key names (its
        velocities under ``weight_velocity``, ``hidden_bias_velocity`` and ``visible_bias_velocity``).

        Raises:
            UnitlensError: keys or shapes do not match this trainer (nothing is changed then).
        """
        super().load_state_dict({_LEGACY_KEYS.get(key, key): value for key, value in state.items()})


def _squared_error(x: Tensor, y: Tensor, work: Tensor) -> float:
    """Σ (x - y)² over pixels, averaged over rows; ``work`` (same shape) may alias ``y``."""
    return float(torch.sub(x, y, out=work).square_().sum()) / x.shape[0]
