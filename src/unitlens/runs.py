"""Run folders at the edge: resumable pre-training that writes checkpoints and logs.

The training loop itself (``unitlens.training.greedy``) is pure; this module decides which files it
becomes. A pre-training run named ``NAME`` in folder ``DIR`` leaves:

- ``DIR/NAME.safetensors`` + ``DIR/NAME.json``: the trained stack, once every layer is done;
- ``DIR/NAME-resume.*``: the last in-progress checkpoint (weights, trainer, source and generator states),
  removed when the final checkpoint is written;
- ``DIR/NAME-layer-start.*``: the state at the start of the layer in training, kept beside the resume
  checkpoint (and removed with it) so that a resume checkpoint found damaged costs one layer, not the run;
- ``DIR/NAME-log.jsonl``: one JSON row per monitoring point (rewritten atomically at each checkpoint).

Every checkpoint is committed as a unit (``unitlens.checkpoint``), so a run killed at any moment resumes
from its last checkpoint. A resume checkpoint that is nonetheless unusable (damaged on disk, edited, or torn
by an older unitlens, which wrote the two files one after the other) is discarded with one warning, and
training resumes from the start of its layer, or from the start.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unitlens.atomic import write_text
from unitlens.catalogue import derive_seed
from unitlens.checkpoint import (
    Checkpoint,
    DamagedCheckpointError,
    load_model,
    paths_for,
    read_checkpoint,
    remove_checkpoint,
    save_checkpoint,
    settle_checkpoint,
)
from unitlens.data.dataset import DataRecipe, Dataset
from unitlens.data.stream import BatchSource
from unitlens.distributed import ALONE, World, barrier, gather
from unitlens.errors import UnitlensError
from unitlens.models.stack import LayerStack
from unitlens.training.collective import SINGLE, reducer_for_process_group
from unitlens.training.greedy import LayerwiseConfig, LayerwiseState, train_layerwise

log = logging.getLogger("unitlens")


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


def _remove_log_temporaries(path: Path) -> None:
    """Remove the temporary files that writes of log ``path`` killed midway left beside it."""
    pattern = re.compile(r"\." + re.escape(path.name) + r"\.[A-Za-z0-9_]+\.tmp")
    for entry in path.parent.glob(f".{path.name}.*.tmp"):
        if pattern.fullmatch(entry.name):
            entry.unlink(missing_ok=True)


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
    world: World = ALONE,
) -> tuple[LayerStack, list[dict[str, float]]]:
    """Pre-train ``stack`` greedily with checkpoints in ``folder``; resume if a run was interrupted.

    If ``folder/name`` already holds a finished checkpoint it is loaded and returned without training.
    If it holds an in-progress one made with the same configuration and seed, training continues from it
    and ends exactly where an uninterrupted run would.

    Data-parallel (``world`` of more than one process, ``unitlens.distributed``): every process calls
    this with its own ``source`` (its own seed) and trains its copy of the stack, the updates averaged
    over the processes (``unitlens.training.collective``). Process 0 alone writes: the checkpoints hold
    its source and generator states as a one-process run's do, and each other process's under
    ``rank{R}.``, so every process resumes where it stopped. The number of processes is part of the
    run's settings (``data_parallel`` in the checkpoint): a run resumes with as many as it started with.

    Returns:
        The trained stack (the same object, or the one loaded) and the monitoring history.
    """
    folder = Path(folder)
    final, resume, start = folder / name, folder / f"{name}-resume", folder / f"{name}-layer-start"
    log_path = folder / f"{name}-log.jsonl"
    training: dict[str, Any] = {"training_config": config_dict(config), "seed": seed, "data": data_meta(data)}
    if world.size > 1:  # absent for one process, so its checkpoints are what they always were
        training["data_parallel"] = world.size
    architecture = stack.config()
    if paths_for(final)[1].exists():
        # A damaged final checkpoint is an error (its message says how to recover): the run cannot rebuild
        # it without retraining, which only the user may decide.
        loaded, ckpt = load_model(final, kind=stack.kind)
        _check_same(ckpt.meta, training, architecture, paths_for(final)[1])
        assert isinstance(loaded, LayerStack)
        if world.main:
            settle_checkpoint(final)  # a save killed after its commit: finish it
            remove_checkpoint(resume)  # killed before these were removed
            remove_checkpoint(start)
            _remove_log_temporaries(log_path)
        return loaded, list(ckpt.meta.get("history", []))

    # Process 0 settles (or discards) the checkpoints first; the others then read what it kept.
    state = _resume(stack, (resume, start), training, architecture) if world.main else None
    barrier(world)
    if not world.main:
        state = _resume(stack, (resume, start), training, architecture)
        if state is not None:
            state = _own_part(state, read_checkpoint(_resumed_from(resume, start)), world.rank)

    def on_checkpoint(s: LayerwiseState) -> None:
        # Every process hands its own states to process 0, which writes them all.
        parts = gather(world, _state_tensors(s))
        if not world.main or parts is None:
            return
        extra = {**parts[0], **data_tensors(data)}
        for rank, tensors in enumerate(parts[1:], start=1):
            extra.update({f"rank{rank}.{k}": v for k, v in tensors.items()})
        meta = {**training, "state": _state_meta(s)}
        save_checkpoint(resume, stack, extra=extra, meta=meta)
        if s.examples_seen == 0:  # a layer starts: the point to fall back to if the resume one is damaged
            save_checkpoint(start, stack, extra=extra, meta=meta)
        _write_log(log_path, s.history)

    # Process 0's generator is a one-process run's; each other process draws its own.
    generator = torch.Generator().manual_seed(seed if world.main else derive_seed(seed, "rank", world.rank))
    reducer = reducer_for_process_group() if world.size > 1 else SINGLE
    final_state = train_layerwise(
        stack,
        source,
        data.x_test,
        config,
        generator,
        state=state,
        on_checkpoint=on_checkpoint,
        quiet=quiet or not world.main,
        reducer=reducer,
    )
    if world.main:
        save_checkpoint(
            final, stack, extra=data_tensors(data), meta={**training, "history": final_state.history}
        )
        _write_log(log_path, final_state.history)
        remove_checkpoint(resume)
        remove_checkpoint(start)
        _remove_log_temporaries(log_path)
    barrier(world)  # nobody reports done before the checkpoint is
    return stack, final_state.history


def _resumed_from(resume: Path, start: Path) -> Path:
    """The checkpoint a resume read: the resume one when it is there, else the layer-start one."""
    return resume if paths_for(resume)[1].exists() else start


def _own_part(state: LayerwiseState, ckpt: Checkpoint, rank: int) -> LayerwiseState:
    """Process ``rank``'s own trainer, source and generator states, from a data-parallel checkpoint."""
    own = ckpt.section(f"rank{rank}")
    if not own:
        raise DamagedCheckpointError(f"the checkpoint holds no state of process {rank} (rank{rank}.*)")
    return dataclasses.replace(
        state,
        trainer={k[len("trainer.") :]: v for k, v in own.items() if k.startswith("trainer.")},
        source={k[len("source.") :]: v for k, v in own.items() if k.startswith("source.")},
        generator=own.get("generator"),
    )


