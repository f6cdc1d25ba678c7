"""Checkpoints: tensors in safetensors, configuration and metadata in JSON beside them.

A checkpoint ``NAME`` at rest is the pair ``NAME.safetensors`` + ``NAME.json``. The JSON records the SHA-256
of the tensor file (field ``tensor_sha256``) and of its own canonical form (``meta_sha256``), so a truncated
or replaced tensor file, a tensor file from another checkpoint and an edited JSON are all detected on load.

Loading never unpickles, and checks sizes before it allocates: the JSON is refused beyond
``MAX_META_BYTES`` or ``MAX_META_DEPTH`` levels of nesting before it is parsed, then validated field by field
(:func:`read_meta`); the tensor file's header is read alone (its length prefix and JSON, not the tensors)
and compared with the JSON's list of tensors and, in :func:`load_model`, with the parameter shapes the model
config implies (the model built on torch's ``meta`` device, which allocates nothing); what loading would take
is compared with the machine's memory; only then are the tensors read and their hash checked.

Saving commits the pair as one unit, the JSON being the commit record:

1. the tensors are written to ``NAME.<h>.safetensors``, ``<h>`` the first 16 hex digits of their SHA-256
   (a new file: the pair on disk is untouched);
2. ``NAME.json`` is replaced by one whose ``tensor_file`` names that file: the commit;
3. that file is renamed ``NAME.safetensors`` and the JSON rewritten to name it;
4. other ``NAME.<h>.safetensors`` files and temporaries left by interrupted saves are removed.

Each write is atomic (``unitlens.atomic``), so a process killed at any point leaves the old pair or the new
one readable: before step 2 the old JSON names old tensors that still exist; after it the JSON names the new
tensors, under step 1's name or, once step 3 renamed them, ``NAME.safetensors`` (a reader looks there when
the named file is gone). :func:`settle_checkpoint` finishes steps 3 and 4 of a save interrupted after its
commit. Pairs written before this scheme (``tensor_file`` ``NAME.safetensors``, no ``meta_sha256``) still
load.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

import unitlens
from unitlens.atomic import write_bytes, write_text
from unitlens.data.dataset import DataRecipe
from unitlens.errors import UnitlensError
from unitlens.models.classifier import StackClassifier
from unitlens.models.dae import DAE
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM
from unitlens.models.sdae import SDAE

FORMAT = "unitlens-checkpoint"
FORMAT_VERSION = 1
MODEL_KINDS = ("dbn", "sdae", "rbm", "dae", "classifier")
# A checkpoint's JSON is a few kB (a paper-length run's history is ~400 rows); anything near these limits is
# not one, and refusing it before parsing keeps a hostile file from exhausting memory or the stack.
MAX_META_BYTES = 16 * 2**20
MAX_META_DEPTH = 64
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on its header
# safetensors dtype codes -> (torch dtype name, bytes per element): the dtypes a checkpoint may hold.
ST_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
_TENSOR_FILE = re.compile(r"[^/\\]*?(?:\.([0-9a-f]{16}))?\.safetensors")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class DamagedCheckpointError(UnitlensError):
    """A checkpoint's files are damaged, torn, edited or missing (not: a sound checkpoint of another model).

    Attributes:
        problem: what is wrong, naming the file and the field, without the advice on how to recover.
    """

    def __init__(self, problem: str, advice: str = "") -> None:
        super().__init__(f"{problem}; {advice}" if advice else problem)
        self.problem = problem


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file pair holds.

    Attributes:
        tensors: every stored tensor by name (``model.*`` for the weights, other prefixes for resume state).
        meta: the JSON metadata (format, model kind and config, training config, data, seed, versions).
    """

    tensors: dict[str, Tensor]
    meta: dict[str, Any]

    def section(self, prefix: str) -> dict[str, Tensor]:
        """The tensors stored under ``prefix.``, with the prefix removed."""
        p = prefix + "."
        return {k[len(p) :]: v for k, v in self.tensors.items() if k.startswith(p)}


