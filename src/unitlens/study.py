"""Every method and every analysis on the layers of a trained stack, in one call.

``study_stack`` is pure: it returns tensors and summaries. For each layer it runs activation maximization
(all requested units x restarts as one batch), the linear combination of lower filters, clamped sampling
(DBN, layers >= 2), dataset exemplars, and the analyses: restart agreement (with the shuffled-weights
control), selectivity, degenerate optima, agreement between methods, and the optimum's activation against
the data's. ``stack_results`` turns the studies into the results format of ``unitlens.results`` (numpy
arrays and the summary), which the pipeline saves and render reads: the dependency runs study -> results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unitlens.analysis.agreement import (
    ActivationVsData,
    activation_vs_data,
    pearson_rows,
    summarize_correlations,
)
from unitlens.analysis.control import shuffled_copy
from unitlens.analysis.degenerate import DegenerateOptima, degenerate_optima
from unitlens.analysis.flat import FlatUnits, flat_units
from unitlens.analysis.restarts import RestartAgreement, RestartSummary, restart_agreement, summarize_restarts
from unitlens.analysis.selectivity import Selectivity, selectivity
from unitlens.data.dataset import Dataset
from unitlens.dealing import UnitDealer, deals, join_exemplars, my_block
from unitlens.distributed import ALONE, World
from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.models.stack import LayerStack
from unitlens.results import LayerResults, StackResults
from unitlens.visualize.activation_maximization import DEFAULT_GTOL, AMResult, maximize_activation
from unitlens.visualize.dbn_sampling import ClampedSamples, sample_clamped
from unitlens.visualize.exemplars import Exemplars, top_exemplars
from unitlens.visualize.filters import first_layer_filters
from unitlens.visualize.linear_combination import linear_combination


@dataclass(frozen=True)
class StudyConfig:
    """What ``study_stack`` computes.

    Attributes:
        units: units studied per layer (the first ones; None: every unit). The paper shows 36 (MNIST) and
            144 (patches); the analyses are summaries over these units.
        restarts: AM restarts per unit (the paper's 9).
        max_steps, gtol: AM's step cap and its projected-gradient stop rule (``maximize_activation``); the
            shuffled control is optimized to the same rule.
        learning_rate: AM's step size; None picks it per layer (spec section 3).
        burn_in, n_samples, every: clamped Gibbs sampling (DBN layers >= 2).
        lc_k: lower-layer units kept by the linear combination (K; 100 by default, spec section 5).
        n_exemplars: top real inputs per unit.
        control: also run AM and its analyses on a copy with each weight matrix shuffled.
        threshold: cosine similarity counted as "the same pattern".
        selectivity_units: the selectivity matrix uses the first of the studied units (36 in the paper).
    """

    units: int | None = 36
    restarts: int = 9
    max_steps: int = 1000
    gtol: float = DEFAULT_GTOL
    learning_rate: float | None = None
    burn_in: int = 1000
    n_samples: int = 18
    every: int = 100
    lc_k: int = 100
    n_exemplars: int = 9
    control: bool = True
    threshold: float = 0.9
    selectivity_units: int = 36

    def __post_init__(self) -> None:
        if self.units is not None and self.units < 1:
            raise UnitlensError(f"units must be >= 1 or None (all), got {self.units}")
        if self.restarts < 2:
            raise UnitlensError(f"restarts must be >= 2 to measure their agreement, got {self.restarts}")
        if (
            min(
                self.max_steps,
                self.n_samples,
                self.every,
                self.lc_k,
                self.n_exemplars,
                self.selectivity_units,
            )
            < 1
        ):
            raise UnitlensError(
                "max_steps, n_samples, every, lc_k, n_exemplars, selectivity_units must be >= 1"
            )
        if self.burn_in < 0:
            raise UnitlensError(f"burn_in must be >= 0, got {self.burn_in}")


@dataclass
class LayerStudy:
    """Everything measured on one layer. Tensors are per studied unit, in ``units`` order."""

    layer: int
    units: Tensor
    am: AMResult
    linear_combination: Tensor
    exemplars: Exemplars
    restarts: RestartAgreement
    restart_summary: RestartSummary
    selectivity: Selectivity
    degenerate: DegenerateOptima
    lc_vs_am: Tensor
    vs_data: ActivationVsData
    samples: ClampedSamples | None = None
    samples_vs_am: Tensor | None = None
    filters: Tensor | None = None
    closed_form_cosine: Tensor | None = None
    flat: FlatUnits | None = None
    restart_summary_unflagged: RestartSummary | None = None
    exemplar_selectivity: Selectivity | None = None
    control_summary: RestartSummary | None = None
    control_summary_unflagged: RestartSummary | None = None
    control_selectivity: Selectivity | None = None
    control_am: AMResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON and the report."""
        out: dict[str, Any] = {
            "layer": self.layer,
            "n_units": int(self.units.numel()),
            "am_learning_rate": self.am.learning_rate,
            "am_stationarity": _stationarity_summary(self.am),
            "restarts": self.restart_summary.to_dict(),
            "selectivity": self.selectivity.to_dict(),
            "degenerate": self.degenerate.to_dict(),
            "lc_vs_am": summarize_correlations(self.lc_vs_am).to_dict(),
            "vs_data": self.vs_data.to_dict(),
            "seconds": dict(self.seconds),
        }
        if self.samples_vs_am is not None:
            out["samples_vs_am"] = summarize_correlations(self.samples_vs_am).to_dict()
            # Claim 4's second half, per unit: the clamped samples' mean is further from the AM image than
            # the linear combination is.
            out["samples_below_lc"] = float((self.samples_vs_am < self.lc_vs_am).to(torch.float64).mean())
        if self.closed_form_cosine is not None:
            out["closed_form_cosine_min"] = float(self.closed_form_cosine.min())
            out["closed_form_cosine_median"] = float(self.closed_form_cosine.median())
        if self.flat is not None:
            out["flat"] = self.flat.to_dict()
        if self.restart_summary_unflagged is not None:
            out["restarts_unflagged"] = self.restart_summary_unflagged.to_dict()
        if self.exemplar_selectivity is not None:
            out["exemplar_selectivity"] = self.exemplar_selectivity.to_dict()
        if self.control_am is not None:
            out["control_stationarity"] = _stationarity_summary(self.control_am)
        if self.control_summary is not None:
            out["control_restarts"] = self.control_summary.to_dict()
        if self.control_summary_unflagged is not None:
            out["control_restarts_unflagged"] = self.control_summary_unflagged.to_dict()
        if self.control_selectivity is not None:
            out["control_selectivity"] = self.control_selectivity.to_dict()
        return out

    def results(self, data: Dataset) -> LayerResults:
        """This layer's results as numpy arrays (the fields of ``unitlens.results.LayerResults``).

        ``data`` is the data set the study ran on: the exemplars are its training rows ``(U, N, d)``.
        """
        am = self.am
        flag = am.steps.dtype  # flags are stored as integers, like the step counts
        optional: dict[str, Tensor | None] = {
            "filters": self.filters,
            "flat": None if self.flat is None else self.flat.flagged.to(dtype=flag),
            "dead": None if self.flat is None else self.flat.dead.to(dtype=flag),
            "exemplar_selectivity": None
            if self.exemplar_selectivity is None
            else self.exemplar_selectivity.normalised,
            "control_selectivity": None
            if self.control_selectivity is None
            else self.control_selectivity.normalised,
        }
        if self.samples is not None and self.samples_vs_am is not None:
            optional.update(
                samples=self.samples.samples, samples_mean=self.samples.mean, samples_vs_am=self.samples_vs_am
            )
        return LayerResults(
            units=_numpy(self.units),
            am_x=_numpy(am.x.flatten(2)),
            am_activation=_numpy(am.activation),
            am_steps=_numpy(am.steps),
            am_converged=_numpy(am.converged.to(dtype=flag)),
            am_history=_numpy(am.history),
            am_best=_numpy(am.best),
            lc=_numpy(self.linear_combination),
            exemplars=_numpy(data.x_train[self.exemplars.indices]),
            exemplar_activations=_numpy(self.exemplars.activations),
            selectivity=_numpy(self.selectivity.normalised),
            restart_mean_cosine=_numpy(self.restarts.mean_cosine),
            energy_concentration=_numpy(self.degenerate.concentration),
            lc_vs_am=_numpy(self.lc_vs_am),
            am_stationarity=_numpy(am.stationarity),
            am_start_gradient_norm=_numpy(am.start_gradient_norm),
            selectivity_margin=_numpy(self.selectivity.margin),
            exemplar_labels=None
            if data.y_train is None
            else _numpy(data.y_train[self.exemplars.indices.to(data.y_train.device)]),
            **{k: _numpy(v) for k, v in optional.items() if v is not None},
        )


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def stack_results(studies: list[LayerStudy], data: Dataset, *, source: str = "results") -> StackResults:
    """A stack's layer studies as one ``StackResults``: every layer's arrays, the data's image shape and
    standardisation, and the summary ``{"layers": [study.summary(), ...]}`` (validated on creation)."""
    return StackResults(
        image_shape=data.image_shape,
        layers={s.layer: s.results(data) for s in studies},
        pixel_mean=None if data.pixel_mean is None else _numpy(data.pixel_mean),
        pixel_scale=None if data.pixel_scale is None else _numpy(data.pixel_scale),
        summary={"layers": [s.summary() for s in studies]},
        source=source,
    )


def study_arrays(studies: list[LayerStudy], data: Dataset) -> dict[str, np.ndarray]:
    """The flat ``{key: array}`` form of :func:`stack_results` (the ``.npz`` layout), without the summary."""
    return stack_results(studies, data).to_arrays()


def _stationarity_summary(am: AMResult) -> dict[str, float]:
    """How close AM's restarts came to a constrained optimum (0 there; the stop rule's gtol bounds it)."""
    s = am.stationarity.to(torch.float64).flatten()
    return {
        "median": float(s.quantile(0.5)),
        "max": float(s.max()),
        "fraction_converged": float(am.converged.to(torch.float64).mean()),
    }


def _flat_units_of(
    am: AMResult, agreement: RestartAgreement, vs_data: ActivationVsData, threshold: float
) -> FlatUnits:
    """Dead and flat units from an AM run, its restart agreement and the data's activation range."""
    return flat_units(
        start_gradient_norm=am.start_gradient_norm,
        reference_gradient_norm=am.reference_gradient_norm,
        activation=am.activation,
        restart_mean_cosine=agreement.mean_cosine,
        data_min=vs_data.data_min,
        data_max=vs_data.data_max,
        threshold=threshold,
    )


def _summary_without(agreement: RestartAgreement, flat: FlatUnits, threshold: float) -> RestartSummary | None:
    """The restart summary of the units that are not flagged dead or flat (None when every unit is)."""
    kept = ~flat.flagged.to(agreement.mean_cosine.device)
    return summarize_restarts(agreement.subset(kept), threshold=threshold) if bool(kept.any()) else None


def closed_form_optimum(stack: LayerStack, units: Tensor, norm: float) -> Tensor:
    """Layer 1's exact AM solution rho * w_i / ||w_i||, (U, d)."""
    w = stack.weight(1).detach()[units]
    return norm * w / w.norm(dim=1, keepdim=True)


def _cosine_rows(a: Tensor, b: Tensor) -> Tensor:
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


def _maximize(
    stack: LayerStack, layer: int, units: Tensor, generator: torch.Generator, world: World, **kwargs: Any
) -> AMResult:
    """``maximize_activation`` on ``units``, dealt out to the run's processes when there are several."""
    dealer = UnitDealer(world) if world.size > 1 else None
    return maximize_activation(stack, layer, units, generator=generator, dealer=dealer, **kwargs)


def _exemplars(
    stack: LayerStack, layer: int, x: Tensor, units: Tensor, n_top: int, world: World
) -> Exemplars:
    """``top_exemplars`` of ``units``, dealt out to the run's processes when there are several."""
    if not deals(units.numel(), world):
        return top_exemplars(stack, layer, x, units, n_top=n_top)
    return join_exemplars(world, top_exemplars(stack, layer, x, my_block(units, world), n_top=n_top))


def study_layer(
    stack: LayerStack,
    data: Dataset,
    layer: int,
    config: StudyConfig,
    generator: torch.Generator,
    world: World = ALONE,
) -> LayerStudy:
    """Run every method and analysis on ``layer`` (1-based) of ``stack``.

    With a ``world`` of several processes (``unitlens.distributed``), each process calls this with the
    same arguments and generator; activation maximization and the exemplars are dealt out by blocks of
    units (``unitlens.dealing``), and every process returns the same study, the one a single process
    computes (up to float rounding).
    """
    n_units = stack.layer_sizes[layer]
    units = torch.arange(n_units if config.units is None else min(config.units, n_units))
    seconds: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        seconds[name] = time.perf_counter() - start

    am_kwargs: dict[str, Any] = {
        "restarts": config.restarts,
        "norm": data.rho,
        "learning_rate": config.learning_rate,
        "max_steps": config.max_steps,
        "gtol": config.gtol,
    }
    t = time.perf_counter()
    am = _maximize(stack, layer, units, generator, world, **am_kwargs)
    timed("activation_maximization", t)
    best = am.best_x()
    t = time.perf_counter()
    lc = linear_combination(stack, layer, units, k=config.lc_k).detach()
    timed("linear_combination", t)
    t = time.perf_counter()
    exemplars = _exemplars(stack, layer, data.x_train, units, config.n_exemplars, world)
    timed("exemplars", t)
    agreement = restart_agreement(
        am.x, am.activation, am.steps, am.converged, best=am.best, threshold=config.threshold
    )
    sel_units = units[: config.selectivity_units]
    n_sel = int(sel_units.numel())
    vs_data = activation_vs_data(stack, layer, units, best, data.x_train)
    flat = _flat_units_of(am, agreement, vs_data, config.threshold)
    study = LayerStudy(
        layer=layer,
        units=units,
        am=am,
        linear_combination=lc,
        exemplars=exemplars,
        restarts=agreement,
        restart_summary=summarize_restarts(agreement, threshold=config.threshold),
        selectivity=selectivity(stack, layer, sel_units, best[:n_sel]),
        degenerate=degenerate_optima(best),
        lc_vs_am=pearson_rows(lc, best),
        vs_data=vs_data,
        seconds=seconds,
        flat=flat,
        restart_summary_unflagged=_summary_without(agreement, flat, config.threshold),
        # The same matrix with each unit's top data-set exemplar as its pattern: does AM find patterns
        # more specific than real data does?
        exemplar_selectivity=selectivity(
            stack, layer, sel_units, data.x_train[exemplars.indices[:n_sel, 0]].to(best.device, best.dtype)
        ),
    )
    if layer == 1:
        study.filters = first_layer_filters(stack, units)
        study.closed_form_cosine = _cosine_rows(best, closed_form_optimum(stack, units, data.rho))
    if isinstance(stack, DBN) and layer >= 2:
        t = time.perf_counter()
        samples = sample_clamped(
            stack,
            layer,
            units,
            burn_in=config.burn_in,
            n_samples=config.n_samples,
            every=config.every,
            generator=generator,
        )
        timed("sampling", t)
        study.samples = samples
        study.samples_vs_am = pearson_rows(samples.mean, best)
    if config.control and layer >= 2:
        t = time.perf_counter()
        control = shuffled_copy(stack, generator)
        control_am = _maximize(control, layer, units, generator, world, **am_kwargs)
        control_agreement = restart_agreement(
            control_am.x,
            control_am.activation,
            control_am.steps,
            control_am.converged,
            best=control_am.best,
            threshold=config.threshold,
        )
        study.control_summary = summarize_restarts(control_agreement, threshold=config.threshold)
        study.control_am = control_am
        control_best = control_am.best_x()
        # The control's dead and flat units are left out by the same rule as the trained stack's.
        control_vs_data = activation_vs_data(control, layer, units, control_best, data.x_train)
        control_flat = _flat_units_of(control_am, control_agreement, control_vs_data, config.threshold)
        study.control_summary_unflagged = _summary_without(control_agreement, control_flat, config.threshold)
        study.control_selectivity = selectivity(control, layer, sel_units, control_best[:n_sel])
        timed("control", t)
    return study


def study_stack(
    stack: LayerStack,
    data: Dataset,
    config: StudyConfig,
    generator: torch.Generator,
    layers: tuple[int, ...] | None = None,
    world: World = ALONE,
) -> list[LayerStudy]:
    """:func:`study_layer` for each of ``layers`` (default: every layer of the stack)."""
    if stack.n_inputs != data.n_inputs:
        raise UnitlensError(f"the stack takes {stack.n_inputs} inputs but the data has {data.n_inputs}")
    chosen = layers if layers is not None else tuple(range(1, stack.n_layers + 1))
    return [study_layer(stack, data, layer, config, generator, world) for layer in chosen]
