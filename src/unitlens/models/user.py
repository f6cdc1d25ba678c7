"""Users' own PyTorch networks: built by their code with safetensors weights, or an exported program.

A model to visualize comes in one of two ways, and no way of loading it ever unpickles a file:

* ``"pkg.module:factory"`` (or ``"path/to/file.py:factory"`` for code that is not an installed package):
  unitlens imports the module and calls ``factory()`` with no arguments; the weights, if any, come from a
  ``.safetensors`` file loaded with ``strict=True``.
* ``"path/to/model.pt2"``: a program saved by ``torch.export.save``. It carries its own weights; it is
  *unflattened* (``torch.export.unflatten``) so the original submodule names (``"conv1"``,
  ``"features.0"``) exist again and forward hooks on them fire.

Pickled models and state dicts (``torch.save``, ``.pt`` / ``.pth`` / ``.pkl``) and TorchScript archives
(``torch.jit.save``) are refused without being read past their first bytes, with the line that converts them:
loading a pickle can run arbitrary code.

A ``.pt2`` archive still holds one pickle, its example inputs (``data/sample_inputs/model.pt``), and can hold
others (weights or constants saved with ``use_pickle``, custom objects, compiled AOTInductor code). Before
handing the file to torch, unitlens reads the archive's JSON tables and refuses any such payload; torch then
reads the example inputs with its restricted ``weights_only`` unpickler (tensors and plain containers only),
which unitlens forces for the duration of the load so that torch's fallback to a full unpickle cannot happen.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import sys
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from unitlens.errors import UnitlensError

__all__ = ["load_user_model"]

# Suffixes of files that torch writes with pickle; refused by name even when their bytes are not inspected.
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".jit", ".ts")
_CONVERT = (
    "unitlens never unpickles files (loading a pickle can run arbitrary code); convert it once, in code you "
    'trust: torch.export.save(torch.export.export(model, (example,)), "model.pt2") and pass '
    "--model model.pt2 (add dynamic_shapes=({0: torch.export.Dim.DYNAMIC},) so any batch size runs), or "
    'safetensors.torch.save_file(model.state_dict(), "model.safetensors") and pass '
    "--model pkg.module:factory --weights model.safetensors"
)
_SPEC_FORMS = (
    "expected 'pkg.module:factory', 'path/to/file.py:factory' or the path of a .pt2 file saved by "
    "torch.export.save"
)
# How many keys or shapes an error lists before it says "and N more".
_SHOWN = 4
# Folders of a .pt2 archive that hold compiled code (loading them runs native code): refused.
_COMPILED_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia")


def load_user_model(spec: str, weights: str | Path | None = None) -> tuple[nn.Module, str]:
    """Build or load a user's network, in eval mode, and describe it in one line.

    Args:
        spec: ``"pkg.module:factory"`` (imported with importlib; ``factory`` may be dotted, e.g.
            ``"pkg.nets:Net.small"``), ``"path/to/file.py:factory"`` (the file is run as a fresh module on
            each call; its folder is not put on ``sys.path``), or the path of a ``.pt2`` exported program.
            ``factory()`` is called with no arguments and must return an ``nn.Module``.
        weights: a ``.safetensors`` file holding exactly ``model.state_dict()`` (loaded with
            ``strict=True``), or None to keep the factory's weights. Not allowed with a ``.pt2`` program,
            which carries its own.

    Returns:
        (model, description): the model in eval mode, and a short description for logs and the report.
        An exported program comes back as a ``torch.export.unflatten`` module: its submodules keep the
        original names, and it runs the graph traced at export time (train/eval behaviour of dropout and
        batch norm, and the input shapes that were not marked dynamic, are fixed by the export).

    Raises:
        UnitlensError: the spec names no module, attribute or file; the factory is not callable, raises, or
            returns something other than an ``nn.Module``; the weights file is missing, is not safetensors,
            or does not match the model (missing keys, unexpected keys, shapes); the file is a pickle or a
            TorchScript archive (refused unread, with how to convert it).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise UnitlensError(f"model spec {spec!r}: {_SPEC_FORMS}")
    path = Path(spec).expanduser()
    if spec.lower().endswith(".pt2") or (":" not in spec and path.exists()):
        return _load_model_file(path, weights)
    if ":" not in spec:
        hint = ""
        if path.suffix.lower() in (*_PICKLE_SUFFIXES, ".safetensors", ".py"):
            hint = f" (no file {path} exists)"
        raise UnitlensError(f"model spec {spec!r}{hint}: {_SPEC_FORMS}")
    # The weights are read first: a wrong file is found before a factory that may take a while runs.
    weights_path = None if weights is None else Path(weights).expanduser()
    state = None if weights_path is None else _read_weights(weights_path)
    model = _from_factory(spec)
    parameters = sum(p.numel() for p in model.parameters())
    description = f"{type(model).__name__} from {spec} ({parameters:,} parameters"
    if weights_path is None or state is None:
        description += ", weights as the factory made them)"
    else:
        _load_state(model, state, weights_path, spec)
        description += f", {len(state)} tensors from {weights_path})"
    return model.eval(), description


