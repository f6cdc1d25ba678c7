"""Settings in, objects out: the pure builders behind ``reproduce``, ``train``, the experiments and tests.

Every function here turns settings (``unitlens.config``) into the objects the library runs: data sets,
stacks, training configurations, batch sources, study and fine-tuning configurations. Nothing here reads or
writes a run folder (that is ``unitlens.reproduce``), so the pipeline and every other caller build the same
things from the same settings and cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from unitlens.catalogue import MODELS
from unitlens.config import FinetuneSettings, MnistSettings, ReproduceConfig, StackSettings
from unitlens.data.dataset import DataRecipe, Dataset
from unitlens.data.elastic import ElasticStream
from unitlens.data.patches import DEFAULT_MARGIN
from unitlens.data.recipe import load_data
from unitlens.data.stream import BatchSource, ShuffledBatches
from unitlens.errors import UnitlensError
from unitlens.models.dae import Corruption, default_corruption, default_decoder
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.models.stack import LayerStack
from unitlens.study import StudyConfig
from unitlens.training.finetune import FinetuneConfig
from unitlens.training.greedy import LayerwiseConfig
from unitlens.training.sgd import SGDConfig


def datasets_of(config: ReproduceConfig) -> list[str]:
    """The data sets a run trains on, in order: the user's (``data.path``) alone, or the paper's."""
    if config.data.path:
        return [config.data.name]
    return ["mnist", "patches"] + (["patches20"] if config.patches20 else [])


def is_user_data(dataset: str, config: ReproduceConfig) -> bool:
    """Whether ``dataset`` names the run's user data set (``data.name`` with ``data.path`` set)."""
    return bool(config.data.path) and dataset == config.data.name


def stack_settings(dataset: str, config: ReproduceConfig, data: Dataset | None = None) -> StackSettings:
    """The settings block of ``dataset`` (the 20x20 patches share the 12x12 ones'). The user's data set's
    follow its values, so they need ``data`` (``UserDataSettings.stack_settings``)."""
    if dataset == "mnist":
        return config.mnist
    if dataset in ("patches", "patches20"):
        return config.patches
    if is_user_data(dataset, config):
        if data is None:
            raise UnitlensError(
                f"the settings of the user's data set {dataset!r} follow its values: load it first"
            )
        return config.data.stack_settings(data.kind, int(data.x_train.shape[0]))
    raise UnitlensError(f"unknown data set {dataset!r}; expected mnist, patches or patches20")


def data_recipe(dataset: str, config: ReproduceConfig) -> DataRecipe:
    """How ``dataset`` is loaded with ``config``'s settings."""
    if is_user_data(dataset, config):
        d = config.data
        return DataRecipe(
            "file",
            path=_absolute(d.path),
            seed=config.seed,
            image_height=d.image_height,
            image_width=d.image_width,
            channels=d.channels,
            image_fit=d.image_fit,
        )
    stack_settings(dataset, config)  # refuses an unknown name
    if dataset == "mnist":
        return DataRecipe("mnist", path=_absolute(config.mnist.data_dir))
    p = config.patches
    return DataRecipe(
        "patches",
        path=_absolute(p.photos),
        size=20 if dataset == "patches20" else p.size,
        n_train=p.n_train,
        n_test=p.n_test,
        seed=config.seed,
        f0=p.f0,
        margin=DEFAULT_MARGIN,
        standardised=True,
    )


def _absolute(path: str) -> str:
    """``path`` made absolute ("" stays "": the embedded or bundled data)."""
    return str(Path(path).expanduser().resolve()) if path else ""


def load_datasets(config: ReproduceConfig) -> dict[str, Dataset]:
    """The data sets a run uses, loaded from the embedded data or the folders the config names."""
    return {name: load_data(data_recipe(name, config)) for name in datasets_of(config)}


def build_stack(model: str, data: Dataset, settings: StackSettings, generator: torch.Generator) -> LayerStack:
    """A freshly initialised stack of ``model`` (``dbn`` or ``sdae``) for ``data``.

    The DBN's bottom RBM is Bernoulli for binary data and Gaussian for real values; the SDAE's first
    decoder and corruption follow the data too unless ``settings.sdae.corruption`` names one.
    """
    sizes = [data.n_inputs, *settings.hidden]
    if model == "dbn":
        return DBN.build(sizes, "bernoulli" if data.kind == "binary" else "gaussian", generator=generator)
    if model == "sdae":
        s = settings.sdae
        corruption = (
            Corruption(s.corruption, s.corruption_level, s.salt, s.pepper)
            if s.corruption
            else default_corruption(data.kind)
        )
        return SDAE.build(sizes, default_decoder(data.kind), corruption, generator=generator)
    raise UnitlensError(f"unknown model {model!r}; expected one of {MODELS}")


