"""A control the paper lacks: the same stack with every weight matrix's entries shuffled.

Any figure measured on the trained stack can be measured again on the shuffled copy. Where the two agree,
the figure says little about what training learned. The spec (section 8) found exactly that for restart
agreement at layer 2: a shuffled stack's restarts agreed as well as the trained stack's (0.996), so
high agreement there is not evidence of anything training learned, while at layer 3 the control fell to
0.90, below the trained stack's 0.995.

What is kept, and why:

- each weight matrix's multiset of entries: the same scale, sign balance and tails, so pre-activations
  have the same spread and the sigmoids saturate about as often as in the trained stack;
- every bias, hidden and visible: a hidden bias sets its unit's operating point (how often it is on), and
  keeping it leaves the layer's overall activity comparable. Shuffling the biases too would mix learned
  operating points between units without removing anything the weights' arrangement does not already
  remove.

What is destroyed is the arrangement: which input each weight connects to which unit, i.e. every learned
filter and every learned correlation between filters.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch

from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack

S = TypeVar("S", bound=LayerStack)


def shuffled_copy(stack: S, generator: torch.Generator) -> S:
    """A deep copy of ``stack`` in which each layer's weight entries are randomly permuted.

    Each (H, V) weight matrix is flattened, its H * V entries permuted by one uniform random permutation,
    and reshaped; biases are copied unchanged (see the module docstring). The original is not modified.

    Args:
        stack: any :class:`LayerStack` (DBN, SDAE); the copy has the same class and configuration.
        generator: draws the permutations, layer 1 first; the same seed gives the same copy.
    Returns:
        The shuffled copy.
    """
    if not isinstance(stack, LayerStack):
        raise UnitlensError(f"shuffled_copy needs a LayerStack (DBN or SDAE), got {type(stack).__name__}")
    if not isinstance(generator, torch.Generator):
        raise UnitlensError(f"shuffled_copy needs a torch.Generator, got {type(generator).__name__}")
    shuffled = copy.deepcopy(stack)
    with torch.no_grad():
        for k in range(1, shuffled.n_layers + 1):
            weight = shuffled.layer(k).weight
            perm = torch.randperm(weight.numel(), generator=generator, device=generator.device)
            flat = weight.reshape(-1)
            weight.copy_(flat[perm.to(weight.device)].reshape(weight.shape))
    return shuffled
