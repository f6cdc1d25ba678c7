"""Run folders at the edge: resumable pre-training that writes checkpoints and logs.

The training loop itself (``unitlens.training.greedy``) is pure; this module decides which files it
becomes. A pre-training run named ``NAME`` in folder ``DIR`` leaves:

- ``DIR/NAME.safetensors`` + ``DIR/NAME.json``: the trained stack, once every layer is done;
- ``DIR/NAME-resume.*``: the last in-progress checkpoint (weights, trainer, source and generator states),
  removed when the final checkpoint is written;
- ``DIR/NAME-log.jsonl``: one JSON row per monitoring point (rewritten atomically at each checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unitlens.atomic import write_text
from unitlens.checkpoint import load_model, paths_for, read_checkpoint, save_checkpoint
from unitlens.data.dataset import DataRecipe, Dataset
from unitlens.data.stream import BatchSource
from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack
from unitlens.training.greedy import LayerwiseConfig, LayerwiseState, train_layerwise


def data_meta(data: Dataset) -> dict[str, Any]:
    """What a checkpoint records of the data a model was trained on: its norm, kind and shape, and the
    recipe that rebuilds it (``recipe``; the standardisation itself is stored as ``data.*`` tensors)."""
    meta: dict[str, Any] = {
        "rho": data.rho,
        "kind": data.kind,
        "image_shape": list(data.image_shape),
        "source": data.source,
        "n_train": int(data.x_train.shape[0]),
    }
    if data.recipe is not None:
        meta["recipe"] = data.recipe.to_dict()
    return meta


def recorded_recipe(meta: dict[str, Any], path: str | Path) -> DataRecipe | None:
    """The data recipe a checkpoint's JSON ``path`` records, or None if it predates recipes."""
    data = meta.get("data", {})
    if not isinstance(data, dict):
        raise UnitlensError(f"{path}: field 'data' must be an object, got {type(data).__name__}")
    if "recipe" not in data:
        return None
    return DataRecipe.from_dict(data["recipe"], where=f"{path}: field data.recipe")


def data_tensors(data: Dataset) -> dict[str, Tensor]:
    """The data set's standardisation, stored with the model so images can be shown in original units."""
    out: dict[str, Tensor] = {}
    if data.pixel_mean is not None:
        out["data.pixel_mean"] = data.pixel_mean
    if data.pixel_scale is not None:
        out["data.pixel_scale"] = data.pixel_scale
    return out


def config_dict(config: LayerwiseConfig) -> dict[str, Any]:
    """A JSON-able copy of a training configuration."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _state_tensors(state: LayerwiseState) -> dict[str, Tensor]:
    tensors = {f"trainer.{k}": v for k, v in state.trainer.items()}
    tensors.update({f"source.{k}": v for k, v in state.source.items()})
    if state.generator is not None:
        tensors["generator"] = state.generator
    return tensors


def _state_meta(state: LayerwiseState) -> dict[str, Any]:
    return {
        "layer": state.layer,
        "examples_seen": state.examples_seen,
        "history": state.history,
        "pending_loss": state.pending_loss,
        "pending_count": state.pending_count,
    }


def _write_log(path: Path, history: list[dict[str, float]]) -> None:
    write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in history))


def pretrain(
    stack: LayerStack,
    source: BatchSource,
    data: Dataset,
    config: LayerwiseConfig,
    *,
    seed: int,
    folder: str | Path,
    name: str,
    quiet: bool = True,
) -> tuple[LayerStack, list[dict[str, float]]]:
    """Pre-train ``stack`` greedily with checkpoints in ``folder``; resume if a run was interrupted.

    If ``folder/name`` already holds a finished checkpoint it is loaded and returned without training.
    If it holds an in-progress one made with the same configuration and seed, training continues from it
    and ends exactly where an uninterrupted run would.

    Returns:
        The trained stack (the same object, or the one loaded) and the monitoring history.
    """
    folder = Path(folder)
    final, resume, log = folder / name, folder / f"{name}-resume", folder / f"{name}-log.jsonl"
    training = {"training_config": config_dict(config), "seed": seed, "data": data_meta(data)}
    architecture = stack.config()
    if paths_for(final)[1].exists():
        loaded, ckpt = load_model(final, kind=stack.kind)
        _check_same(ckpt.meta, training, architecture, paths_for(final)[1])
        assert isinstance(loaded, LayerStack)
        return loaded, list(ckpt.meta.get("history", []))

    state: LayerwiseState | None = None
    if paths_for(resume)[1].exists():
        loaded, ckpt = load_model(resume, kind=stack.kind)
        _check_same(ckpt.meta, training, architecture, paths_for(resume)[1])
        stack.load_state_dict(loaded.state_dict())
        m = ckpt.meta["state"]
        state = LayerwiseState(
            layer=int(m["layer"]),
            examples_seen=int(m["examples_seen"]),
            trainer=ckpt.section("trainer"),
            source=ckpt.section("source"),
            generator=ckpt.tensors.get("generator"),
            history=list(m["history"]),
            pending_loss=float(m["pending_loss"]),
            pending_count=int(m["pending_count"]),
        )

    def on_checkpoint(s: LayerwiseState) -> None:
        extra = {**_state_tensors(s), **data_tensors(data)}
        save_checkpoint(resume, stack, extra=extra, meta={**training, "state": _state_meta(s)})
        _write_log(log, s.history)

    generator = torch.Generator().manual_seed(seed)
    final_state = train_layerwise(
        stack, source, data.x_test, config, generator, state=state, on_checkpoint=on_checkpoint, quiet=quiet
    )
    save_checkpoint(final, stack, extra=data_tensors(data), meta={**training, "history": final_state.history})
    _write_log(log, final_state.history)
    for p in paths_for(resume):
        p.unlink(missing_ok=True)
    return stack, final_state.history


def _check_same(
    meta: dict[str, Any], training: dict[str, Any], architecture: dict[str, Any], path: Path
) -> None:
    if meta.get("model_config") != json.loads(json.dumps(architecture)):
        raise UnitlensError(
            f"{path} holds a model of another architecture than this run asks for; use another output "
            "folder, or delete the checkpoint to start afresh"
        )
    for key in ("training_config", "seed"):
        if meta.get(key) != training[key]:
            raise UnitlensError(
                f"{path} was made with a different {key.replace('_', ' ')} than this run asks for; "
                "use another output folder, or delete the checkpoint to start afresh"
            )
    stored = meta.get("data", {})
    recipe = training["data"].get("recipe")
    if recipe is not None and stored.get("recipe") not in (None, recipe):
        raise UnitlensError(
            f"{path} was trained on data loaded another way ({stored['recipe']} vs {recipe}); use another "
            "output folder, or delete the checkpoint to start afresh"
        )
    if stored.get("rho") is not None and abs(float(stored["rho"]) - float(training["data"]["rho"])) > 1e-6:
        raise UnitlensError(
            f"{path} was trained on other data (rho {stored['rho']} vs {training['data']['rho']})"
        )


__all__ = ["config_dict", "data_meta", "data_tensors", "pretrain", "read_checkpoint", "recorded_recipe"]