# --------------------------------------------------------------------------------------- the factory


def _from_factory(spec: str) -> nn.Module:
    """Import the module of ``spec`` ("module:factory"), call the factory, check that it built a module."""
    module_part, _, factory_part = spec.rpartition(":")
    if not module_part or not factory_part:
        raise UnitlensError(f"model spec {spec!r}: {_SPEC_FORMS}")
    names = factory_part.split(".")
    if not all(name.isidentifier() for name in names):
        raise UnitlensError(
            f"model spec {spec!r}: {factory_part!r} is not a Python name; expected the name of a function or "
            "class after the ':'"
        )
    module = (
        _import_file(spec, Path(module_part)) if _is_file_part(module_part) else _import(spec, module_part)
    )
    target: Any = module
    for depth, name in enumerate(names):
        if not hasattr(target, name):
            where = module_part if depth == 0 else ".".join([module_part, *names[:depth]])
            raise UnitlensError(f"model spec {spec!r}: {where} has no attribute {name!r}; {_SPEC_FORMS}")
        target = getattr(target, name)
    if isinstance(target, nn.Module):
        raise UnitlensError(
            f"model spec {spec!r}: {factory_part} is an nn.Module instance; expected a function or class "
            "that builds one with no arguments (def build(): return Net())"
        )
    if not callable(target):
        raise UnitlensError(
            f"model spec {spec!r}: {factory_part} is a {type(target).__name__}, not callable; expected a "
            "function or class that builds an nn.Module with no arguments"
        )
    try:
        model = target()
    except Exception as err:
        raise UnitlensError(f"model spec {spec!r}: {factory_part}() raised {_one_line(err)}") from err
    if not isinstance(model, nn.Module):
        raise UnitlensError(
            f"model spec {spec!r}: {factory_part}() returned a {type(model).__name__}; expected a "
            "torch.nn.Module"
        )
    return model


def _is_file_part(module_part: str) -> bool:
    """Whether the part before ':' is a file path rather than a dotted module name."""
    return module_part.lower().endswith(".py") or "/" in module_part or os.sep in module_part


def _import(spec: str, name: str) -> ModuleType:
    """``importlib.import_module(name)``, its failures as one-line errors naming ``spec``."""
    if not all(part.isidentifier() for part in name.split(".")):
        raise UnitlensError(f"model spec {spec!r}: {name!r} is not a module name; {_SPEC_FORMS}")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        # Only when the missing module is the named one (or a parent) is the spec wrong; a module that
        # is found but imports something absent is the user's dependency problem, said as such.
        if err.name is not None and (name == err.name or name.startswith(err.name + ".")):
            raise UnitlensError(
                f"model spec {spec!r}: no module named {err.name!r} (is it installed, or on PYTHONPATH?); "
                f"{_SPEC_FORMS}"
            ) from err
        raise UnitlensError(f"model spec {spec!r}: importing {name} raised {_one_line(err)}") from err
    except Exception as err:
        raise UnitlensError(f"model spec {spec!r}: importing {name} raised {_one_line(err)}") from err


