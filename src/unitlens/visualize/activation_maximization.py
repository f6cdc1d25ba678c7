"""Activation maximization (Erhan, Bengio, Courville & Vincent 2009, section 3 of the spec).

For unit i of a layer, find the input x* that maximizes the unit's activation h_i(x) subject to ||x|| = rho
(rho: the data set's mean input norm). The procedure is projected gradient ascent:

1. start from x with i.i.d. Uniform[0, 1] pixels, rescaled to norm rho;
2. repeat: x' <- x + lr * grad h_i(x), rescaled back to norm rho (per input, over all its pixels); keep x'
   if it raises the activation, else stay at x and halve that restart's lr;
3. stop a restart when x is a constrained optimum to ``gtol``: the gradient's component along the sphere
   is at most ``gtol`` of its norm (at an optimum the gradient points along x); or at ``max_steps``.

The projected-gradient rule replaced a relative-increase rule (stop when the activation rose by less than
1e-5 relative): that rule stopped at points where the tangential gradient was still 2-15% of the gradient,
and, since a rise of 1e-5 is close to float32 rounding, whether a restart stopped could hinge on how its
batch was rounded.

There is no clipping to [0, 1] (the paper found it worse); ``box`` adds it as an option for comparison.

**One batch for everything.** All requested units x restarts are optimized as one batch of inputs: input b
belongs to unit u(b) and the objective is sum_b act[b, u(b)]. Inputs never interact, so one backward pass
gives every input its own gradient. For a :class:`~unitlens.models.stack.LayerStack` (DBN, SDAE) the
activation is the unit's pre-sigmoid input, computed by hand: the layers below with the sigmoid up-pass
(full matrix products), the top layer only as a row-wise dot product with the gathered filters W[u(b)], and
the gradient back-propagated by hand (dx = (delta * h(1 - h)) @ W, layer by layer). Any other
``torch.nn.Module`` goes through autograd: any objective (``unitlens.visualize.objectives``: a unit on any
axis, a direction, a logit, penalties, sums of them) reads the layers it needs through forward hooks.

This is the ``paper`` recipe. The ``lucid`` recipe and any other combination of a parameterization,
transforms and a ``torch.optim`` optimizer run in ``unitlens.visualize.feature_vis``, with the same
batching and the same per-unit seeding; :func:`maximize_activation` is the one entry point for both.

**Reproducibility.** Every unit's starts come from its own generator, seeded from one number drawn from the
caller's generator and the unit's index. So a run on units [3, 7] and a run on unit 7 alone (with the
caller's generator in the same state) start unit 7 from the same inputs, and ``chunk_size`` only changes how
many inputs share a matrix product (each batch's starts are drawn when it begins, from those per-unit
generators, so memory stays bounded by the batch). Every stop rule reads only the restart's own values,
so results agree up to float rounding: BLAS kernels may round a matrix product over a few rows
differently from one over many. The automatic step size is
chosen on the layer's reference units (its first ``lr_selection_units``), never on the units requested, so
a run on a subset of a layer, in chunks, or split across processes gives each unit the same x*.

References:
    D. Erhan, Y. Bengio, A. Courville, P. Vincent. Visualizing Higher-Layer Features of a Deep Network.
    Technical Report 1341, DIRO, Universite de Montreal, 2009.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack
from unitlens.visualize.feature_vis import TorchOptimizer, optimize_images
from unitlens.visualize.objectives import (
    Capture,
    Context,
    ForwardFn,
    Objective,
    Unit,
    as_objective,
    parameter_like,
)
from unitlens.visualize.parameterizations import Parameterization, Pixels
from unitlens.visualize.recipe import Recipe, resolve_recipe
from unitlens.visualize.seeding import draw_base_seed, unit_seed
from unitlens.visualize.transforms import Transform

# The step size is c * rho / median ||gradient at the starts||, c among these (spec, section 3).
DEFAULT_LR_CANDIDATES = (0.1, 0.2, 0.5, 1.0)
# Stationarity at which a restart stops by default: the gradient's component along the constraint is 1% of
# its norm. The relative-increase rule it replaced stopped at 2-15%; running on to float precision from
# 1% moved no quick-run optimum by more than 1 - cos = 1e-5 (docs/decisions.md).
DEFAULT_GTOL = 1e-2
# A restart whose step was halved this many times in a row without raising its activation is at a maximum
# to float precision: with float32 activations, the quick run's optima stall at a stationarity of 3e-3 to
# 1e-2 (docs/decisions.md), so this rule, not ``gtol``, ends the restarts that would need more.
_MAX_REJECTIONS = 10
# Activations this close (relative) count as the same when picking a unit's best restart: far above float32
# rounding of a matrix product (1e-6 relative), far below the gaps between distinct optima.
BEST_RTOL = 1e-4


@dataclass(frozen=True)
class AMResult:
    """Every restart of an activation-maximization run.

    Attributes:
        units: (U,) int64 unit (or channel) indices, in the order requested.
        x: (U, R, *input_shape) each restart's final input x*.
        activation: (U, R) final activation (pre-sigmoid for a stack; the module's output otherwise).
        steps: (U, R) int64 accepted gradient steps that produced x* (rejected steps not counted).
        converged: (U, R) True where the stopping rule (``gtol``, or a maximum to float precision) stopped
            the restart, False where it hit the step cap.
        history: (S + 1, U, R) activation of each restart's current input after each step; row 0 is the
            start. S is the most steps any restart tried (a rejected step counts; at most ``max_steps``);
            a stopped restart's final value is held.
        best: (U,) int64 index of each unit's best restart (highest final activation; the first on ties).
        learning_rate: the initial step size of every restart (one for the whole layer).
        norm: the norm constraint rho.
        start_gradient_norm: (U, R) ||gradient|| at each projected start.
        stationarity: (U, R) at x*, the share of the gradient along the constraint (0 at an optimum).
        reference_gradient_norm: median ||gradient|| at the starts of the layer's reference units (the
            scale the step size is chosen from), whichever units were requested.
        snapshot_steps: with a torch optimizer, the steps after which images were kept.
        snapshots: (K, U, R, *image_shape) the images after each snapshot step (None: none asked for).

    With a torch optimizer (the modern recipe) ``x`` is the parameterization's image, ``activation`` the
    objective at it without transforms, ``steps`` the budget, ``converged`` False (no stopping rule),
    ``stationarity`` NaN (no constraint surface), ``norm`` the parameterization's norm or NaN, and
    ``history`` the objective at each step, under that step's transforms.
    """

    units: Tensor
    x: Tensor
    activation: Tensor
    steps: Tensor
    converged: Tensor
    history: Tensor
    best: Tensor
    learning_rate: float
    norm: float
    start_gradient_norm: Tensor
    stationarity: Tensor
    reference_gradient_norm: float
    snapshot_steps: tuple[int, ...] = ()
    snapshots: Tensor | None = None

    def best_x(self) -> Tensor:
        """(U, *input_shape) each unit's best restart."""
        return self.x[torch.arange(self.x.shape[0], device=self.x.device), self.best]


