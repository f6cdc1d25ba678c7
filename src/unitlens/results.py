"""The results of a study, as typed arrays: what a run folder keeps in ``results/NAME.npz`` and ``NAME.json``.

Figures and the report are rendered from these results alone, so they can be regenerated without
retraining or re-optimizing. The study writes them (``unitlens.study.stack_results``); render reads them.
:meth:`StackResults.load` is the one reader: it validates a file once (keys, dtypes, shapes consistent with
each other, finite values where they are shown) and raises ``UnitlensError`` naming the file and the field;
whatever holds a :class:`StackResults` may trust it. :meth:`StackResults.save` is the one writer (atomic,
uncompressed ``.npz``; reading never unpickles).

On disk, keys are ``layer{j}/{name}``; every image array ends with the flattened input dimension d
(reshape with ``image_shape``: ``(H, W)`` grey, ``(C, H, W)`` channel-major with C = 1 grey or 3 RGB, or
``(d,)`` for inputs that are not images, drawn as bar plots).
Per layer j (U studied units, R restarts, T steps, S samples, N exemplars,
Us units of the selectivity matrix, d inputs); "opt." marks a field that may be absent:

=============================  ==================  ==========================================================
key                            shape               meaning
=============================  ==================  ==========================================================
units                          (U,)                unit indices
filters (opt.)                 (U, d)              layer 1 only: the units' weight rows
am_x                           (U, R, d)           every AM restart's x*
am_activation                  (U, R)              final pre-sigmoid activation of each restart
am_steps, am_converged         (U, R)              steps taken; stopped by the rule (1) or the cap (0)
am_stationarity (opt.)         (U, R)              share of the gradient along the sphere at x* (0: optimum)
am_start_gradient_norm (opt.)  (U, R)              ||gradient|| at each start
am_history                     (T, U, R)           activation after each step
am_best                        (U,)                best restart per unit
lc (opt.)                      (U, d)              linear combination of lower filters (stacks only)
samples, samples_mean (opt.)   (U, S, d), (U, d)   DBN, j >= 2: clamped samples and their mean
exemplars                      (U, N, d)           the N training inputs that most activate the unit
exemplar_activations           (U, N)              their pre-sigmoid activations
selectivity (opt.)             (Us, Us)            selectivity matrix, columns divided by their sums
selectivity_margin (opt.)      (Us,)               per row: diagonal minus the largest other entry
exemplar_selectivity (opt.)    (Us, Us)            the same with each unit's top exemplar as its pattern
control_selectivity (opt.)     (Us, Us)            the same for the shuffled-weights control (j >= 2)
flat, dead (opt.)              (U,)                1: AM image is not a feature (dead or plateau); dead
exemplar_labels (opt.)         (U, N)              the exemplars' class labels, for labelled data
restart_mean_cosine            (U,)                mean pairwise cosine of the restarts
energy_concentration           (U,)                fraction of x*'s energy in its 10 largest pixels
lc_vs_am (opt.)                (U,)                Pearson correlation with the AM image (NaN: undefined)
samples_vs_am (opt.)           (U,)                the same for the mean of the clamped samples
=============================  ==================  ==========================================================

``am_stationarity``, ``am_start_gradient_norm`` and ``selectivity_margin`` are absent from results written
before they existed; such run folders still load. A user's own model (``unitlens.model_study``) has no
``lc`` / ``lc_vs_am`` (no linear combination of filters), no clamped samples, and no selectivity matrix for a
layer with fewer than 2 studied units; its ``am_stationarity`` is all NaN and ``am_converged`` all 0 under a
recipe without a constraint surface (``lucid``). Us <= U. Images, the selectivity matrices (in [0, 1]) and
the activations must be finite; correlations, cosines and the stationarity may be NaN where undefined.

Top-level keys:

- ``image_shape`` (1,) ``(d,)`` (vectors), (2,) ``(H, W)`` or (3,) ``(C, H, W)`` with C in {1, 3}; d = its
  product;
- ``pixel_mean`` / ``pixel_scale`` (d,) for standardised data (opt.);
- ``layer_names`` (L,) numpy unicode (``np.str_``) array, one display name per layer in ascending layer
  number order (``"conv1"``, ``"features.3"``), for a user's model (opt.; without it layers are "layer j").

Beside ``NAME.npz``, ``NAME.json`` holds the study's summary ``{"layers": [{"layer": j, ...}, ...], ...}``:
the figures computed by the study with its own thresholds, which the claims (``analysis.claims``) and the
report read (:func:`read_summary`). ``StackResults.summary`` carries it; ``save`` writes it when present. A
user model's summary may also carry top-level ``"model"`` (a description string) and ``"recipe"``
(``"paper"``, ``"lucid"``, ...), read by :attr:`StackResults.model_description` and
:attr:`StackResults.recipe`.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from unitlens.atomic import write_bytes, write_text
from unitlens.errors import UnitlensError

__all__ = [
    "CHANNELS",
    "ImageShape",
    "LayerResults",
    "StackResults",
    "load_arrays",
    "read_summary",
    "save_arrays",
]

_LAYER_KEY = re.compile(r"^layer(\d+)/(\w+)$")
_TOP_KEYS = ("image_shape", "pixel_mean", "pixel_scale", "layer_names")
CHANNELS = (1, 3)
# A vector input is drawn as a bar plot this many pixels high, with at most this many columns.
VECTOR_HEIGHT = 16
VECTOR_COLUMNS = 128
"""The channel counts an image may have: grey or RGB."""


def _spec(shape: str, kind: str, *, finite: bool = False, unit_range: bool = False) -> dict[str, Any]:
    """A field's rule: its axes (symbols shared across fields), its dtype kind, what its values must be.

    kind: "int" (integer dtype), "flag" (bool or integer, values 0 or 1), "float" (floating dtype).
    """
    return {"shape": tuple(shape.split()), "kind": kind, "finite": finite, "unit_range": unit_range}


_KINDS = {"int": "iu", "flag": "biu", "float": "f"}
_KIND_WORDS = {"int": "integers", "flag": "flags (0 or 1)", "float": "floating-point numbers"}


@dataclass(frozen=True, eq=False, kw_only=True)
class LayerResults:
    """One layer's results: one numpy array per key of the table in the module docstring.

    Arrays keep the dtype they were computed or stored with (float32 images, int64 indices). A
    ``LayerResults`` is validated when it is put into a :class:`StackResults` (which knows d and the
    layer's name for messages). Fields are keyword-only, so optional ones (default None) can keep the
    table's order.
    """

    units: np.ndarray = field(metadata=_spec("U", "int"))
    am_x: np.ndarray = field(metadata=_spec("U R d", "float", finite=True))
    am_activation: np.ndarray = field(metadata=_spec("U R", "float", finite=True))
    am_steps: np.ndarray = field(metadata=_spec("U R", "int"))
    am_converged: np.ndarray = field(metadata=_spec("U R", "flag"))
    am_history: np.ndarray = field(metadata=_spec("T U R", "float"))
    am_best: np.ndarray = field(metadata=_spec("U", "int"))
    lc: np.ndarray | None = field(default=None, metadata=_spec("U d", "float", finite=True))
    exemplars: np.ndarray = field(metadata=_spec("U N d", "float", finite=True))
    exemplar_activations: np.ndarray = field(metadata=_spec("U N", "float"))
    selectivity: np.ndarray | None = field(
        default=None, metadata=_spec("Us Us", "float", finite=True, unit_range=True)
    )
    restart_mean_cosine: np.ndarray = field(metadata=_spec("U", "float"))
    energy_concentration: np.ndarray = field(metadata=_spec("U", "float"))
    lc_vs_am: np.ndarray | None = field(default=None, metadata=_spec("U", "float"))
    am_stationarity: np.ndarray | None = field(default=None, metadata=_spec("U R", "float"))
    am_start_gradient_norm: np.ndarray | None = field(default=None, metadata=_spec("U R", "float"))
    selectivity_margin: np.ndarray | None = field(default=None, metadata=_spec("Us", "float"))
    filters: np.ndarray | None = field(default=None, metadata=_spec("U d", "float", finite=True))
    samples: np.ndarray | None = field(default=None, metadata=_spec("U S d", "float", finite=True))
    samples_mean: np.ndarray | None = field(default=None, metadata=_spec("U d", "float", finite=True))
    samples_vs_am: np.ndarray | None = field(default=None, metadata=_spec("U", "float"))
    exemplar_selectivity: np.ndarray | None = field(
        default=None, metadata=_spec("Us Us", "float", finite=True, unit_range=True)
    )
    control_selectivity: np.ndarray | None = field(
        default=None, metadata=_spec("Us Us", "float", finite=True, unit_range=True)
    )
    flat: np.ndarray | None = field(default=None, metadata=_spec("U", "flag"))
    dead: np.ndarray | None = field(default=None, metadata=_spec("U", "flag"))
    exemplar_labels: np.ndarray | None = field(default=None, metadata=_spec("U N", "int"))

    @property
    def n_units(self) -> int:
        """U, the studied units."""
        return int(self.units.shape[0])

    @property
    def n_restarts(self) -> int:
        """R, AM restarts per unit."""
        return int(self.am_x.shape[1])

    def best_x(self) -> np.ndarray:
        """(U, d) each unit's best restart ``am_x[u, am_best[u]]``."""
        return self.am_x[np.arange(self.n_units), self.am_best.astype(np.int64)]

    def arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """(key, array) for every field present, in the table's order."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                yield f.name, value

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], *, where: str = "layer") -> LayerResults:
        """The layer from ``{name: array}`` (no ``layer{j}/`` prefix); unknown or missing required keys are
        errors naming ``where`` (e.g. ``"results/mnist-dbn.npz: field layer2/"``) and the key."""
        known = {f.name: f for f in fields(cls)}
        for key in arrays:
            if key not in known:
                raise UnitlensError(f"{where}{key} is not a results field (known: {', '.join(known)})")
        for name, f in known.items():
            if f.default is MISSING and name not in arrays:
                raise UnitlensError(f"{where}{name} is missing (every layer holds it; see unitlens.results)")
        return cls(**{k: np.asarray(v) for k, v in arrays.items()})

    def check(self, where: str, d: int) -> None:
        """Validate dtypes, shapes and values; ``where`` prefixes each field's name in messages.

        Raises:
            UnitlensError: e.g. ``"{where}am_x has shape (5, 3, 30), expected (U, R, d) = (5, 3, 36)"``.
        """
        dims: dict[str, int] = {"d": d}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if not isinstance(value, np.ndarray):
                raise UnitlensError(f"{where}{f.name} must be a numpy array, got {type(value).__name__}")
            spec = f.metadata
            axes: tuple[str, ...] = spec["shape"]
            bound = dict(dims)
            fits = value.ndim == len(axes)
            for a, n in zip(axes, value.shape, strict=False):
                fits = bound.setdefault(a, int(n)) == n and fits  # a symbol named twice binds once
            if not fits:
                expected = ", ".join(str(bound.get(a, a)) for a in axes)
                raise UnitlensError(
                    f"{where}{f.name} has shape {value.shape}, expected ({', '.join(axes)}) = ({expected})"
                    + (", a square matrix" if len(set(axes)) < len(axes) else "")
                )
            dims = bound
            if dims.get("U") == 0:
                raise UnitlensError(f"{where}units is empty: expected at least one studied unit")
            if dims.get("R") == 0:
                raise UnitlensError(f"{where}am_x has no restarts: expected (U, R, d) with R >= 1")
            if dims.get("Us", 0) > dims["U"]:
                raise UnitlensError(
                    f"{where}{f.name} has shape {value.shape}: expected (Us, Us) with Us <= U = {dims['U']} "
                    "(the selectivity matrices cover the first studied units)"
                )
            if value.dtype.kind not in _KINDS[spec["kind"]]:
                raise UnitlensError(
                    f"{where}{f.name} has dtype {value.dtype}, expected {_KIND_WORDS[spec['kind']]}"
                )
            if spec["kind"] == "flag" and value.size and not np.isin(value, (0, 1)).all():
                raise UnitlensError(f"{where}{f.name} must hold flags 0 or 1")
            if spec["finite"] and not np.isfinite(value).all():
                raise UnitlensError(f"{where}{f.name} holds NaN or infinite values")
            if spec["unit_range"] and not ((value >= 0) & (value <= 1)).all():
                raise UnitlensError(f"{where}{f.name} must be normalised into [0, 1] (columns sum to 1)")
        if (self.units < 0).any():
            raise UnitlensError(f"{where}units must be unit indices >= 0")
        if ((self.am_best < 0) | (self.am_best >= dims["R"])).any():
            raise UnitlensError(f"{where}am_best must hold restart indices in 0..{dims['R'] - 1}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LayerResults):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None  # type: ignore[assignment]


ImageShape = tuple[int] | tuple[int, int] | tuple[int, int, int]
"""One input's shape: ``(H, W)`` grey, or ``(C, H, W)`` with C in :data:`CHANNELS` (channel-major)."""


@dataclass(frozen=True, eq=False)
class StackResults:
    """One trained stack's (or user model's) results, validated on creation (see the module docstring).

    Attributes:
        image_shape: ``(height, width)`` of one grey input, or ``(channels, height, width)`` with channels
            1 or 3; d = the product. Image arrays are flattened channel-major (``reshape(C, H, W)``).
        layers: layer number (1-based) -> its results, ascending.
        pixel_mean, pixel_scale: (d,) the standardisation of the data (``x * scale + mean`` gives pixels),
            or None for data shown as is.
        summary: the study's summary (``NAME.json``: ``{"layers": [{"layer": j, ...}], ...}``), or None.
        source: where the results came from, for messages (the file, or "results"); not compared.
        layer_names: (L,) one display name per layer, in ascending layer order (a numpy ``np.str_`` array,
            or any sequence of strings, stored as the array), or None: layers are called "layer j".

    Raises:
        UnitlensError: on creation, when a field breaks the format; the message names ``source`` and the
            field, e.g. ``"results/mnist-dbn.npz: field layer2/am_x has shape (5, 3, 30), expected
            (U, R, d) = (5, 3, 36)"``.
    """

    image_shape: ImageShape
    layers: dict[int, LayerResults]
    pixel_mean: np.ndarray | None = None
    pixel_scale: np.ndarray | None = None
    summary: dict[str, Any] | None = None
    source: str = "results"
    layer_names: np.ndarray | Sequence[str] | None = None

    def __post_init__(self) -> None:
        src = self.source
        object.__setattr__(self, "image_shape", _image_shape(self.image_shape, src))
        d = self.n_inputs
        for key in ("pixel_mean", "pixel_scale"):
            v = getattr(self, key)
            if v is None:
                continue
            if not isinstance(v, np.ndarray) or v.dtype.kind != "f" or v.shape != (d,):
                got = f"{v.dtype} {v.shape}" if isinstance(v, np.ndarray) else type(v).__name__
                raise UnitlensError(f"{src}: field {key} must be (d,) = ({d},) floats, got {got}")
            if not np.isfinite(v).all() or (key == "pixel_scale" and not (v > 0).all()):
                raise UnitlensError(
                    f"{src}: field {key} must be finite" + (" and positive" if key == "pixel_scale" else "")
                )
        if not self.layers:
            raise UnitlensError(f"{src}: no layer fields (expected keys 'layer1/units', 'layer1/am_x', ...)")
        for j, layer in self.layers.items():
            if isinstance(j, bool) or not isinstance(j, int) or j < 1:
                raise UnitlensError(f"{src}: layer numbers start at 1, got {j!r}")
            if not isinstance(layer, LayerResults):
                raise UnitlensError(f"{src}: layer {j} must be a LayerResults, got {type(layer).__name__}")
            layer.check(f"{src}: field layer{j}/", d)
        object.__setattr__(self, "layers", dict(sorted(self.layers.items())))
        if self.layer_names is not None:
            object.__setattr__(self, "layer_names", _layer_names(self.layer_names, src, len(self.layers)))
        if self.summary is not None:
            _check_summary(self.summary, src, self.layers)

    @property
    def n_inputs(self) -> int:
        """d, the flattened input dimension (the product of ``image_shape``)."""
        return math.prod(self.image_shape)

    @property
    def channels(self) -> int:
        """C: 1 for grey images (``(H, W)`` or ``(1, H, W)``) and for vectors, 3 for RGB."""
        return self.image_shape[0] if len(self.image_shape) == 3 else 1

    @property
    def is_vector(self) -> bool:
        """The inputs are vectors ``(d,)``, drawn as bar plots rather than images."""
        return len(self.image_shape) == 1

    @property
    def spatial(self) -> tuple[int, int]:
        """``(H, W)``, the pixels one input is drawn with, whatever its channels (:func:`display_shape`:
        an image's height and width, a vector's bar plot)."""
        return display_shape(self.image_shape)

    def layer_name(self, j: int) -> str:
        """Layer ``j``'s display name: its entry of ``layer_names`` (``"conv1"``), else ``"layer j"``."""
        if self.layer_names is not None and j in self.layers:
            return str(self.layer_names[list(self.layers).index(j)])
        return f"layer {j}"

    @property
    def recipe(self) -> str | None:
        """The summary's ``"recipe"`` (how AM was run, e.g. ``"lucid"``), or None."""
        value = (self.summary or {}).get("recipe")
        return value if isinstance(value, str) and value else None

    @property
    def model_description(self) -> str | None:
        """The summary's ``"model"``, a description of a user's model, or None (empty counts as absent)."""
        value = (self.summary or {}).get("model")
        return value if isinstance(value, str) and value else None

    def layer(self, j: int) -> LayerResults:
        """Layer ``j``'s results (``UnitlensError`` naming the source when the stack has none)."""
        if j not in self.layers:
            raise UnitlensError(f"{self.source}: no layer {j} (layers: {list(self.layers)})")
        return self.layers[j]

    def layer_summary(self, j: int) -> dict[str, Any] | None:
        """The study's summary of layer ``j``, or None without a summary."""
        if self.summary is None:
            return None
        return next((r for r in self.summary["layers"] if r["layer"] == j), None)

    # ------------------------------------------------------------------------------------- arrays

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The flat ``{key: array}`` mapping of the ``.npz`` file (keys ``image_shape``, ``layer{j}/...``)."""
        out: dict[str, np.ndarray] = {"image_shape": np.array(self.image_shape, dtype=np.int64)}
        if self.layer_names is not None:
            out["layer_names"] = np.asarray(self.layer_names)
        if self.pixel_mean is not None:
            out["pixel_mean"] = self.pixel_mean
        if self.pixel_scale is not None:
            out["pixel_scale"] = self.pixel_scale
        for j, layer in self.layers.items():
            for key, value in layer.arrays():
                out[f"layer{j}/{key}"] = value
        return out

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        *,
        summary: dict[str, Any] | None = None,
        source: str = "results",
    ) -> StackResults:
        """Parse and validate the flat mapping of a ``.npz`` file (the inverse of :meth:`to_arrays`)."""
        if "image_shape" not in arrays:
            raise UnitlensError(
                f"{source}: field image_shape is missing "
                "(expected (height, width) or (channels, height, width))"
            )
        per_layer: dict[int, dict[str, np.ndarray]] = {}
        for key, value in arrays.items():
            if key in _TOP_KEYS:
                continue
            m = _LAYER_KEY.match(key)
            if m is None:
                raise UnitlensError(
                    f"{source}: field {key} is not a results field (expected {', '.join(_TOP_KEYS)} "
                    "or layer{j}/{name})"
                )
            per_layer.setdefault(int(m.group(1)), {})[m.group(2)] = value
        layers = {
            j: LayerResults.from_arrays(a, where=f"{source}: field layer{j}/") for j, a in per_layer.items()
        }
        mean, scale, names = arrays.get("pixel_mean"), arrays.get("pixel_scale"), arrays.get("layer_names")
        return cls(
            image_shape=_image_shape(arrays["image_shape"], source),
            layers=layers,
            pixel_mean=None if mean is None else np.asarray(mean),
            pixel_scale=None if scale is None else np.asarray(scale),
            summary=summary,
            source=source,
            layer_names=None if names is None else np.asarray(names),
        )

    # ------------------------------------------------------------------------------------- files

    @classmethod
    def load(cls, path: str | Path) -> StackResults:
        """Read ``path`` (``results/NAME.npz``) and, when it exists, the summary ``NAME.json`` beside it.

        Never unpickles. Validates once: see the class.

        Raises:
            UnitlensError: a missing, damaged or non-``.npz`` file, or a field that breaks the format (the
                message names the file and the field).
        """
        source = Path(path)
        try:
            loaded = np.load(source, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single .npy array, not an .npz archive of named arrays")
            with loaded as f:
                arrays = {k: f[k] for k in f.files}
        except FileNotFoundError as exc:
            raise UnitlensError(f"results file {source} does not exist") from exc
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise UnitlensError(f"results file {source} is damaged or not an .npz: {exc}") from exc
        summary_path = source.with_suffix(".json")
        summary = read_summary(summary_path) if summary_path.is_file() else None
        return cls.from_arrays(arrays, summary=summary, source=str(source))

    def save(self, path: str | Path) -> Path:
        """Write the arrays to ``path`` (uncompressed ``.npz``) and, with a summary, ``path`` with suffix
        ``.json``; each file atomically. Returns ``path``."""
        target = Path(path)
        buffer = io.BytesIO()
        np.savez(buffer, **self.to_arrays())  # type: ignore[arg-type]
        write_bytes(target, buffer.getvalue())
        if self.summary is not None:
            write_text(target.with_suffix(".json"), json.dumps(self.summary, indent=1) + "\n")
        return target

    def __eq__(self, other: object) -> bool:
        """Same arrays (dtype, shape, values; NaN equals NaN) and the same summary; ``source`` is ignored."""
        if not isinstance(other, StackResults):
            return NotImplemented
        return (
            self.image_shape == other.image_shape
            and list(self.layers) == list(other.layers)
            and all(self.layers[j] == other.layers[j] for j in self.layers)
            and _same(self.pixel_mean, other.pixel_mean)
            and _same(self.pixel_scale, other.pixel_scale)
            and _names(self.layer_names) == _names(other.layer_names)
            and _json(self.summary) == _json(other.summary)
        )

    __hash__ = None  # type: ignore[assignment]


def _image_shape(value: Any, source: str) -> ImageShape:
    """``(d,)``, ``(H, W)`` or ``(C, H, W)`` as a tuple of ints, checked: positive integers, C in
    ``CHANNELS``."""
    shape = np.asarray(value)
    if shape.shape not in ((1,), (2,), (3,)) or shape.dtype.kind not in "iu" or (shape < 1).any():
        raise UnitlensError(
            f"{source}: field image_shape must be (values,), (height, width) or (channels, height, width), "
            f"positive integers, got {shape.tolist()!r}"
        )
    if shape.shape == (1,):
        return (int(shape[0]),)
    if shape.shape == (2,):
        return int(shape[0]), int(shape[1])
    if int(shape[0]) not in CHANNELS:
        raise UnitlensError(
            f"{source}: field image_shape (channels, height, width) has {int(shape[0])} channels, "
            f"expected 1 (grey) or 3 (RGB), got {shape.tolist()!r}"
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


def display_shape(image_shape: ImageShape) -> tuple[int, int]:
    """(h, w): the pixels one input is drawn with. An image: its height and width. A vector of d values:
    a bar plot ``VECTOR_HEIGHT`` pixels high with one column per value, at most ``VECTOR_COLUMNS`` (longer
    vectors are binned; ``unitlens.render.tiles.vector_bitmaps``)."""
    if len(image_shape) == 1:
        return VECTOR_HEIGHT, min(image_shape[0], VECTOR_COLUMNS)
    return image_shape[-2], image_shape[-1]


def _layer_names(value: Any, source: str, n_layers: int) -> np.ndarray:
    """``value`` as an ``(L,)`` unicode array of distinct non-empty names, one per layer."""
    names = np.asarray(value)
    # Only a unicode array loads without pickle (an object array would not); bytes are refused too, so
    # every writer stores the same dtype.
    if names.dtype.kind != "U" or names.ndim != 1:
        raise UnitlensError(
            f"{source}: field layer_names must be a (L,) array of strings (numpy dtype str), "
            f"got {names.dtype} {names.shape}"
        )
    if names.shape[0] != n_layers:
        raise UnitlensError(
            f"{source}: field layer_names has {names.shape[0]} names for {n_layers} layers "
            "(one per layer, in ascending layer order)"
        )
    listed = [str(n) for n in names]
    if any(not n.strip() for n in listed) or len(set(listed)) != len(listed):
        raise UnitlensError(f"{source}: field layer_names must be distinct non-empty names, got {listed!r}")
    return names


def _names(value: np.ndarray | Sequence[str] | None) -> list[str] | None:
    # Compared as strings: "<U5" and "<U8" arrays of the same names are the same names.
    return None if value is None else [str(n) for n in value]


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    )


def _json(summary: dict[str, Any] | None) -> str:
    return json.dumps(summary, sort_keys=True)


def _check_summary(doc: Any, source: str, layers: Mapping[int, LayerResults] | None = None) -> None:
    rows = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and isinstance(r.get("layer"), int) and not isinstance(r["layer"], bool)
        for r in rows
    ):
        raise UnitlensError(
            f'{source}: expected {{"layers": [{{"layer": 1, ...}}, ...]}} (one summary per layer)'
        )
    for key in ("model", "recipe"):
        if key in doc and not isinstance(doc[key], str):
            raise UnitlensError(f"{source}: field {key!r} must be a string, got {doc[key]!r}")
    if layers is not None:
        extra = sorted({r["layer"] for r in rows} - set(layers))
        if extra:
            raise UnitlensError(f"{source}: the summary has layers {extra} that the results lack")
    for r in rows:
        n = r.get("n_units")
        if layers is not None and n is not None and n != layers[r["layer"]].n_units:
            raise UnitlensError(
                f"{source}: summary of layer {r['layer']} has n_units {n}, the results "
                f"{layers[r['layer']].n_units}"
            )


def read_summary(path: str | Path) -> dict[str, Any]:
    """The study's summary ``results/NAME.json`` (``{"layers": [{"layer": j, ...}, ...], ...}``).

    Raises:
        UnitlensError: an unreadable file, invalid JSON, or not that layout (the message names the file).
    """
    source = Path(path)
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UnitlensError(f"{source}: could not read the study summary ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise UnitlensError(f"{source} is damaged: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    _check_summary(doc, str(source))
    return doc


# ------------------------------------------------------------------------------------------ flat arrays


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The validated arrays of a results file as one flat mapping: ``StackResults.load(path).to_arrays()``."""
    return StackResults.load(path).to_arrays()


def save_arrays(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Validate a flat mapping of arrays and write it: ``StackResults.from_arrays(arrays).save(path)``."""
    StackResults.from_arrays(arrays, source=str(path)).save(path)
