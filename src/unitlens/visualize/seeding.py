"""Per-unit random streams: a unit's random numbers depend on one base seed and its own index only.

This is what makes activation maximization independent of batching: whichever units share a batch, chunk or
process, unit u draws its starts (and, for the modern recipe, its transforms) from a generator seeded by
(base seed, u), so it follows the same path.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1


def splitmix64(z: int) -> int:
    """A 64-bit mixing function (Steele, Lea & Flood 2014): distinct inputs give unrelated seeds."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def unit_seed(base_seed: int, unit: int) -> int:
    """The seed of unit ``unit``'s generator."""
    return splitmix64(base_seed ^ splitmix64(unit))


def unit_generator(base_seed: int, unit: int, device: torch.device) -> torch.Generator:
    """A fresh generator on ``device`` for unit ``unit``."""
    return torch.Generator(device=device).manual_seed(unit_seed(base_seed, unit))


def draw_base_seed(generator: torch.Generator) -> int:
    """One number from the caller's generator that seeds every unit's stream."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
