"""Training a denoising auto-encoder by stochastic gradient descent, with hand-written gradients.

For the tied-weight DAE h = sigmoid(b + W x~), x^ = s(c + W^T h), where s is the sigmoid (cross-entropy
loss) or the identity (squared-error loss), the error at the decoder's input is the same for both pairs:
delta_o = x^ - x. Backpropagating through the encoder, delta_h = (delta_o W^T) * h (1 - h), and because the
weights are shared by encoder and decoder, their gradient has two terms:

    dL/dW = h^T delta_o + delta_h^T x~,    dL/db = sum(delta_h),    dL/dc = sum(delta_o)

(batch-averaged). An optional sparsity penalty beta * sum_j KL(rho || q_j) on the hidden units' batch-mean
activations q_j adds beta / B * ((1 - rho) / (1 - q_j) - rho / q_j) to every row of delta_o W^T before the
sigmoid's derivative, so it rides on the same matrix products. The two weight terms are one matrix
product of the stacked (2B, H) [h; delta_h] with the stacked (2B, V) [delta_o; x~], accumulated straight
into the momentum buffer by ``addmm_``; the buffers are
reused across steps. The step is then five matrix products of 2 B V H multiply-adds each, and little else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.models.dae import DAE, corrupt_into
from unitlens.training.collective import SINGLE, Reducer
from unitlens.training.sgd import LayerTrainer, SGDConfig, sparsity_pull


class DenoisingTrainer(LayerTrainer):
    """Trains one DAE by minibatch SGD on corrupted inputs.

    Args:
        dae: the model, updated in place.
        sgd: learning rate, schedule, momentum and weight decay (on the weights only).
        total_examples: the training budget in examples, which the ``linear`` schedule decays over.
        sparsity_cost: beta of the sparsity penalty on the hidden units (0: off, the plain DAE). Its
            gradient joins delta_h, so it goes through the momentum update with the rest. On MNIST it turns
            the single-pixel and noise filters of a salt-and-pepper DAE into strokes (see
            docs/decisions.md).
        sparsity_target: its target mean activation rho.
        reducer: combines the updates across data-parallel processes (see ``LayerTrainer``).

    Attributes:
        velocities: the momentum buffers by parameter name (state keys ``velocity.<name>``).
        examples_seen: examples trained on so far (drives the schedule and the momentum warm-up).
    """

    what = "denoising trainer"

    def __init__(
        self,
        dae: DAE,
        sgd: SGDConfig,
        total_examples: int,
        *,
        sparsity_cost: float = 0.0,
        sparsity_target: float = 0.05,
        reducer: Reducer = SINGLE,
    ) -> None:
        super().__init__(
            dae,
            sgd,
            total_examples,
            sparsity_cost=sparsity_cost,
            sparsity_target=sparsity_target,
            reducer=reducer,
        )
        self.dae = dae
        # Work buffers for one batch size, (2B, H) for [h; delta_h] and (2B, V) for [delta_o; x~].
        self._codes = torch.empty(0)
        self._inputs = torch.empty(0)

    def _buffers(self, batch: int) -> tuple[Tensor, Tensor]:
        w = self.dae.weight
        if (
            self._codes.shape[0] != 2 * batch
            or self._codes.dtype != w.dtype
            or self._codes.device != w.device
        ):
            self._codes = torch.empty(2 * batch, self.dae.n_hidden, dtype=w.dtype, device=w.device)
            self._inputs = torch.empty(2 * batch, self.dae.n_visible, dtype=w.dtype, device=w.device)
        return self._codes, self._inputs

    @torch.no_grad()
    def step(self, x: Tensor, generator: torch.Generator) -> float:
        """Corrupt ``x`` with ``dae.corruption`` and take one SGD step on the batch.

        Args:
            x: (batch, V) clean inputs, of the model's dtype and device.
            generator: draws the corruption.

        Returns:
            The batch's mean loss before the update, as ``DAE.loss(x, x~)``.
        """
        dae = self.dae
        if x.dim() != 2 or x.shape[1] != dae.n_visible or x.shape[0] < 1:
            raise UnitlensError(
                f"DAE training batch must have shape (batch, {dae.n_visible}), got {tuple(x.shape)}"
            )
        batch = x.shape[0]
        W, b, c = dae.weight, dae.hidden_bias, dae.visible_bias
        x = x.to(dtype=W.dtype)
        codes, inputs = self._buffers(batch)
        h, delta_h = codes[:batch], codes[batch:]
        delta_o, x_tilde = inputs[:batch], inputs[batch:]

        corrupt_into(x, dae.corruption, generator, out=x_tilde)
        torch.addmm(b, x_tilde, W.t(), out=h)
        h.sigmoid_()
        a = torch.addmm(c, h, W, out=delta_o)  # decoder input; becomes delta_o in place below
        flat_x, flat_a = x.reshape(-1), a.reshape(-1)
        if dae.decoder == "sigmoid":
            loss = (F.softplus(a).sum() - torch.dot(flat_x, flat_a)).item() / batch
            a.sigmoid_()
            # delta_o holds x - x^ over the batch: the descent direction, so no sign flips later.
            torch.sub(x, a, out=delta_o)
        else:
            torch.sub(x, a, out=delta_o)
            loss = 0.5 * torch.dot(flat_a, flat_a).item() / batch
        delta_o.mul_(1.0 / batch)
        torch.mm(delta_o, W.t(), out=delta_h)
        if self.sparsity_cost:
            delta_h.add_(sparsity_pull(h, self.sparsity_target, self.sparsity_cost))
        delta_h.mul_(h).mul_(1.0 - h)

        # The weight ascent [h; delta_h]^T [delta_o; x~] is folded into the momentum buffer by sgd_step,
        # which saves writing and re-reading an (H, V) gradient.
        self._update((codes, inputs), delta_h.sum(dim=0), delta_o.sum(dim=0), batch)
        return loss
