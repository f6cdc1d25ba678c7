"""The three ways to see a unit (Erhan et al. 2009), plus dataset exemplars, and the modern feature
visualization of any network: objectives, parameterizations, transforms and optimizers that compose.

Every method returns tensors and histories and writes no files.
"""

from unitlens.visualize.activation_maximization import AMResult, maximize_activation
from unitlens.visualize.dbn_sampling import ClampedSamples, sample_clamped
from unitlens.visualize.exemplars import Exemplars, top_exemplars
from unitlens.visualize.feature_vis import TorchOptimizer
from unitlens.visualize.filters import first_layer_filters
from unitlens.visualize.linear_combination import linear_combination, top_k_mask
from unitlens.visualize.objectives import (
    L1,
    L2,
    ClassLogit,
    Direction,
    Diversity,
    Objective,
    TotalVariation,
    Unit,
)
from unitlens.visualize.parameterizations import Fourier, Pixels
from unitlens.visualize.recipe import Recipe, lucid_recipe
from unitlens.visualize.transforms import (
    Compose,
    Jitter,
    Pad,
    RandomRotate,
    RandomScale,
    Resize,
    standard_transforms,
)

__all__ = [
    "L1",
    "L2",
    "AMResult",
    "ClampedSamples",
    "ClassLogit",
    "Compose",
    "Direction",
    "Diversity",
    "Exemplars",
    "Fourier",
    "Jitter",
    "Objective",
    "Pad",
    "Pixels",
    "RandomRotate",
    "RandomScale",
    "Recipe",
    "Resize",
    "TorchOptimizer",
    "TotalVariation",
    "Unit",
    "first_layer_filters",
    "linear_combination",
    "lucid_recipe",
    "maximize_activation",
    "sample_clamped",
    "standard_transforms",
    "top_exemplars",
    "top_k_mask",
]