def paths_for(path: str | Path) -> tuple[Path, Path]:
    """(tensor file at rest, JSON file) for a checkpoint named by its stem or by either file."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def versions() -> dict[str, str]:
    """Package versions recorded with every checkpoint and run."""
    return {
        "unitlens": unitlens.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def model_kind(model: nn.Module) -> str:
    """The checkpoint kind of ``model``."""
    for kind, cls in (
        ("dbn", DBN),
        ("sdae", SDAE),
        ("rbm", RBM),
        ("dae", DAE),
        ("classifier", StackClassifier),
    ):
        if isinstance(model, cls):
            return kind
    raise UnitlensError(f"cannot checkpoint a model of type {type(model).__name__}")


def model_config(model: nn.Module) -> dict[str, Any]:
    config: dict[str, Any] = model.config()  # type: ignore[operator]
    return config


def build_model(kind: str, config: dict[str, Any], *, meta: bool = False) -> nn.Module:
    """An untrained model of ``kind`` with the architecture and dtype ``config`` describes.

    ``config`` is a model's ``config()`` dict; fields added since a checkpoint was written take their
    defaults (an RBM config without ``dtype`` builds a float32 RBM, the dtype such models had). With
    ``meta`` its parameters are on torch's meta device: shapes and dtypes, no memory, which is how
    :func:`load_model` learns the shapes a config implies before it builds the model.
    """
    if kind not in MODEL_KINDS:
        raise UnitlensError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    model: nn.Module
    if kind == "classifier":
        model = StackClassifier.from_config(config, device="meta" if meta else None)
    else:
        cls: Any = {"dbn": DBN, "sdae": SDAE, "rbm": RBM, "dae": DAE}[kind]
        # A meta model still draws its initial weights from a generator, which must be a CPU one.
        model = (
            cls.from_config(config, generator=torch.Generator(), device="meta")
            if meta
            else cls.from_config(config)
        )
    if meta and any(t.device.type != "meta" for t in model.state_dict().values()):
        raise AssertionError(f"a {kind} built on the meta device holds tensors elsewhere")
    return model


# ----------------------------------------------------------------------------------------------- saving


def meta_digest(meta: dict[str, Any]) -> str:
    """The SHA-256 of ``meta``'s canonical JSON (sorted keys, no spaces), field ``meta_sha256`` left out."""
    rest = {k: v for k, v in meta.items() if k != "meta_sha256"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _meta_text(info: dict[str, Any], json_path: Path) -> str:
    """``info`` with its ``meta_sha256``, as the indented JSON text of the checkpoint's metadata file."""
    try:
        plain = json.loads(json.dumps(info, allow_nan=False))  # tuples become lists, as a reader sees them
    except (TypeError, ValueError) as exc:
        raise UnitlensError(f"checkpoint metadata for {json_path} is not plain JSON: {exc}") from exc
    plain["meta_sha256"] = meta_digest(plain)
    return json.dumps(plain, indent=2, sort_keys=True, allow_nan=False) + "\n"


def _generation_path(tensor_path: Path, digest: str) -> Path:
    """``NAME.<first 16 hex digits of digest>.safetensors`` beside ``tensor_path`` (``NAME.safetensors``)."""
    return tensor_path.with_name(f"{tensor_path.name.removesuffix('.safetensors')}.{digest[:16]}.safetensors")


def _sync_folder(folder: Path) -> None:
    """Make the renames done in ``folder`` durable before the next one (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    extra: dict[str, Tensor] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Save ``model``'s weights (and ``extra`` tensors) with JSON metadata; return the JSON path.

    The pair is committed as one unit (see the module docstring): a process killed at any moment leaves
    the previous checkpoint at ``path`` or this one, readable, never a torn pair.

    Args:
        path: the checkpoint's stem (``dir/name`` writes ``dir/name.safetensors`` and ``dir/name.json``).
        extra: more tensors, named with a prefix such as ``trainer.`` or ``data.``; not ``model.``.
        meta: JSON-able fields to store (training config, data description, seed, ...).
    """
    tensor_path, json_path = paths_for(path)
    for target in (tensor_path, json_path):
        if target.is_dir():  # a file must go there: refused before any file of the pair is written
            raise UnitlensError(
                f"{target} is a folder where unitlens keeps a checkpoint file; move or remove it, then run "
                "the same command again"
            )
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    for name, value in (extra or {}).items():
        if name.startswith("model.") or name in tensors:
            raise UnitlensError(f"extra tensor name {name!r} clashes with the model's")
        tensors[name] = value.detach().contiguous().cpu().clone()
    blob = st_save(tensors)
    digest = hashlib.sha256(blob).hexdigest()
    generation = _generation_path(tensor_path, digest)
    info: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_kind": model_kind(model),
        "model_config": model_config(model),
        **(meta or {}),
        "versions": versions(),
        "tensors": {
            k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            for k, v in tensors.items()
        },
        "tensor_file": generation.name,
        "tensor_sha256": digest,
    }
    text = _meta_text(info, json_path)  # refuses non-JSON metadata before any file is written
    write_bytes(generation, blob)  # 1. the new tensors, under a name of their own
    _sync_folder(generation.parent)
    write_text(json_path, text)  # 2. the commit
    _settle(tensor_path, json_path, {**info, "tensor_file": generation.name})  # 3 and 4
    return json_path


