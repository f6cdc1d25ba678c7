"""Activation maximization on any torch module: the channels of a CNN's middle conv layer, optimized with
unitlens's paper and lucid recipes, against the loop a user would write and against Lucent's ``render_vis``,
all measured in this run, on two models:

- ``small``: a CNN for 1x8x8 grey digits (the scikit-learn digits size), where a batch-1 step is mostly
  per-operation overhead, so batching pays. **The headline figures** (``vs_user_loop``, ``vs_lucent``,
  ``lucid_vs_paper_step`` at the top of the JSON line) **are this model's**: the issue's targets were set
  from a review on models of this size.
- ``conv32``: a CNN on 3x32x32 images, compute-bound: a batch-1 convolution at 32x32 is already about as
  efficient per image as a batch of 288, so the model's own FLOPs bound any batching gain (the
  ``model_floor`` row). Its figures are reported beside the headline, under ``conv32`` in the JSON line,
  with the targets shown for reference only, so that nobody mistakes one setting for the other.

Run inside the project's environment:
    python benchmarks/any_model.py [--steps 20] [--conv32-steps 10] [--rounds 2] [--repeats 1]
        [--lucent-path /work/bench-lucent]

The models, with random weights (torch's default initialization) and the layer visualized, ``conv2``:

- ``small``: conv1 1->8, ReLU, conv2 8->16, ReLU (3x3, padding 1), flatten, linear 16*64 -> 10. All 16
  channels x 9 restarts = 144 images; each channel's activation is its centre position (4, 4)
  (``channel_reduce="center"``; Lucent's ``objectives.neuron``, whose default position is the same).
- ``conv32``: conv1 3->16, ReLU, conv2 16->32, ReLU, pool, conv3 32->64, ReLU, global average pool,
  linear 64->10 (3x3, padding 1). All 32 channels x 9 restarts = 288 images; each channel's activation is
  its mean over positions (``channel_reduce="mean"``, Lucent's ``channel`` objective).

Every unitlens call optimizes all of a model's channels x 9 restarts as one batch, with one backward pass
for all, for a fixed number of steps (``--steps`` for ``small``, ``--conv32-steps`` for ``conv32``; 10
there by default rather than 20, to keep the whole run to about 3 minutes on an idle 2-core machine and
5-6 under a load average of 3-4: every figure is per step, so the step count changes them only through
the paper recipe's two extra gradient evaluations, 10% of its steps at 20 and 20% at 10, which lowers
conv32's ``vs_user_loop`` and raises its ``lucid_vs_paper_step`` by up to that share).

Candidates, each timed in one call, for each model:

- ``paper``: unitlens's paper recipe, projected gradient ascent on pixels under the norm (``norm``: 3.5 for
  ``small``, about the norm of a scikit-learn digit scaled to [0, 1]; 28 for ``conv32``, about the mean
  norm of a CIFAR-like image in [0, 1]; any value works), ``learning_rate=0.1``, ``gtol=None`` (every
  restart tries exactly its steps). Besides the steps it evaluates the starts (one gradient evaluation)
  and the reference units' start gradients (one more).
- ``lucid``: unitlens's lucid recipe (Fourier parameterization, with colour decorrelation for RGB,
  Lucid's standard transforms, Adam at 0.05), its steps and one final evaluation without gradient.
- ``lucid_stepwise``: the same, with the same transforms applied one at a time, each by its own
  ``__call__`` (``Compose`` without its fused paths: the reference composition, as ``Compose`` ran
  them before the fusion, apart from Jitter's crop, now one gather instead of two in both). Same results
  to float rounding; its time over ``lucid``'s is what the fusion saves. The printed gaps between the
  two runs' final images and objective values are rounding amplified by Adam, whose normalized steps
  turn a rounding-level change in a near-zero gradient component into a step of up to the learning
  rate: changing torch's thread count moves conv32's images as much (about 3e-2 after 10 steps, the
  objective values by about 1e-6 to 1e-5 of their size).
- ``adam_pixels`` (for reading the lucid figure): pixels under the same norm, no transforms, Adam:
  ``parameterization=Pixels(shape, norm=norm), optimizer=TorchOptimizer(steps=S)``.
- ``user_loop``: the loop a user would write, one channel and one restart at a time: a leaf x from
  Uniform[0, 1] scaled to the norm, ``torch.optim.SGD([x], lr=0.1)``, and per step: the Sequential sliced
  to ``conv2``, loss = -(the channel's activation, reduced as above), backward, step, renormalize. Timed on
  ``--loop-units`` channels (default: all 16 for ``small``) or ``--conv32-loop-units`` (default 2) x 9
  restarts and scaled per unit-restart. Its model copy has frozen parameters, so backward computes no
  weight gradients (unitlens computes none either).
- ``model_floor`` (the floor of any implementation): the model alone, the batch's forward to ``conv2``
  and the input's gradient, once per step, nothing else. Each candidate's time per image-step over it
  (``of_model_floor``) says what it spends beyond the model; the user loop's is the most that batching
  that loop could gain on this machine.
- ``lucent``: Lucent's ``render_vis(model, objective, param_f=lambda: param.image(size, channels=C),
  fixed_image_size=size, preprocess=False, show_image=False, progress=False, thresholds=(S,))``: its FFT
  image at the same size (with colour decorrelation for RGB; ``channels=1`` for the grey digits, which
  turns decorrelation off, as unitlens does for one channel), its standard transforms, Adam at 0.05, one
  image per call, timed on ``--lucent-units`` channels (``--conv32-lucent-units``) and reported per image.
  The objective: ``objectives.neuron("conv2", c)`` (the centre) for ``small``, ``"conv2:c"`` (the mean)
  for ``conv32``. Lucent's standard transforms run at size 8: the pad makes the image 32x32 before the
  jitters, scale and rotation, and ``fixed_image_size`` resizes it back to 8x8 for the model.
  ``preprocess=False``: the default would append ImageNet normalization, meant for torchvision's ImageNet
  models (these CNNs are none, and unitlens's recipe has none). Its model copy has frozen parameters too,
  and the forward hooks that ``render_vis`` registers on every module at every call (and never removes)
  are cleared after each call, so Lucent is not slowed by hooks piling up. Lucent runs the whole model
  forward (it does not stop at the layer); that is how it works. Its transforms are Lucid's list, as
  unitlens's, computed its own way: one random choice per call's batch (here one image), jitter as a
  translation that keeps the size (unitlens crops, as Lucid), the scale as a resize of the image (unitlens
  keeps the size); both feed the model inputs of the model's size (Lucent upsamples the transformed image,
  unitlens resizes its (H + 12)x(W + 12) one). The ``reached`` column (the objective at the final images,
  without transforms) shows both recipes reach about the same values.

Figures (each a ratio of two timings taken in the same run), per model:

- ``vs_user_loop``: the user loop's seconds per unit-restart over the paper recipe's (target >= 20).
- ``vs_lucent``: Lucent's seconds per image over the lucid recipe's (target >= 30).
- ``lucid_vs_paper_step``: the lucid recipe's seconds per step (per image: the same, same batch and steps)
  over the paper recipe's (target <= 2). Per step = the call's time / its steps for both recipes.
- ``of_model_floor``: each candidate's seconds per image-step over the model alone's.

**Threads.** Every candidate is timed at each count in ``--threads`` (default 1 and 2), and each figure
uses every candidate at its fastest count. On a shared machine another job's threads compete with
torch's: a loop of small operations (Lucent, the user loop) can then run 10-20x slower with 2 threads
than with 1 (each operation waits at a thread barrier for a descheduled thread), while large batched
operations barely notice; comparing at one fixed count could credit unitlens with its references' bad
luck. The tables show both counts.

**The C allocator.** By default the benchmark first calls ``unitlens.allocator.keep_freed_memory()``, as
the ``unitlens`` command does: with glibc's adaptive thresholds a step's blocks of 0.1-5 MB are returned
to the system when freed and faulted in again at the next step, which made the same forward and
backward pass 1.5x slower, by luck of the allocation pattern (the model floor escaped it, unitlens's
steps did not). ``--allocator default`` keeps glibc's defaults; the setting is the same for every
candidate and is printed.

Timings are medians over the rounds and repeats after a short warm-up (2 steps) of every candidate at every
thread count, with pauses between candidates; the candidates of both models are interleaved round by
round, so a change in the machine's load hits all of them. The load average is printed at the start and
the end. The last line is JSON.

**Installing Lucent** (only for this benchmark, never into the project's environment, and never
torchvision). PyPI's ``lucent`` is an unrelated empty package from 2017; Lucent (github.com/greentfrapp/
lucent) is ``torch-lucent``. Lucent 0.1.8 pins ``kornia<=0.4.1``, which imports and runs beside torch 2.13::

    .venv/bin/python -m pip install --no-deps --target /work/bench-lucent torch-lucent==0.1.8 \\
        kornia==0.4.1 decorator==5.3.1

then pass ``--lucent-path /work/bench-lucent``; the folder is put on ``sys.path`` by this script only. Its
other imports: numpy, tqdm and pillow come from the project's environment; ``torchvision`` (Lucent
imports ``torchvision.transforms.Normalize``, used only by ``preprocess=True``) and ``IPython.display``
(imported by ``lucent.misc.io.showing``, used only to show images) are stubbed here with modules whose
contents raise if they are ever used, and only when the real package is absent. Without ``--lucent-path``,
or if Lucent fails to import or run, ``vs_lucent`` is not measured: null in the JSON, and the reason is
printed.

Sensitivity checks: ``--paper-chunk`` and ``--lucid-chunk`` pass ``chunk_size`` to the unitlens calls
(e.g. 9: one channel's restarts per batch; 1, paper only: one image at a time through unitlens), to see
what the figures owe to batching. The ``of_model_floor`` line bounds what batching can give at all: the
user loop's time per step over the batched model's.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from unitlens.allocator import keep_freed_memory
from unitlens.visualize.activation_maximization import maximize_activation
from unitlens.visualize.feature_vis import TorchOptimizer
from unitlens.visualize.parameterizations import Pixels
from unitlens.visualize.recipe import lucid_recipe
from unitlens.visualize.transforms import Compose, Transform

LAYER = "conv2"
LAYER_INDEX = 2  # model[: LAYER_INDEX + 1] ends with conv2, in both models
RESTARTS = 9
LEARNING_RATE = 0.1  # the paper recipe's and the user loop's step: with gtol=None every restart runs S steps
WARMUP_STEPS = 2
PAUSE_S = 1.0
TARGETS = {"vs_user_loop": (">=", 20.0), "vs_lucent": (">=", 30.0), "lucid_vs_paper_step": ("<=", 2.0)}
HEADLINE = "small"  # the model whose figures head the JSON line: the setting the targets came from


@dataclass(frozen=True)
class ModelSpec:
    """One model of the benchmark and how its channels are visualized."""

    key: str
    title: str
    shape: tuple[int, int, int]
    channels: int  # conv2's output channels, all visualized
    norm: float  # the paper recipe's and the user loop's norm
    reduce: str  # channel_reduce: "center" or "mean"
    layers: Callable[[], list[tuple[str, nn.Module]]]

    def build(self, seed: int) -> nn.Sequential:
        """The model, with torch's default (Kaiming-uniform) initialization drawn from ``seed``."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = nn.Sequential()
            for name, module in self.layers():
                model.add_module(name, module)
        return model.eval()

    def activation(self, output: Tensor, rows: Tensor, channels: Tensor) -> Tensor:
        """conv2's (n, K, H, W) output -> (len(rows),) the activation of ``channels`` in ``rows``."""
        if self.reduce == "mean":
            return output.mean(dim=(2, 3))[rows, channels]
        return output[rows, channels, output.shape[2] // 2, output.shape[3] // 2]


def _small_layers() -> list[tuple[str, nn.Module]]:
    return [
        ("conv1", nn.Conv2d(1, 8, 3, padding=1)),
        ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(8, 16, 3, padding=1)),
        ("relu2", nn.ReLU()),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(16 * 8 * 8, 10)),
    ]


