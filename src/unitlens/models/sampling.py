"""The one Bernoulli sampler of the package: a uniform draw compared with the probabilities.

``u < p`` with u ~ U[0, 1) is 1 with probability p. On CPU it is about 4x faster per element than
``torch.bernoulli`` (design notes), and drawing into a reused buffer saves an allocation per step in the
Gibbs and CD loops. The uniforms are drawn in ``out``'s dtype, so a seed gives the same stream as
``torch.rand(shape, dtype=p.dtype)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unitlens.errors import UnitlensError


def sample_bernoulli(p: Tensor | float, generator: torch.Generator, *, out: Tensor | None = None) -> Tensor:
    """A {0, 1} sample with probabilities ``p``: ``u < p`` for uniform draws u.

    Args:
        p: (...) probabilities; a tensor of any shape, or one probability for every element of ``out``.
        generator: draws the uniforms.
        out: (...) the buffer that receives the uniforms and then, in place, the sample; of ``p``'s shape
            and a floating dtype. It must not overlap ``p``, which is read after
            the uniforms are written. None allocates a new tensor of ``p``'s shape, dtype and device.

    Returns:
        (...) ``out`` (or the new tensor), holding 0.0 and 1.0 in its floating dtype.
    """
    if out is None:
        if not isinstance(p, Tensor):
            raise UnitlensError("sample_bernoulli needs an out buffer when p is a single number")
        out = torch.empty(p.shape, dtype=p.dtype, device=p.device)
    torch.rand(out.shape, generator=generator, out=out)
    return torch.lt(out, p, out=out)