def _settle(tensor_path: Path, json_path: Path, info: dict[str, Any]) -> None:
    """Steps 3 and 4 of a save whose JSON ``info`` is committed: tensors to ``tensor_path``, no leftovers."""
    named = info.get("tensor_file")
    if isinstance(named, str) and named != tensor_path.name:
        generation = tensor_path.with_name(named)
        if generation.is_file():
            os.replace(generation, tensor_path)
            _sync_folder(tensor_path.parent)
        if tensor_path.is_file():  # the JSON may name the file at rest only once it is there
            write_text(json_path, _meta_text({**info, "tensor_file": tensor_path.name}, json_path))
    _remove_leftovers(tensor_path, keep_rest=True)


def _remove_leftovers(tensor_path: Path, *, keep_rest: bool) -> None:
    """Remove ``NAME.<h>.safetensors`` files and temporaries of interrupted writes of checkpoint NAME (and
    ``NAME.safetensors`` itself unless ``keep_rest``)."""
    stem = re.escape(tensor_path.name.removesuffix(".safetensors"))
    generation = re.compile(stem + r"\.[0-9a-f]{16}\.safetensors")
    temporary = re.compile(r"\." + stem + r"(?:\.[0-9a-f]{16})?\.(?:safetensors|json)\.[A-Za-z0-9_]+\.tmp")
    try:
        entries = list(tensor_path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if (
            generation.fullmatch(name)
            or temporary.fullmatch(name)
            or (not keep_rest and entry == tensor_path)
        ):
            entry.unlink(missing_ok=True)


def settle_checkpoint(path: str | Path) -> None:
    """Finish a save of checkpoint ``path`` that was interrupted after its commit (steps 3 and 4).

    Afterwards the pair is ``NAME.safetensors`` + ``NAME.json`` again and no leftover of an interrupted save
    remains. A pair already at rest is left as it is (only leftovers are removed). Call it on a checkpoint
    that has just loaded: it moves files but does not check them.
    """
    tensor_path, json_path = paths_for(path)
    meta = read_meta(json_path)
    _settle(tensor_path, json_path, meta)


def remove_checkpoint(path: str | Path) -> None:
    """Delete checkpoint ``path``: its JSON first (so no JSON ever names missing tensors), then the tensor
    files and any leftovers of interrupted saves. Missing files are no error."""
    tensor_path, json_path = paths_for(path)
    if json_path.exists():  # unlink() of a missing file still fails on a read-only file system
        json_path.unlink(missing_ok=True)
    _remove_leftovers(tensor_path, keep_rest=False)


# ---------------------------------------------------------------------------------------------- reading


def _recovery(tensor_path: Path, json_path: Path) -> str:
    return (
        f"delete the checkpoint pair ({tensor_path.name} and {json_path.name} in {json_path.parent}) and run "
        "the command that made it again: it retrains that stage"
    )


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _max_depth(raw: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text ``raw``, outside strings (linear, no recursion)."""
    text = re.sub(rb"\\.", b"", raw, flags=re.DOTALL)  # escapes first, so \" cannot end a string
    text = re.sub(rb'"[^"]*"', b"", text)
    codes = np.frombuffer(text, dtype=np.uint8)
    codes = codes[(codes == 0x5B) | (codes == 0x7B) | (codes == 0x5D) | (codes == 0x7D)]
    if codes.size == 0:
        return 0
    steps = np.where((codes == 0x5B) | (codes == 0x7B), 1, -1).astype(np.int32)
    return int(np.cumsum(steps, dtype=np.int32).max())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value


def parse_json(raw: bytes, where: str) -> Any:
    """``raw`` parsed as UTF-8 JSON, after checking its size and nesting depth (NaN and Infinity refused).

    Raises:
        DamagedCheckpointError: naming ``where``: too large, too deep, not UTF-8, or not JSON.
    """
    if len(raw) > MAX_META_BYTES:
        raise DamagedCheckpointError(
            f"{where} is {len(raw)} bytes, more than the {MAX_META_BYTES} a checkpoint has"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedCheckpointError(
            f"{where} is not valid JSON (not UTF-8 text: {exc}); the file is damaged"
        ) from exc
    depth = _max_depth(raw)
    if depth > MAX_META_DEPTH:
        raise DamagedCheckpointError(
            f"{where} is not valid checkpoint JSON: it nests {depth} levels deep, more than the "
            f"{MAX_META_DEPTH} allowed; the file is damaged"
        )
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise DamagedCheckpointError(f"{where} is not valid JSON ({exc}); the file is damaged") from exc


def _is_int(value: Any, low: int | None = None) -> bool:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return ok and (low is None or value >= low)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _is_history(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(row, dict) and all(_is_number(v) for v in row.values()) for row in value
    )


class _Fields:
    """Checks of one JSON file's fields; each failure is a DamagedCheckpointError naming file and field."""

    def __init__(self, json_path: Path) -> None:
        self.json_path = json_path

    def fail(self, field: str, expected: str, value: Any) -> DamagedCheckpointError:
        return DamagedCheckpointError(
            f"{self.json_path}: field {field!r} must be {expected}, got {_show(value)}"
        )

    def check(
        self, obj: dict[str, Any], key: str, field: str, ok: Any, expected: str, *, required: bool
    ) -> None:
        if key not in obj:
            if required:
                raise DamagedCheckpointError(f"{self.json_path}: field {field!r} is missing")
            return
        if not ok(obj[key]):
            raise self.fail(field, expected, obj[key])


def _check_tensor_list(value: Any, fields: _Fields) -> None:
    if not isinstance(value, dict):
        raise fields.fail("tensors", "an object of {name: {shape, dtype}}", value)
    dtypes = {name for name, _ in ST_DTYPES.values()}
    for name, entry in value.items():
        where = f"tensors.{name}"
        if not isinstance(entry, dict):
            raise fields.fail(where, "an object {shape, dtype}", entry)
        shape = entry.get("shape")
        if not (isinstance(shape, list) and len(shape) <= 8 and all(_is_int(n, 0) for n in shape)):
            raise fields.fail(f"{where}.shape", "a list of at most 8 integers >= 0", shape)
        if not isinstance(entry.get("dtype"), str) or entry["dtype"] not in dtypes:
            raise fields.fail(f"{where}.dtype", f"one of {sorted(dtypes)}", entry.get("dtype"))


def _check_data(value: Any, fields: _Fields) -> None:
    if not isinstance(value, dict):
        raise fields.fail("data", "an object", value)
    fields.check(
        value, "rho", "data.rho", lambda v: _is_number(v) and v >= 0, "a number >= 0", required=False
    )
    fields.check(value, "kind", "data.kind", lambda v: isinstance(v, str), "a string", required=False)
    fields.check(value, "source", "data.source", lambda v: isinstance(v, str), "a string", required=False)
    fields.check(value, "n_train", "data.n_train", lambda v: _is_int(v, 0), "an integer >= 0", required=False)
    fields.check(
        value,
        "image_shape",
        "data.image_shape",
        lambda v: isinstance(v, list) and len(v) in (1, 2, 3) and all(_is_int(n, 1) for n in v),
        "one to three positive integers: [d], [height, width] or [channels, height, width]",
        required=False,
    )
    if "recipe" in value:
        try:
            DataRecipe.from_dict(value["recipe"], where=f"{fields.json_path}: field data.recipe")
        except UnitlensError as exc:
            raise DamagedCheckpointError(str(exc)) from exc


def _check_state(value: Any, fields: _Fields) -> None:
    if not isinstance(value, dict):
        raise fields.fail("state", "an object", value)
    fields.check(value, "layer", "state.layer", lambda v: _is_int(v, 1), "an integer >= 1", required=True)
    fields.check(
        value,
        "examples_seen",
        "state.examples_seen",
        lambda v: _is_int(v, 0),
        "an integer >= 0",
        required=True,
    )
    fields.check(value, "history", "state.history", _is_history, "a list of {name: number}", required=True)
    fields.check(value, "pending_loss", "state.pending_loss", _is_number, "a finite number", required=True)
    fields.check(
        value,
        "pending_count",
        "state.pending_count",
        lambda v: _is_int(v, 0),
        "an integer >= 0",
        required=True,
    )


def check_meta(meta: Any, json_path: Path) -> dict[str, Any]:
    """``meta`` (parsed from ``json_path``) checked against the checkpoint schema; returned as a dict.

    Required: ``format``, ``format_version``, ``model_kind``, ``model_config`` (an object; the model's
    ``from_config`` checks it further), ``tensors`` (``{name: {"shape": [int >= 0], "dtype": str}}``) and
    ``tensor_sha256`` (64 hex digits). Checked when present: ``tensor_file`` (a file name beside the JSON,
    ``NAME.safetensors`` or ``NAME.<h>.safetensors`` with ``<h>`` the hash's first 16 digits),
    ``meta_sha256``, ``versions`` ({str: str}), ``seed`` (int), ``training_config`` (object), ``data``
    (object: ``rho`` a number >= 0, ``image_shape`` 1-3 positive ints, ``kind``/``source`` strings,
    ``n_train`` an int >= 0, ``recipe`` a data recipe), ``history`` (a list of {str: number}) and ``state``
    (a resume point: ``layer``, ``examples_seen``, ``history``, ``pending_loss``, ``pending_count``). Other
    fields are kept as they are. Last, ``meta_sha256`` (when present) must be the hash of the rest
    (:func:`meta_digest`).

    Raises:
        DamagedCheckpointError: naming the file and the first field that is wrong.
    """
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DamagedCheckpointError(
            f"{json_path} is not a unitlens checkpoint (field 'format' should be {FORMAT!r})"
        )
    if meta.get("format_version") != FORMAT_VERSION or isinstance(meta.get("format_version"), bool):
        raise DamagedCheckpointError(
            f"{json_path}: field 'format_version' is {_show(meta.get('format_version'))}; "
            f"this unitlens reads version {FORMAT_VERSION}"
        )
    found = meta.get("model_kind")
    if found not in MODEL_KINDS:
        raise DamagedCheckpointError(
            f"{json_path}: field 'model_kind' is {_show(found)}, expected one of {MODEL_KINDS}"
        )
    fields = _Fields(json_path)
    fields.check(
        meta, "model_config", "model_config", lambda v: isinstance(v, dict), "an object", required=True
    )
    if "tensors" not in meta:
        raise DamagedCheckpointError(f"{json_path}: field 'tensors' is missing")
    _check_tensor_list(meta["tensors"], fields)
    fields.check(
        meta,
        "tensor_sha256",
        "tensor_sha256",
        lambda v: isinstance(v, str) and _HEX64.fullmatch(v) is not None,
        "64 lowercase hex digits",
        required=True,
    )
    fields.check(
        meta,
        "tensor_file",
        "tensor_file",
        lambda v: isinstance(v, str) and _TENSOR_FILE.fullmatch(v) is not None,
        "a file name beside the JSON, NAME.safetensors or NAME.<16 hex digits>.safetensors",
        required=False,
    )
    generation = _TENSOR_FILE.fullmatch(meta.get("tensor_file", ".safetensors"))
    if generation is not None and generation.group(1) not in (None, meta["tensor_sha256"][:16]):
        raise fields.fail(
            "tensor_file", "named by the first 16 digits of field 'tensor_sha256'", meta["tensor_file"]
        )
    fields.check(
        meta,
        "meta_sha256",
        "meta_sha256",
        lambda v: isinstance(v, str) and _HEX64.fullmatch(v) is not None,
        "64 lowercase hex digits",
        required=False,
    )
    fields.check(
        meta,
        "versions",
        "versions",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        "an object of strings",
        required=False,
    )
    fields.check(meta, "seed", "seed", _is_int, "an integer", required=False)
    fields.check(
        meta, "training_config", "training_config", lambda v: isinstance(v, dict), "an object", required=False
    )
    fields.check(meta, "history", "history", _is_history, "a list of {name: number}", required=False)
    if "data" in meta:
        _check_data(meta["data"], fields)
    if "state" in meta:
        _check_state(meta["state"], fields)
    if "meta_sha256" in meta and meta_digest(meta) != meta["meta_sha256"]:
        raise DamagedCheckpointError(
            f"{json_path} was edited or damaged after it was written: its content no longer matches its "
            "field 'meta_sha256' (to accept a deliberate edit, remove that field)"
        )
    return meta


def read_meta(path: str | Path) -> dict[str, Any]:
    """The checked JSON metadata of checkpoint ``path`` (stem or either file), tensors not read.

    Raises:
        DamagedCheckpointError: the JSON is missing, too large or deep, not JSON, or fails :func:`check_meta`.
    """
    json_path = paths_for(path)[1]
    if not json_path.is_file():
        raise DamagedCheckpointError(f"checkpoint metadata {json_path} does not exist")
    try:
        size = json_path.stat().st_size
        if size > MAX_META_BYTES:
            raise DamagedCheckpointError(
                f"checkpoint metadata {json_path} is {size} bytes, more than the {MAX_META_BYTES} a "
                "checkpoint has; the file is damaged"
            )
        with open(json_path, "rb") as f:
            raw = f.read(MAX_META_BYTES + 1)
    except OSError as exc:
        raise DamagedCheckpointError(
            f"cannot read checkpoint metadata {json_path}: {exc.strerror or exc}"
        ) from exc
    return check_meta(parse_json(raw, f"checkpoint metadata {json_path}"), json_path)


def _tensor_file(meta: dict[str, Any], tensor_path: Path, json_path: Path) -> Path:
    """The tensor file the JSON names (a save's step-1 name falls back to ``NAME.safetensors``, where step 3
    moves it; the hash tells the two apart)."""
    named = _TENSOR_FILE.fullmatch(meta.get("tensor_file", tensor_path.name))
    if named is not None and named.group(1) is not None:
        generation = _generation_path(tensor_path, named.group(1))
        if generation.is_file():
            return generation
    if not tensor_path.is_file():
        raise DamagedCheckpointError(
            f"checkpoint tensors {tensor_path} are missing (metadata {json_path} names them)",
            _recovery(tensor_path, json_path),
        )
    return tensor_path


def _read_header(tensor_path: Path, json_path: Path) -> tuple[dict[str, tuple[str, list[int]]], int]:
    """The tensor file's header, ``{name: (dtype name, shape)}``, and the file's size; tensors not read."""

    def damaged(detail: str) -> DamagedCheckpointError:
        return DamagedCheckpointError(
            f"{tensor_path} does not match its metadata {json_path} ({detail}); it is truncated, damaged, or "
            "from another checkpoint, or not a safetensors file",
            _recovery(tensor_path, json_path),
        )

    try:
        size = tensor_path.stat().st_size
        with open(tensor_path, "rb") as f:
            prefix = f.read(8)
            n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
                raise damaged(f"its header length field says {n} bytes, in a file of {size}")
            raw = f.read(n)
    except OSError as exc:
        raise DamagedCheckpointError(
            f"cannot read checkpoint tensors {tensor_path}: {exc.strerror or exc}"
        ) from exc
    try:
        header = parse_json(raw, f"the header of {tensor_path}")
    except DamagedCheckpointError as exc:
        raise damaged(exc.problem) from exc
    if not isinstance(header, dict):
        raise damaged("its header is not a JSON object")
    room = size - 8 - n
    out: dict[str, tuple[str, list[int]]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("dtype"), str)
            or entry["dtype"] not in ST_DTYPES
        ):
            raise damaged(f"its header entry for {name!r} has no known dtype")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(shape, list) and len(shape) <= 8 and all(_is_int(s, 0) for s in shape)):
            raise damaged(f"its header entry for {name!r} has no valid shape")
        dtype, itemsize = ST_DTYPES[entry["dtype"]]
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o, 0) for o in offsets)):
            raise damaged(f"its header entry for {name!r} has no valid data_offsets")
        if not offsets[0] <= offsets[1] <= room or offsets[1] - offsets[0] != math.prod(shape) * itemsize:
            raise damaged(f"tensor {name!r} of shape {shape} does not fit the file's {room} data bytes")
        out[name] = (dtype, list(shape))
    return out, size


