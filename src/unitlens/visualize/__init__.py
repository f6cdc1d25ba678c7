"""The three ways to see a unit (Erhan et al. 2009), plus dataset exemplars.

Every method returns tensors and histories and writes no files.
"""

from unitlens.visualize.activation_maximization import AMResult, maximize_activation
from unitlens.visualize.dbn_sampling import ClampedSamples, sample_clamped
from unitlens.visualize.exemplars import Exemplars, top_exemplars
from unitlens.visualize.filters import first_layer_filters
from unitlens.visualize.linear_combination import linear_combination, top_k_mask

__all__ = [
    "AMResult",
    "ClampedSamples",
    "Exemplars",
    "first_layer_filters",
    "linear_combination",
    "maximize_activation",
    "sample_clamped",
    "top_exemplars",
    "top_k_mask",
]