def _import_file(spec: str, path: Path) -> ModuleType:
    """Run the Python file ``path`` as a fresh module (a user's script that is not an installed package)."""
    path = path.expanduser()
    if not path.is_file():
        raise UnitlensError(f"model spec {spec!r}: {path} is not a file; {_SPEC_FORMS}")
    if path.suffix.lower() != ".py":
        raise UnitlensError(f"model spec {spec!r}: {path} is not a .py file; {_SPEC_FORMS}")
    resolved = path.resolve()
    # A name of its own per file, so two files called model.py do not replace each other in sys.modules.
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    name = f"unitlens_user_{resolved.stem}_{digest}"
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise UnitlensError(f"model spec {spec!r}: cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    # Registered before running, as a normal import does: dataclasses and typing look the module up there.
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(name, None)
        raise UnitlensError(f"model spec {spec!r}: running {path} raised {_one_line(err)}") from err
    return module


def _one_line(err: BaseException) -> str:
    """``Type: first line of the message``, so a multi-line exception keeps the error to one line."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


# ------------------------------------------------------------------------------------------ weights


def _read_weights(path: Path) -> dict[str, Tensor]:
    """The tensors of the safetensors file ``path``; any other kind of file is refused unread."""
    if not path.exists():
        raise UnitlensError(f"weights file {path} does not exist (expected a .safetensors file)")
    if not path.is_file():
        raise UnitlensError(f"weights file {path} is not a file (expected a .safetensors file)")
    kind = _sniff(path)
    if kind == "exported program":
        raise UnitlensError(
            f"weights file {path} is an exported program (torch.export.save), which carries its own weights; "
            "pass it as --model instead, without --weights"
        )
    if kind is not None and kind != "safetensors":
        raise UnitlensError(f"weights file {path} is {kind}; {_CONVERT}")
    if path.suffix.lower() in _PICKLE_SUFFIXES and kind is None:
        raise UnitlensError(f"weights file {path} looks like a pickle (by its name); {_CONVERT}")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        raise UnitlensError(
            f"weights file {path} is not a safetensors file ({_one_line(err)}); expected one written by "
            "safetensors.torch.save_file(model.state_dict(), PATH)"
        ) from err


def _load_state(model: nn.Module, state: dict[str, Tensor], path: Path, spec: str) -> None:
    """``model.load_state_dict(state, strict=True)`` after checking keys and shapes (``_check_state``)."""
    _check_state(model, state, path, spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # what the checks cannot see (a custom load hook that objects)
        raise UnitlensError(f"weights file {path}: load_state_dict refused it: {_one_line(err)}") from err


def _check_state(model: nn.Module, state: dict[str, Tensor], path: Path, spec: str) -> None:
    """Missing keys, unexpected keys and shape mismatches, all in one error; aliases are filled in.

    A tied parameter (one tensor under two names) is saved once by ``safetensors.torch.save_model``; the
    missing name is filled in from the one present, as ``safetensors.torch.load_model`` does.
    """
    expected = model.state_dict()
    by_storage: dict[tuple[int, int], list[str]] = {}
    for key, tensor in expected.items():
        if tensor.numel() > 0:  # empty tensors share a null pointer without being tied
            by_storage.setdefault((tensor.data_ptr(), tensor.numel()), []).append(key)
    for group in by_storage.values():
        present = [key for key in group if key in state]
        for key in group:
            if present and key not in state:
                state[key] = state[present[0]]
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key}: file {tuple(state[key].shape)}, model {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if key in state and state[key].shape != tensor.shape
    ]
    if not (missing or unexpected or shapes):
        return
    problems = []
    for (one, many), items in (
        (("missing key", "missing keys"), missing),
        (("unexpected key", "unexpected keys"), unexpected),
        (("shape mismatch", "shape mismatches"), shapes),
    ):
        if items:
            shown = ", ".join(items[:_SHOWN])
            if len(items) > _SHOWN:
                shown += f" and {len(items) - _SHOWN} more"
            problems.append(f"{len(items)} {one if len(items) == 1 else many} ({shown})")
    hint = ""
    for prefix in ("module.", "_orig_mod."):  # DataParallel / torch.compile wrappers prefix every key
        if unexpected and all(key.startswith(prefix) for key in state):
            hint = f"; every key in the file starts with {prefix!r}: save the unwrapped model's state_dict()"
    raise UnitlensError(
        f"weights file {path} does not match the model of {spec!r}: {'; '.join(problems)}{hint}; expected "
        "exactly the keys and shapes of model.state_dict()"
    )


# ------------------------------------------------------------------------------------- model files


def _sniff(path: Path) -> str | None:
    """What a file is, from its first bytes and (for a zip) its member names; None when unrecognised.

    Returns one of ``"exported program"``, ``"safetensors"``, or a phrase naming a pickled format (for
    messages: "a TorchScript archive (torch.jit.save)", ...). Nothing is unpickled.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as err:
        raise UnitlensError(f"cannot read {path}: {err.strerror or err}") from err
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        names = _zip_names(path)
        if names is None:
            return None
        members = {name.partition("/")[2] for name in names}
        if "archive_format" in members:
            return "exported program"
        if any(m.startswith("code/") for m in members) or "constants.pkl" in members:
            return "a TorchScript archive (torch.jit.save)"
        if "data.pkl" in members:
            return "a pickled PyTorch model or state dict (torch.save)"
        if "serialized_exported_program.json" in names:
            return "an exported program in the format of torch 2.7 or older, whose weights are pickled"
        return None
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        # Protocol 2+ pickles start with PROTO; torch.save's legacy format is a pickle stream too.
        return "a Python pickle stream (pickle / legacy torch.save)"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= 100_000_000:
        return "safetensors"
    return None


def _zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def _load_model_file(path: Path, weights: str | Path | None) -> tuple[nn.Module, str]:
    """A ``.pt2`` exported program, unflattened; any other model file is refused with how to convert it."""
    if not path.exists():
        raise UnitlensError(
            f"model file {path} does not exist (expected a .pt2 file saved by torch.export.save)"
        )
    if not path.is_file():
        raise UnitlensError(
            f"model file {path} is not a file (expected a .pt2 file saved by torch.export.save)"
        )
    kind = _sniff(path)
    if kind == "safetensors":
        raise UnitlensError(
            f"model file {path} holds weights only (safetensors); pass the code that builds the model and "
            f"the weights: --model pkg.module:factory --weights {path}"
        )
    if kind is None:
        if path.suffix.lower() in _PICKLE_SUFFIXES:
            raise UnitlensError(f"model file {path} looks like a pickle (by its name); {_CONVERT}")
        if path.suffix.lower() == ".py":
            raise UnitlensError(f"model spec {str(path)!r}: name the factory in the file, as {path}:build")
        raise UnitlensError(
            f"model file {path} is not a .pt2 archive saved by torch.export.save; {_SPEC_FORMS}"
        )
    if kind != "exported program":
        raise UnitlensError(f"model file {path} is {kind}; {_CONVERT}")
    if weights is not None:
        raise UnitlensError(
            f"model file {path} is an exported program, which carries its own weights; drop --weights "
            f"{weights}, or pass --model pkg.module:factory to load them into a model your code builds"
        )
    _check_pt2(path)
    try:
        # torch's own deprecation notices from inside its loader say nothing a user can act on.
        with _weights_only_loads(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.export.load(path)
            model = torch.export.unflatten(program)
    except Exception as err:
        raise UnitlensError(
            f"model file {path}: torch.export.load could not read it ({_one_line(err)}); expected a .pt2 "
            f"file saved by torch.export.save with torch {torch.__version__}"
        ) from err
    model.eval()
    submodules = sum(1 for name, _ in model.named_modules() if name)
    parameters = sum(p.numel() for p in model.parameters())
    return model, (
        f"exported program {path} (unflattened: {submodules} submodules, {parameters:,} parameters; "
        f"{_input_shapes(program)})"
    )


def _check_pt2(path: Path) -> None:
    """Refuse a .pt2 archive whose loading would unpickle freely or run compiled code, reading only JSON."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            root = names[0].partition("/")[0] + "/" if names else ""
            members = {name[len(root) :] for name in names if name.startswith(root)}
            if archive.read(root + "archive_format") != b"pt2":
                raise UnitlensError(
                    f"model file {path}: archive_format is not 'pt2'; expected a torch.export file"
                )
            compiled = sorted(m for m in members if m.startswith(_COMPILED_DIRS))
            if compiled:
                raise UnitlensError(
                    f"model file {path} holds compiled code ({compiled[0]}), which unitlens does not run; "
                    "save the program with torch.export.save, not torch._inductor.aoti_compile_and_package"
                )
            models = sorted(m[len("models/") : -len(".json")] for m in members if m.startswith("models/"))
            if "model" not in models:
                raise UnitlensError(
                    f"model file {path} holds no models/model.json; expected a torch.export file"
                )
            for name in models:
                for table in ("weights", "constants"):
                    if f"data/{table}/{name}.pt" in members:
                        raise UnitlensError(
                            f"model file {path} stores its {table} pickled (an old format); {_CONVERT}"
                        )
                    config = json.loads(archive.read(f"{root}data/{table}/{name}_{table}_config.json"))
                    for key, payload in config.get("config", {}).items():
                        pickled = payload.get("use_pickle") or not str(
                            payload.get("path_name", "")
                        ).startswith(("weight_", "tensor_"))
                        if pickled:
                            raise UnitlensError(
                                f"model file {path} stores {table[:-1]} {key!r} as a pickled object, which "
                                f"unitlens never unpickles; {_CONVERT}"
                            )
    except (KeyError, ValueError, AttributeError, zipfile.BadZipFile, OSError) as err:
        raise UnitlensError(
            f"model file {path} is not a complete torch.export archive ({_one_line(err)}); expected a .pt2 "
            "file saved by torch.export.save"
        ) from err


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Make every ``torch.load`` in the block use the restricted unpickler, whatever its caller asked.

    ``torch.export.load`` reads the example inputs with ``weights_only=True`` but falls back to a full
    unpickle when that fails; torch checks this environment variable on every call, so the fallback fails
    too. (Process-wide while it lasts: any other thread's ``torch.load`` is restricted as well.)
    """
    saved = {
        k: os.environ.get(k) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    }
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)  # both set is an error in torch
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _input_shapes(program: torch.export.ExportedProgram) -> str:
    """The user inputs' shapes and dtypes, e.g. ``input x: (N, 1, 28, 28) float32`` (N: a dynamic size)."""
    user_inputs = set(program.graph_signature.user_inputs)
    parts = []
    fixed = False
    for node in program.graph.nodes:
        value = node.meta.get("val")
        if node.op != "placeholder" or node.name not in user_inputs or not isinstance(value, Tensor):
            continue
        if value.ndim and isinstance(value.shape[0], int):
            fixed = True
        dims = ", ".join(str(d) if isinstance(d, int) else "N" for d in value.shape)
        parts.append(f"{node.name}: ({dims}) {str(value.dtype).removeprefix('torch.')}")
    note = "; a fixed batch size: export with dynamic_shapes to run others" if fixed else ""
    return ("input " + ", ".join(parts) + note) if parts else "no tensor inputs"
