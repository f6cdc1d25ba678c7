"""What each row of an activation-maximization batch maximizes: objectives that add and scale like numbers.

A batch holds one input per (unit, restart). Row b belongs to its *owner* unit u(b); an objective maps the
batch's captured layer outputs (and its images, for penalties) to one value per row, (n,). The optimizer
maximizes the sum over rows; since rows never interact (except through :class:`Diversity`, which couples
the restarts of one unit on purpose), one backward pass gives every row its own gradient.

Objectives compose like numbers, as in Lucid (``lucid/optvis/objectives.py``) and Captum's ``optim``
(``captum/optim/_core/loss.py``)::

    Unit("conv2") - 0.5 * Unit("conv1", 3) - 1e-3 * TotalVariation() + 0.1 * Diversity("conv1")

- :class:`Unit` with ``unit=None`` is the owner's unit: the batched objective of the paper, one unit per
  row. With a fixed ``unit`` every row shares it (a term of an objective arithmetic).
- ``axis`` says where the units lie in the layer's output: 1 for ``(B, F)`` features and ``(B, C, H, W)``
  channels; -1 for a transformer block's ``(B, tokens, D)``. The other non-batch axes are reduced by
  ``reduce``: their centre element (``"center"``, index size // 2 on each), their mean (``"mean"``), or a
  position (a tuple of indices, e.g. a token).
- :class:`Direction` projects the (reduced) layer output on a direction: one vector shared by every row,
  or a matrix whose row u(b) is the owner's direction (the "units" are then directions).
- :class:`ClassLogit` is a unit of the model's own output (layer name ``""``).
- Penalties (:class:`L1`, :class:`L2`, :class:`TotalVariation`) measure the image itself and are positive:
  subtract them.
- :class:`Diversity` rewards a unit's restarts for differing (Lucid's diversity: the negative mean cosine
  similarity of the Gram matrices of a layer's activations, here among the restarts of one unit only).

Layer names are dotted module names from ``model.named_modules()``; ``""`` is the model's output.
:class:`Capture` runs the model with forward hooks on exactly the layers an objective reads, and stops the
forward pass as soon as they have all been computed, unless the model's output is needed.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from unitlens.errors import UnitlensError

__all__ = [
    "L1",
    "L2",
    "Capture",
    "ClassLogit",
    "Context",
    "Direction",
    "Diversity",
    "Objective",
    "TotalVariation",
    "Unit",
    "as_objective",
    "parameter_like",
    "unit_activations",
]

REDUCTIONS = ("center", "mean")
ForwardFn = Callable[[nn.Module, Tensor], Any]


@dataclass(frozen=True)
class Context:
    """One batch as an objective sees it.

    Attributes:
        outputs: layer name -> that layer's output for the batch, (n, ...); ``""`` is the model's output.
        image: (n, *shape) the images being optimized (after the parameterization, before transforms).
        owners: (n,) int64 owner unit of each row.
        groups: (n,) int64 rows with the same value are restarts of the same unit (used by Diversity).
    """

    outputs: Mapping[str, Tensor]
    image: Tensor
    owners: Tensor
    groups: Tensor


class Objective(abc.ABC):
    """A value per batch row, to be maximized. Objectives add, subtract, negate and scale by numbers."""

    @abc.abstractmethod
    def layers(self) -> frozenset[str]:
        """The layer names whose outputs :meth:`values` reads."""

    @abc.abstractmethod
    def values(self, context: Context) -> Tensor:
        """(n,) the objective of each row."""

    def n_units(self, outputs: Mapping[str, Tensor]) -> int | None:
        """How many owner indices the objective accepts, read from one probe batch's outputs; None when
        no term depends on the owner."""
        return None

    def couples_restarts(self) -> bool:
        """True when a row's value depends on other rows of its unit (Diversity)."""
        return False

    def terms(self) -> tuple[tuple[float, Objective], ...]:
        return ((1.0, self),)

    def __add__(self, other: object) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return Sum(self.terms() + other.terms())

    def __sub__(self, other: object) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-1.0) * other

    def __mul__(self, factor: object) -> Objective:
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            return NotImplemented
        if not math.isfinite(factor):
            raise UnitlensError(f"an objective can only be scaled by a finite number, got {factor!r}")
        return Sum(tuple((w * float(factor), term) for w, term in self.terms()))

    __rmul__ = __mul__

    def __truediv__(self, divisor: object) -> Objective:
        if isinstance(divisor, bool) or not isinstance(divisor, int | float) or divisor == 0:
            return NotImplemented
        return self * (1.0 / float(divisor))

    def __neg__(self) -> Objective:
        return (-1.0) * self