def training_config(model: str, settings: StackSettings) -> LayerwiseConfig:
    """Greedy pre-training of ``model`` with ``settings``: layer 1's rate and target, then the upper layers'.

    Momentum ramps up over the first tenth of each layer; held-out monitoring five times a layer and a
    resumable checkpoint four times.
    """
    m = settings.model(model)
    n = settings.examples_per_layer

    def sgd(rate: float) -> SGDConfig:
        return SGDConfig(
            learning_rate=rate,
            batch_size=settings.batch_size,
            momentum_warmup_examples=n // 10,
            weight_decay=m.weight_decay,
        )

    return LayerwiseConfig(
        examples_per_layer=n,
        first_layer_examples=settings.first_layer_examples,
        sgd=(sgd(m.learning_rate), sgd(m.upper_learning_rate)),
        eval_every=max(n // 5, settings.batch_size),
        checkpoint_every=max(n // 4, settings.batch_size),
        sparsity_cost=m.sparsity_cost,
        sparsity_target=(m.sparsity_target, m.upper_sparsity_target),
    )


def batch_source(dataset: str, data: Dataset, config: ReproduceConfig, seed: int) -> BatchSource:
    """Training batches: the elastic stream for MNIST (unless disabled), epochs over the set otherwise."""
    settings = stack_settings(dataset, config, data)
    generator = torch.Generator().manual_seed(seed)
    if dataset == "mnist" and config.mnist.elastic:
        shape = data.image_shape
        if len(shape) != 2:
            raise UnitlensError(f"the elastic stream deforms (height, width) digits, got images of {shape}")
        return ElasticStream(data.x_train, data.y_train, (shape[0], shape[1]), settings.batch_size, generator)
    return ShuffledBatches(data.x_train, data.y_train, settings.batch_size, generator)


def study_config(dataset: str, config: ReproduceConfig) -> StudyConfig:
    """The study of ``dataset``'s stacks: the run's study settings with that data set's unit count."""
    units = config.data.units if is_user_data(dataset, config) else stack_settings(dataset, config).units
    return dataclasses.replace(config.study, units=units)


def finetune_config(
    settings: FinetuneSettings, hidden_learning_rate: float | None, *, eval_every: int | None = None
) -> FinetuneConfig:
    """Fine-tuning with ``settings``, the pre-trained layers at ``hidden_learning_rate``.

    ``hidden_learning_rate`` None gives every layer the output layer's rate: the random baseline, which
    has no features to keep. ``eval_every`` defaults to one evaluation at the end.
    """
    return FinetuneConfig(
        examples=settings.examples,
        learning_rate=settings.learning_rate,
        hidden_learning_rate=hidden_learning_rate,
        batch_size=settings.batch_size,
        eval_every=settings.examples if eval_every is None else eval_every,
    )


@dataclass(frozen=True)
class StackRecipe:
    """How to build and pre-train one stack: its kind (``dbn`` or ``sdae``) and its data set's settings."""

    kind: str
    settings: StackSettings

    def __post_init__(self) -> None:
        if self.kind not in MODELS:
            raise UnitlensError(f"stack kind must be one of {MODELS}, got {self.kind!r}")

    @property
    def training(self) -> LayerwiseConfig:
        """The greedy pre-training configuration the pipeline would use."""
        return training_config(self.kind, self.settings)

    def build(self, data: Dataset, generator: torch.Generator) -> LayerStack:
        """A freshly initialised stack for ``data``."""
        return build_stack(self.kind, data, self.settings, generator)


def mnist_recipe(kind: str, hidden: tuple[int, ...], examples_per_layer: int) -> StackRecipe:
    """The pipeline's MNIST settings with other layer sizes and training length."""
    settings = dataclasses.replace(MnistSettings(), hidden=hidden, examples_per_layer=examples_per_layer)
    return StackRecipe(kind, settings)


def mnist_finetune(examples: int | None = None, *, eval_every: int | None = 4_000) -> FinetuneConfig:
    """The pipeline's fine-tuning of pre-trained stacks (``FinetuneSettings``' defaults, judged rate)."""
    s = FinetuneSettings()
    if examples is not None:
        s = dataclasses.replace(s, examples=examples)
    return finetune_config(s, s.hidden_learning_rate, eval_every=eval_every)


__all__ = [
    "StackRecipe",
    "batch_source",
    "build_stack",
    "data_recipe",
    "datasets_of",
    "finetune_config",
    "load_datasets",
    "mnist_finetune",
    "mnist_recipe",
    "stack_settings",
    "study_config",
    "training_config",
]
