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
``addmm_`` folds it into the momentum buffer (beta = momentum) without a temporary. The bias gradients are
the same stacks summed over rows (a matrix-vector product). Buffers are allocated once per batch size and
reused through ``out=``; uniform draws go into a buffer and are compared with the probabilities in place.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.rbm import RBM
from unitlens.training.sgd import SGDConfig, check_sparsity, sgd_step, sparsity_pull

_STATE_KEYS = ("weight_velocity", "hidden_bias_velocity", "visible_bias_velocity", "chain", "examples_seen")


class CDTrainer:
    """Trains ``rbm`` in place with CD-k or persistent CD and SGD with momentum (see :mod:`.sgd`).

    Args:
        rbm: the model; its parameters are updated in place (no autograd).
        sgd: learning rate, schedule, momentum warm-up and weight decay (weights only, not biases).
        total_examples: the training length in examples, for the learning-rate schedule.
        k: Gibbs steps in the negative phase (the paper's period used k = 1).
        persistent: keep the negative chain across updates (PCD). The chains are initialised from the hidden
            sample of the first batch; their number stays that batch's size.
        sparsity_cost: beta of a sparsity penalty beta * KL(target || q_j) on each hidden unit's mean
            activation q_j over the batch (Lee, Ekanadham & Ng 2008); 0 turns it off. On whitened patches it
            turns a Gaussian RBM's noisy filters into localized, oriented ones.
        sparsity_target: the target mean activation rho of that penalty.

    Attributes:
        examples_seen: training examples consumed so far; drives the schedule and the momentum warm-up.
    """

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
    ) -> None:
        check_sparsity(sparsity_cost, sparsity_target)
        self.sparsity_cost, self.sparsity_target = sparsity_cost, sparsity_target
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UnitlensError(f"CD k (Gibbs steps) must be an integer >= 1, got {k!r}")
        if total_examples < 1:
            raise UnitlensError(f"total_examples must be >= 1, got {total_examples}")
        self.rbm, self.sgd, self.total_examples = rbm, sgd, total_examples
        self.k, self.persistent = k, persistent
        self.examples_seen = 0
        self.weight_velocity = torch.zeros_like(rbm.weight, requires_grad=False)
        self.hidden_bias_velocity = torch.zeros_like(rbm.hidden_bias, requires_grad=False)
        self.visible_bias_velocity = torch.zeros_like(rbm.visible_bias, requires_grad=False)
        # Persistent chain: (n_chains, H) binary hidden states, None until the first batch.
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
        self._vtemp = W.new_empty(max(batch, chains), V)  # visible noise / reconstruction
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
            self.chain = _sample_into(W.new_empty(batch, rbm.n_hidden), rbm.hidden_probs(v0), generator)
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
            h = _sample_into(self._hsample, h_pos, generator)
            for step in range(self.k):
                torch.addmm(c, h, W, out=v_neg)
                if bernoulli:
                    v_neg.sigmoid_()
                torch.addmm(b, v_neg, W.t(), out=h_neg).sigmoid_()
                if step + 1 < self.k:
                    h = _sample_into(self._hsample, h_neg, generator)
            error = _squared_error(v0, v_neg, self._vtemp[:batch])
        else:
            # Persistent chain: a real Gibbs chain, so the visible units are sampled as well.
            for _ in range(self.k):
                torch.addmm(c, self.chain, W, out=v_neg)
                noise = self._vtemp[:chains]
                if bernoulli:
                    v_neg.sigmoid_()
                    torch.rand(noise.shape, generator=generator, out=noise)
                    torch.lt(noise, v_neg, out=v_neg)
                else:
                    torch.randn(noise.shape, generator=generator, out=noise)
                    v_neg.add_(noise)
                torch.addmm(b, v_neg, W.t(), out=h_neg).sigmoid_()
                _sample_into(self.chain, h_neg, generator)
            recon = torch.addmm(c, h_pos, W, out=self._vtemp[:batch])
            if bernoulli:
                recon.sigmoid_()
            error = _squared_error(v0, recon, recon)

        # Negative rows carry the sign (and 1/N vs 1/B when the chain count differs from the batch size).
        h_neg.mul_(-batch / chains)
        lr = self.sgd.learning_rate_at(self.examples_seen, self.total_examples)
        momentum = self.sgd.momentum_at(self.examples_seen)
        # velocity <- momentum·velocity + (h⁺ᵀv⁺ - h⁻ᵀv⁻)/B - decay·W;  W <- W + lr·velocity  (= sgd_step).
        self.weight_velocity.addmm_(hid.t(), vis, beta=momentum, alpha=1.0 / batch)
        if self.sgd.weight_decay:
            self.weight_velocity.add_(W, alpha=-self.sgd.weight_decay)
        W.add_(self.weight_velocity, alpha=lr)
        torch.mv(hid.t(), self._hid_weights, out=self._hid_grad)
        torch.mv(vis.t(), self._vis_weights, out=self._vis_grad)
        sgd_step(b, self._hid_grad, self.hidden_bias_velocity, lr, momentum)
        sgd_step(c, self._vis_grad, self.visible_bias_velocity, lr, momentum)
        if self.sparsity_cost:
            self._sparsity_step(v0, h_pos, lr)
        self.examples_seen += batch
        return error

    def _sparsity_step(self, v0: Tensor, h_pos: Tensor, lr: float) -> None:
        """A plain gradient step (no momentum) down beta * sum_j KL(rho || q_j), q_j the batch mean of h_j.

        -d/dq KL(rho || q) = rho / q - (1 - rho) / (1 - q); through q_j = mean_n sigmoid(a_nj) this gives
        s_nj = h_nj (1 - h_nj) g_j / B per example, hence db = sum_n s_n and dW = s^T v0.
        """
        s = h_pos * (1 - h_pos) * sparsity_pull(h_pos, self.sparsity_target, self.sparsity_cost)
        self.rbm.weight.addmm_(s.t(), v0, alpha=lr)
        self.rbm.hidden_bias.add_(s.sum(dim=0), alpha=lr)

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, Tensor]:
        """Copies of everything an exact resume needs besides the RBM's own ``state_dict`` and the generator:
        the three momentum buffers, the persistent chain ((0, H) when there is none) and ``examples_seen``."""
        H = self.rbm.n_hidden
        chain = self.chain if self.chain is not None else self.rbm.hidden_bias.new_empty(0, H)
        return {
            "weight_velocity": self.weight_velocity.clone(),
            "hidden_bias_velocity": self.hidden_bias_velocity.clone(),
            "visible_bias_velocity": self.visible_bias_velocity.clone(),
            "chain": chain.detach().clone(),
            "examples_seen": torch.tensor(self.examples_seen, dtype=torch.int64),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore a :meth:`state_dict` of a trainer for an RBM of the same shape.

        Raises:
            UnitlensError: keys or shapes do not match this trainer.
        """
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise UnitlensError(f"CD trainer state is missing {missing}")
        for key in ("weight_velocity", "hidden_bias_velocity", "visible_bias_velocity"):
            own = getattr(self, key)
            if state[key].shape != own.shape:
                raise UnitlensError(
                    f"CD trainer state {key!r} has shape {tuple(state[key].shape)}, "
                    f"expected {tuple(own.shape)}"
                )
            own.copy_(state[key])
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
        self.examples_seen = int(state["examples_seen"])


def _sample_into(out: Tensor, probs: Tensor, generator: torch.Generator) -> Tensor:
    """Fill ``out`` with a {0, 1} sample of ``probs`` (same shape): uniform draws compared in place."""
    torch.rand(out.shape, generator=generator, out=out)
    return torch.lt(out, probs, out=out)


def _squared_error(x: Tensor, y: Tensor, work: Tensor) -> float:
    """Σ (x - y)² over pixels, averaged over rows; ``work`` (same shape) may alias ``y``."""
    return float(torch.sub(x, y, out=work).square_().sum()) / x.shape[0]
