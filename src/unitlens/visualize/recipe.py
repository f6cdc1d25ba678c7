"""Named combinations of parameterization, transforms and optimizer: the recipes of activation maximization.

- ``paper`` (Erhan et al. 2009, section 3 of the spec): pixels under a hard norm constraint, no transforms,
  projected gradient ascent from Uniform[0, 1] starts with the step size picked per layer, stopped at a
  constrained optimum. The default, and the only recipe for DBN/SDAE stacks. It needs ``norm``.
- ``lucid`` (Olah, Mordvintsev & Schubert 2017, "Feature Visualization", Distill; the defaults of
  ``lucid.optvis.render.render_vis`` and of Lucent, its PyTorch port): a Fourier parameterization with a
  1/f spectrum (or one measured from the user's data), colour decorrelation for RGB, a sigmoid into [0, 1],
  Lucid's standard transforms (pad 12, jitter 8, scale 0.9-1.1, rotate -10..10 degrees, jitter 4) and
  Adam at learning rate 0.05 for 512 steps. For 1-D signals the scale and rotation are left out.

A recipe's parts can be replaced one by one through :func:`maximize_activation`'s own arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from unitlens.errors import UnitlensError
from unitlens.visualize.feature_vis import TorchOptimizer
from unitlens.visualize.parameterizations import Fourier, Parameterization
from unitlens.visualize.transforms import Compose, Jitter, Pad, Transform, standard_transforms

__all__ = ["RECIPES", "Recipe", "lucid_recipe", "resolve_recipe"]

RECIPES = ("paper", "lucid")
# Lucid's render_vis: Adam(learning_rate=0.05), thresholds=(512,) (Lucent: the same numbers).
LUCID_LEARNING_RATE = 0.05
LUCID_STEPS = 512


@dataclass(frozen=True)
class Recipe:
    """A whole visualization setting. None parts mean the paper's: pixels under the norm, no transforms,
    projected ascent.

    Attributes:
        name: a label for results and the report.
        parameterization: builds images from parameters.
        transforms: applied at every step.
        optimizer: a torch optimizer and its step budget.
    """

    name: str
    parameterization: Parameterization | None = None
    transforms: Transform | None = None
    optimizer: TorchOptimizer | None = None


PAPER = Recipe("paper")


def lucid_recipe(
    shape: Sequence[int],
    *,
    data: Tensor | None = None,
    steps: int = LUCID_STEPS,
    learning_rate: float = LUCID_LEARNING_RATE,
    snapshots: tuple[int, ...] = (),
) -> Recipe:
    """The ``lucid`` recipe for images of ``shape`` (C, H, W) or signals (C, L).

    Args:
        shape: the image (or signal) shape to optimize.
        data: optional (N, *shape) inputs whose magnitude spectrum (and, with 3 channels, colour
            correlation) replaces Lucid's ImageNet-derived defaults, measured here, offline.
        steps, learning_rate, snapshots: Adam's budget, rate and kept steps.
    """
    shape = tuple(shape)
    if len(shape) not in (2, 3):
        raise UnitlensError(f"the lucid recipe takes (C, H, W) images or (C, L) signals, got shape {shape}")
    if data is not None:
        if tuple(data.shape[1:]) != shape:
            raise UnitlensError(
                f"the data given for the spectrum have inputs of shape {tuple(data.shape[1:])}; the images "
                f"to optimize are {shape}"
            )
        parameterization: Parameterization = Fourier.from_data(data)
    else:
        parameterization = Fourier(shape)
    transforms: Transform
    if len(shape) == 3:
        transforms = standard_transforms()
    else:  # rotation and scale have no meaning on a 1-D signal: pad and jitter only
        transforms = Compose((Pad(12), Jitter(8, ndim=1), Jitter(4, ndim=1)))
    optimizer = TorchOptimizer("adam", learning_rate=learning_rate, steps=steps, snapshots=snapshots)
    return Recipe("lucid", parameterization, transforms, optimizer)


def resolve_recipe(
    recipe: str | Recipe,
    input_shape: Sequence[int] | None,
    data: Tensor | None = None,
    *,
    steps: int = LUCID_STEPS,
) -> Recipe:
    """A :class:`Recipe` from a name (``"paper"``, ``"lucid"``, with ``data`` and ``steps`` for lucid) or
    itself."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe == "paper":
        return PAPER
    if recipe == "lucid":
        if input_shape is None:
            raise UnitlensError("the lucid recipe needs input_shape, e.g. (3, 32, 32)")
        return lucid_recipe(input_shape, data=data, steps=steps)
    raise UnitlensError(f"recipe must be one of {RECIPES} or a Recipe, got {recipe!r}")