@dataclass(frozen=True, eq=False)
class Sum(Objective):
    """sum_k w_k * objective_k, row by row."""

    weighted: tuple[tuple[float, Objective], ...]

    def terms(self) -> tuple[tuple[float, Objective], ...]:
        return self.weighted

    def layers(self) -> frozenset[str]:
        return frozenset().union(*(term.layers() for _, term in self.weighted))

    def values(self, context: Context) -> Tensor:
        total: Tensor | None = None
        for weight, term in self.weighted:
            value = term.values(context) * weight
            total = value if total is None else total + value
        assert total is not None
        return total

    def n_units(self, outputs: Mapping[str, Tensor]) -> int | None:
        counts = {n for _, term in self.weighted if (n := term.n_units(outputs)) is not None}
        return min(counts) if counts else None

    def couples_restarts(self) -> bool:
        return any(term.couples_restarts() for _, term in self.weighted)

    def __repr__(self) -> str:
        return " + ".join(f"{w:g} * {term!r}" for w, term in self.weighted)


def _check_layer(layer: object) -> str:
    if not isinstance(layer, str):
        raise UnitlensError(f"an objective's layer is a dotted module name (str), got {layer!r}")
    return layer


def _check_reduce(reduce: object) -> str | tuple[int, ...]:
    if isinstance(reduce, str):
        if reduce not in REDUCTIONS:
            raise UnitlensError(f"reduce must be one of {REDUCTIONS} or a tuple of indices, got {reduce!r}")
        return reduce
    if isinstance(reduce, tuple) and all(isinstance(i, int) and not isinstance(i, bool) for i in reduce):
        return reduce
    raise UnitlensError(f"reduce must be one of {REDUCTIONS} or a tuple of indices, got {reduce!r}")


def _output(context: Context, layer: str) -> Tensor:
    output = context.outputs.get(layer)
    if output is None:
        raise UnitlensError(f"layer {layer or '<model output>'!r} was not captured")
    return output


def _unit_dim(output: Tensor, axis: int, layer: str) -> int:
    """The non-negative index of the unit axis of ``output`` (n, ...), checked."""
    if output.dim() < 2:
        raise UnitlensError(
            f"layer {layer or '<model output>'!r} gives an output of shape {tuple(output.shape)}; expected "
            "(batch, units, ...)"
        )
    dim = axis if axis >= 0 else output.dim() + axis
    if not 1 <= dim < output.dim():
        raise UnitlensError(
            f"unit axis {axis} is not a non-batch axis of layer {layer or '<model output>'!r}'s output "
            f"of shape {tuple(output.shape)}"
        )
    return dim


