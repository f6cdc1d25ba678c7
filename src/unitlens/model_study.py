"""The study of a user's own network: every named layer's units, with a recipe, beside a data set.

For each layer: activation maximization of its first ``units`` units (channels, features, tokens' features)
with the recipe (``paper`` or ``lucid``, see ``unitlens.visualize.recipe``), each unit's top data-set
exemplars, the agreement of its restarts, dead and flat units, and the selectivity matrix, in the same
results format as the DBN/SDAE studies (``unitlens.results``), so the same figures and report show them.

What differs from a stack's study, and why:
- A unit's activation is its output value (a ReLU's output, a logit), not a pre-sigmoid input. For the
  selectivity matrix, whose shares need non-negative responses, each unit's response is measured from its
  smallest value over the data set (response - data minimum, clamped at 0): 0 is "as weak as the weakest
  example", so a unit that is strong for every pattern still scores by how much stronger its own pattern is.
- With the ``lucid`` recipe images live in a box ([0, 1]); their restart cosines are taken after removing
  each image's own mean, since two unrelated positive images already have a cosine near 0.75.
- There is no linear combination of lower filters, clamped sampling or shuffled control: those are defined
  for stacks of sigmoid layers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from unitlens.analysis.degenerate import degenerate_optima
from unitlens.analysis.flat import flat_units
from unitlens.analysis.restarts import restart_agreement, summarize_restarts
from unitlens.analysis.selectivity import selectivity_from_matrix
from unitlens.errors import UnitlensError
from unitlens.results import ImageShape, LayerResults, StackResults
from unitlens.visualize.activation_maximization import AMResult, maximize_activation
from unitlens.visualize.objectives import Capture, ForwardFn, parameter_like, unit_activations
from unitlens.visualize.recipe import Recipe, resolve_recipe

__all__ = ["ModelStudyConfig", "layer_activations", "study_model"]


@dataclass(frozen=True)
class ModelStudyConfig:
    """How a user's model is studied.

    Attributes:
        units: units studied per layer, the first ones (None: all).
        restarts: AM starts per unit (the paper's 9).
        max_steps: the paper recipe's step cap.
        steps: the lucid recipe's Adam steps (Lucid's 512).
        n_exemplars: top data-set examples kept per unit.
        threshold: the restart cosine counted as the same pattern (the spec's 0.9).
        selectivity_units: units in the selectivity matrix (the first of the studied ones).
        unit_axis, reduce: where a layer's units lie and how its other axes are reduced (see ``Unit``).
        batch_size: examples per forward pass over the data set.
    """

    units: int | None = 36
    restarts: int = 9
    max_steps: int = 1000
    steps: int = 512
    n_exemplars: int = 9
    threshold: float = 0.9
    selectivity_units: int = 36
    unit_axis: int = 1
    reduce: str = "center"
    batch_size: int = 256

    def __post_init__(self) -> None:
        for name in ("restarts", "max_steps", "steps", "n_exemplars", "selectivity_units", "batch_size"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (2 if name == "restarts" else 1)
            ):
                minimum = 2 if name == "restarts" else 1
                raise UnitlensError(f"ModelStudyConfig.{name} must be an integer >= {minimum}, got {value!r}")
        if self.units is not None and (isinstance(self.units, bool) or self.units < 1):
            raise UnitlensError(f"ModelStudyConfig.units must be >= 1 or None, got {self.units!r}")


@torch.no_grad()
def layer_activations(
    model: nn.Module,
    layer: str,
    x: Tensor,
    *,
    unit_axis: int = 1,
    reduce: str | tuple[int, ...] = "center",
    batch_size: int = 256,
    forward_fn: ForwardFn | None = None,
) -> Tensor:
    """(n, *input_shape) inputs -> (n, units) every unit's activation, as AM's ``Unit`` objective reads it."""
    capture = Capture(model, frozenset({layer}), forward_fn, tuple(x.shape[1:]))
    try:
        dtype, device = parameter_like(model)
        chunks = []
        for start in range(0, x.shape[0], batch_size):
            batch = x[start : start + batch_size].to(device=device, dtype=dtype)
            chunks.append(unit_activations(capture(batch)[layer], unit_axis, reduce, layer))
        return torch.cat(chunks)
    finally:
        capture.remove()


def _centred(x: Tensor) -> Tensor:
    """(U, R, d) each image less its own mean (cosines of box images then read as correlations)."""
    return x - x.mean(dim=-1, keepdim=True)


def study_layer(
    model: nn.Module,
    layer: str,
    data: Tensor,
    recipe: str | Recipe,
    config: ModelStudyConfig,
    generator: torch.Generator,
    *,
    forward_fn: ForwardFn | None = None,
) -> tuple[LayerResults, dict[str, Any]]:
    """One layer's results and summary (see the module docstring). ``data``: (n, *input_shape)."""
    input_shape = tuple(data.shape[1:])
    seconds: dict[str, float] = {}
    model.eval()
    t = time.perf_counter()
    acts = layer_activations(
        model,
        layer,
        data,
        unit_axis=config.unit_axis,
        reduce=config.reduce,
        batch_size=config.batch_size,
        forward_fn=forward_fn,
    )  # (n, all units)
    seconds["data_activations"] = time.perf_counter() - t
    n_layer = int(acts.shape[1])
    units = list(range(n_layer if config.units is None else min(config.units, n_layer)))
    if config.n_exemplars > data.shape[0]:
        raise UnitlensError(f"n_exemplars = {config.n_exemplars} exceeds the {data.shape[0]} data examples")
    # The lucid spectrum (and colour correlation) is measured from the user's data, offline.
    chosen = resolve_recipe(recipe, input_shape, data.to(torch.float64), steps=config.steps)
    kwargs: dict[str, Any] = {
        "restarts": config.restarts,
        "generator": generator,
        "unit_axis": config.unit_axis,
        "channel_reduce": config.reduce,
        "forward_fn": forward_fn,
        "input_shape": input_shape,
    }
    if chosen.optimizer is None:  # the paper's pixels: the norm of the data set's inputs
        rho = float(torch.linalg.vector_norm(data.flatten(1).double(), dim=1).mean())
        kwargs.update(norm=rho, max_steps=config.max_steps)
    t = time.perf_counter()
    am = maximize_activation(model, layer, units, recipe=chosen, **kwargs)
    seconds["activation_maximization"] = time.perf_counter() - t
    return _layer_results(model, layer, data, acts[:, units], am, chosen, config, seconds, forward_fn)


def _layer_results(
    model: nn.Module,
    layer: str,
    data: Tensor,
    acts: Tensor,
    am: AMResult,
    recipe: Recipe,
    config: ModelStudyConfig,
    seconds: dict[str, float],
    forward_fn: ForwardFn | None,
) -> tuple[LayerResults, dict[str, Any]]:
    n_units = int(am.units.numel())
    x = am.x.flatten(2)  # (U, R, d)
    boxed = recipe.optimizer is not None
    agreement = restart_agreement(
        _centred(x) if boxed else x,
        am.activation,
        am.steps,
        am.converged,
        best=am.best,
        threshold=config.threshold,
    )
    order = torch.sort(acts.t(), dim=1, descending=True, stable=True).indices[:, : config.n_exemplars]
    exemplar_acts = acts.t().gather(1, order)  # (U, N)
    best = am.best_x()  # (U, *shape)
    data_min, data_max = acts.amin(dim=0), acts.amax(dim=0)
    flat = flat_units(
        start_gradient_norm=am.start_gradient_norm,
        reference_gradient_norm=am.reference_gradient_norm,
        activation=am.activation,
        restart_mean_cosine=agreement.mean_cosine,
        data_min=data_min,
        data_max=data_max,
        threshold=config.threshold,
    )
    n_sel = min(config.selectivity_units, n_units)
    optional: dict[str, np.ndarray] = {}
    summary_extra: dict[str, Any] = {}
    if n_sel >= 2:
        at_best = layer_activations(
            model,
            layer,
            best[:n_sel],
            unit_axis=config.unit_axis,
            reduce=config.reduce,
            forward_fn=forward_fn,
        )[:, :n_sel]
        at_exemplar = layer_activations(
            model,
            layer,
            data[order[:n_sel, 0]],
            unit_axis=config.unit_axis,
            reduce=config.reduce,
            forward_fn=forward_fn,
        )[:, :n_sel]
        floor = data_min[:n_sel]
        sel = selectivity_from_matrix((at_best.to(floor) - floor).clamp_min(0).double())
        ex_sel = selectivity_from_matrix((at_exemplar.to(floor) - floor).clamp_min(0).double())
        optional.update(
            selectivity=_np(sel.normalised),
            selectivity_margin=_np(sel.margin),
            exemplar_selectivity=_np(ex_sel.normalised),
        )
        summary_extra.update(selectivity=sel.to_dict(), exemplar_selectivity=ex_sel.to_dict())
    degenerate = degenerate_optima(best.flatten(1))
    flag = torch.int64
    results = LayerResults(
        units=_np(am.units),
        am_x=_np(x.float()),
        am_activation=_np(am.activation),
        am_steps=_np(am.steps),
        am_converged=_np(am.converged.to(flag)),
        am_history=_np(am.history),
        am_best=_np(am.best),
        exemplars=_np(data[order].flatten(2).float()),
        exemplar_activations=_np(exemplar_acts),
        restart_mean_cosine=_np(agreement.mean_cosine),
        energy_concentration=_np(degenerate.concentration),
        am_stationarity=_np(am.stationarity),
        am_start_gradient_norm=_np(am.start_gradient_norm),
        flat=_np(flat.flagged.to(flag)),
        dead=_np(flat.dead.to(flag)),
        **optional,
    )
    summary: dict[str, Any] = {
        "name": layer,
        "n_units": n_units,
        "n_layer_units": int(acts.shape[1]) if acts.dim() == 2 else n_units,
        "recipe": recipe.name,
        "am_learning_rate": am.learning_rate,
        "restarts": summarize_restarts(agreement, threshold=config.threshold).to_dict(),
        "restart_cosines": "centred (each image less its mean)" if boxed else "raw",
        "degenerate": degenerate.to_dict(),
        "flat": flat.to_dict(),
        "seconds": dict(seconds),
        **summary_extra,
    }
    return results, summary


def study_model(
    model: nn.Module,
    layers: Sequence[str],
    data: Tensor,
    recipe: str | Recipe,
    config: ModelStudyConfig,
    generator: torch.Generator,
    *,
    description: str = "",
    forward_fn: ForwardFn | None = None,
) -> StackResults:
    """Study ``layers`` (dotted module names) of ``model`` with one recipe beside ``data`` (n, *input_shape).

    Returns:
        :class:`StackResults` with layer j = ``layers[j - 1]`` (its name in ``layer_names``), the summary
        ``{"model": description, "recipe": ..., "layers": [...]}``.
    """
    if not layers:
        raise UnitlensError("give at least one layer to study")
    if data.dim() < 2 or data.shape[0] < 1:
        raise UnitlensError(f"data must be (n, *input_shape) with n >= 1, got {tuple(data.shape)}")
    input_shape = tuple(int(s) for s in data.shape[1:])
    # The results format holds grey or RGB images and vectors (drawn as bar plots).
    image_shape: ImageShape
    if len(input_shape) == 1:
        image_shape = (input_shape[0],)
    elif len(input_shape) == 2:
        image_shape = (1, input_shape[0], input_shape[1])
    elif len(input_shape) == 3 and input_shape[0] in (1, 3):
        image_shape = (input_shape[0], input_shape[1], input_shape[2])
    else:
        raise UnitlensError(
            f"the results and report show grey or RGB images, (1 or 3, H, W) or (H, W), and vectors (L,); "
            f"the model takes {input_shape}: use maximize_activation from Python for other inputs"
        )
    per_layer: dict[int, LayerResults] = {}
    summaries = []
    for j, layer in enumerate(layers, start=1):
        results, summary = study_layer(model, layer, data, recipe, config, generator, forward_fn=forward_fn)
        per_layer[j] = results
        summaries.append({"layer": j, **summary})
    recipe_name = recipe if isinstance(recipe, str) else recipe.name
    return StackResults(
        image_shape=image_shape,
        layers=per_layer,
        layer_names=np.array(list(layers), dtype=np.str_),
        summary={"model": description, "recipe": recipe_name, "layers": summaries},
    )


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