def _memory_bytes() -> int | None:
    """This machine's physical memory in bytes, or None where it cannot be asked."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_fits(needed: int, tensor_path: Path) -> None:
    limit = _memory_bytes()
    if limit is not None and needed > limit:
        raise UnitlensError(
            f"{tensor_path}: loading this checkpoint needs about {needed / 2**30:.3g} GiB of memory, more "
            f"than this machine's {limit / 2**30:.3g} GiB; load it on a machine with more memory"
        )


@dataclass(frozen=True)
class _Inspected:
    meta: dict[str, Any]
    tensor_path: Path
    json_path: Path
    header: dict[str, tuple[str, list[int]]]
    size: int


def _inspect(path: str | Path, kind: str | None) -> _Inspected:
    """Everything known about checkpoint ``path`` without reading its tensors: the checked JSON, the tensor
    file it names and that file's header, which must list exactly the JSON's tensors."""
    fixed, json_path = paths_for(path)
    meta = read_meta(json_path)
    if kind is not None and meta["model_kind"] != kind:
        raise UnitlensError(
            f"{json_path} holds a {meta['model_kind']!r} model, but a {kind!r} model was expected"
        )
    tensor_path = _tensor_file(meta, fixed, json_path)
    header, size = _read_header(tensor_path, json_path)
    expected = meta["tensors"]
    if set(expected) != set(header):
        raise DamagedCheckpointError(
            f"{tensor_path}: the stored tensors differ from the list in {json_path} field 'tensors' "
            f"({sorted(set(expected) ^ set(header))[:5]})",
            _recovery(fixed, json_path),
        )
    for name, (dtype, shape) in header.items():
        if shape != expected[name]["shape"] or dtype != expected[name]["dtype"]:
            raise DamagedCheckpointError(
                f"{tensor_path}: tensor {name!r} has shape {shape} ({dtype}), metadata {json_path} says "
                f"{expected[name]['shape']} ({expected[name]['dtype']})",
                _recovery(fixed, json_path),
            )
    return _Inspected(meta, tensor_path, json_path, header, size)


def _read_tensors(found: _Inspected) -> dict[str, Tensor]:
    """The tensors of an inspected checkpoint, read once and checked against ``tensor_sha256``."""
    fixed = paths_for(found.json_path)[0]
    try:
        blob = found.tensor_path.read_bytes()
    except OSError as exc:
        raise DamagedCheckpointError(
            f"cannot read checkpoint tensors {found.tensor_path}: {exc.strerror or exc}"
        ) from exc
    if hashlib.sha256(blob).hexdigest() != found.meta["tensor_sha256"]:
        raise DamagedCheckpointError(
            f"{found.tensor_path} does not match its metadata {found.json_path} (truncated, damaged, or from "
            "another checkpoint): its SHA-256 differs from field 'tensor_sha256'",
            _recovery(fixed, found.json_path),
        )
    try:
        tensors: dict[str, Tensor] = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError) as exc:
        raise DamagedCheckpointError(
            f"{found.tensor_path} is not a readable safetensors file: {exc}",
            _recovery(fixed, found.json_path),
        ) from exc
    return tensors


def _skeleton(found: _Inspected) -> tuple[nn.Module, dict[str, Any]]:
    """The model the config describes, built on torch's meta device (shapes and dtypes, no memory), and its
    canonical config, once its parameters are checked against the tensor file's header.

    Raises:
        DamagedCheckpointError: the config is invalid, or implies other weights (names, shapes, or a dtype
            other than the config's) than the tensor file holds.
    """
    kind, config, json_path = found.meta["model_kind"], found.meta["model_config"], found.json_path
    try:
        skeleton = build_model(kind, config, meta=True)
    except UnitlensError as exc:
        raise DamagedCheckpointError(f"{json_path}: field 'model_config': {exc}") from exc
    except (TypeError, ValueError, RuntimeError, OverflowError, KeyError, IndexError) as exc:
        raise DamagedCheckpointError(
            f"{json_path}: field 'model_config' does not describe a {kind} that can be built ({exc})"
        ) from exc
    canonical = model_config(skeleton)
    # A config with every field written is this version's, and its dtype must be the tensors'. An older
    # one may lack ``dtype``: its model is float32, and the weights are cast to it as they always were.
    complete = config == canonical
    fixed = paths_for(json_path)[0]
    state = {k[len("model.") :]: v for k, v in found.header.items() if k.startswith("model.")}
    own = skeleton.state_dict()
    if set(state) != set(own):
        raise DamagedCheckpointError(
            f"{found.tensor_path}: weights {sorted(set(state) ^ set(own))[:5]} do not fit the model "
            f"its config describes ({json_path} field 'model_config')",
            _recovery(fixed, json_path),
        )
    for name, (dtype, shape) in state.items():
        if tuple(shape) != tuple(own[name].shape):
            raise DamagedCheckpointError(
                f"{found.tensor_path}: weight {name!r} has shape {tuple(shape)}, the config in {json_path} "
                f"(field 'model_config') implies {tuple(own[name].shape)}",
                _recovery(fixed, json_path),
            )
        if complete and getattr(torch, dtype) != own[name].dtype:
            raise DamagedCheckpointError(
                f"{found.tensor_path}: weight {name!r} is torch.{dtype}, but its config says "
                f"{own[name].dtype}",
                _recovery(fixed, json_path),
            )
    return skeleton, canonical


def read_checkpoint(path: str | Path, *, kind: str | None = None) -> Checkpoint:
    """Read and verify a checkpoint pair; ``kind`` (e.g. ``"dbn"``) rejects any other model kind.

    Everything is checked before the tensors are read: the JSON's fields, the tensor file's header against
    them and against the parameters the model config implies, and the memory reading takes.

    Raises:
        DamagedCheckpointError: the JSON or the tensor file is missing, damaged, edited or torn from its
            pair; the message names the file and the field.
        UnitlensError: the checkpoint holds another kind of model, or would not fit in memory.
    """
    found = _inspect(path, kind)
    _skeleton(found)
    _check_fits(2 * found.size, found.tensor_path)  # the file's bytes, and the tensors made from them
    return Checkpoint(tensors=_read_tensors(found), meta=found.meta)


def load_model(path: str | Path, *, kind: str | None = None) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model saved at ``path`` with its weights; return it with the checkpoint.

    The parameter shapes the config implies are compared with the tensor file's header, and the memory the
    model and its tensors need with the machine's, before anything is allocated.

    The returned checkpoint's ``meta["model_config"]`` is the loaded model's ``config()``: the stored one
    with the fields it lacks (written by an older unitlens) filled with their defaults, so it compares
    equal to the config of a model built today with the same architecture.

    Raises:
        DamagedCheckpointError: the files are damaged, or the weights do not fit the model the config
            describes (names, shapes, or a dtype other than the config's).
        UnitlensError: another kind of model than ``kind``, or too large for this machine's memory.
    """
    found = _inspect(path, kind)
    skeleton, canonical = _skeleton(found)
    model_bytes = sum(t.numel() * t.element_size() for t in skeleton.state_dict().values())
    _check_fits(2 * found.size + model_bytes, found.tensor_path)
    tensors = _read_tensors(found)
    model = build_model(found.meta["model_kind"], found.meta["model_config"])
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    return model, Checkpoint(tensors=tensors, meta={**found.meta, "model_config": canonical})