def _conv32_layers() -> list[tuple[str, nn.Module]]:
    return [
        ("conv1", nn.Conv2d(3, 16, 3, padding=1)),
        ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(16, 32, 3, padding=1)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("conv3", nn.Conv2d(32, 64, 3, padding=1)),
        ("relu3", nn.ReLU()),
        ("pool3", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(64, 10)),
    ]


MODELS = {
    "small": ModelSpec("small", "1x8x8 grey digits", (1, 8, 8), 16, 3.5, "center", _small_layers),
    "conv32": ModelSpec("conv32", "3x32x32 images", (3, 32, 32), 32, 28.0, "mean", _conv32_layers),
}


def frozen_copy(model: nn.Sequential) -> nn.Sequential:
    """A copy whose parameters need no gradient: backward then computes only the input's gradient."""
    clone = copy.deepcopy(model)
    clone.requires_grad_(False)
    return clone.eval()


def user_loop(spec: ModelSpec, features: nn.Module, channels: list[int], steps: int) -> None:
    """One channel, one restart at a time, as a user would write it (see the module docstring)."""
    generator = torch.Generator().manual_seed(3)
    centre = (spec.shape[1] // 2, spec.shape[2] // 2)  # conv2 keeps the input's size (padding 1)
    for channel in channels:
        for _ in range(RESTARTS):
            x = torch.rand(1, *spec.shape, generator=generator)
            x.mul_(spec.norm / x.norm())
            x.requires_grad_(True)
            optimizer = torch.optim.SGD([x], lr=LEARNING_RATE)
            for _ in range(steps):
                optimizer.zero_grad()
                output = features(x)
                if spec.reduce == "mean":
                    loss = -output[0, channel].mean()
                else:
                    loss = -output[0, channel, centre[0], centre[1]]
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    x.mul_(spec.norm / x.norm())


@dataclass(frozen=True)
class Stepwise:
    """``transforms`` applied one at a time, each by its own ``__call__``: Compose without its fused paths
    (the reference composition). u's columns are handed out in order, as Compose does."""

    transforms: tuple[Transform, ...]

    @property
    def n_random(self) -> int:
        return sum(t.n_random for t in self.transforms)

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        start = 0
        for t in self.transforms:
            x = t(x, u[:, start : start + t.n_random])
            start += t.n_random
        return x


def stepwise(transforms: Transform | None) -> Stepwise:
    """The Stepwise form of the recipe's Compose."""
    assert isinstance(transforms, Compose)
    return Stepwise(transforms.transforms)


# ------------------------------------------------------------------------------------------------ Lucent


class _Unavailable:
    """Stands in for what Lucent imports from a package that is not installed; raises if used."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: object, **kwargs: object) -> Any:
        raise RuntimeError(
            f"{self._name} is a stub made by benchmarks/any_model.py: the real one is not installed"
        )

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _Unavailable(f"{self._name}.{attribute}")


def _stub_package(name: str, children: dict[str, list[str]]) -> None:
    """Put ``name`` and its submodules in sys.modules, each attribute a :class:`_Unavailable`."""
    parent = types.ModuleType(name)
    parent.__dict__["__path__"] = []
    sys.modules[name] = parent
    for child, attributes in children.items():
        module = types.ModuleType(f"{name}.{child}")
        for attribute in attributes:
            setattr(module, attribute, _Unavailable(f"{name}.{child}.{attribute}"))
        setattr(parent, child, module)
        sys.modules[f"{name}.{child}"] = module


def load_lucent(path: str | None) -> tuple[Any | None, str]:
    """(``lucent``'s render, param and objectives modules as a namespace, a description) or (None, why
    not)."""
    if path is None:
        return None, "not measured: no --lucent-path given (see the docstring for the install command)"
    if not os.path.isdir(path):
        return None, f"not measured: --lucent-path {path} is not a folder"
    sys.path.insert(0, path)
    stubbed = []
    # Only what is absent is stubbed: torchvision must not be installed in the project's environment.
    if importlib.util.find_spec("torchvision") is None:
        _stub_package("torchvision", {"transforms": ["Normalize"]})
        stubbed.append("torchvision.transforms.Normalize")
    if importlib.util.find_spec("IPython") is None:
        _stub_package("IPython", {"display": ["display", "HTML", "Image", "Javascript"]})
        stubbed.append("IPython.display")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kornia 0.4.1 calls torch.jit.script, deprecated in torch 2.x
            import kornia  # type: ignore[import-not-found]
            import lucent  # type: ignore[import-not-found]
            from lucent.optvis import objectives, param, render  # type: ignore[import-not-found]
    except Exception as error:  # any failure of a third-party import means: not measured, and why
        return None, f"not measured: importing Lucent from {path} failed: {error!r}"
    versions = f"Lucent {lucent.__version__}, kornia {kornia.__version__}"
    stubs = f"; stubbed: {', '.join(stubbed)}" if stubbed else ""
    return types.SimpleNamespace(render=render, param=param, objectives=objectives), versions + stubs


def lucent_render(lucent: Any, spec: ModelSpec, model: nn.Module, channel: int, steps: int) -> np.ndarray:
    """One Lucent image of ``channel`` after ``steps`` steps, (1, H, W, C) in [0, 1]."""
    np.random.seed(channel)  # noqa: NPY002 (Lucent's transforms draw from numpy's global generator)
    torch.manual_seed(channel)  # and its parameters from torch's
    size = spec.shape[1]
    # channels=None: Lucent's RGB default, with colour decorrelation; channels=1 turns decorrelation off.
    channels = None if spec.shape[0] == 3 else spec.shape[0]
    objective = f"{LAYER}:{channel}" if spec.reduce == "mean" else lucent.objectives.neuron(LAYER, channel)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            images = lucent.render.render_vis(
                model,
                objective,
                param_f=lambda: lucent.param.image(size, channels=channels),
                preprocess=False,
                fixed_image_size=size,
                show_image=False,
                progress=False,
                thresholds=(steps,),
            )
    finally:
        for module in model.modules():  # render_vis never removes the hooks it adds
            module._forward_hooks.clear()
    return images[-1]


# --------------------------------------------------------------------------------------------- timing


def median_of(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


@dataclass
class Bench:
    """One model's candidates: name -> (call, what one call's time is divided by), and what they left."""

    spec: ModelSpec
    steps: int
    loop_units: int
    lucent_units: int
    candidates: dict[str, tuple[Callable[[int], None], int]]
    results: dict[str, Any]
    lucent_images: dict[int, np.ndarray]
    features: nn.Module
    lucent_note: str


def make_bench(
    spec: ModelSpec,
    args: argparse.Namespace,
    lucent: Any | None,
    lucent_note: str,
    steps: int,
    units: tuple[int, int],
) -> Bench:
    loop_units, lucent_units = units
    model = spec.build(0)
    reference_model = frozen_copy(model)
    features = reference_model[: LAYER_INDEX + 1]  # the Sequential sliced to conv2
    if lucent is not None:
        try:
            lucent_render(lucent, spec, reference_model, 0, WARMUP_STEPS)
        except Exception as error:  # a failure inside a third-party library: not measured, and why
            lucent, lucent_note = None, f"not measured: Lucent failed to run: {error!r}"
    batch = spec.channels * RESTARTS
    channels = list(range(spec.channels))
    results: dict[str, Any] = {}
    recipe = lucid_recipe(spec.shape, steps=1)

    def paper(steps: int) -> None:
        results["paper"] = maximize_activation(
            model,
            LAYER,
            units=channels,
            restarts=RESTARTS,
            generator=torch.Generator().manual_seed(1),
            norm=spec.norm,
            input_shape=spec.shape,
            max_steps=steps,
            gtol=None,
            learning_rate=LEARNING_RATE,
            channel_reduce=spec.reduce,
            chunk_size=args.paper_chunk,
        )
        assert results["paper"].history.shape[0] == steps + 1  # every restart tried every step

    def lucid(steps: int, name: str = "lucid", transforms: Transform | None = None) -> None:
        results[name] = maximize_activation(
            model,
            LAYER,
            units=channels,
            restarts=RESTARTS,
            generator=torch.Generator().manual_seed(1),
            recipe=lucid_recipe(spec.shape, steps=steps),
            transforms=transforms,
            channel_reduce=spec.reduce,
            chunk_size=args.lucid_chunk,
        )

    def lucid_stepwise(steps: int) -> None:
        lucid(steps, "lucid_stepwise", stepwise(recipe.transforms))

    def adam_pixels(steps: int) -> None:
        results["adam_pixels"] = maximize_activation(
            model,
            LAYER,
            units=channels,
            restarts=RESTARTS,
            generator=torch.Generator().manual_seed(1),
            parameterization=Pixels(spec.shape, norm=spec.norm),
            optimizer=TorchOptimizer(steps=steps),
            channel_reduce=spec.reduce,
        )

    def loop(steps: int) -> None:
        user_loop(spec, features, list(range(loop_units)), steps)

    # The floor of any implementation: the model alone, forward to conv2 and the input's gradient, for the
    # whole batch at once, once per step; nothing else (no parameterization, transforms or update).
    floor_x = torch.rand(batch, *spec.shape, generator=torch.Generator().manual_seed(4))
    floor_rows = torch.arange(batch)
    floor_owners = torch.arange(spec.channels).repeat_interleave(RESTARTS)

    def model_floor(steps: int) -> None:
        for _ in range(steps):
            leaf = floor_x.detach().requires_grad_(True)
            activation = spec.activation(features(leaf), floor_rows, floor_owners)
            torch.autograd.grad(activation.sum(), leaf)

    lucent_images: dict[int, np.ndarray] = {}

    def lucent_call(steps: int) -> None:
        for channel in range(lucent_units):
            lucent_images[channel] = lucent_render(lucent, spec, reference_model, channel, steps)

    candidates: dict[str, tuple[Callable[[int], None], int]] = {
        "paper": (paper, batch),
        "lucid": (lucid, batch),
        "lucid_stepwise": (lucid_stepwise, batch),
        "adam_pixels": (adam_pixels, batch),
        "user_loop": (loop, loop_units * RESTARTS),
        "model_floor": (model_floor, batch),
    }
    if lucent is not None:
        candidates["lucent"] = (lucent_call, lucent_units)
    return Bench(
        spec, steps, loop_units, lucent_units, candidates, results, lucent_images, features, lucent_note
    )


def summarize(
    bench: Bench, samples: dict[tuple[str, int], list[float]], threads: list[int]
) -> dict[str, Any]:
    """Medians, each candidate's best thread count, the figures and the reached objective of one model."""
    names = list(bench.candidates)
    per = {(name, t): median_of(samples[name, t]) for name in names for t in threads}
    best_threads = {name: min((per[name, t], t) for t in threads)[1] for name in names}
    best = {name: per[name, best_threads[name]] for name in names}
    figures: dict[str, float | None] = {
        "vs_user_loop": best["user_loop"] / best["paper"],
        "vs_lucent": best["lucent"] / best["lucid"] if "lucent" in best else None,
        "lucid_vs_paper_step": best["lucid"] / best["paper"],
    }
    # What the figures are made of: each per image-step over the model's own forward and backward.
    of_floor = {name: best[name] / best["model_floor"] for name in names if name != "model_floor"}
    # Sanity: the objective each method reached, without transforms, on the channels Lucent rendered.
    k = bench.lucent_units
    with torch.no_grad():
        reached = {
            name: float(bench.results[name].activation[:k].mean())
            for name in ("paper", "lucid", "lucid_stepwise", "adam_pixels")
        }
        if bench.lucent_images:
            order = sorted(bench.lucent_images)
            images = torch.from_numpy(np.concatenate([bench.lucent_images[c] for c in order]))
            output = bench.features(images.permute(0, 3, 1, 2).float())
            rows = torch.arange(len(order))
            reached["lucent"] = float(bench.spec.activation(output, rows, torch.tensor(order)).mean())
        # The fused and the stepwise transforms give the same images up to float rounding, which Adam
        # amplifies over the steps (see the docstring).
        fused, reference = bench.results["lucid"], bench.results["lucid_stepwise"]
        gap = float((fused.x - reference.x).abs().max())
        gap_activation = float((fused.activation - reference.activation).abs().max())
    return {
        "per": per,
        "best_threads": best_threads,
        "best": best,
        "figures": figures,
        "of_floor": of_floor,
        "reached": reached,
        "fused_vs_stepwise_max_abs": gap,
        "fused_vs_stepwise_activation_max_abs": gap_activation,
    }