def _state_of(ckpt: Checkpoint, path: Path) -> LayerwiseState:
    """The training state a resume checkpoint (JSON ``path``) holds."""
    m = ckpt.meta.get("state")
    if m is None:
        raise DamagedCheckpointError(f"{path}: field 'state' is missing (it is not a resume checkpoint)")
    return LayerwiseState(
        layer=int(m["layer"]),
        examples_seen=int(m["examples_seen"]),
        trainer=ckpt.section("trainer"),
        source=ckpt.section("source"),
        generator=ckpt.tensors.get("generator"),
        history=list(m["history"]),
        pending_loss=float(m["pending_loss"]),
        pending_count=int(m["pending_count"]),
    )


def _resume(
    stack: LayerStack, candidates: tuple[Path, ...], training: dict[str, Any], architecture: dict[str, Any]
) -> LayerwiseState | None:
    """The state to resume from, its weights loaded into ``stack``: the first of ``candidates`` (the resume
    checkpoint, then the layer-start one) that loads; None to start afresh.

    Unusable candidates are deleted, with one warning naming them and the point training resumes from. A
    sound checkpoint made with other settings is an error, not a fallback: it is the user's to remove.
    """
    damaged: list[tuple[Path, DamagedCheckpointError]] = []
    found: tuple[LayerStack, LayerwiseState] | None = None
    for stem in candidates:
        json_path = paths_for(stem)[1]
        if not json_path.exists():
            continue
        try:
            loaded, ckpt = load_model(stem, kind=stack.kind)
            state = _state_of(ckpt, json_path)
        except DamagedCheckpointError as exc:
            damaged.append((json_path, exc))
            continue
        _check_same(ckpt.meta, training, architecture, json_path)
        assert isinstance(loaded, LayerStack)
        settle_checkpoint(stem)
        found = (loaded, state)
        break
    if damaged:
        where = (
            f"layer {found[1].layer} after {found[1].examples_seen} examples" if found else "the first layer"
        )
        log.warning(
            "discarding unusable checkpoint%s: %s; training resumes from %s",
            "s" if len(damaged) > 1 else "",
            "; ".join(exc.problem for _, exc in damaged),
            where,
        )
        for json_path, _ in damaged:
            remove_checkpoint(json_path)
    if found is None:
        return None
    stack.load_state_dict(found[0].state_dict())
    return found[1]


def _check_same(
    meta: dict[str, Any], training: dict[str, Any], architecture: dict[str, Any], path: Path
) -> None:
    if meta.get("model_config") != json.loads(json.dumps(architecture)):
        raise UnitlensError(
            f"{path} holds a model of another architecture than this run asks for; use another output "
            "folder, or delete the checkpoint to start afresh"
        )
    if meta.get("data_parallel", 1) != training.get("data_parallel", 1):
        raise UnitlensError(
            f"{path} was made by {meta.get('data_parallel', 1)} data-parallel processes and this run has "
            f"{training.get('data_parallel', 1)}; resume it with as many (torchrun --nproc-per-node), use "
            "another output folder, or delete the checkpoint to start afresh"
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