# ---------------------------------------------------------------------------------------------- objectives


class _Objective(Protocol):
    """The activations of a batch of inputs, each belonging to one unit, and their gradients."""

    n_inputs: int
    # True when every evaluate() returns a gradient of its own (never overwritten by a later call).
    fresh_gradients: bool

    def bind(self, units: Tensor) -> None:
        """Fix the owner unit of each input of the coming batches: (n,) int64."""

    def keep(self, index: Tensor) -> None:
        """Restrict the bound batch to the rows ``index`` (restarts that stopped leave the batch)."""

    def evaluate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(n, D) inputs -> (n,) activations act[b, u(b)] and (n, D) their gradients wrt x.

        The activations are a new tensor at every call, never written afterwards (the ascent keeps them as
        its history). The gradient may be a view of a buffer that the next call overwrites
        (``fresh_gradients`` False).
        """


class _StackObjective:
    """Pre-sigmoid activation of units of a stack's layer, forward and backward by hand.

    Only the owner's row of the top layer is needed per input: the top layer costs a row-wise dot product
    with the gathered filters instead of a full matrix product, and its gradient wrt the layer below is that
    filter itself.
    """

    fresh_gradients = False  # the gradient is a buffer reused by every call

    def __init__(self, stack: LayerStack, layer: int) -> None:
        self.lower = [
            (stack.layer(k).weight.detach(), stack.layer(k).hidden_bias.detach()) for k in range(1, layer)
        ]
        self.top_weight = stack.layer(layer).weight.detach()
        self.top_bias = stack.layer(layer).hidden_bias.detach()
        self.n_inputs = stack.n_inputs
        self._capacity = 0
        self._hidden: list[Tensor] = []  # (capacity, H_k): h_k, then in place its local gradient
        self._deltas: list[Tensor] = []  # (capacity, H_k) gradient wrt h_k, k = 1 .. layer - 2
        self._grad = self.top_weight.new_empty(0, self.n_inputs)
        self.rows = self.top_weight.new_empty(0, self.top_weight.shape[1])
        self.bias = self.top_bias.new_empty(0)

    def bind(self, units: Tensor) -> None:
        self.rows = self.top_weight.index_select(0, units)  # (n, H_{L-1})
        self.bias = self.top_bias.index_select(0, units)
        n = units.numel()
        if n > self._capacity and self.lower:
            # Buffers sized for the largest batch, reused for every step (prefix views for smaller ones).
            self._capacity = n
            self._hidden = [w.new_empty(n, w.shape[0]) for w, _ in self.lower]
            self._deltas = [w.new_empty(n, w.shape[0]) for w, _ in self.lower[:-1]]
            self._grad = self.top_weight.new_empty(n, self.n_inputs)

    def keep(self, index: Tensor) -> None:
        self.rows = self.rows.index_select(0, index)
        self.bias = self.bias.index_select(0, index)

    def evaluate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n = x.shape[0]
        h = x
        for (w, b), buffer in zip(self.lower, self._hidden, strict=True):
            torch.addmm(b, h, w.t(), out=buffer[:n]).sigmoid_()
            h = buffer[:n]
        # einsum runs this row-wise dot as a batched product: 3x faster than (h * rows).sum(1) here.
        activation = torch.einsum("bh,bh->b", h, self.rows).add_(self.bias)
        delta = self.rows  # d act / d h_{L-1}
        for k in range(len(self.lower) - 1, -1, -1):
            hk = self._hidden[k][:n]
            # h is not needed once its local gradient delta * h * (1 - h) is formed: build it in place.
            hk.addcmul_(hk, hk, value=-1.0).mul_(delta)
            out = self._grad[:n] if k == 0 else self._deltas[k - 1][:n]
            delta = torch.mm(hk, self.lower[k][0], out=out)
        return activation, delta


class _ModuleObjective:
    """Any objective on any module, through autograd: the layers it reads are captured by forward hooks
    (:class:`~unitlens.visualize.objectives.Capture`), which end the forward pass once they have run."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        input_shape: tuple[int, ...],
        forward_fn: ForwardFn | None,
    ) -> None:
        self.objective = objective
        self.input_shape = input_shape
        self.n_inputs = math.prod(input_shape)
        self.capture = Capture(model, objective.layers(), forward_fn, input_shape)
        self.units = torch.empty(0, dtype=torch.long)
        self._ones = torch.empty(0)  # the backward pass's seed, d(sum of activations)/d(activation)

    fresh_gradients = True  # autograd makes a new gradient every call

    def remove(self) -> None:
        self.capture.remove()

    def n_units(self, dtype: torch.dtype, device: torch.device) -> int | None:
        """Owner indices the objective accepts, from one probe input of zeros."""
        with torch.no_grad():
            outputs = self.capture(torch.zeros(1, *self.input_shape, dtype=dtype, device=device))
        return self.objective.n_units(outputs)

    def bind(self, units: Tensor) -> None:
        self.units = units

    def keep(self, index: Tensor) -> None:
        self.units = self.units.index_select(0, index)

    def evaluate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        n = x.shape[0]
        leaf = x.reshape(n, *self.input_shape).detach().requires_grad_(True)
        with torch.enable_grad():
            context = Context(self.capture(leaf), leaf, self.units, self.units)
            activation = self.objective.values(context)
            if not activation.requires_grad:
                raise UnitlensError(f"the objective {self.objective!r} does not depend on the input")
            if self._ones.shape != activation.shape or self._ones.dtype != activation.dtype:
                self._ones = torch.ones_like(activation)
            # Only the input's gradient: autograd.grad leaves the parameters' .grad untouched. Seeding it
            # with ones is the gradient of the activations' sum, without the sum and its backward step.
            (grad,) = torch.autograd.grad(activation, leaf, grad_outputs=self._ones, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(leaf)
        return activation.detach(), grad.reshape(n, self.n_inputs)


# ------------------------------------------------------------------------------------------------ starts


class _Starts:
    """Uniform[0, 1] starts, unit u's R restarts drawn from a generator seeded by (base seed, u).

    Inputs are numbered unit-major: input b = p * R + r is restart r of the p-th requested unit.
    """

    def __init__(
        self,
        base_seed: int,
        units: list[int],
        restarts: int,
        n_inputs: int,
        dtype: torch.dtype,
        device: torch.device,
        generator_device: torch.device,
    ) -> None:
        self.seeds = [unit_seed(base_seed, u) for u in units]
        self.restarts = restarts
        self.n_inputs = n_inputs
        self.dtype = dtype
        self.device = device
        self.generator_device = generator_device

    def rows(self, lo: int, hi: int, out: Tensor | None = None) -> Tensor:
        """(hi - lo, D) the starts of inputs lo .. hi - 1, written into ``out`` when it is given.

        A unit's restarts are drawn straight into their rows when they all lie in the range, from one
        generator reseeded per unit (the same stream as a fresh generator with that seed): no temporary
        block and no concatenation.
        """
        if out is None:
            out = torch.empty(hi - lo, self.n_inputs, dtype=self.dtype, device=self.device)
        restarts = self.restarts
        generator = torch.Generator(device=self.generator_device)
        in_place = out.device == self.generator_device and out.dtype == self.dtype
        for p in range(lo // restarts, (hi - 1) // restarts + 1):
            generator.manual_seed(self.seeds[p])
            first, last = p * restarts, (p + 1) * restarts
            if in_place and lo <= first and last <= hi:
                torch.rand(restarts, self.n_inputs, generator=generator, out=out[first - lo : last - lo])
            else:
                block = torch.rand(
                    restarts,
                    self.n_inputs,
                    generator=generator,
                    dtype=self.dtype,
                    device=self.generator_device,
                )
                start, stop = max(first, lo), min(last, hi)
                out[start - lo : stop - lo] = block[start - first : stop - first]
        return out


# -------------------------------------------------------------------------------------------- optimizer


def _project_(x: Tensor, norm: float | Tensor, box: tuple[float, float] | None) -> Tensor:
    """Project each row of ``x`` (n, D) in place: onto the sphere ||x|| = norm, or, with a box, clamp to the
    box and then shrink rows longer than ``norm`` onto the sphere (shorter rows keep their length).

    ``norm`` may be given as a 0-dim tensor of x's dtype: the same product (a Python number is rounded to
    that dtype too) without converting the number to a tensor at every call, a kernel of its own that
    costs about as much as the product here. The arithmetic, x * ((1 / ||x||) * norm), is part of the
    results: float32 ascents that stop at a maximum to float precision (rejected steps) stop at other steps
    when it is rounded otherwise (x / (||x|| / norm) moved some restarts' stopping step and x* by 1e-4).
    """
    if box is not None:
        x.clamp_(box[0], box[1])
    lengths = torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min_(torch.finfo(x.dtype).tiny)
    scale = lengths.reciprocal_().mul_(norm)
    if box is not None:
        # Shrinking towards 0 keeps a row inside a box that contains 0 (checked on entry).
        scale.clamp_(max=1.0)
    return x.mul_(scale)


def _stationarity(x: Tensor, grad: Tensor, norm: float, box: tuple[float, float] | None) -> Tensor:
    """(n,) how far each input is from a constrained optimum: 0 there, at most 1 (up to rounding).

    On the sphere it is ||g_t|| / ||g||, the share of the gradient g that lies along the sphere (g_t: g
    less its component along x); at a constrained optimum the gradient points along x, so g_t = 0. With a
    box it is the length of a short projected step along g divided by the step's own length (the projected
    gradient mapping), which reads the same on the sphere and also accounts for the box's faces. An input
    whose gradient is zero is a stationary point: 0.
    """
    gnorm = torch.linalg.vector_norm(grad, dim=1)
    tiny = torch.finfo(grad.dtype).tiny
    safe = gnorm.clamp_min(tiny)
    if box is None:
        radial = (grad * x).sum(dim=1) / (x * x).sum(dim=1).clamp_min(tiny)
        ratio = torch.linalg.vector_norm(grad - radial[:, None] * x, dim=1) / safe
    else:
        # A step of a thousandth of the norm: small enough to read the first-order mapping, large enough
        # that float32 rounding of x (relative 1e-7) stays far below it.
        tau = 1e-3 * norm
        moved = _project_(x + grad * (tau / safe)[:, None], norm, box) - x
        ratio = torch.linalg.vector_norm(moved, dim=1) / tau
    return torch.where(gnorm > tiny, ratio, torch.zeros_like(ratio))


class Dealer(Protocol):
    """Deals the units of a paper-recipe run out to the processes of a data-parallel run, and gathers
    what each computed (``unitlens.dealing.UnitDealer``). Every process makes the same calls."""

    def block(self, units: list[int]) -> list[int]:
        """This process's units of ``units`` (all of them when they are not dealt out)."""
        ...

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, in process order, on every process."""
        ...


@dataclass(frozen=True)
class _Run:
    x: Tensor  # (N, D)
    activation: Tensor  # (N,)
    steps: Tensor  # (N,) accepted steps
    converged: Tensor  # (N,)
    history: Tensor  # (S + 1, N)
    start_gradient_norm: Tensor  # (N,)
    stationarity: Tensor  # (N,) at the final input


def _held(history: Tensor, rows: int) -> Tensor:
    """``history`` (S + 1, ...) extended to ``rows`` rows by holding its last row (a stopped restart's
    final value is held: ``AMResult.history``)."""
    extra = rows - history.shape[0]
    if extra <= 0:
        return history
    return torch.cat([history, history[-1:].expand(extra, *history.shape[1:])])


def _join_runs(parts: list[_Run]) -> _Run:
    """Runs on consecutive blocks of rows, as one run of all their rows (histories held to the longest)."""
    rows = max(p.history.shape[0] for p in parts)
    return _Run(
        x=torch.cat([p.x for p in parts]),
        activation=torch.cat([p.activation for p in parts]),
        steps=torch.cat([p.steps for p in parts]),
        converged=torch.cat([p.converged for p in parts]),
        history=torch.cat([_held(p.history, rows) for p in parts], dim=1),
        start_gradient_norm=torch.cat([p.start_gradient_norm for p in parts]),
        stationarity=torch.cat([p.stationarity for p in parts]),
    )


def _gradient_norms(
    objective: _Objective,
    starts: _Starts,
    owners: Tensor,
    norm: float,
    box: tuple[float, float] | None,
    chunk: int,
) -> Tensor:
    """(N,) ||gradient|| at every projected start."""
    norms = []
    for lo in range(0, owners.numel(), chunk):
        hi = min(lo + chunk, owners.numel())
        objective.bind(owners[lo:hi])
        _, grad = objective.evaluate(_project_(starts.rows(lo, hi), norm, box))
        norms.append(torch.linalg.vector_norm(grad, dim=1))
    return torch.cat(norms)


def _ascend(
    objective: _Objective,
    starts: _Starts,
    owners: Tensor,
    *,
    learning_rate: float,
    norm: float,
    box: tuple[float, float] | None,
    max_steps: int,
    gtol: float | None,
    chunk: int,
) -> _Run:
    """Projected gradient ascent of every input, ``chunk`` inputs per batch.

    Each input keeps its own step size, ``learning_rate`` at first and halved whenever a step would lower
    (or not raise) its activation: that step is rejected and the input stays where it was. An input stops
    when its stationarity (:func:`_stationarity`) is at most ``gtol``, after ``_MAX_REJECTIONS`` rejected
    steps in a row (no step along the gradient raises the activation: a maximum to float precision), or
    at ``max_steps`` tries. Every rule reads only the input's own values, so an input's path
    does not depend on which other inputs share its batch.
    """
    total, dim = owners.numel(), objective.n_inputs
    device = owners.device
    like = torch.empty(0, dtype=starts.dtype, device=starts.device)
    # Every input writes all of its outputs once, when it stops: nothing needs filling beforehand.
    x_out = like.new_empty(total, dim)
    act_out = like.new_empty(total)
    start_norm_out = like.new_empty(total)
    stationarity_out = like.new_empty(total)
    steps_out = torch.empty(total, dtype=torch.long, device=device)
    converged_out = torch.empty(total, dtype=torch.bool, device=device)
    last_step = torch.empty(total, dtype=torch.long, device=device)  # the step at which each one stopped
    steps_run = 0  # the most steps any input tried: last_step's maximum, without reading it back
    # The activation history is kept as the tensors the steps produced (never modified in place) and
    # assembled once at the end: writing each step's row into a history buffer took two kernels a step.
    # runs: (lo, hi, rows) with rows[t] the activations of inputs lo .. hi - 1 after step t, for the steps
    # before any of them stopped; scattered: (step, global indices, activations) for the steps after.
    runs: list[tuple[int, int, list[Tensor]]] = []
    scattered: list[tuple[int, Tensor, Tensor]] = []
    # Two input buffers: a step writes the trial inputs into the spare one, and the accepted rows are kept.
    current_buffer = like.new_empty(min(chunk, total), dim)
    spare_buffer = torch.empty_like(current_buffer)
    scale = like.new_tensor(norm)  # the norm as _project_ multiplies by it

    for lo in range(0, total, chunk):
        hi = min(lo + chunk, total)
        n = hi - lo
        # The global index of each active input, made when the first input of the chunk stops; until then
        # the active inputs are lo .. hi - 1, read and written by slices.
        position: Tensor | None = None
        objective.bind(owners[lo:hi])
        current = starts.rows(lo, hi, out=current_buffer[:n])
        spare = spare_buffer[:n]  # the spare buffer's rows for the n active inputs
        _project_(current, scale, box)
        activation, grad = objective.evaluate(current)
        if not objective.fresh_gradients:
            grad = grad.clone()  # the objective overwrites its gradient buffer on the next call
        rows = [activation]
        runs.append((lo, hi, rows))
        torch.linalg.vector_norm(grad, dim=1, out=start_norm_out[lo:hi])
        rate = torch.full((n,), learning_rate, dtype=starts.dtype, device=device)
        rate_column = rate[:, None]  # made again only when rate changes
        accepted = torch.zeros(n, dtype=torch.long, device=device)
        rejected = torch.zeros(n, dtype=torch.long, device=device)  # rejections in a row
        step = 0
        # After a step that every input accepted, no input can have stopped by rejection.
        some_rejected = False
        every_accepted = 0  # steps that every input of the chunk accepted, kept out of ``accepted``
        while n > 0:
            # Stationarity is read every step only when the gtol rule needs it; else only for the output.
            ratio = _stationarity(current, grad, norm, box) if gtol is not None else None
            # An input can stop only at the cap, by gtol, or after a step that some input rejected.
            capped = step >= max_steps
            converged: Tensor | None = None
            if capped or ratio is not None or some_rejected:
                converged = rejected >= _MAX_REJECTIONS
                if ratio is not None and gtol is not None:
                    converged |= ratio <= gtol
            if capped:
                # Every active input stops: its outputs are written as a whole, without gathering rows.
                assert converged is not None
                where: slice | Tensor = slice(lo, hi) if position is None else position
                x_out[where] = current
                act_out[where] = activation
                stationarity_out[where] = (
                    ratio if ratio is not None else _stationarity(current, grad, norm, box)
                )
                steps_out[where] = accepted + every_accepted
                converged_out[where] = converged
                last_step[where] = step
                steps_run = max(steps_run, step)
                break
            if converged is not None and bool(converged.any()):
                if position is None:
                    position = torch.arange(lo, hi, device=device)
                finished = converged.nonzero().squeeze(1)
                where = position[finished]
                x_out[where] = current[finished]
                act_out[where] = activation[finished]
                stationarity_out[where] = (
                    ratio[finished]
                    if ratio is not None
                    else _stationarity(current[finished], grad[finished], norm, box)
                )
                steps_out[where] = accepted[finished] + every_accepted
                converged_out[where] = True
                last_step[where] = step
                steps_run = max(steps_run, step)
                kept = (~converged).nonzero().squeeze(1)
                n = kept.numel()
                if n == 0:
                    break
                position, activation, rate = position[kept], activation[kept], rate[kept]
                accepted, rejected, grad = accepted[kept], rejected[kept], grad.index_select(0, kept)
                rate_column = rate[:, None]
                objective.keep(kept)
                # The surviving inputs move into the spare buffer, which then becomes the current one.
                current = torch.index_select(current, 0, kept, out=spare_buffer[:n])
                current_buffer, spare_buffer = spare_buffer, current_buffer
                spare = spare_buffer[:n]
            step += 1
            trial = torch.addcmul(current, rate_column, grad, out=spare)
            _project_(trial, scale, box)
            trial_activation, trial_grad = objective.evaluate(trial)
            better = trial_activation > activation
            if bool(better.all()):
                current, spare = trial, current
                current_buffer, spare_buffer = spare_buffer, current_buffer
                activation = trial_activation
                if objective.fresh_gradients:
                    grad = trial_grad
                else:
                    grad.copy_(trial_grad)
                every_accepted += 1  # added to every input's count when it stops
                if some_rejected:
                    rejected.zero_()
                    some_rejected = False
            else:
                some_rejected = True
                moved = better.nonzero().squeeze(1)
                current.index_copy_(0, moved, trial.index_select(0, moved))
                grad.index_copy_(0, moved, trial_grad.index_select(0, moved))
                activation = torch.where(better, trial_activation, activation)
                accepted += better.long()
                rejected = torch.where(better, 0, rejected + 1)
                rate = torch.where(better, rate, rate * 0.5)
                rate_column = rate[:, None]
            if position is None:
                rows.append(activation)
            else:
                scattered.append((step, position, activation))

    # Entries after an input stopped were never written: they hold its final activation.
    history = act_out.repeat(steps_run + 1, 1)
    for lo, hi, rows in runs:
        history[: len(rows), lo:hi] = torch.stack(rows)
    for step, where, values in scattered:
        history[step, where] = values
    return _Run(x_out, act_out, steps_out, converged_out, history, start_norm_out, stationarity_out)


# ------------------------------------------------------------------------------------------- validation


def _check_units(units: Sequence[int] | Tensor | None, n_units: int, where: str) -> list[int]:
    if units is None:
        return list(range(n_units))
    try:
        values = torch.as_tensor(units)
    except (TypeError, ValueError, RuntimeError) as error:
        raise UnitlensError(f"units must be a 1-D sequence of integer indices, got {units!r}") from error
    if (
        values.dim() != 1
        or values.numel() == 0
        or values.dtype.is_floating_point
        or values.dtype == torch.bool
    ):
        raise UnitlensError(f"units must be a non-empty 1-D sequence of integer indices, got {units!r}")
    listed = [int(u) for u in values.tolist()]
    bad = [u for u in listed if not 0 <= u < n_units]
    if bad:
        raise UnitlensError(f"units {bad[:10]} are out of range for {where}, which has {n_units} units")
    return listed


def _check_number(name: str, value: object, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UnitlensError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise UnitlensError(f"{name} must be > 0, got {value!r}")
    return float(value)


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UnitlensError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _resolve_module(model: nn.Module, layer: object) -> tuple[nn.Module, str]:
    """The module named or given by ``layer``, and its dotted name."""
    named = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in named.items():
            if module is layer:
                return module, name or "<model>"
        raise UnitlensError(f"layer {type(layer).__name__} is not a submodule of the model")
    valid = [name for name in named if name]
    if isinstance(layer, str) and layer in named:
        return named[layer], layer or "<model>"
    raise UnitlensError(
        f"layer must be a submodule of the model or its dotted name; got {layer!r}, valid names: {valid}"
    )


def _check_shape(input_shape: Sequence[int] | None, n_inputs: int | None) -> tuple[int, ...]:
    """Validate a per-input shape; for a stack, its size must be ``n_inputs`` (default (n_inputs,))."""
    if input_shape is None:
        assert n_inputs is not None
        return (n_inputs,)
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise UnitlensError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
    if n_inputs is not None and math.prod(shape) != n_inputs:
        raise UnitlensError(
            f"input_shape {shape} has {math.prod(shape)} elements; the model has {n_inputs} inputs"
        )
    return shape


# ------------------------------------------------------------------------------------------------ public


def best_restart(activation: Tensor, rtol: float = BEST_RTOL) -> Tensor:
    """(U, R) final activations -> (U,) int64 index of each unit's best restart.

    The first restart whose activation is within ``rtol`` * max(|best|, 1) of the unit's highest: restarts
    that reached the same optimum differ only by rounding, and a plain argmax would pick among them by how
    the batch was rounded (so by ``chunk_size``), not by anything about the unit.
    """
    if activation.ndim != 2 or activation.shape[1] == 0:
        raise UnitlensError(f"activation must have shape (units, restarts), got {tuple(activation.shape)}")
    top = activation.amax(dim=1, keepdim=True)
    close = activation >= top - rtol * top.abs().clamp_min(1.0)
    return close.to(torch.uint8).argmax(dim=1)  # argmax returns the first maximum: the first close one


def maximize_activation(
    model: nn.Module,
    layer: int | str | nn.Module | None = None,
    units: Sequence[int] | Tensor | None = None,
    *,
    restarts: int = 9,
    generator: torch.Generator,
    objective: Objective | None = None,
    recipe: str | Recipe | None = None,
    parameterization: Parameterization | None = None,
    transforms: Transform | None = None,
    optimizer: TorchOptimizer | None = None,
    norm: float | None = None,
    learning_rate: float | None = None,
    lr_candidates: tuple[float, ...] = DEFAULT_LR_CANDIDATES,
    lr_selection_units: int | None = 36,
    max_steps: int = 1000,
    gtol: float | None = DEFAULT_GTOL,
    box: tuple[float, float] | None = None,
    input_shape: Sequence[int] | None = None,
    unit_axis: int = 1,
    channel_reduce: str | tuple[int, ...] = "center",
    forward_fn: ForwardFn | None = None,
    chunk_size: int | None = None,
    dealer: Dealer | None = None,
) -> AMResult:
    """Find, for each unit, the inputs that maximize its activation (or any objective), from several starts.

    Activation maximization is four parts (see ``unitlens.visualize.objectives``, ``parameterizations``,
    ``transforms`` and ``feature_vis``): what each row maximizes (``objective``), how its image is built from
    free parameters (``parameterization``), the random transforms applied at each step (``transforms``),
    and the optimizer. ``recipe`` names a whole combination: ``"paper"`` (pixels under the norm ``norm``,
    no transforms, the paper's projected gradient ascent: the default) or ``"lucid"`` (Fourier
    parameterization with colour decorrelation, Lucid's standard transforms, Adam); the explicit arguments
    replace the recipe's parts.

    Args:
        model: a :class:`LayerStack` (DBN, SDAE) or any ``torch.nn.Module``.
        layer: for a stack, the layer number (1-based, like the paper); otherwise the module whose output
            holds the units, or its dotted name from ``model.named_modules()``. It defines the default
            objective ``Unit(layer, axis=unit_axis, reduce=channel_reduce)``; may be None with an objective.
        units: indices of the units (or channels, or a Direction's rows) to visualize, each the owner of its
            restarts' rows; None means all of them. An objective with no owner-dependent term gets one
            "unit", 0.
        restarts: random starts per unit (the paper's 9).
        generator: seeds everything random (each unit's starts and transforms depend only on this
            generator's state and the unit's index).
        objective: what each row maximizes (``Unit``, ``Direction``, ``ClassLogit``, penalties, diversity
            and their sums); not available for a stack, whose objective is computed by hand.
        recipe: ``"paper"``, ``"lucid"`` or a :class:`~unitlens.visualize.recipe.Recipe`.
        parameterization: builds the images from parameters (``Pixels``, ``Fourier``); None: the paper's
            pixels, constrained to norm ``norm`` by projection.
        transforms: applied to the images at every step (needs a torch optimizer).
        optimizer: a :class:`~unitlens.visualize.feature_vis.TorchOptimizer`; None: the paper's projected
            gradient ascent, configured by the arguments below.
        norm: the norm constraint rho of the paper's pixels, typically the data set's mean input norm.
        learning_rate: projected ascent's initial step size; None picks it for the whole layer as
            c * rho / median ||gradient|| at the starts of the layer's reference units (see
            ``lr_selection_units``), c among ``lr_candidates`` giving the highest mean final activation
            there. The result equals a run with ``learning_rate`` set to the chosen value.
        lr_candidates: the constants c tried when ``learning_rate`` is None (each costs one run of the
            reference units).
        lr_selection_units: the reference units are the layer's first this many units (None: all of them),
            whichever units are requested: the step size, and so every unit's result, is the same in a
            run on a subset of the layer as in a run on the whole layer. 36, the units the paper shows: a
            request of exactly those reuses the selection run.
        max_steps: projected ascent's cap on gradient steps tried per restart (a rejected step counts).
        gtol: projected ascent stops a restart when the gradient's component along the constraint is at
            most ``gtol`` times the gradient's norm (with a box: the projected-gradient mapping, see
            ``_stationarity``): x* is then a constrained optimum to that precision. A step that would not
            raise the activation is rejected and halves that restart's step size; 10 rejections in a row
            stop it too (a maximum to float precision). None stops only at ``max_steps``.
        box: projected ascent only: optional (lo, hi) with lo <= 0 <= hi: after each step x is clamped to
            the box, then shrunk onto the sphere if its norm exceeds rho (it may end up shorter than rho).
            The spec's default is no box; the paper's comparison used [0, 1].
        input_shape: shape of one model input, excluding the batch; required for a generic module with the
            paper's pixels, e.g. (1, 28, 28); defaults to the parameterization's shape otherwise (images of
            another spatial size are resized to it). For a stack it defaults to (n_inputs,).
        unit_axis: the axis of the layer's output that holds the units (1: features or channels; -1: the
            last, e.g. a transformer block's (batch, tokens, D)).
        channel_reduce: how the other non-batch axes of the output are reduced: the centre element
            (``"center"``), the mean (``"mean"``) or a position tuple (e.g. ``(0,)``: the first token).
        forward_fn: how to call the model on a batch of inputs, ``forward_fn(model, x)``, for a model whose
            forward takes several inputs or a dict (default ``model(x)``).
        chunk_size: inputs per batch (None: all units x restarts at once); bounds memory, not results
            (which agree up to float rounding of the matrix products, see the module docstring). With a
            torch optimizer, chunks hold whole units.
        dealer: the paper's recipe only: deal the units out to the processes of a data-parallel run
            (``unitlens.dealing``). Each process ascends from its block of the units, the step size's trial
            runs included, and every process gets the whole result, the one a single process computes (up
            to float rounding: each unit's path depends on its own seed alone).

    Returns:
        An :class:`AMResult` holding every restart.

    Raises:
        UnitlensError: an invalid layer, unit, norm or setting, or a model that fails on the given shape.
    """
    restarts = _check_count("restarts", restarts, 1)
    if not isinstance(generator, torch.Generator):
        raise UnitlensError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not isinstance(model, nn.Module):
        raise UnitlensError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if chunk_size is not None:
        chunk_size = _check_count("chunk_size", chunk_size, 1)
    try:
        Unit("", axis=unit_axis, reduce=channel_reduce)
    except UnitlensError as error:
        raise UnitlensError(f"unit_axis / channel_reduce: {error}") from error
    if recipe is not None:
        chosen_recipe = resolve_recipe(recipe, input_shape)
        parameterization = (
            parameterization if parameterization is not None else chosen_recipe.parameterization
        )
        transforms = transforms if transforms is not None else chosen_recipe.transforms
        optimizer = optimizer if optimizer is not None else chosen_recipe.optimizer
    if objective is not None:
        objective = as_objective(objective)
    modes = [(module, module.training) for module in model.modules()]
    # inference_mode(False): under torch.inference_mode() no tensor would record its graph, and every
    # activation would look independent of the input.
    with torch.inference_mode(False):
        try:
            if (
                optimizer is not None
                or transforms is not None
                or (parameterization is not None and not _is_sphere(parameterization))
            ):
                if dealer is not None:
                    raise UnitlensError(
                        "dealer deals out the paper's projected ascent only; a torch optimizer's run is "
                        "not dealt out to processes yet"
                    )
                return _maximize_modern(
                    model,
                    layer,
                    units,
                    restarts=restarts,
                    generator=generator,
                    objective=objective,
                    parameterization=parameterization,
                    transforms=transforms,
                    optimizer=optimizer,
                    legacy=(learning_rate, box),
                    input_shape=input_shape,
                    unit_axis=unit_axis,
                    channel_reduce=channel_reduce,
                    forward_fn=forward_fn,
                    chunk_size=chunk_size,
                )
            if parameterization is not None:
                pixel_norm = getattr(parameterization, "norm", None)
                if norm is not None and pixel_norm != norm:
                    raise UnitlensError(
                        f"norm={norm} disagrees with the parameterization's norm {pixel_norm}"
                    )
                norm = pixel_norm
                if input_shape is None:
                    input_shape = tuple(parameterization.shape)
            return _maximize_paper(
                model,
                layer,
                units,
                restarts=restarts,
                generator=generator,
                objective=objective,
                norm=norm,
                learning_rate=learning_rate,
                lr_candidates=lr_candidates,
                lr_selection_units=lr_selection_units,
                max_steps=max_steps,
                gtol=gtol,
                box=box,
                input_shape=input_shape,
                unit_axis=unit_axis,
                channel_reduce=channel_reduce,
                forward_fn=forward_fn,
                chunk_size=chunk_size,
                dealer=dealer,
            )
        finally:
            _restore_modes(model, modes)


def _is_sphere(parameterization: Parameterization) -> bool:
    """Pixels under a norm and nothing else: what the paper's projected ascent optimizes."""
    return (
        isinstance(parameterization, Pixels)
        and parameterization.norm is not None
        and parameterization.box is None
    )


def _restore_modes(model: nn.Module, modes: list[tuple[nn.Module, bool]]) -> None:
    """Put every module back in its training mode through ``train(mode)``, so an overridden ``train()``
    runs. Parents come before their children in ``modules()``, and ``train`` recurses, so a child whose
    mode differs from its parent's is set after it."""
    for module, mode in modes:
        if module.training != mode:
            module.train(mode)


def _default_objective(
    model: nn.Module, layer: object, unit_axis: int, channel_reduce: str | tuple[int, ...]
) -> tuple[Objective, str]:
    """``Unit(layer)`` on the module named or given by ``layer``, and a name for messages."""
    if layer is None:
        raise UnitlensError("give a layer (a module or its dotted name) or an objective")
    _, name = _resolve_module(model, layer)
    return Unit("" if name == "<model>" else name, axis=unit_axis, reduce=channel_reduce), name


def _module_setup(
    model: nn.Module,
    layer: object,
    units: Sequence[int] | Tensor | None,
    objective: Objective | None,
    shape: tuple[int, ...],
    unit_axis: int,
    channel_reduce: str | tuple[int, ...],
    forward_fn: ForwardFn | None,
) -> tuple[_ModuleObjective, list[int], int, torch.dtype, torch.device]:
    """The objective evaluator of a generic module, the requested units and the number of units."""
    if objective is None:
        objective, where = _default_objective(model, layer, unit_axis, channel_reduce)
    else:
        where = "the objective"
    dtype, device = parameter_like(model)
    # Evaluation mode: dropout and batch statistics would make every input depend on the others.
    model.eval()
    evaluator = _ModuleObjective(model, objective, shape, forward_fn)
    try:
        n_layer_units = evaluator.n_units(dtype, device)
        if n_layer_units is None:  # no owner-dependent term: one "unit", a label
            n_layer_units = 1
        unit_list = _check_units(units, n_layer_units, f"layer {where!r}" if objective is None else where)
    except BaseException:
        evaluator.remove()
        raise
    return evaluator, unit_list, n_layer_units, dtype, device


def _maximize_modern(
    model: nn.Module,
    layer: object,
    units: Sequence[int] | Tensor | None,
    *,
    restarts: int,
    generator: torch.Generator,
    objective: Objective | None,
    parameterization: Parameterization | None,
    transforms: Transform | None,
    optimizer: TorchOptimizer | None,
    legacy: tuple[float | None, tuple[float, float] | None],
    input_shape: Sequence[int] | None,
    unit_axis: int,
    channel_reduce: str | tuple[int, ...],
    forward_fn: ForwardFn | None,
    chunk_size: int | None,
) -> AMResult:
    """Feature visualization with a parameterization, transforms and a torch optimizer (``feature_vis``)."""
    if isinstance(model, LayerStack):
        raise UnitlensError(
            "a DBN or SDAE is visualized with the paper's recipe (its objective is computed by hand); the "
            "modern recipe takes any other torch.nn.Module"
        )
    if optimizer is None:
        raise UnitlensError(
            "transforms and non-pixel parameterizations need a torch optimizer: pass "
            "optimizer=TorchOptimizer(...) or recipe='lucid'; the paper's projected ascent optimizes pixels "
            "under a norm"
        )
    if not isinstance(optimizer, TorchOptimizer):
        raise UnitlensError(f"optimizer must be a TorchOptimizer, got {type(optimizer).__name__}")
    if any(value is not None for value in legacy):
        raise UnitlensError(
            "learning_rate and box configure the paper's projected ascent; with a torch optimizer set "
            "TorchOptimizer(learning_rate=...) and Pixels(box=...)"
        )
    if parameterization is None:
        raise UnitlensError(
            "a torch optimizer needs a parameterization, e.g. Pixels(shape) or Fourier(shape)"
        )
    image_shape = tuple(parameterization.shape)
    shape = _check_shape(input_shape, None) if input_shape is not None else image_shape
    evaluator, unit_list, _, dtype, device = _module_setup(
        model, layer, units, objective, shape, unit_axis, channel_reduce, forward_fn
    )
    evaluator.remove()
    base_seed = draw_base_seed(generator)
    n_units = len(unit_list)
    run = optimize_images(
        model,
        evaluator.objective,
        parameterization,
        transforms,
        optimizer,
        units=unit_list,
        restarts=restarts,
        base_seed=base_seed,
        input_shape=shape,
        chunk=chunk_size if chunk_size is not None else n_units * restarts,
        dtype=dtype,
        device=device,
        generator_device=generator.device,
        forward_fn=forward_fn,
    )
    activation = run.activation.view(n_units, restarts)
    norm = getattr(parameterization, "norm", None)
    start_norm = run.start_gradient_norm.view(n_units, restarts)
    return AMResult(
        units=torch.tensor(unit_list, dtype=torch.long, device=device),
        x=run.x.view(n_units, restarts, *image_shape),
        activation=activation,
        steps=torch.full((n_units, restarts), optimizer.steps, dtype=torch.long, device=device),
        converged=torch.zeros(n_units, restarts, dtype=torch.bool, device=device),
        history=run.history.view(-1, n_units, restarts),
        best=best_restart(activation),
        learning_rate=optimizer.learning_rate,
        norm=float(norm) if norm is not None else math.nan,
        start_gradient_norm=start_norm,
        stationarity=torch.full_like(activation, math.nan),
        reference_gradient_norm=float(start_norm.median()),
        snapshot_steps=optimizer.snapshots,
        snapshots=run.snapshots.view(len(optimizer.snapshots), n_units, restarts, *image_shape),
    )


def _maximize_paper(
    model: nn.Module,
    layer: object,
    units: Sequence[int] | Tensor | None,
    *,
    restarts: int,
    generator: torch.Generator,
    objective: Objective | None,
    norm: float | None,
    learning_rate: float | None,
    lr_candidates: tuple[float, ...],
    lr_selection_units: int | None,
    max_steps: int,
    gtol: float | None,
    box: tuple[float, float] | None,
    input_shape: Sequence[int] | None,
    unit_axis: int,
    channel_reduce: str | tuple[int, ...],
    forward_fn: ForwardFn | None,
    chunk_size: int | None,
    dealer: Dealer | None = None,
) -> AMResult:
    """The paper's projected gradient ascent on pixels under the norm (see the module docstring)."""
    if norm is None:
        raise UnitlensError("norm is required for the paper's recipe (pixels under a norm constraint)")
    norm = _check_number("norm", norm)
    max_steps = _check_count("max_steps", max_steps, 0)
    if gtol is not None:
        gtol = _check_number("gtol", gtol, positive=False)
        if not 0.0 <= gtol < 1.0:
            raise UnitlensError(
                f"gtol is a share of the gradient's norm and must lie in [0, 1), got {gtol!r}"
            )
    if learning_rate is not None:
        learning_rate = _check_number("learning_rate", learning_rate)
    if lr_selection_units is not None and (isinstance(lr_selection_units, bool) or lr_selection_units < 1):
        raise UnitlensError(f"lr_selection_units must be a positive int or None, got {lr_selection_units!r}")
    if not lr_candidates:
        raise UnitlensError("lr_candidates must hold at least one positive constant")
    candidates = [_check_number("lr_candidates entry", c) for c in lr_candidates]
    if box is not None:
        if len(box) != 2:
            raise UnitlensError(f"box must be a pair (lo, hi), got {box!r}")
        lo, hi = (_check_number("box bound", b, positive=False) for b in box)
        if not lo <= 0.0 <= hi or lo == hi:
            raise UnitlensError(f"box must satisfy lo <= 0 <= hi and lo < hi, got {box!r}")
        box = (lo, hi)

    evaluator: _StackObjective | _ModuleObjective
    run: _Run | None = None
    hooked: _ModuleObjective | None = None
    try:
        if isinstance(model, LayerStack):
            if objective is not None:
                raise UnitlensError(
                    "a DBN or SDAE maximizes its units' pre-sigmoid input, computed by hand; custom "
                    "objectives take any other torch.nn.Module"
                )
            if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= model.n_layers:
                raise UnitlensError(
                    f"layer must be an int in 1..{model.n_layers} (1-based) for this stack, got {layer!r}"
                )
            shape = _check_shape(input_shape, model.n_inputs)
            n_layer_units = model.layer_sizes[layer]
            unit_list = _check_units(units, n_layer_units, f"layer {layer}")
            evaluator = _StackObjective(model, layer)
            dtype, device = model.dtype, model.device
        else:
            if input_shape is None:
                raise UnitlensError("input_shape is required for a generic module, e.g. (1, 28, 28)")
            shape = _check_shape(input_shape, None)
            hooked, unit_list, n_layer_units, dtype, device = _module_setup(
                model, layer, units, objective, shape, unit_axis, channel_reduce, forward_fn
            )
            if hooked.objective.couples_restarts():
                raise UnitlensError(
                    "Diversity couples the restarts of a unit, which the paper's projected ascent (one "
                    "accept/reject per restart) cannot follow; use a torch optimizer"
                )
            evaluator = hooked

        base_seed = draw_base_seed(generator)

        def rows_of(unit_ids: list[int]) -> tuple[_Starts, Tensor]:
            """Each unit's starts (seeded by the unit's index alone) and the owner of each input row."""
            unit_starts = _Starts(
                base_seed, unit_ids, restarts, evaluator.n_inputs, dtype, device, generator.device
            )
            ids = torch.tensor(unit_ids, dtype=torch.long, device=device)
            return unit_starts, ids.repeat_interleave(restarts)

        starts, owners = rows_of(unit_list)
        n_reference = n_layer_units if lr_selection_units is None else min(lr_selection_units, n_layer_units)
        reference = list(range(n_reference))
        chunk = chunk_size if chunk_size is not None else max(len(unit_list), n_reference) * restarts

        def ascend(rate: float, unit_starts: _Starts = starts, rows: Tensor = owners) -> _Run:
            return _ascend(
                evaluator,
                unit_starts,
                rows,
                learning_rate=rate,
                norm=norm,
                box=box,
                max_steps=max_steps,
                gtol=gtol,
                chunk=chunk,
            )

        def reference_median(unit_starts: _Starts, rows: Tensor) -> float:
            return float(_gradient_norms(evaluator, unit_starts, rows, norm, box, chunk).median())

        def dealt(rate: float, unit_ids: list[int]) -> _Run:
            """The ascent of ``unit_ids`` at ``rate``: this process's block, joined with the others'."""
            assert dealer is not None
            mine = dealer.block(unit_ids)
            if mine == unit_ids:  # too few units to deal out: every process runs them all
                return ascend(rate, *rows_of(unit_ids))
            return _join_runs(dealer.gather(ascend(rate, *rows_of(mine))))

        def dealt_median(unit_ids: list[int]) -> float:
            """The median gradient norm at the starts of ``unit_ids``, dealt out like the ascent."""
            if dealer is None or (mine := dealer.block(unit_ids)) == unit_ids:
                return reference_median(*rows_of(unit_ids))
            norms = dealer.gather(_gradient_norms(evaluator, *rows_of(mine), norm, box, chunk))
            return float(torch.cat(norms).median())

        with torch.no_grad():
            # The layer's scale of gradients, on its reference units whatever was requested: it sets the
            # step size and tells flat units apart (AMResult.reference_gradient_norm).
            if learning_rate is not None:
                run = ascend(learning_rate) if dealer is None else dealt(learning_rate, unit_list)
                # Each unit's starts depend on its index alone, so a run that holds every reference unit
                # has already evaluated their starts: one gradient evaluation of the batch fewer.
                row_of = {u: p for p, u in enumerate(unit_list)}
                if all(row_of.get(u) == u for u in reference):
                    # The reference units lead the request: their rows are the first ones.
                    median = float(run.start_gradient_norm[: n_reference * restarts].median())
                elif all(u in row_of for u in reference):
                    rows = torch.tensor(
                        [row_of[u] * restarts + r for u in reference for r in range(restarts)],
                        dtype=torch.long,
                        device=device,
                    )
                    median = float(run.start_gradient_norm.index_select(0, rows).median())
                else:
                    median = dealt_median(reference)
            else:
                if dealer is None:
                    reference_starts, reference_owners = rows_of(reference)
                    median = reference_median(reference_starts, reference_owners)
                else:
                    median = dealt_median(reference)
                if not math.isfinite(median):
                    raise UnitlensError(
                        f"the gradient at the starts is not finite ({median}): the model's weights or "
                        "outputs hold NaN or inf"
                    )
                if median <= 0:
                    raise UnitlensError(
                        f"the median gradient norm at the starts is {median}, so the step size cannot be "
                        "picked from it; pass learning_rate"
                    )
                best_mean = -math.inf
                chosen: _Run | None = None
                for c in candidates:
                    rate = c * norm / median
                    if dealer is None:
                        trial = ascend(rate, reference_starts, reference_owners)
                    else:
                        trial = dealt(rate, reference)
                    mean = float(trial.activation.double().mean())
                    # Strictly greater: on a tie the smaller (earlier) candidate wins.
                    if mean > best_mean:
                        best_mean, chosen, learning_rate = mean, trial, rate
                if chosen is None or learning_rate is None:
                    raise UnitlensError("the final activations are not finite for any step size candidate")
                # A request of exactly the reference units is the trial run itself.
                if unit_list == reference:
                    run = chosen
                else:
                    run = ascend(learning_rate) if dealer is None else dealt(learning_rate, unit_list)
    finally:
        if hooked is not None:
            hooked.remove()

    assert run is not None and learning_rate is not None
    n_units = len(unit_list)
    activation = run.activation.view(n_units, restarts)
    return AMResult(
        units=torch.tensor(unit_list, dtype=torch.long, device=device),
        x=run.x.view(n_units, restarts, *shape),
        activation=activation,
        steps=run.steps.view(n_units, restarts),
        converged=run.converged.view(n_units, restarts),
        history=run.history.view(-1, n_units, restarts),
        best=best_restart(activation),
        learning_rate=learning_rate,
        norm=norm,
        start_gradient_norm=run.start_gradient_norm.view(n_units, restarts),
        stationarity=run.stationarity.view(n_units, restarts),
        reference_gradient_norm=median,
    )
