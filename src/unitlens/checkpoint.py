"""Checkpoints: tensors in safetensors, configuration and metadata in JSON beside them.

``save_checkpoint(path, ...)`` writes ``path.safetensors`` then ``path.json``, each atomically. The JSON
records the SHA-256 of the tensor file, so a pair torn by a crash between the two writes, a truncated file
or a tensor file from another checkpoint is detected on load. Loading never unpickles.
"""

from __future__ import annotations

import hashlib
import json
import platform
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
from unitlens.errors import UnitlensError
from unitlens.models.classifier import StackClassifier
from unitlens.models.dae import DAE
from unitlens.models.dbn import DBN
from unitlens.models.rbm import RBM
from unitlens.models.sdae import SDAE

FORMAT = "unitlens-checkpoint"
FORMAT_VERSION = 1
MODEL_KINDS = ("dbn", "sdae", "rbm", "dae", "classifier")


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
    """(tensor file, JSON file) for a checkpoint named by its stem or by either file."""
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


def build_model(kind: str, config: dict[str, Any]) -> nn.Module:
    """An untrained model of ``kind`` with the architecture and dtype ``config`` describes.

    ``config`` is a model's ``config()`` dict; fields added since a checkpoint was written take their
    defaults (an RBM config without ``dtype`` builds a float32 RBM, the dtype such models had).
    """
    builders: dict[str, Any] = {
        "dbn": DBN.from_config,
        "sdae": SDAE.from_config,
        "rbm": RBM.from_config,
        "dae": DAE.from_config,
        "classifier": StackClassifier.from_config,
    }
    if kind not in builders:
        raise UnitlensError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    model: nn.Module = builders[kind](config)
    return model


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    extra: dict[str, Tensor] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Save ``model``'s weights (and ``extra`` tensors) with JSON metadata; return the JSON path.

    Args:
        path: the checkpoint's stem (``dir/name`` writes ``dir/name.safetensors`` and ``dir/name.json``).
        extra: more tensors, named with a prefix such as ``trainer.`` or ``data.``; not ``model.``.
        meta: JSON-able fields to store (training config, data description, seed, ...).
    """
    tensor_path, json_path = paths_for(path)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    for name, value in (extra or {}).items():
        if name.startswith("model.") or name in tensors:
            raise UnitlensError(f"extra tensor name {name!r} clashes with the model's")
        tensors[name] = value.detach().contiguous().cpu().clone()
    blob = st_save(tensors)
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
        "tensor_file": tensor_path.name,
        "tensor_sha256": hashlib.sha256(blob).hexdigest(),
    }
    try:
        text = json.dumps(info, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UnitlensError(f"checkpoint metadata for {json_path} is not plain JSON: {exc}") from exc
    write_bytes(tensor_path, blob)
    write_text(json_path, text + "\n")
    return json_path


def read_checkpoint(path: str | Path, *, kind: str | None = None) -> Checkpoint:
    """Read and verify a checkpoint pair; ``kind`` (e.g. ``"dbn"``) rejects any other model kind."""
    tensor_path, json_path = paths_for(path)
    if not json_path.is_file():
        raise UnitlensError(f"checkpoint metadata {json_path} does not exist")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnitlensError(
            f"checkpoint metadata {json_path} is not valid JSON ({exc}); the file is damaged"
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UnitlensError(f"{json_path} is not a unitlens checkpoint (field 'format' should be {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UnitlensError(
            f"{json_path}: field 'format_version' is {meta.get('format_version')!r}; "
            f"this unitlens reads version {FORMAT_VERSION}"
        )
    found = meta.get("model_kind")
    if found not in MODEL_KINDS:
        raise UnitlensError(f"{json_path}: field 'model_kind' is {found!r}, expected one of {MODEL_KINDS}")
    if kind is not None and found != kind:
        raise UnitlensError(f"{json_path} holds a {found!r} model, but a {kind!r} model was expected")
    if not tensor_path.is_file():
        raise UnitlensError(f"checkpoint tensors {tensor_path} are missing (metadata {json_path} names them)")
    blob = tensor_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("tensor_sha256"):
        raise UnitlensError(
            f"{tensor_path} does not match its metadata {json_path} (truncated, damaged, or from another "
            "checkpoint); its SHA-256 differs from field 'tensor_sha256'"
        )
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise UnitlensError(f"{tensor_path} is not a readable safetensors file: {exc}") from exc
    expected = meta.get("tensors")
    if not isinstance(expected, dict) or set(expected) != set(tensors):
        raise UnitlensError(
            f"{tensor_path}: the stored tensors differ from the list in {json_path} field 'tensors'"
        )
    for name, value in tensors.items():
        if list(value.shape) != expected[name].get("shape"):
            raise UnitlensError(
                f"{tensor_path}: tensor {name!r} has shape {list(value.shape)}, metadata says "
                f"{expected[name].get('shape')}"
            )
    return Checkpoint(tensors=tensors, meta=meta)


def load_model(path: str | Path, *, kind: str | None = None) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model saved at ``path`` with its weights; return it with the checkpoint.

    The returned checkpoint's ``meta["model_config"]`` is the loaded model's ``config()``: the stored one
    with the fields it lacks (written by an older unitlens) filled with their defaults, so it compares
    equal to the config of a model built today with the same architecture.

    Raises:
        UnitlensError: the files are damaged, or the weights do not fit the model the config describes
            (names, shapes, or a dtype other than the config's).
    """
    ckpt = read_checkpoint(path, kind=kind)
    config = ckpt.meta.get("model_config")
    if not isinstance(config, dict):
        raise UnitlensError(f"{paths_for(path)[1]}: field 'model_config' must be an object")
    model = build_model(ckpt.meta["model_kind"], config)
    canonical = model_config(model)
    # A config with every field written is this version's, and its dtype must be the tensors'. An older
    # one may lack ``dtype``: its model is float32, and the weights are cast to it as they always were.
    complete = config == canonical
    state = ckpt.section("model")
    own = model.state_dict()
    if set(state) != set(own):
        raise UnitlensError(
            f"{paths_for(path)[0]}: weights {sorted(set(state) ^ set(own))} do not fit the model "
            "its config describes"
        )
    for name, value in state.items():
        if value.shape != own[name].shape:
            raise UnitlensError(
                f"{paths_for(path)[0]}: weight {name!r} has shape {tuple(value.shape)}, the config implies "
                f"{tuple(own[name].shape)}"
            )
        if complete and value.dtype != own[name].dtype:
            raise UnitlensError(
                f"{paths_for(path)[0]}: weight {name!r} is {value.dtype}, but its config says "
                f"{own[name].dtype}"
            )
    model.load_state_dict(state)
    return model, Checkpoint(tensors=ckpt.tensors, meta={**ckpt.meta, "model_config": canonical})