def met(figures: dict[str, float | None], name: str) -> bool | None:
    value = figures[name]
    if value is None:
        return None
    sign, bound = TARGETS[name]
    return value >= bound if sign == ">=" else value <= bound


def print_table(bench: Bench, summary: dict[str, Any], threads: list[int], headline: bool) -> None:
    spec, steps = bench.spec, bench.steps
    batch = spec.channels * RESTARTS
    per, best, best_threads = summary["per"], summary["best"], summary["best_threads"]
    reduce = "centre position" if spec.reduce == "center" else "mean over positions"
    role = (
        "HEADLINE: the setting the targets came from; its figures head the JSON line"
        if headline
        else "compute-bound: the model's FLOPs bound any batching gain; targets shown for reference only"
    )
    print()
    print(
        f"[{spec.key}] {spec.title}: {LAYER}'s {spec.channels} channels ({reduce}) x {RESTARTS} restarts, "
        f"{steps} steps per image; {batch} images per unitlens call ({role})"
    )
    c = spec.channels
    labels = {
        "paper": f"unitlens paper, {c} ch x {RESTARTS}",
        "lucid": f"unitlens lucid, {c} ch x {RESTARTS}",
        "lucid_stepwise": "unitlens lucid, stepwise transforms",
        "adam_pixels": f"unitlens pixels+Adam, {c} ch x {RESTARTS}",
        "user_loop": f"user loop, {bench.loop_units} ch x {RESTARTS}, scaled",
        "lucent": f"Lucent render_vis, {bench.lucent_units} ch x 1, scaled",
        "model_floor": f"model alone, fwd+bwd of {batch} images",
    }
    thread_headers = [f"ms/img {t}th" for t in threads]
    header = ("candidate", *thread_headers, "ms/img-step", "ms/step", "reached")
    widths = [40] + [13] * len(threads) + [12, 10, 9]
    print(
        " ".join(
            f"{h:<{w}}" if i == 0 else f"{h:>{w}}"
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    for name, (_, divisor) in bench.candidates.items():
        cells = [f"{labels[name]:<40}"]
        for t, w in zip(threads, widths[1:], strict=False):
            mark = "*" if t == best_threads[name] else " "
            cells.append(f"{per[name, t] * 1e3:>{w - 1}.2f}{mark}")
        cells.append(f"{best[name] / steps * 1e3:>12.3f}")
        cells.append(f"{best[name] * divisor / steps * 1e3:>10.1f}")
        reached = summary["reached"]
        cells.append(f"{reached[name]:>9.4f}" if name in reached else f"{'':>9}")
        print(" ".join(cells))
    print(
        "ms/img: per image (per unit-restart for the loop), median; * the fastest thread count, used below. "
        "ms/step: one call's time per step (the loop's and Lucent's: their timed part's). reached: the "
        f"objective at the final images (no transforms), mean over the first {bench.lucent_units} channels' "
        "images"
    )
    figures = summary["figures"]
    for name, value in figures.items():
        sign, bound = TARGETS[name]
        verdict = {True: "met", False: "MISSED", None: "not measured"}[met(figures, name)]
        if not headline and value is not None:
            verdict += " (reference only)"
        shown = f"{value:.2f}" if value is not None else "null"
        print(f"{name:<22} {shown:>8}   target {sign} {bound:g}: {verdict}")
    of_floor = summary["of_floor"]
    print(
        "per image-step, over the model alone (forward to conv2 and the input's gradient, batched): "
        + ", ".join(f"{name} {value:.2f}x" for name, value in of_floor.items())
        + f"; so batching the user loop can gain at most {of_floor['user_loop']:.2f}x over it here"
    )
    print(
        f"lucid transforms fused (Compose) vs stepwise: {best['lucid'] * batch / steps * 1e3:.1f} vs "
        f"{best['lucid_stepwise'] * batch / steps * 1e3:.1f} ms/step; final images differ by at most "
        f"{summary['fused_vs_stepwise_max_abs']:.1e}, the objective at them by at most "
        f"{summary['fused_vs_stepwise_activation_max_abs']:.1e} (rounding, amplified by Adam)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="optimization steps of every small image")
    parser.add_argument(
        "--conv32-steps", type=int, default=10, help="optimization steps of every conv32 image"
    )
    parser.add_argument("--rounds", type=int, default=2, help="cycles through all candidates")
    parser.add_argument("--repeats", type=int, default=1, help="timed repeats per candidate per round")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts tried")
    parser.add_argument("--loop-units", type=int, default=16, help="small: channels of the user loop (x 9)")
    parser.add_argument("--lucent-units", type=int, default=4, help="small: channels rendered by Lucent")
    parser.add_argument("--conv32-loop-units", type=int, default=2, help="conv32: channels of the user loop")
    parser.add_argument(
        "--conv32-lucent-units", type=int, default=2, help="conv32: channels rendered by Lucent"
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="models run")
    parser.add_argument("--lucent-path", default=None, help="folder holding Lucent (see the docstring)")
    parser.add_argument("--paper-chunk", type=int, default=None, help="chunk_size of the paper recipe")
    parser.add_argument("--lucid-chunk", type=int, default=None, help="chunk_size of the lucid recipe")
    parser.add_argument(
        "--allocator",
        choices=("kept", "default"),
        default="kept",
        help="kept: unitlens.allocator.keep_freed_memory() first, as the unitlens command does; default: "
        "glibc's own thresholds",
    )
    args = parser.parse_args()
    allocator = keep_freed_memory() if args.allocator == "kept" else "default (glibc's adaptive thresholds)"
    if min(args.steps, args.conv32_steps) < WARMUP_STEPS:
        parser.error(f"--steps and --conv32-steps must be at least {WARMUP_STEPS}")
    settings = {
        "small": (args.steps, (args.loop_units, args.lucent_units)),
        "conv32": (args.conv32_steps, (args.conv32_loop_units, args.conv32_lucent_units)),
    }
    for key in args.models:
        channels = MODELS[key].channels
        if not all(1 <= k <= channels for k in settings[key][1]):
            parser.error(f"{key}: the loop's and Lucent's channel counts must lie in 1..{channels}")

    lucent, lucent_note = load_lucent(args.lucent_path)
    benches = {key: make_bench(MODELS[key], args, lucent, lucent_note, *settings[key]) for key in args.models}
    load_start = os.getloadavg()

    default_threads = torch.get_num_threads()
    samples: dict[tuple[str, str, int], list[float]] = {
        (key, name, t): []
        for key, bench in benches.items()
        for name in bench.candidates
        for t in args.threads
    }
    wall_start = time.perf_counter()
    try:
        for round_index in range(args.rounds):
            for key, bench in benches.items():
                for name, (call, divisor) in bench.candidates.items():
                    for threads in args.threads:
                        torch.set_num_threads(threads)
                        if round_index == 0:
                            call(WARMUP_STEPS)
                        for _ in range(args.repeats):
                            start = time.perf_counter()
                            call(bench.steps)
                            samples[key, name, threads].append((time.perf_counter() - start) / divisor)
                        time.sleep(PAUSE_S)
    finally:
        torch.set_num_threads(default_threads)
    wall_s = time.perf_counter() - wall_start
    load_end = os.getloadavg()

    summaries = {
        key: summarize(
            bench, {(n, t): samples[key, n, t] for n in bench.candidates for t in args.threads}, args.threads
        )
        for key, bench in benches.items()
    }
    print(
        f"Activation maximization of {LAYER}'s channels of two CNNs, unitlens batched against a per-unit "
        f"loop and Lucent; headline model: {HEADLINE}"
    )
    print(
        f"shared machine: {os.cpu_count()} cores, load average {load_start[0]:.2f} at the start, "
        f"{load_end[0]:.2f} at the end; torch threads tried {args.threads}; {args.rounds} rounds x "
        f"{args.repeats} repeats; timed part {wall_s:.0f} s"
    )
    print(f"Lucent: {lucent_note}")
    print(f"C allocator: {allocator} (the same for every candidate)")
    for key, bench in benches.items():
        print_table(bench, summaries[key], args.threads, key == HEADLINE)

    def details(key: str) -> dict[str, Any]:
        bench, summary = benches[key], summaries[key]
        steps = bench.steps
        batch = bench.spec.channels * RESTARTS
        return {
            "image": list(bench.spec.shape),
            "channel_reduce": bench.spec.reduce,
            "steps": steps,
            "batch": batch,
            "norm": bench.spec.norm,
            "targets_met": {name: met(summary["figures"], name) for name in TARGETS},
            "lucid_ms_per_step": {
                "fused": round(summary["best"]["lucid"] * batch / steps * 1e3, 1),
                "stepwise": round(summary["best"]["lucid_stepwise"] * batch / steps * 1e3, 1),
            },
            "fused_vs_stepwise_max_abs": float(f"{summary['fused_vs_stepwise_max_abs']:.2e}"),
            "fused_vs_stepwise_activation_max_abs": float(
                f"{summary['fused_vs_stepwise_activation_max_abs']:.2e}"
            ),
            "seconds_per_image": {name: round(v, 6) for name, v in summary["best"].items()},
            "seconds_per_call": {
                name: round(summary["best"][name] * divisor, 4)
                for name, (_, divisor) in bench.candidates.items()
            },
            "best_threads": summary["best_threads"],
            "seconds_per_image_by_threads": {
                name: {str(t): round(summary["per"][name, t], 6) for t in args.threads}
                for name in bench.candidates
            },
            "reached": {name: round(v, 4) for name, v in summary["reached"].items()},
        }

    def rounded(value: float | None) -> float | None:
        return round(value, 2) if value is not None else None

    result: dict[str, object] = {
        "benchmark": "any_model",
        "headline_model": HEADLINE if HEADLINE in benches else None,
    }
    if HEADLINE in summaries:
        head = summaries[HEADLINE]
        result.update({name: rounded(value) for name, value in head["figures"].items()})
        result["targets_met"] = {name: met(head["figures"], name) for name in TARGETS}
        result["of_model_floor"] = {name: round(v, 2) for name, v in head["of_floor"].items()}
    if "conv32" in summaries:
        conv = summaries["conv32"]
        result["conv32"] = {
            **{name: rounded(value) for name, value in conv["figures"].items()},
            "of_model_floor": {name: round(v, 2) for name, v in conv["of_floor"].items()},
        }
    result.update(
        {
            "layer": LAYER,
            "threads_tried": args.threads,
            "rounds": args.rounds,
            "repeats": args.repeats,
            "loadavg": [round(load_start[0], 2), round(load_end[0], 2)],
            "timed_s": round(wall_s),
            "details": {key: details(key) for key in benches},
            "lucent": lucent_note,
            "allocator": allocator,
            "paper_chunk": args.paper_chunk,
            "lucid_chunk": args.lucid_chunk,
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
