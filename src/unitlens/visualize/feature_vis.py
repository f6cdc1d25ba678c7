"""The modern feature-visualization loop: a parameterization, random transforms, a ``torch.optim`` optimizer.

This is the recipe of Lucid / Lucent / Captum's ``optim`` (Olah, Mordvintsev & Schubert 2017, "Feature
Visualization", Distill), batched the unitlens way: one batch holds every (unit, restart) of a chunk, row
b = p * R + r is restart r of the p-th requested unit, and one backward pass of the summed objective gives
every row its own gradient. Each step:

    image = parameterization.image(params)        (n, *shape)
    seen  = resize(transforms(image, u_t))         (n, *input_shape), u_t: this step's uniforms per row
    loss  = -objective(model's layers at seen, image).sum()
    optimizer.step()

**Independent of batching.** Unit u's starting parameters and all its transforms' random numbers come from
its own generator (seeded by one base seed and u), drawn when its chunk begins; element-wise optimizers
(Adam, SGD, RMSprop) then update each row from its own gradient alone. So a unit's images are the same, up
to float rounding, whatever other units, chunk size or process it was computed with. Chunks hold whole
units: :class:`~unitlens.visualize.objectives.Diversity` couples the restarts of a unit, never two units.

The loop keeps each row's objective after every step (``history``) and, at chosen steps, the images
(``snapshots``). The final activation is the objective at the final image without transforms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unitlens.errors import UnitlensError
from unitlens.visualize.objectives import Capture, Context, Objective
from unitlens.visualize.parameterizations import Parameterization
from unitlens.visualize.seeding import unit_generator
from unitlens.visualize.transforms import Compose, Transform

__all__ = ["ImageRun", "TorchOptimizer", "optimize_images"]

_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adamw": torch.optim.AdamW,
}


@dataclass(frozen=True)
class TorchOptimizer:
    """A ``torch.optim`` optimizer run for a fixed budget of steps.

    Attributes:
        name: "adam" (the default; Lucid's and Lucent's ``render_vis`` use Adam with learning rate 0.05),
            "sgd", "rmsprop", "adamw", or a ``torch.optim.Optimizer`` subclass.
        learning_rate: the optimizer's ``lr``.
        steps: how many steps every image takes (Lucent's default threshold, 512).
        snapshots: steps after which the images are kept (each in 1..steps).
        options: other keyword arguments of the optimizer (e.g. ``{"betas": (0.9, 0.99)}``).
    """

    name: str | type[torch.optim.Optimizer] = "adam"
    learning_rate: float = 0.05
    steps: int = 512
    snapshots: tuple[int, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            if self.name not in _OPTIMIZERS:
                raise UnitlensError(
                    f"TorchOptimizer.name must be one of {sorted(_OPTIMIZERS)} or a torch.optim.Optimizer "
                    f"subclass, got {self.name!r}"
                )
        elif not (isinstance(self.name, type) and issubclass(self.name, torch.optim.Optimizer)):
            raise UnitlensError(f"TorchOptimizer.name must name a torch.optim optimizer, got {self.name!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
            raise UnitlensError(f"TorchOptimizer.learning_rate must be a finite number > 0, got {lr!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise UnitlensError(f"TorchOptimizer.steps must be an integer >= 1, got {self.steps!r}")
        bad = [
            s
            for s in self.snapshots
            if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= self.steps
        ]
        if bad:
            raise UnitlensError(f"TorchOptimizer.snapshots must be steps in 1..{self.steps}, got {bad}")
        object.__setattr__(self, "snapshots", tuple(sorted(set(self.snapshots))))

    def build(self, params: list[Tensor]) -> torch.optim.Optimizer:
        cls = _OPTIMIZERS[self.name] if isinstance(self.name, str) else self.name
        try:
            return cls(params, lr=self.learning_rate, **dict(self.options))  # type: ignore[call-arg]
        except (TypeError, ValueError) as error:
            raise UnitlensError(f"TorchOptimizer: {cls.__name__} refused its options: {error}") from error

    @property
    def label(self) -> str:
        return self.name if isinstance(self.name, str) else self.name.__name__


@dataclass(frozen=True)
class ImageRun:
    """Every row of one optimization, in request order (row p * R + r: restart r of unit p).

    Attributes:
        x: (N, *shape) final images.
        activation: (N,) the objective at the final image, without transforms.
        history: (S + 1, N) the objective at each step (with that step's transforms); row S is ``activation``.
        start_gradient_norm: (N,) ||d objective / d image|| at the start (with the first step's transforms).
        snapshots: (K, N, *shape) the images after each of the optimizer's snapshot steps.
    """

    x: Tensor
    activation: Tensor
    history: Tensor
    start_gradient_norm: Tensor
    snapshots: Tensor


def _spatial_resize(x: Tensor, input_shape: tuple[int, ...]) -> Tensor:
    """(n, C, *spatial) -> (n, *input_shape), by (bi)linear interpolation when the sizes differ."""
    if tuple(x.shape[1:]) == input_shape:
        return x
    if x.shape[1] != input_shape[0] or x.dim() != len(input_shape) + 1 or x.dim() not in (3, 4):
        raise UnitlensError(
            f"images of shape {tuple(x.shape[1:])} cannot be fed to a model taking {input_shape}: the "
            "channels and the number of spatial axes must match"
        )
    mode = "linear" if x.dim() == 3 else "bilinear"
    return F.interpolate(x, size=input_shape[1:], mode=mode, align_corners=False)


def optimize_images(
    model: nn.Module,
    objective: Objective,
    parameterization: Parameterization,
    transforms: Transform | None,
    optimizer: TorchOptimizer,
    *,
    units: list[int],
    restarts: int,
    base_seed: int,
    input_shape: tuple[int, ...],
    chunk: int,
    dtype: torch.dtype,
    device: torch.device,
    generator_device: torch.device,
    forward_fn: Callable[[nn.Module, Tensor], Any] | None = None,
) -> ImageRun:
    """Optimize every (unit, restart) image; see the module docstring.

    Args:
        units: the owner index of each requested unit (what :class:`Unit` with ``unit=None`` reads).
        chunk: rows per batch, rounded down to whole units (at least one unit).
        input_shape: what the model takes per row; images of another spatial size are resized to it.
    """
    capture = Capture(model, objective.layers(), forward_fn, input_shape)
    per_chunk = max(1, chunk // restarts)
    n_random = transforms.n_random if transforms is not None else 0
    steps = optimizer.steps
    finals, activations, histories, start_norms, snaps = [], [], [], [], []
    try:
        for first in range(0, len(units), per_chunk):
            chunk_units = units[first : first + per_chunk]
            params_list, uniforms_list = [], []
            for unit in chunk_units:
                gen = unit_generator(base_seed, unit, generator_device)
                params_list.append(parameterization.init(restarts, gen, dtype, device))
                if n_random:
                    uniforms_list.append(
                        torch.rand(
                            steps, restarts, n_random, generator=gen, dtype=dtype, device=generator_device
                        )
                    )
            params = torch.cat(params_list).requires_grad_(True)
            uniforms = torch.cat(uniforms_list, dim=1).to(device) if n_random else None  # (steps, n, K)
            n = params.shape[0]
            owners = torch.tensor(chunk_units, dtype=torch.long, device=device).repeat_interleave(restarts)
            groups = torch.arange(first, first + len(chunk_units), device=device).repeat_interleave(restarts)
            opt = optimizer.build([params])
            history = torch.empty(steps + 1, n, dtype=dtype, device=device)
            kept: list[Tensor] = []

            def value(
                image: Tensor,
                u: Tensor | None,
                owners: Tensor = owners,
                groups: Tensor = groups,
            ) -> Tensor:
                """The objective of each row at ``image``, seen through the transforms drawn by ``u``
                (None: no transforms)."""
                if transforms is None or u is None:
                    seen = image
                elif isinstance(transforms, Compose) and image.dim() == 4 and len(input_shape) == 3:
                    # The resize to the model's size folded into the transforms' last warp, if any.
                    seen = transforms.resized(image, u, (input_shape[1], input_shape[2]))
                else:
                    seen = transforms(image, u)
                outputs = capture(_spatial_resize(seen, input_shape))
                return objective.values(Context(outputs, image, owners, groups))

            # A transform that draws nothing (pad, resize) still runs, with an empty (n, 0) u.
            no_draws = params.new_empty(n, 0)
            start_norm = torch.zeros(n, dtype=dtype, device=device)
            for step in range(steps):
                image = parameterization.image(params)
                values = value(image, uniforms[step] if uniforms is not None else no_draws)
                if values.shape != (n,) or not values.requires_grad:
                    raise UnitlensError(
                        "the objective does not depend on the input image"
                        if values.shape == (n,)
                        else f"the objective gives values of shape {tuple(values.shape)}, expected ({n},)"
                    )
                # autograd.grad, not backward(): the model's own parameters' .grad stay untouched.
                if step == 0:
                    grad, image_grad = torch.autograd.grad(-values.sum(), [params, image])
                    start_norm = torch.linalg.vector_norm(image_grad.reshape(n, -1), dim=1)
                else:
                    (grad,) = torch.autograd.grad(-values.sum(), [params])
                params.grad = grad
                opt.step()
                history[step] = values.detach()
                if step + 1 in optimizer.snapshots:
                    with torch.no_grad():
                        kept.append(parameterization.image(params).detach())
            with torch.no_grad():
                final = parameterization.image(params).detach()
                final_values = value(final, None).detach()
            history[steps] = final_values
            finals.append(final)
            activations.append(final_values)
            histories.append(history)
            start_norms.append(start_norm)
            snaps.append(torch.stack(kept) if kept else final.new_empty(0, n, *final.shape[1:]))
    finally:
        capture.remove()
    return ImageRun(
        x=torch.cat(finals),
        activation=torch.cat(activations),
        history=torch.cat(histories, dim=1),
        start_gradient_norm=torch.cat(start_norms),
        snapshots=torch.cat(snaps, dim=1),
    )
