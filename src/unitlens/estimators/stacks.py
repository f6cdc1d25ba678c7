"""scikit-learn estimators around the two stacks: :class:`unitlens.models.dbn.DBN` and
:class:`unitlens.models.sdae.SDAE`, pre-trained greedily (one layer after the other, bottom first).

``n_components`` is the tuple of hidden layer sizes, bottom first (an int means one hidden layer):
``transform`` returns the top layer, so the output width is ``n_components[-1]``. In a grid search,
give it tuples: ``{"n_components": [(64,), (64, 32)]}``.
"""

from __future__ import annotations

import abc
import numbers
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from unitlens.estimators._base import (
    EstimatorInputError,
    LayerwiseEstimator,
    check_choice,
    check_int,
    to_numpy,
)
from unitlens.models import dbn as dbn_model
from unitlens.models import sdae as sdae_model
from unitlens.models.dae import CORRUPTIONS, Corruption, default_corruption
from unitlens.models.sampling import sample_bernoulli
from unitlens.models.stack import LayerStack
from unitlens.training.greedy import LayerwiseConfig


class _StackEstimator(LayerwiseEstimator, abc.ABC):
    """What DBN and SDAE share: layer sizes, the up-pass, the per-layer parameters, the reconstruction score.

    Fitted attributes (besides the base's): ``components_``, ``intercept_hidden_`` and
    ``intercept_visible_``, lists with one float64 array per layer, bottom first ((H_k, V_k), (H_k,),
    (V_k,)); ``loss_curves_[k - 1]``: layer k's training loss after each pass.
    """

    n_components: Any

    def _sizes(self) -> tuple[int, ...]:
        name = type(self).__name__
        sizes = self.n_components
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        if not isinstance(sizes, tuple | list) or not sizes:
            raise EstimatorInputError(
                f"{name}: n_components must be a layer size or a non-empty tuple of layer sizes, bottom "
                f"first, got {self.n_components!r}"
            )
        return tuple(check_int(name, "n_components[i]", s, 1) for s in sizes)

    @property
    def _stack(self) -> LayerStack:
        model = self.model_
        assert isinstance(model, LayerStack)
        return model

    def _layers(self) -> list[nn.Module]:
        return list(self._stack.layers)

    def _layer_input(self, z: Tensor, layer: int) -> Tensor:
        return self._stack.up_pass(z, layer - 1)

    @abc.abstractmethod
    def _down_mean(self, h: Tensor, layer: int) -> Tensor:
        """Layer ``layer``'s deterministic reconstruction of its inputs from its units' values ``h``."""

    @property
    def components_(self) -> list[np.ndarray]:
        """One (H_k, V_k) weight matrix per layer, bottom first (float64 copies)."""
        return [to_numpy(layer.weight) for layer in self._layers()]  # type: ignore[arg-type]

    @property
    def intercept_hidden_(self) -> list[np.ndarray]:
        """One (H_k,) hidden-bias vector per layer, bottom first."""
        return [to_numpy(layer.hidden_bias) for layer in self._layers()]  # type: ignore[arg-type]

    @property
    def intercept_visible_(self) -> list[np.ndarray]:
        """One (V_k,) visible-bias vector per layer, bottom first (layer 1's in model space)."""
        return [to_numpy(layer.visible_bias) for layer in self._layers()]  # type: ignore[arg-type]

    def reconstruct(self, X: Any) -> np.ndarray:
        """The deterministic up-and-down pass: mean-field up to the top layer, then each layer's
        reconstruction (visible means, decoders) down to the input.

        Args:
            X: (n_samples, n_features).

        Returns:
            (n_samples, n_features) float64, in the data's units.
        """
        z = self._model_input(X)
        with torch.no_grad():
            h = self._stack.up_pass(z, len(self._layers()))
            for k in range(len(self._layers()), 0, -1):
                h = self._down_mean(h, k)
        return self._from_model(h)

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the squared reconstruction error of each row, Σ_i (x_i - x̂_i)², with x̂ from
        :meth:`reconstruct`, in the data's units (higher is better).

        This is not a likelihood: neither a DBN's nor an SDAE's log-likelihood is tractable, and unitlens
        has no bound for a stack (the RBM estimator's ``score_samples`` gives pseudo-likelihoods and AIS).

        Returns:
            (n_samples,) float64.
        """
        Xv = self._validate(X, reset=False)
        return -np.square(Xv - self.reconstruct(Xv)).sum(axis=1)


class DBN(_StackEstimator):
    """Deep Belief Network: RBMs trained greedily with CD-k or PCD, numpy in and out.

    The parameters are :class:`~unitlens.estimators.RBM`'s (the same defaults, applied to every layer)
    but for ``n_components``, here a tuple of hidden layer sizes bottom first (an int: one layer) and
    ``likelihood``, which a DBN has not (its ``score_samples`` is minus the reconstruction error).
    Layer 1 has the visible units ``visible`` selects (``visible_units_``, with ``mean_``/``scale_`` for
    standardised Gaussian inputs); the layers above are binary-binary RBMs trained on the mean-field codes of
    the layers below.

    Fitted attributes: ``model_`` (a :class:`unitlens.models.dbn.DBN`), ``components_``,
    ``intercept_hidden_``, ``intercept_visible_`` (lists, one entry per layer, bottom first),
    ``visible_units_``, ``mean_``, ``scale_``, ``n_features_in_``, ``loss_curves_``, ``random_state_``.

    ``sample`` and ``gibbs`` use the DBN's generative model: Gibbs sampling in the top RBM, then the directed
    top-down pass :meth:`unitlens.models.dbn.DBN.down_pass` (intermediate layers sampled), which returns the
    input's visible means (as the paper shows them), not binary samples.
    """

    def __init__(
        self,
        n_components: int | tuple[int, ...] = (256, 256),
        *,
        learning_rate: float = 0.1,
        batch_size: int = 10,
        n_iter: int = 10,
        random_state: Any = None,
        visible: str = "auto",
        standardize: bool = True,
        shuffle: bool = True,
        cd_k: int = 1,
        persistent: bool = False,
        momentum: float = 0.5,
        weight_decay: float = 0.0,
        dtype: str = "float32",
        device: str = "cpu",
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.random_state = random_state
        self.visible = visible
        self.standardize = standardize
        self.shuffle = shuffle
        self.cd_k = cd_k
        self.persistent = persistent
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.dtype = dtype
        self.device = device
        self.verbose = verbose

    def _check_extra_params(self) -> None:
        check_int("DBN", "cd_k", self.cd_k, 1)

    def _layerwise_config(self, total_examples: int) -> LayerwiseConfig:
        return LayerwiseConfig(
            examples_per_layer=total_examples, cd_k=int(self.cd_k), persistent=bool(self.persistent)
        )

    def _build(self, n_features: int, generator: torch.Generator) -> nn.Module:
        return dbn_model.DBN.build(
            [n_features, *self._sizes()],
            self.visible_units_,
            generator=generator,
            dtype=self._torch_dtype,
            device=self.device,
        )

    @property
    def _dbn(self) -> dbn_model.DBN:
        model = self.model_
        assert isinstance(model, dbn_model.DBN)
        return model

    def _down_mean(self, h: Tensor, layer: int) -> Tensor:
        return self._dbn.rbm(layer).visible_mean(h)

    def _top_down(self, v_top: Tensor, h_top: Tensor, generator: torch.Generator) -> np.ndarray:
        """From a state (v_top, h_top) of the top RBM to the input's visible means, in the data's units."""
        dbn, top = self._dbn, self._dbn.n_layers
        x = dbn.down_pass(h_top, 1, generator) if top == 1 else dbn.down_pass(v_top, top - 1, generator)
        return self._from_model(x)

    def gibbs(self, v: Any) -> np.ndarray:
        """One step of the DBN's generative chain started from the data.

        ``v`` is taken up to the top RBM's visible layer by the mean-field up-pass; the top RBM makes one
        block Gibbs step (h ~ p(h | codes), then, with two layers or more, codes' ~ p(codes | h)); the result
        is taken down to the input by the directed top-down pass.

        Args:
            v: (n_samples, n_features) inputs.

        Returns:
            (n_samples, n_features) float64 input visible means, in the data's units. The seed comes from
            ``random_state_``, which advances with each call.
        """
        z = self._model_input(v)
        generator = self._sampling_generator()
        dbn = self._dbn
        top = dbn.rbm(dbn.n_layers)
        with torch.no_grad():
            codes = dbn.up_pass(z, dbn.n_layers - 1)
            h = top.sample_hidden(codes, generator)
            v_top = top.sample_visible(h, generator)
            return self._top_down(v_top, h, generator)

    def sample(self, n_samples: int = 1, *, n_steps: int = 1000, random_state: Any = None) -> np.ndarray:
        """Samples of the DBN's generative model (Hinton, Osindero & Teh 2006).

        ``n_samples`` chains in the top RBM start from its visible biases alone (Bernoulli(sigmoid(c)), or
        N(c, 1) for a one-layer DBN with Gaussian inputs), run ``n_steps`` block Gibbs steps, and each final
        state is taken down to the input by the directed top-down pass.

        Args:
            n_samples: chains (rows returned).
            n_steps: Gibbs steps in the top RBM.
            random_state: seeds this call; None draws the seed from ``random_state_``.

        Returns:
            (n_samples, n_features) float64 input visible means, in the data's units.
        """
        check_is_fitted(self)
        n_samples = check_int("DBN.sample", "n_samples", n_samples, 1)
        n_steps = check_int("DBN.sample", "n_steps", n_steps, 0)
        generator = self._sampling_generator(random_state)
        top = self._dbn.rbm(self._dbn.n_layers)
        with torch.no_grad():
            c = top.visible_bias.detach().expand(n_samples, -1)
            if top.visible == "bernoulli":
                v = sample_bernoulli(torch.sigmoid(c), generator)
            else:
                v = torch.randn(c.shape, generator=generator, dtype=c.dtype, device=c.device).add_(c)
            for _ in range(n_steps):
                v = top.gibbs_step(v, generator)
            h = top.sample_hidden(v, generator)
            return self._top_down(v, h, generator)


class SDAE(_StackEstimator):
    """Stacked denoising auto-encoder: tied-weight DAEs trained greedily by
    :class:`unitlens.training.denoising.DenoisingTrainer`, each on the clean codes of the layer below.

    Args:
        n_components: hidden layer sizes, bottom first (an int: one layer).
        learning_rate, batch_size, n_iter, random_state, visible, standardize, shuffle, momentum,
            weight_decay, dtype, device, verbose: as for :class:`~unitlens.estimators.RBM`. ``visible``
            picks layer 1's decoder: ``"bernoulli"`` a sigmoid decoder with cross-entropy ([0, 1] data),
            ``"gaussian"`` a linear decoder with squared error (real data, standardised when
            ``standardize``); ``"auto"`` chooses from the data's range (``visible_units_``).
        corruption: ``"auto"`` (salt-and-pepper for [0, 1] data, zero-masking for real data: the project's
            defaults), ``"salt_pepper"``, ``"zero"`` or ``"none"``. Upper layers corrupt their [0, 1] codes
            with the same kind and level (salt 1, pepper 0).
        corruption_level: fraction of each example's inputs corrupted, in [0, 1].

    Fitted attributes: ``model_`` (a :class:`unitlens.models.sdae.SDAE`), ``components_``,
    ``intercept_hidden_``, ``intercept_visible_`` (lists, one entry per layer, bottom first),
    ``visible_units_``, ``mean_``, ``scale_``, ``n_features_in_``, ``loss_curves_`` (each layer's denoising
    loss per pass), ``random_state_``.

    An SDAE is not a generative model, it defines no distribution over its inputs: it has no ``sample``
    and no ``gibbs`` method. ``score_samples`` is minus the reconstruction error of the clean input.
    """

    def __init__(
        self,
        n_components: int | tuple[int, ...] = (256, 256),
        *,
        learning_rate: float = 0.1,
        batch_size: int = 10,
        n_iter: int = 10,
        random_state: Any = None,
        visible: str = "auto",
        standardize: bool = True,
        shuffle: bool = True,
        corruption: str = "auto",
        corruption_level: float = 0.25,
        momentum: float = 0.5,
        weight_decay: float = 0.0,
        dtype: str = "float32",
        device: str = "cpu",
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.random_state = random_state
        self.visible = visible
        self.standardize = standardize
        self.shuffle = shuffle
        self.corruption = corruption
        self.corruption_level = corruption_level
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.dtype = dtype
        self.device = device
        self.verbose = verbose

    def _check_extra_params(self) -> None:
        check_choice("SDAE", "corruption", self.corruption, ("auto", *CORRUPTIONS))
        level = self.corruption_level
        if not (isinstance(level, int | float) and not isinstance(level, bool) and 0.0 <= level <= 1.0):
            raise EstimatorInputError(f"SDAE: corruption_level must be a number in [0, 1], got {level!r}")

    def _corruption(self) -> Corruption:
        kind_of_data = "binary" if self.visible_units_ == "bernoulli" else "real"
        level = float(self.corruption_level)
        if self.corruption == "auto":
            return Corruption(kind=default_corruption(kind_of_data).kind, level=level)
        return Corruption(kind=self.corruption, level=level)

    def _build(self, n_features: int, generator: torch.Generator) -> nn.Module:
        return sdae_model.SDAE.build(
            [n_features, *self._sizes()],
            "sigmoid" if self.visible_units_ == "bernoulli" else "linear",
            self._corruption(),
            generator=generator,
            dtype=self._torch_dtype,
            device=self.device,
        )

    def _down_mean(self, h: Tensor, layer: int) -> Tensor:
        model = self.model_
        assert isinstance(model, sdae_model.SDAE)
        return model.dae(layer).decode(h)