def _position(output: Tensor, dim: int, how: str | tuple[int, ...], layer: str) -> tuple[int, ...]:
    """The non-negative index, on each non-batch axis of ``output`` other than ``dim`` (in order), of the
    element a position reduction (``"center"`` or a tuple) reads."""
    sizes = [output.shape[k] for k in range(1, output.dim()) if k != dim]
    if isinstance(how, str):  # "center"
        return tuple(size // 2 for size in sizes)
    if len(how) != len(sizes) or not all(-size <= p < size for p, size in zip(how, sizes, strict=True)):
        raise UnitlensError(
            f"position {how} does not index the non-unit axes {tuple(sizes)} of layer "
            f"{layer or '<model output>'!r}"
        )
    return tuple(p % size for p, size in zip(how, sizes, strict=True))


def unit_activations(output: Tensor, axis: int, reduce: str | tuple[int, ...], layer: str = "") -> Tensor:
    """(n, ...) a layer's output -> (n, units) every unit's activation as :class:`Unit` reads it (the unit
    axis ``axis``, the other non-batch axes reduced by ``reduce``: their centre, their mean or a position,
    a tuple with one index per non-unit axis, in order).

    The reduction runs on the output's own layout (a select or a mean, never a copy of the whole output
    with the unit axis moved): the gradient then reaches the layer in its own memory layout. Moving the
    unit axis last first made the objective's backward pass permute and copy the gradient, which slowed a
    small CNN's whole step by 1.6x (a convolution's backward on a permuted gradient; measured 2026-12-04).
    """
    dim = _unit_dim(output, axis, layer)
    rest = [k for k in range(1, output.dim()) if k != dim]
    if not rest:
        return output
    how = _check_reduce(reduce)
    if how == "mean":
        return output.mean(dim=rest)
    picked = output
    # The last axes first, so that the earlier axes keep their indices.
    for k, p in reversed(list(zip(rest, _position(output, dim, how, layer), strict=True))):
        picked = picked.select(k, p)
    return picked


@dataclass(frozen=True, eq=False)
class Unit(Objective):
    """The activation of one unit (a feature, or a channel reduced over positions) of a layer's output.

    Args:
        layer: dotted module name (``""``: the model's output).
        unit: a fixed unit index shared by every row, or None for each row's owner.
        axis: the axis of the output that holds the units (1: ``(B, F)`` or ``(B, C, *spatial)``; -1: the
            last axis, e.g. a transformer's ``(B, tokens, D)``).
        reduce: how the other non-batch axes are reduced: ``"center"``, ``"mean"`` or a position tuple.
    """

    layer: str
    unit: int | None = None
    axis: int = 1
    reduce: str | tuple[int, ...] = "center"
    # At most one (owners, key, flat index) entry: see _owner_index.
    _index_cache: list[tuple[Tensor, tuple[object, ...], Tensor]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _check_layer(self.layer)
        if self.unit is not None and (isinstance(self.unit, bool) or not isinstance(self.unit, int)):
            raise UnitlensError(f"Unit.unit must be an int or None, got {self.unit!r}")
        if isinstance(self.axis, bool) or not isinstance(self.axis, int) or self.axis == 0:
            raise UnitlensError(
                f"Unit.axis must be a non-batch axis (an int other than 0), got {self.axis!r}"
            )
        _check_reduce(self.reduce)

    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    def values(self, context: Context) -> Tensor:
        output = _output(context, self.layer)
        if self.unit is None and self.reduce != "mean":
            index = self._owner_index(output, context.owners)
            if index is not None:
                # One take from the output: a single autograd node, where the selects of the position, the
                # gather of the owners and the select of its column take one each, and each backward node
                # allocates and fills its own gradient (3-6% of a small CNN's whole step; measured
                # 2026-12-04). The same elements, the same gradient.
                return torch.take(output, index)
        activations = unit_activations(output, self.axis, self.reduce, self.layer)
        n, n_units = activations.shape
        if self.unit is None:
            return activations.gather(1, context.owners.view(n, 1))[:, 0]
        if not -n_units <= self.unit < n_units:
            raise UnitlensError(
                f"unit {self.unit} is out of range for layer {self.layer!r} ({n_units} units)"
            )
        return activations[:, self.unit % n_units]

    def n_units(self, outputs: Mapping[str, Tensor]) -> int | None:
        if self.unit is not None:
            return None
        output = outputs[self.layer]
        return int(output.shape[_unit_dim(output, self.axis, self.layer)])

    def _owner_index(self, output: Tensor, owners: Tensor) -> Tensor | None:
        """(n,) the index of each row's owner element in ``output`` read as one flat, row-major tensor (what
        ``torch.take`` reads, whatever its memory layout), for a position reduction; None for an owner out
        of range or owners the general path must read (it then reads or rejects them).

        An optimization evaluates the same owners at every step: the index is kept for the owners tensor
        it was made from, as long as that tensor is not modified in place (its version counter) and the
        output has the same shape.
        """
        if (
            owners.dtype != torch.long
            or owners.is_inference()
            or owners.device != output.device
            or owners.shape != output.shape[:1]
            or output.numel() == 0
        ):
            return None
        key = (owners._version, output.shape)
        cached = self._index_cache[0] if self._index_cache else None
        if cached is not None and cached[0] is owners and cached[1] == key:
            return cached[2]
        dim = _unit_dim(output, self.axis, self.layer)
        n_units = output.shape[dim]
        smallest, largest = torch.aminmax(owners)
        if int(smallest) < 0 or int(largest) >= n_units:
            return None
        how = _check_reduce(self.reduce)
        assert how != "mean"
        rest = [k for k in range(1, output.dim()) if k != dim]
        stride = [math.prod(output.shape[k + 1 :]) for k in range(output.dim())]  # row-major, in elements
        position = _position(output, dim, how, self.layer)
        offset = sum(p * stride[k] for k, p in zip(rest, position, strict=True))
        rows = torch.arange(owners.numel(), device=owners.device) * stride[0]
        index = rows.add_(owners * stride[dim]).add_(offset)
        self._index_cache[:] = [(owners, key, index)]
        return index

    def __repr__(self) -> str:
        unit = "owner" if self.unit is None else str(self.unit)
        return f"Unit({self.layer!r}, {unit})"


def ClassLogit(cls: int | None = None, axis: int = -1) -> Unit:  # noqa: N802 (reads like a class)
    """The model output's logit ``cls`` (None: each row's owner is its class)."""
    return Unit("", cls, axis=axis)


@dataclass(frozen=True, eq=False)
class Direction(Objective):
    """The projection of a layer's (reduced) output on a direction.

    Args:
        layer: dotted module name.
        vectors: (D,) one direction for every row, or (K, D) one per owner (row u(b) for row b).
        axis: the axis holding the D features (see :class:`Unit`).
        reduce: the other axes' reduction (``"mean"`` by default, Lucid's ``direction_neuron`` takes a
            position, ``"center"`` or a tuple does that).
        cosine: divide by the norm of the reduced output (Lucid's ``direction_cossim``), so the
            direction, not the size of the activation, is rewarded.
    """

    layer: str
    vectors: Tensor = field(repr=False)
    axis: int = 1
    reduce: str | tuple[int, ...] = "mean"
    cosine: bool = False

    def __post_init__(self) -> None:
        _check_layer(self.layer)
        if (
            not isinstance(self.vectors, Tensor)
            or self.vectors.dim() not in (1, 2)
            or self.vectors.numel() == 0
        ):
            raise UnitlensError("Direction.vectors must be a (D,) or (K, D) tensor")
        if not bool(torch.isfinite(self.vectors).all()):
            raise UnitlensError("Direction.vectors holds NaN or inf")
        _check_reduce(self.reduce)

    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    def values(self, context: Context) -> Tensor:
        reduced = unit_activations(_output(context, self.layer), self.axis, self.reduce, self.layer)  # (n, D)
        vectors = self.vectors.to(reduced)
        if vectors.shape[-1] != reduced.shape[1]:
            raise UnitlensError(
                f"Direction on layer {self.layer!r} has vectors of length {vectors.shape[-1]}; the layer has "
                f"{reduced.shape[1]} features on axis {self.axis}"
            )
        rows = vectors.expand(reduced.shape[0], -1) if vectors.dim() == 1 else vectors[context.owners]
        value = (reduced * rows).sum(dim=1)
        if self.cosine:
            value = value / (
                torch.linalg.vector_norm(reduced, dim=1) * torch.linalg.vector_norm(rows, dim=1)
            ).clamp_min(1e-12)
        return value

    def n_units(self, outputs: Mapping[str, Tensor]) -> int | None:
        return int(self.vectors.shape[0]) if self.vectors.dim() == 2 else None


@dataclass(frozen=True, eq=False)
class L1(Objective):
    """sum |x - constant| over each image's elements: a penalty (subtract it)."""

    constant: float = 0.0

    def layers(self) -> frozenset[str]:
        return frozenset()

    def values(self, context: Context) -> Tensor:
        return (context.image - self.constant).abs().flatten(1).sum(dim=1)


@dataclass(frozen=True, eq=False)
class L2(Objective):
    """sqrt(sum (x - constant)^2 + epsilon) of each image: a penalty (subtract it). epsilon keeps the
    gradient finite at x = constant, as in Lucid's L2."""

    constant: float = 0.0
    epsilon: float = 1e-6

    def layers(self) -> frozenset[str]:
        return frozenset()

    def values(self, context: Context) -> Tensor:
        return ((context.image - self.constant).pow(2).flatten(1).sum(dim=1) + self.epsilon).sqrt()


@dataclass(frozen=True, eq=False)
class TotalVariation(Objective):
    """sum over spatial axes of |x[i + 1] - x[i]| (anisotropic total variation) of each image, a penalty.

    Images are (n, C, *spatial); every axis after the channel axis counts as spatial.
    """

    def layers(self) -> frozenset[str]:
        return frozenset()

    def values(self, context: Context) -> Tensor:
        image = context.image
        total = image.new_zeros(image.shape[0])
        for dim in range(2, image.dim()):
            total = total + image.diff(dim=dim).abs().flatten(1).sum(dim=1)
        return total


@dataclass(frozen=True, eq=False)
class Diversity(Objective):
    """Minus the mean cosine similarity between the Gram matrix of each row's layer activations and those of
    the other restarts of the same unit (Lucid's ``diversity``, restricted to a unit's own restarts so that
    units stay independent). A unit with one restart gets 0.

    Layer outputs (n, C, *spatial) give (C, C) Gram matrices; (n, F) outputs use the features themselves.
    """

    layer: str

    def __post_init__(self) -> None:
        _check_layer(self.layer)

    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    def couples_restarts(self) -> bool:
        return True

    def values(self, context: Context) -> Tensor:
        output = _output(context, self.layer)
        n = output.shape[0]
        if output.dim() > 2:
            flat = output.reshape(n, output.shape[1], -1)
            gram = torch.bmm(flat, flat.transpose(1, 2)).reshape(n, -1)
        else:
            gram = output.reshape(n, -1)
        unit_vectors = gram / torch.linalg.vector_norm(gram, dim=1, keepdim=True).clamp_min(1e-12)
        similarity = unit_vectors @ unit_vectors.t()  # (n, n)
        same = context.groups[:, None] == context.groups[None, :]
        same.fill_diagonal_(False)
        others = same.sum(dim=1)
        total = (similarity * same).sum(dim=1)
        return -torch.where(others > 0, total / others.clamp_min(1), torch.zeros_like(total))


def as_objective(value: object) -> Objective:
    if not isinstance(value, Objective):
        raise UnitlensError(
            f"objective must be a unitlens objective (Unit, Direction, ClassLogit, ...), got {value!r}"
        )
    return value


def parameter_like(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of a model's first floating-point parameter or buffer (float32 on the CPU for a
    model with none): what its inputs are made in."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.float32, torch.device("cpu")


_GLOBAL_MODULE_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


def _global_module_hooks() -> bool:
    """True when module hooks registered for every module (``nn.modules.module.register_module_*``)
    exist: a model's own call then does more than its forward. A torch without one of these registries
    counts as having hooks, so that the hooked forward pass, which is always right, runs."""
    registries = [getattr(nn.modules.module, name, None) for name in _GLOBAL_MODULE_HOOKS]
    return any(registry is None or len(registry) > 0 for registry in registries)


class _StopForwardError(Exception):
    """Raised by a hook once every captured layer has run: the layers above need not be computed."""


class Capture:
    """Runs a model and keeps the outputs of the layers an objective reads.

    Args:
        model: the network.
        layers: dotted module names; ``""`` means the model's output (the forward pass then runs to the end).
        forward_fn: how to call the model on a batch (default ``model(x)``); for a model that takes several
            inputs or a dict, e.g. ``lambda m, x: m(pixels=x, mask=mask)``.
        input_shape: the shape of one input, for error messages.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: frozenset[str],
        forward_fn: ForwardFn | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.model = model
        self.forward_fn = forward_fn
        self.input_shape = input_shape
        self.layers = layers
        self.needs_output = "" in layers
        named = dict(model.named_modules())
        missing = sorted(name for name in layers if name and name not in named)
        if missing:
            valid = [name for name in named if name]
            raise UnitlensError(f"layers {missing} are not modules of the model; valid names: {valid}")
        self._outputs: dict[str, Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._children = self._sequential_prefix(named) if forward_fn is None else None
        if self._children is None:
            self._handles = [
                named[name].register_forward_hook(self._hook(name)) for name in sorted(layers) if name
            ]

    def _sequential_prefix(self, named: Mapping[str, nn.Module]) -> list[tuple[nn.Module, str | None]] | None:
        """For a plain ``nn.Sequential`` whose captured layers are all its own children: its children up to
        the last captured one, each with its name if captured; None for any other model.

        Calling those children in order is exactly what the Sequential's forward does up to there (each
        through its own ``__call__``, so their hooks run), without a hook per captured layer and the
        exception that ends the pass: on a small CNN that saved about 3% of a whole step (measured
        2026-12-04). The model's own ``__call__`` (hooks on the root, global module hooks) is what this
        skips, so any such hook, or an overridden forward or call, keeps the hooked forward pass.
        """
        model = self.model
        if (
            self.needs_output
            or not self.layers
            or not isinstance(model, nn.Sequential)
            or type(model).forward is not nn.Sequential.forward
            or type(model).__call__ is not nn.Module.__call__
            or type(model)._call_impl is not nn.Module._call_impl
            or model._forward_hooks
            or model._forward_pre_hooks
            or model._backward_hooks
            or model._backward_pre_hooks
            or _global_module_hooks()
        ):
            return None
        children = list(model._modules.items())
        # A child registered under two names is named (and hooked) under its first one only.
        position = {
            name: k
            for k, (name, child) in enumerate(children)
            if name in self.layers and named.get(name) is child
        }
        if len(position) != len(self.layers):
            return None
        last = max(position.values())
        captured = {k: name for name, k in position.items()}
        prefix: list[tuple[nn.Module, str | None]] = []
        for k, (_, child) in enumerate(children[: last + 1]):
            if child is None:
                return None
            prefix.append((child, captured.get(k)))
        return prefix

    def _hook(self, name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if name in self._outputs:  # a module called twice in one pass: its first call counts
                return
            if not isinstance(output, Tensor):
                raise UnitlensError(f"layer {name!r} returns {type(output).__name__}, expected one tensor")
            self._outputs[name] = output
            if not self.needs_output and len(self._outputs) == len(self._handles):
                raise _StopForwardError

        return hook

    def _run_children(self, x: object) -> dict[str, Tensor]:
        """The captured outputs of the Sequential's prefix (see :meth:`_sequential_prefix`)."""
        assert self._children is not None
        outputs: dict[str, Tensor] = {}
        for child, name in self._children:
            x = child(x)
            if name is not None:
                if not isinstance(x, Tensor):
                    raise UnitlensError(f"layer {name!r} returns {type(x).__name__}, expected one tensor")
                outputs[name] = x
        return outputs

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __call__(self, x: Tensor) -> dict[str, Tensor]:
        """Inputs (n, *input_shape) -> {layer name: output}."""
        self._outputs = {}
        result: object = None
        try:
            if self._children is not None:
                self._outputs = self._run_children(x)
            else:
                with contextlib.suppress(_StopForwardError):
                    result = self.model(x) if self.forward_fn is None else self.forward_fn(self.model, x)
        except UnitlensError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            given = tuple(x.shape)
            first_line = str(error).splitlines()[0] if str(error) else repr(error)
            raise UnitlensError(
                f"the model failed on a batch of shape {given} (input_shape {self.input_shape}) while "
                f"computing layers {sorted(self.layers)}: {first_line}"
            ) from error
        outputs, self._outputs = self._outputs, {}
        if self.needs_output:
            if not isinstance(result, Tensor):
                raise UnitlensError(
                    f"the model's forward returns {type(result).__name__}; a class logit needs one tensor "
                    "(pass forward_fn to pick it)"
                )
            outputs[""] = result
        absent = sorted(name for name in self.layers if name not in outputs)
        if absent:
            raise UnitlensError(f"layers {absent} were not called by the model's forward pass")
        return outputs
