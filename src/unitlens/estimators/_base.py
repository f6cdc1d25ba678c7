"""What the three estimators share: input checks, the visible-unit choice, numpy <-> torch, the training loop.

The loop is the greedy layer-wise one of :mod:`unitlens.training.greedy`, driven one pass at a time so that
``partial_fit`` can share it: layer k gets its trainer from :func:`~unitlens.training.greedy.make_trainer`
(CD-k or PCD for an RBM, the denoising criterion for a DAE), its visible biases from the mean of its
inputs (the mean-field codes of the layers below, as the greedy loop sets them), and is then stepped batch
by batch with one ``torch.Generator``.
"""

from __future__ import annotations

import abc
import io
import logging
import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state, gen_even_slices
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor, nn

from unitlens.atomic import write_bytes
from unitlens.errors import UnitlensError
from unitlens.models.configs import DTYPES
from unitlens.training.greedy import LayerwiseConfig, make_trainer
from unitlens.training.sgd import LayerTrainer, SGDConfig

LOG = logging.getLogger("unitlens.estimators")

VISIBLE_CHOICES = ("auto", "bernoulli", "gaussian")
_SEED_HIGH = 2**31 - 1


class EstimatorInputError(UnitlensError, ValueError):
    """Bad data or a bad parameter given to an estimator.

    A :class:`~unitlens.errors.UnitlensError` (the project's one error type) and a ``ValueError`` (what
    scikit-learn's checks and user code expect for NaN, inf and wrong shapes).
    """


def seed_from(rng: np.random.RandomState) -> int:
    """A torch seed drawn from a numpy ``RandomState`` (what ``check_random_state`` returns)."""
    return int(rng.randint(_SEED_HIGH))


