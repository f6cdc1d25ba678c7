"""Restricted Boltzmann Machine: binary hidden units, Bernoulli or unit-variance Gaussian visible units.

Energy of a joint state (v, h), with weights W (hidden, visible), hidden biases b and visible biases c:

    bernoulli:  E(v, h) = -c·v - b·h - h·Wv
    gaussian:   E(v, h) = ||v - c||² / 2 - b·h - h·Wv       (unit variance: p(v|h) = N(c + Wᵀh, I))

Both share p(h_j = 1 | v) = sigmoid(b_j + W_j·v); the visible conditional is sigmoid(c + Wᵀh) (Bernoulli) or
the Gaussian with mean c + Wᵀh. Summing out the hidden units gives the free energy

    F(v) = -c·v - Σ_j softplus(b_j + W_j·v)                 (bernoulli)
    F(v) = ||v - c||² / 2 - Σ_j softplus(b_j + W_j·v)       (gaussian)

so that p(v) = exp(-F(v)) / Z.

Every sampler takes an explicit ``torch.Generator``. A Bernoulli sample is drawn by comparing a uniform draw
with the probability (u < p, :func:`~unitlens.models.sampling.sample_bernoulli`): on CPU this is about 4x
faster than ``torch.bernoulli``.

References:
    G. Hinton, A Practical Guide to Training Restricted Boltzmann Machines, UTML TR 2010-003.
    Y. Bengio, Learning Deep Architectures for AI, Foundations and Trends in ML 2(1), 2009, section 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unitlens.errors import UnitlensError
from unitlens.models.configs import (
    DTYPES,
    ConfiguredLayer,
    as_config,
    check_choice,
    check_field_types,
    check_positive,
    dtype_name,
)
from unitlens.models.sampling import sample_bernoulli

VISIBLE_TYPES = ("bernoulli", "gaussian")

# Standard deviation of the initial weights (Hinton's guide, section 8: N(0, 0.01²)).
INIT_WEIGHT_STD = 0.01
# Data means are clamped away from 0 and 1 before the logit, so that always-off pixels (MNIST's borders)
# get a large negative bias rather than -inf.
_MEAN_CLAMP = 1e-3


@dataclass(frozen=True)
class RBMConfig:
    """Everything that defines an RBM but its weights; :meth:`RBM.config` is its JSON-able dict.

    Attributes:
        n_visible: visible units V.
        n_hidden: binary hidden units H.
        visible: ``bernoulli`` (inputs in [0, 1], the default: MNIST) or ``gaussian`` (real inputs with unit
            variance: standardise the data first).
        dtype: the parameters' dtype, ``float32`` (the default) or ``float64`` (about 2x slower). Configs
            written before this field existed read as float32, the dtype those models had.
    """

    n_visible: int
    n_hidden: int
    visible: str = "bernoulli"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_field_types(self)
        check_positive(self, "n_visible", "n_hidden")
        check_choice(self, "visible", VISIBLE_TYPES)
        check_choice(self, "dtype", tuple(DTYPES))

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` as a ``torch.dtype``."""
        return DTYPES[self.dtype]


