"""A scikit-learn estimator around :class:`unitlens.models.rbm.RBM` and its CD / PCD trainer."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from unitlens.errors import UnitlensError
from unitlens.estimators._base import (
    LayerwiseEstimator,
    check_choice,
    check_int,
    seed_from,
    to_numpy,
)
from unitlens.models import rbm as rbm_model
from unitlens.models.sampling import sample_bernoulli
from unitlens.training.greedy import LayerwiseConfig
from unitlens.training.likelihood import (
    MAX_ENUMERATED_UNITS,
    ais_log_partition,
    log_likelihood,
    log_partition_exact,
    pseudo_log_likelihood,
)

LIKELIHOODS = ("auto", "pseudo", "ais", "exact")
_MEAN_CLAMP = 1e-3  # AIS base-rate model: data means clamped away from 0 and 1 before the logit


class RBM(LayerwiseEstimator):
    """Restricted Boltzmann Machine (binary hidden units; Bernoulli or Gaussian visible units), numpy in and
    out, trained with CD-k or persistent CD by :class:`unitlens.training.contrastive_divergence.CDTrainer`.

    Parameters shared with ``sklearn.neural_network.BernoulliRBM`` have its names and defaults.

    Args:
        n_components: number of binary hidden units H.
        learning_rate: SGD step size (per-example gradients are averaged over the batch, as in
            ``BernoulliRBM``).
        batch_size: examples per update.
        n_iter: passes over the training data in ``fit``.
        random_state: None, an int or a ``numpy.random.RandomState``; turned into torch generator seeds with
            ``sklearn.utils.check_random_state`` (one for the initial weights, one for training; later
            ``gibbs`` and ``sample`` calls draw theirs from the same RandomState, ``random_state_``).
        visible: ``"auto"`` (Bernoulli when every value of the training data lies in [0, 1], binary or
            grey levels; Gaussian otherwise), ``"bernoulli"`` or ``"gaussian"``. The choice is the fitted
            attribute ``visible_units_`` and an INFO line on the ``unitlens.estimators`` logger.
        standardize: for Gaussian visible units (unit variance), standardise each feature with the training
            data's mean and standard deviation (``mean_``, ``scale_``); every method then standardises its
            input and returns visible values in the data's units.
        shuffle: visit the training rows in a fresh random order on each pass (``BernoulliRBM`` does not).
        cd_k: Gibbs steps of the negative phase.
        persistent: persistent CD (Tieleman 2008; ``BernoulliRBM``'s algorithm) instead of CD-k.
        momentum: SGD momentum, constant (``BernoulliRBM`` has none: 0.0).
        weight_decay: L2 penalty on the weights.
        likelihood: what :meth:`score_samples` returns. ``"pseudo"``: the pseudo-log-likelihood, the exact
            sum Σ_i log p(v_i | v_-i) over all features (Bernoulli units); ``"ais"``: log p(v) with log Z
            estimated by annealed importance sampling (Bernoulli units); ``"exact"``: log p(v) with log Z by
            enumeration
            (at most 24 units in the smaller layer; for Gaussian units, 2^H hidden states, H <= 24);
            ``"auto"``: ``"pseudo"`` for Bernoulli units and ``"exact"`` for Gaussian ones (whose
            pseudo-likelihood has no closed form).
        ais_chains, ais_betas: the AIS estimate's chains and inverse temperatures.
        dtype: ``"float32"`` (default) or ``"float64"``, the model's parameters; inputs are float64 numpy,
            outputs float64 numpy.
        device: torch device of the model (``"cpu"``, ``"cuda"``...).
        verbose: print the visible-unit choice and each pass's reconstruction error.

    Fitted attributes:
        model_: the :class:`unitlens.models.rbm.RBM` (weights (H, V), usable with the rest of unitlens).
        components_: (n_components, n_features) weights, a float64 copy (``BernoulliRBM``'s orientation).
        intercept_hidden_: (n_components,) hidden biases b.
        intercept_visible_: (n_features,) visible biases c.
        visible_units_: ``"bernoulli"`` or ``"gaussian"``.
        mean_: (n_features,) mean of the first training data (used for standardisation and as the AIS
            base-rate model).
        scale_: (n_features,) standard deviations used to standardise, or None (no standardisation).
        n_features_in_, feature_names_in_: as in scikit-learn.
        loss_curves_: ``[[reconstruction error of each pass]]`` (one list: one layer).
        random_state_: the RandomState ``gibbs`` and ``sample`` draw their seeds from.

    Differences from ``BernoulliRBM``: the visible biases start at the logit of the data mean (Hinton's
    guide) rather than 0; ``score_samples`` is deterministic: the *sum* over all n_features terms of the
    pseudo-likelihood, where ``BernoulliRBM.score_samples`` returns ``n_features * log p(v_i | v_-i)`` for one
    feature i drawn at random per sample, an unbiased one-flip estimate of the same sum: the mean over i of
    its values equals ours (scikit-learn's figure is scaled by the number of features).
    """

    def __init__(
        self,
        n_components: int = 256,
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
        likelihood: str = "auto",
        ais_chains: int = 100,
        ais_betas: int = 10_000,
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
        self.likelihood = likelihood
        self.ais_chains = ais_chains
        self.ais_betas = ais_betas
        self.dtype = dtype
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ hooks

    def _sizes(self) -> tuple[int, ...]:
        return (check_int("RBM", "n_components", self.n_components, 1),)

    def _check_extra_params(self) -> None:
        check_int("RBM", "cd_k", self.cd_k, 1)
        check_choice("RBM", "likelihood", self.likelihood, LIKELIHOODS)
        check_int("RBM", "ais_chains", self.ais_chains, 1)
        check_int("RBM", "ais_betas", self.ais_betas, 2)

    def _layerwise_config(self, total_examples: int) -> LayerwiseConfig:
        return LayerwiseConfig(
            examples_per_layer=total_examples, cd_k=int(self.cd_k), persistent=bool(self.persistent)
        )

    def _build(self, n_features: int, generator: torch.Generator) -> nn.Module:
        return rbm_model.RBM(
            n_features,
            self._sizes()[0],
            self.visible_units_,
            generator=generator,
            dtype=self._torch_dtype,
            device=self.device,
        )

    def _layers(self) -> list[nn.Module]:
        return [self.model_]

    def _layer_input(self, z: Tensor, layer: int) -> Tensor:
        return z if layer == 1 else self._rbm.hidden_probs(z)

    @property
    def _rbm(self) -> rbm_model.RBM:
        model = self.model_
        assert isinstance(model, rbm_model.RBM)
        return model

    # ------------------------------------------------------------------ fitted parameters

    @property
    def components_(self) -> np.ndarray:
        """(n_components, n_features) weights W, row j unit j's filter (a float64 copy)."""
        return to_numpy(self._rbm.weight)

    @property
    def intercept_hidden_(self) -> np.ndarray:
        """(n_components,) hidden biases b (a float64 copy)."""
        return to_numpy(self._rbm.hidden_bias)

    @property
    def intercept_visible_(self) -> np.ndarray:
        """(n_features,) visible biases c, in model space (standardised units when ``scale_`` is set)."""
        return to_numpy(self._rbm.visible_bias)

    # ------------------------------------------------------------------ inference

    def free_energy(self, X: Any) -> np.ndarray:
        """F(v) = -log Σ_h exp(-E(v, h)) of each row, in model space (standardised for Gaussian units).

        Args:
            X: (n_samples, n_features).

        Returns:
            (n_samples,) float64 (computed in the model's dtype).
        """
        z = self._model_input(X)
        with torch.no_grad():
            return to_numpy(self._rbm.free_energy(z))

    def _method(self) -> str:
        if self.likelihood != "auto":
            return check_choice("RBM", "likelihood", self.likelihood, LIKELIHOODS)
        return "pseudo" if self.visible_units_ == "bernoulli" else "exact"

    def log_partition(self, method: str = "ais") -> tuple[float, float]:
        """log Z of the fitted model (in model space), with its standard error.

        Args:
            method: ``"ais"`` (Bernoulli units; ``ais_chains`` x ``ais_betas``, seeded from ``random_state``
                afresh on each call, so an int gives the same estimate every time) or ``"exact"``
                (enumeration; standard error 0).

        Raises:
            UnitlensError: the method does not apply to this model (Gaussian units with AIS, too many units
                to enumerate).
        """
        check_is_fitted(self)
        check_choice("RBM", "method", method, ("ais", "exact"))
        rbm = self._rbm
        if method == "exact":
            if rbm.visible == "gaussian" and rbm.n_hidden > MAX_ENUMERATED_UNITS:
                raise UnitlensError(
                    f"RBM: the exact log Z of a Gaussian RBM enumerates 2^{rbm.n_hidden} hidden states; "
                    f"n_components <= {MAX_ENUMERATED_UNITS} is needed (there is no AIS or pseudo-likelihood "
                    "for Gaussian visible units in unitlens)"
                )
            return log_partition_exact(rbm), 0.0
        if rbm.visible != "bernoulli":
            raise UnitlensError(
                "RBM: AIS needs Bernoulli visible units; use likelihood='exact' (n_components <= 24) for "
                "Gaussian ones"
            )
        rng = check_random_state(self.random_state)
        generator = torch.Generator(device=self.device).manual_seed(seed_from(rng))
        p = torch.as_tensor(self.mean_, dtype=rbm.weight.dtype, device=rbm.weight.device)
        p = p.clamp(_MEAN_CLAMP, 1 - _MEAN_CLAMP)
        return ais_log_partition(
            rbm,
            n_chains=int(self.ais_chains),
            n_betas=int(self.ais_betas),
            generator=generator,
            base_visible_bias=torch.log(p) - torch.log1p(-p),
        )

    def score_samples(self, X: Any) -> np.ndarray:
        """Per-sample score chosen by ``likelihood`` (see the class docstring); higher is better.

        ``"pseudo"`` is deterministic (every feature flipped in turn; n_samples x n_features x n_components
        terms). For Gaussian units with ``"exact"`` the value is the log density of X in the data's units:
        the standardised density minus Σ log ``scale_``.

        Args:
            X: (n_samples, n_features).

        Returns:
            (n_samples,) float64.

        Raises:
            UnitlensError: the likelihood does not apply to this model (see :meth:`log_partition`).
        """
        z = self._model_input(X)
        method = self._method()
        rbm = self._rbm
        with torch.no_grad():
            if method == "pseudo":
                if rbm.visible != "bernoulli":
                    raise UnitlensError(
                        "RBM: the pseudo-likelihood needs Bernoulli visible units; use likelihood='exact' "
                        "(n_components <= 24) or 'auto' for Gaussian ones"
                    )
                return to_numpy(pseudo_log_likelihood(rbm, z))
            log_z, _ = self.log_partition(method)
            out = to_numpy(log_likelihood(rbm, z, log_z))
        if self.scale_ is not None:
            out = out - float(np.log(self.scale_).sum())
        return out

    # ------------------------------------------------------------------ sampling

    def gibbs(self, v: Any) -> np.ndarray:
        """One block Gibbs step v -> h ~ p(h | v) -> v' ~ p(v | h), like ``BernoulliRBM.gibbs``.

        Args:
            v: (n_samples, n_features) visible states to start from.

        Returns:
            (n_samples, n_features) float64 visible samples: 0/1 for Bernoulli units, Gaussian draws in the
            data's units otherwise. The seed comes from ``random_state_``, which advances with each call.
        """
        z = self._model_input(v)
        with torch.no_grad():
            return self._from_model(self._rbm.gibbs_step(z, self._sampling_generator()))

    def sample(self, n_samples: int = 1, *, n_steps: int = 1000, random_state: Any = None) -> np.ndarray:
        """Samples of the model's distribution: ``n_samples`` independent Gibbs chains run ``n_steps``
        steps, started from the visible biases alone (Bernoulli(sigmoid(c)) or N(c, 1)).

        Args:
            n_samples: chains (rows returned).
            n_steps: Gibbs steps per chain.
            random_state: seeds this call; None draws the seed from ``random_state_``.

        Returns:
            (n_samples, n_features) float64 final visible states, in the data's units.
        """
        check_is_fitted(self)
        n_samples = check_int("RBM.sample", "n_samples", n_samples, 1)
        n_steps = check_int("RBM.sample", "n_steps", n_steps, 0)
        generator = self._sampling_generator(random_state)
        rbm = self._rbm
        with torch.no_grad():
            c = rbm.visible_bias.detach().expand(n_samples, -1)
            if rbm.visible == "bernoulli":
                v = sample_bernoulli(torch.sigmoid(c), generator)
            else:
                noise = torch.randn(c.shape, generator=generator, dtype=c.dtype, device=c.device)
                v = noise.add_(c)
            for _ in range(n_steps):
                v = rbm.gibbs_step(v, generator)
        return self._from_model(v)