def check_int(owner: str, name: str, value: object, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or an :class:`EstimatorInputError` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise EstimatorInputError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(owner: str, name: str, value: object, low: float, high: float, *, open_low: bool) -> float:
    """``value`` as a float in (low, high) (``open_low``) or [low, high), else an error naming it."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (v > low if open_low else v >= low) and v < high
    if not ok:
        bracket = "(" if open_low else "["
        raise EstimatorInputError(
            f"{owner}: {name} must be a number in {bracket}{low}, {high}), got {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


def check_choice(owner: str, name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else an error naming the parameter and the choices."""
    if not isinstance(value, str) or value not in choices:
        raise EstimatorInputError(f"{owner}: {name} must be one of {tuple(choices)}, got {value!r}")
    return value


def to_numpy(t: Tensor) -> np.ndarray:
    """A float64 numpy copy of ``t`` (any device)."""
    return np.asarray(t.detach().to("cpu", torch.float64).numpy())


class LayerwiseEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator, abc.ABC):
    """The machinery of :class:`~unitlens.estimators.RBM`, :class:`~unitlens.estimators.DBN` and
    :class:`~unitlens.estimators.SDAE`; not an estimator itself.

    A subclass stores its parameters in ``__init__`` (scikit-learn's rule: verbatim, no validation) and
    provides :meth:`_sizes`, :meth:`_build` and :meth:`_layer_input`. Parameters read here:
    ``learning_rate``, ``batch_size``, ``n_iter``, ``random_state``, ``visible``, ``standardize``,
    ``shuffle``, ``momentum``, ``weight_decay``, ``dtype``, ``device`` and ``verbose``.

    Fitted attributes set here: ``model_`` (the unitlens model), ``visible_units_``, ``mean_``, ``scale_``,
    ``n_features_in_`` (and ``feature_names_in_`` for data frames), ``loss_curves_`` and ``random_state_``.
    """

    # Set by subclasses' __init__; declared for the type checker.
    learning_rate: float
    batch_size: int
    n_iter: int
    random_state: Any
    visible: str
    standardize: bool
    shuffle: bool
    momentum: float
    weight_decay: float
    dtype: str
    device: str
    verbose: int

    model_: nn.Module
    visible_units_: str
    mean_: np.ndarray
    scale_: np.ndarray | None
    loss_curves_: list[list[float]]
    random_state_: np.random.RandomState
    _trainers: list[LayerTrainer]
    _generator: torch.Generator

    # ------------------------------------------------------------------ subclass hooks

    @abc.abstractmethod
    def _sizes(self) -> tuple[int, ...]:
        """The hidden layer sizes, bottom first, validated."""

    @abc.abstractmethod
    def _build(self, n_features: int, generator: torch.Generator) -> nn.Module:
        """A freshly initialised model for ``n_features`` inputs and ``self.visible_units_``."""

    @abc.abstractmethod
    def _layers(self) -> list[nn.Module]:
        """The fitted model's layers, bottom first."""

    @abc.abstractmethod
    def _layer_input(self, z: Tensor, layer: int) -> Tensor:
        """(n, n_features) model-space inputs -> the (n, V_layer) inputs layer ``layer`` (1-based) sees."""

    def _check_extra_params(self) -> None:
        """Validate the subclass's own parameters (called by fit and the first partial_fit)."""

    def _layerwise_config(self, total_examples: int) -> LayerwiseConfig:
        """What :func:`make_trainer` reads besides the SGD settings (CD-k and PCD for RBM layers)."""
        return LayerwiseConfig(examples_per_layer=total_examples)

    # ------------------------------------------------------------------ scikit-learn protocol

    @property
    def _n_features_out(self) -> int:
        """Output width, for ``get_feature_names_out``; an AttributeError before fitting."""
        return int(self._layers()[-1].n_hidden)  # type: ignore[arg-type]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    def fit(self, X: Any, y: Any = None) -> LayerwiseEstimator:
        """Train the model on ``X`` from a fresh start: ``n_iter`` passes over the data for each layer in
        turn, bottom first (greedy layer-wise training).

        Args:
            X: (n_samples, n_features) training data.
            y: ignored (unsupervised).

        Returns:
            ``self``.
        """
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)  # a refit forgets everything, so fitting twice gives the same model
        Xv = self._validate(X, reset=True)
        self._check_params()
        n_iter = check_int(type(self).__name__, "n_iter", self.n_iter, 1)
        z = self._start(Xv, total_examples=Xv.shape[0] * n_iter)
        for k in range(1, len(self._layers()) + 1):
            codes = self._layer_input(z, k)
            self._init_layer(k, codes)
            for _ in range(n_iter):
                self._one_pass(k, codes)
        return self

    def partial_fit(self, X: Any, y: Any = None) -> LayerwiseEstimator:
        """One more pass over ``X`` for every layer, bottom first; the first call starts the model.

        The first call chooses the visible units and the standardisation from its ``X`` (later calls keep
        them). ``partial_fit(X)`` on a fresh estimator has exactly the effect of ``fit(X)`` with
        ``n_iter=1`` (same ``random_state``); further calls continue the same trainers (momentum, PCD chains,
        random stream). For a stack, each call trains every layer once, so repeated calls interleave the
        layers rather than finishing one before the next, as ``fit`` does. (scikit-learn's ``BernoulliRBM``
        makes one update on the whole of ``X`` instead; here ``X`` is split into ``batch_size`` batches.)

        Args:
            X: (n_samples, n_features) a chunk of training data.
            y: ignored (unsupervised).

        Returns:
            ``self``.
        """
        first = not hasattr(self, "model_")
        Xv = self._validate(X, reset=first)
        if first:
            self._check_params()
            # The schedule is constant, so the trainers' total length only has to be positive.
            z = self._start(Xv, total_examples=Xv.shape[0])
        else:
            self._check_bernoulli_range(Xv, "partial_fit")
            z = self._to_model(Xv)
        for k in range(1, len(self._layers()) + 1):
            codes = self._layer_input(z, k)
            if first:
                self._init_layer(k, codes)
            self._one_pass(k, codes)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Hidden probabilities of the top layer (the deterministic up-pass).

        Args:
            X: (n_samples, n_features).

        Returns:
            (n_samples, n_components) for an RBM, (n_samples, n_components[-1]) for a stack; float64.
        """
        z = self._model_input(X)
        with torch.no_grad():
            h = self._layer_input(z, len(self._layers()) + 1)
        return to_numpy(h)

    def score(self, X: Any, y: Any = None) -> float:
        """The mean of :meth:`score_samples` over the rows of ``X`` (higher is better); ``y`` is ignored."""
        return float(np.mean(self.score_samples(X)))

    @abc.abstractmethod
    def score_samples(self, X: Any) -> np.ndarray:
        """(n_samples, n_features) -> (n_samples,) per-sample score, higher is better."""

    # ------------------------------------------------------------------ a unitlens checkpoint

    def save(self, path: str | Path, X: Any, *, image_shape: Sequence[int] | None = None) -> Path:
        """Write the fitted model as a unitlens checkpoint that ``unitlens visualize PATH`` and the report
        open, with ``X`` beside it as ``PATH-data.npz``: the examples visualize compares the units with
        (exemplars), and the norm and standardisation it works in.

        Args:
            path: the checkpoint, without suffix (``PATH.safetensors`` and ``PATH.json``).
            X: (n_samples, n_features) the training data, or a sample of it.
            image_shape: one example's shape for the figures: (H, W) or (C, H, W) images (C = 1 or 3), or
                None for vectors (drawn as bar plots).

        Returns:
            The checkpoint's JSON path. An RBM is saved as a one-layer DBN.

        Raises:
            EstimatorInputError: not fitted, ``X`` not like the training data, a shape that does not hold
                n_features values, or Gaussian units without standardisation (visualize rebuilds the
                data standardised).
        """
        from unitlens.checkpoint import save_checkpoint
        from unitlens.data.dataset import DataRecipe
        from unitlens.data.recipe import load_data
        from unitlens.models import dbn, rbm
        from unitlens.models.stack import LayerStack
        from unitlens.runs import data_meta, data_tensors

        name = type(self).__name__
        x = self._validate(X, reset=False)
        shape = tuple(int(s) for s in image_shape) if image_shape is not None else (x.shape[1],)
        if (
            math.prod(shape) != x.shape[1]
            or len(shape) not in (1, 2, 3)
            or min(shape) < 1
            or (len(shape) == 3 and shape[0] not in (1, 3))
        ):
            raise EstimatorInputError(
                f"{name}.save: image_shape must be (H, W) or (1 or 3, H, W) holding the {x.shape[1]} "
                f"features, or None for vectors; got {image_shape!r}"
            )
        if self.visible_units_ == "gaussian" and self.scale_ is None:
            raise EstimatorInputError(
                f"{name}.save: Gaussian visible units need standardize=True to be saved for unitlens "
                "visualize, which works on standardised data"
            )
        target = Path(path)
        data_path = target.with_name(f"{target.name}-data.npz").resolve()
        rows = x.reshape(x.shape[0], *shape).astype(np.float32)
        buffer = io.BytesIO()
        # x_test as well, so the file is not split: its statistics are those of all of X, as fit's were.
        np.savez(buffer, x_train=rows, x_test=rows[: min(len(rows), 1000)])
        write_bytes(data_path, buffer.getvalue())
        recipe = DataRecipe("file", path=str(data_path), standardised=self.scale_ is not None)
        data = load_data(recipe)
        model = self.model_
        if isinstance(model, LayerStack):
            stack: LayerStack = model
        elif isinstance(model, rbm.RBM):
            stack = dbn.DBN([model])
        else:
            raise EstimatorInputError(f"{name}.save: cannot save a {type(model).__name__}")
        params = {
            k: v for k, v in self.get_params().items() if isinstance(v, int | float | str | bool | tuple)
        }
        meta = {"data": data_meta(data), "estimator": {"class": name, "params": params}}
        return save_checkpoint(target, stack, extra=data_tensors(data), meta=meta)

    # ------------------------------------------------------------------ input checks

    def _validate(self, X: Any, *, reset: bool) -> np.ndarray:
        """``X`` as a finite (n_samples, n_features) float64 array, or a one-line EstimatorInputError."""
        name = type(self).__name__
        if not reset:
            check_is_fitted(self)
        if not sp.issparse(X):
            try:
                shape = np.asarray(X).shape
            except (ValueError, TypeError):  # ragged nested lists and the like: validate_data says why
                shape = (0, 0)
            if len(shape) != 2:
                hint = (
                    "; Reshape your data with X.reshape(-1, 1) if it has one feature, or X.reshape(1, -1) if "
                    "it is one sample"
                    if len(shape) == 1
                    else ""
                )
                raise EstimatorInputError(
                    f"{name} expects X of shape (n_samples, n_features), got a {len(shape)}-D array of shape "
                    f"{shape}{hint}"
                )
        try:
            Xv = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite=False)
        except ValueError as err:
            raise EstimatorInputError(f"{name}: {' '.join(str(err).split())}") from err
        finite = np.isfinite(Xv)
        if not finite.all():
            n_nan = int(np.isnan(Xv).sum())
            n_inf = int((~finite).sum()) - n_nan
            row, col = (int(i) for i in np.argwhere(~finite)[0])
            raise EstimatorInputError(
                f"{name} expects finite values in X: found {n_nan} NaN and {n_inf} inf (first at row {row}, "
                f"column {col}); drop or impute them first"
            )
        return np.asarray(Xv)

    def _check_params(self) -> None:
        owner = type(self).__name__
        self._sizes()
        check_real(owner, "learning_rate", self.learning_rate, 0.0, math.inf, open_low=True)
        check_int(owner, "batch_size", self.batch_size, 1)
        check_real(owner, "momentum", self.momentum, 0.0, 1.0, open_low=False)
        check_real(owner, "weight_decay", self.weight_decay, 0.0, math.inf, open_low=False)
        check_choice(owner, "visible", self.visible, VISIBLE_CHOICES)
        check_choice(owner, "dtype", self.dtype, tuple(DTYPES))
        self._check_extra_params()

    def _check_bernoulli_range(self, X: np.ndarray, where: str) -> None:
        if self.visible_units_ == "bernoulli" and X.size and (X.min() < 0 or X.max() > 1):
            raise EstimatorInputError(
                f"{type(self).__name__}.{where}: this model has Bernoulli visible units, which need X in "
                f"[0, 1], got values in [{X.min():.4g}, {X.max():.4g}]; use visible='gaussian' (or 'auto') "
                "for real-valued data, or scale X to [0, 1]"
            )

    # ------------------------------------------------------------------ numpy <-> model space

    @property
    def _torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def _to_model(self, X: np.ndarray) -> Tensor:
        """Validated (n, n_features) data -> the model's inputs: standardised for Gaussian units, as a tensor
        of the configured dtype on the configured device."""
        if self.scale_ is not None:
            X = (X - self.mean_) / self.scale_
        return torch.tensor(X, dtype=self._torch_dtype, device=self.device)

    def _from_model(self, v: Tensor) -> np.ndarray:
        """Model-space visible states (n, n_features) -> float64 numpy in the data's units."""
        out = to_numpy(v)
        if self.scale_ is not None:
            out = out * self.scale_ + self.mean_
        return out

    def _model_input(self, X: Any) -> Tensor:
        """Validate ``X`` against the fitted estimator and move it into model space."""
        return self._to_model(self._validate(X, reset=False))

    def _sampling_generator(self, random_state: Any = None) -> torch.Generator:
        """A torch generator seeded from ``random_state`` (a seed or a RandomState), or, when it is None,
        from the estimator's ``random_state_``, which advances with every call."""
        rng = self.random_state_ if random_state is None else check_random_state(random_state)
        return torch.Generator(device=self.device).manual_seed(seed_from(rng))

    # ------------------------------------------------------------------ training

    def _start(self, X: np.ndarray, *, total_examples: int) -> Tensor:
        """Choose the visible units and standardisation, build the model and its trainers; returns ``X`` in
        model space."""
        name = type(self).__name__
        lo, hi = float(X.min()), float(X.max())
        if self.visible == "auto":
            self.visible_units_ = "bernoulli" if lo >= 0.0 and hi <= 1.0 else "gaussian"
            why = "in [0, 1]" if self.visible_units_ == "bernoulli" else "outside [0, 1]"
        else:
            self.visible_units_ = self.visible
            why = "as asked (visible=" + repr(self.visible) + ")"
        self._check_bernoulli_range(X, "fit")
        self.mean_ = X.mean(axis=0)
        self.scale_ = None
        if self.visible_units_ == "gaussian" and self.standardize:
            scale = X.std(axis=0)
            self.scale_ = np.where(scale > 10 * np.finfo(np.float64).eps, scale, 1.0)
        message = (
            f"{name}: X has values in [{lo:.4g}, {hi:.4g}], {why}: {self.visible_units_} visible units"
            + (", features standardised (mean_, scale_)" if self.scale_ is not None else "")
        )
        LOG.info(message)
        if self.verbose:
            print(message)

        rng = check_random_state(self.random_state)
        init = torch.Generator(device=self.device).manual_seed(seed_from(rng))
        self._generator = torch.Generator(device=self.device).manual_seed(seed_from(rng))
        self.random_state_ = rng
        self.model_ = self._build(X.shape[1], init)
        m = float(self.momentum)
        sgd = SGDConfig(
            learning_rate=float(self.learning_rate),
            batch_size=int(self.batch_size),
            momentum=m,
            initial_momentum=m,
            momentum_warmup_examples=0,
            weight_decay=float(self.weight_decay),
        )
        config = self._layerwise_config(max(1, total_examples))
        self._trainers = [
            make_trainer(layer, sgd, config.examples_for(k), config, k)
            for k, layer in enumerate(self._layers(), start=1)
        ]
        self.loss_curves_ = [[] for _ in self._layers()]
        return self._to_model(X)

    def _init_layer(self, layer: int, codes: Tensor) -> None:
        """Start layer ``layer``'s visible biases from the mean of its inputs (as the greedy loop does)."""
        with torch.no_grad():
            self._layers()[layer - 1].set_visible_bias_from_mean(codes.mean(dim=0))  # type: ignore[operator]

    def _one_pass(self, layer: int, codes: Tensor) -> None:
        """One pass of layer ``layer``'s trainer over ``codes`` (n, V_layer) in ``batch_size`` batches (in a
        random order when ``shuffle``); the mean training loss goes to ``loss_curves_``."""
        trainer, n = self._trainers[layer - 1], codes.shape[0]
        n_batches = math.ceil(n / int(self.batch_size))
        order = torch.randperm(n, generator=self._generator, device=codes.device) if self.shuffle else None
        total = 0.0
        with torch.no_grad():
            for part in gen_even_slices(n_batches * int(self.batch_size), n_batches, n_samples=n):
                batch = codes[order[part]] if order is not None else codes[part]
                total += trainer.step(batch, self._generator) * batch.shape[0]
        self.loss_curves_[layer - 1].append(total / n)
        if self.verbose:
            print(
                f"{type(self).__name__}: layer {layer}, pass {len(self.loss_curves_[layer - 1])}: "
                f"training loss {total / n:.4f}"
            )