class RBM(ConfiguredLayer[RBMConfig], nn.Module):
    """An RBM whose weight matrix is stored (hidden, visible), like ``nn.Linear``: row j is unit j's filter.

    Args:
        n_visible: number of visible units V.
        n_hidden: number of binary hidden units H.
        visible: ``"bernoulli"`` (inputs in [0, 1]) or ``"gaussian"`` (real inputs, unit variance: standardise
            the data first).
        generator: draws the initial weights. ``None`` uses a fresh generator seeded 0, so construction is
            always reproducible (pass distinct generators, or one shared generator, for distinct layers).
        dtype: parameter dtype, torch.float32 (the default) or torch.float64 (about 2x slower).
        device: parameter device.

    Attributes:
        cfg: the :class:`RBMConfig` (``n_visible``, ``n_hidden`` and ``visible`` read from it).
        weight: (H, V) parameter, initialised N(0, 0.01²).
        hidden_bias: (H,) parameter b, zeros.
        visible_bias: (V,) parameter c, zeros (see :meth:`set_visible_bias_from_mean`).
    """

    weight: nn.Parameter
    hidden_bias: nn.Parameter
    visible_bias: nn.Parameter

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: str = "bernoulli",
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self._cfg = RBMConfig(n_visible, n_hidden, visible, dtype_name(dtype))
        if generator is None:
            generator = torch.Generator(device=device if device is not None else "cpu").manual_seed(0)
        weight = torch.randn(n_hidden, n_visible, generator=generator, dtype=dtype, device=device)
        self.weight = nn.Parameter(weight.mul_(INIT_WEIGHT_STD))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden, dtype=dtype, device=device))
        self.visible_bias = nn.Parameter(torch.zeros(n_visible, dtype=dtype, device=device))

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, visible={self.visible!r}"

    # ------------------------------------------------------------------ configuration

    @property
    def visible(self) -> str:
        """The visible units' type, ``bernoulli`` or ``gaussian``."""
        return self._cfg.visible

    @classmethod
    def from_config(
        cls,
        config: RBMConfig | dict[str, Any],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> RBM:
        """A freshly initialised RBM with the architecture and dtype of ``config`` (load weights separately).

        Args:
            config: an :class:`RBMConfig` or its dict (:meth:`config`); a dict without ``dtype`` is float32.
            generator, device: as for the constructor.

        Raises:
            UnitlensError: a field is missing, unknown or invalid.
        """
        cfg = as_config(RBMConfig, config, where="RBM config")
        return cls(
            cfg.n_visible,
            cfg.n_hidden,
            cfg.visible,
            generator=generator,
            dtype=cfg.torch_dtype,
            device=device,
        )

    @torch.no_grad()
    def set_visible_bias_from_mean(self, mean: Tensor) -> None:
        """Initialise the visible biases from the training data's mean (Hinton's guide, section 8).

        Bernoulli units get logit(p) with p clamped to [1e-3, 1 - 1e-3], so that with zero weights the model's
        visible marginals equal the data's; Gaussian units get the mean itself.

        Args:
            mean: (V,) mean of the training inputs.
        """
        if mean.shape != (self.n_visible,):
            raise UnitlensError(
                f"visible mean must have shape ({self.n_visible},) for this RBM, got {tuple(mean.shape)}"
            )
        mean = mean.to(self.visible_bias)
        if self.visible == "bernoulli":
            mean = torch.logit(mean.clamp(_MEAN_CLAMP, 1 - _MEAN_CLAMP))
        self.visible_bias.copy_(mean)

    # ------------------------------------------------------------------ conditionals

    def _check_width(self, x: Tensor, width: int, what: str) -> None:
        if x.ndim != 2 or x.shape[1] != width:
            raise UnitlensError(f"RBM expects {what} of shape (batch, {width}), got {tuple(x.shape)}")

    def hidden_preactivation(self, v: Tensor) -> Tensor:
        """(B, V) visible states -> (B, H) hidden inputs b + Wv (pre-sigmoid)."""
        self._check_width(v, self.n_visible, "visible states")
        return torch.addmm(self.hidden_bias, v, self.weight.t())

    def hidden_probs(self, v: Tensor) -> Tensor:
        """(B, V) -> (B, H) p(h = 1 | v) = sigmoid(b + Wv)."""
        return torch.sigmoid(self.hidden_preactivation(v))

    def sample_hidden(self, v: Tensor, generator: torch.Generator) -> Tensor:
        """(B, V) -> (B, H) binary sample of h given v, in {0, 1} with v's floating dtype."""
        return sample_bernoulli(self.hidden_probs(v).detach(), generator)

    def visible_preactivation(self, h: Tensor) -> Tensor:
        """(B, H) hidden states -> (B, V) visible inputs c + Wᵀh."""
        self._check_width(h, self.n_hidden, "hidden states")
        return torch.addmm(self.visible_bias, h, self.weight)

    def visible_mean(self, h: Tensor) -> Tensor:
        """(B, H) -> (B, V) E[v | h]: sigmoid(c + Wᵀh) (bernoulli) or c + Wᵀh (gaussian)."""
        a = self.visible_preactivation(h)
        return torch.sigmoid(a) if self.visible == "bernoulli" else a

    def sample_visible(self, h: Tensor, generator: torch.Generator) -> Tensor:
        """(B, H) -> (B, V) sample of v given h: Bernoulli {0, 1}, or the mean plus N(0, 1) noise."""
        mean = self.visible_mean(h).detach()
        if self.visible == "bernoulli":
            return sample_bernoulli(mean, generator)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return noise.add_(mean)

    def gibbs_step(self, v: Tensor, generator: torch.Generator) -> Tensor:
        """One block Gibbs step v -> h ~ p(h|v) -> v' ~ p(v|h); (B, V) -> (B, V)."""
        return self.sample_visible(self.sample_hidden(v, generator), generator)

    def reconstruct(self, v: Tensor) -> Tensor:
        """Deterministic mean-field up-down pass (B, V) -> (B, V): visible_mean(hidden_probs(v))."""
        return self.visible_mean(self.hidden_probs(v))

    # ------------------------------------------------------------------ energies

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h) of each joint state; (B, V), (B, H) -> (B,)."""
        self._check_width(v, self.n_visible, "visible states")
        self._check_width(h, self.n_hidden, "hidden states")
        interaction = (v @ self.weight.t()).mul(h).sum(dim=1)  # h·Wv
        hidden_term = h @ self.hidden_bias
        if self.visible == "bernoulli":
            visible_term = -(v @ self.visible_bias)
        else:
            visible_term = 0.5 * (v - self.visible_bias).square().sum(dim=1)
        return visible_term - hidden_term - interaction

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -log Σ_h exp(-E(v, h)) of each visible state; (B, V) -> (B,).

        The hidden sum factorises: Σ_h exp(h·(b + Wv)) = Π_j (1 + exp(b_j + W_j·v)), hence the softplus.
        """
        hidden_term = F.softplus(self.hidden_preactivation(v)).sum(dim=1)
        if self.visible == "bernoulli":
            return -(v @ self.visible_bias) - hidden_term
        return 0.5 * (v - self.visible_bias).square().sum(dim=1) - hidden_term
