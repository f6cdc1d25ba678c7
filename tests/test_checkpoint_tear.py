"""A run killed at any file operation of its checkpoint writes resumes, and ends as an uninterrupted run.

A kill is simulated by raising ``Killed`` (a BaseException, like the signal that ends a process) from the
k-th ``os.replace`` or ``Path.unlink`` of a run, for every k: those are the operations that change what a
reader of the folder sees (a file's data is written under a temporary name first). Once killed, the
process does nothing more: later replaces and unlinks (the clean-up in ``finally`` blocks) are skipped, so
temporary files stay behind as they would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save as st_save

from unitlens.checkpoint import load_model, paths_for, read_checkpoint
from unitlens.data.dataset import Dataset, dataset_norm
from unitlens.data.stream import ShuffledBatches
from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.runs import pretrain
from unitlens.training.greedy import LayerwiseConfig
from unitlens.training.sgd import SGDConfig

pytestmark = pytest.mark.usefixtures("one_thread")

# Three checkpoints a layer (two inside it, one at its end), so a resume checkpoint is overwritten both
# inside a layer and across a layer's end.
CONFIG = LayerwiseConfig(
    examples_per_layer=60,
    sgd=(SGDConfig(learning_rate=0.05, batch_size=20),),
    eval_every=20,
    checkpoint_every=20,
    monitor_examples=50,
    init_batches=2,
)


class Killed(BaseException):
    """The process died here."""


class Killer:
    """Counts the run's replaces and unlinks; raises ``Killed`` at number ``at`` (None: never)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: int | None) -> None:
        self.at, self.count, self.dead = at, 0, False
        real_replace, real_unlink = os.replace, Path.unlink

        def replace(src: Any, dst: Any) -> None:
            if self._step():
                real_replace(src, dst)

        def unlink(path: Path, missing_ok: bool = False) -> None:
            if self._step():
                real_unlink(path, missing_ok=missing_ok)

        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(Path, "unlink", unlink)
        monkeypatch.setattr(os, "fsync", lambda fd: None)  # durability is not what is tested; speed is

    def _step(self) -> bool:
        if self.dead:
            return False
        self.count += 1
        if self.count == self.at:
            self.dead = True
            raise Killed
        return True


def _data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 16, generator=g) < 0.3).float()
    return Dataset(x[:200], None, x[200:], None, (4, 4), dataset_norm(x[:200]), "test", "binary")


def _run(folder: Path, data: Dataset) -> tuple[DBN, list[dict[str, float]]]:
    stack = DBN.build([16, 8, 4], generator=torch.Generator().manual_seed(0))
    source = ShuffledBatches(data.x_train, None, 20, torch.Generator().manual_seed(1))
    trained, history = pretrain(stack, source, data, CONFIG, seed=3, folder=folder, name="dbn")
    assert isinstance(trained, DBN)
    return trained, history


def _without_time(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _assert_same_run(folder: Path, result: tuple[DBN, list[dict[str, float]]], reference: Any) -> None:
    """Same weights, same monitoring, same log and final checkpoint, and nothing else left in ``folder``."""
    (stack, history), (ref_stack, ref_history) = result, reference
    for (name, a), b in zip(ref_stack.state_dict().items(), stack.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert _without_time(history) == _without_time(ref_history)
    log = [json.loads(line) for line in (folder / "dbn-log.jsonl").read_text().splitlines()]
    assert _without_time(log) == _without_time(ref_history)
    loaded, ckpt = load_model(folder / "dbn", kind="dbn")
    for a, b in zip(ref_stack.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert _without_time(ckpt.meta["history"]) == _without_time(ref_history)
    assert sorted(p.name for p in folder.iterdir()) == ["dbn-log.jsonl", "dbn.json", "dbn.safetensors"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[DBN, list[dict[str, float]], int]:
    """An uninterrupted run, and how many replaces and unlinks it makes."""
    folder = tmp_path_factory.mktemp("reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the tests (one_thread), so the floating-point sums are the same
    try:
        with pytest.MonkeyPatch.context() as mp:
            counter = Killer(mp, None)
            stack, history = _run(folder, _data())
    finally:
        torch.set_num_threads(threads)
    return stack, history, counter.count


def test_a_run_killed_at_any_file_operation_resumes_to_the_same_result(
    tmp_path: Path,
    reference: tuple[DBN, list[dict[str, float]], int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref_stack, ref_history, n_ops = reference
    assert n_ops > 40  # every checkpoint write is in the sequence
    data = _data()
    for k in range(1, n_ops + 1):
        folder = tmp_path / f"kill-{k}"
        with monkeypatch.context() as mp:
            Killer(mp, k)
            with pytest.raises(Killed):
                _run(folder, data)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="unitlens"):
            result = _run(folder, data)  # never stuck: no error, no file to delete by hand
        # Never torn either: the resume found its last checkpoint sound, with nothing to discard.
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], k
        _assert_same_run(folder, result, (ref_stack, ref_history))


def test_a_run_killed_twice_resumes_to_the_same_result(
    tmp_path: Path, reference: tuple[DBN, list[dict[str, float]], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed run killed again (at its first, a middle and its last operation) resumes again."""
    ref_stack, ref_history, n_ops = reference
    data = _data()
    for first, second in ((n_ops // 3, 1), (n_ops // 3, 5), (n_ops // 2, n_ops // 4), (n_ops - 3, 1)):
        folder = tmp_path / f"kill-{first}-{second}"
        for k in (first, second):
            with monkeypatch.context() as mp:
                Killer(mp, k)
                with pytest.raises(Killed):
                    _run(folder, data)
        _assert_same_run(folder, _run(folder, data), (ref_stack, ref_history))


# ------------------------------------------------------------------------------ pairs in the old format


def _write_old_pair(stem: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """A checkpoint pair as unitlens wrote it before pairs were committed as a unit: ``NAME.safetensors``
    then ``NAME.json``, naming it, with the tensors' SHA-256 and no ``meta_sha256``."""
    tensor_path, json_path = paths_for(stem)
    blob = st_save(tensors)
    info = {k: v for k, v in meta.items() if k != "meta_sha256"}
    info.update(tensor_file=tensor_path.name, tensor_sha256=hashlib.sha256(blob).hexdigest())
    tensor_path.write_bytes(blob)
    json_path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def _interrupted(folder: Path, data: Dataset, batches: int) -> None:
    """A run stopped (Ctrl-C) after ``batches`` batches, leaving its resume checkpoint."""

    class Interrupting(ShuffledBatches):
        def __init__(self) -> None:
            super().__init__(data.x_train, None, 20, torch.Generator().manual_seed(1))
            self.left = batches

        def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
            self.left -= 1
            if self.left < 0:
                raise KeyboardInterrupt
            return super().next_batch()

    stack = DBN.build([16, 8, 4], generator=torch.Generator().manual_seed(0))
    with pytest.raises(KeyboardInterrupt):
        pretrain(stack, Interrupting(), data, CONFIG, seed=3, folder=folder, name="dbn")


def _to_old_format(folder: Path, stem: str) -> None:
    """Rewrite checkpoint ``folder/stem`` in the old format (same tensors and metadata)."""
    ckpt = read_checkpoint(folder / stem)
    for p in folder.glob(f"{stem}.*"):
        p.unlink()
    _write_old_pair(folder / stem, ckpt.tensors, ckpt.meta)


def test_an_old_format_resume_checkpoint_still_resumes(
    tmp_path: Path, reference: tuple[DBN, list[dict[str, float]], int], caplog: pytest.LogCaptureFixture
) -> None:
    data = _data()
    _interrupted(tmp_path, data, 2 + 2)  # 40 examples into layer 1 (2 init batches, 2 of training)
    for stem in ("dbn-resume", "dbn-layer-start"):
        if paths_for(tmp_path / stem)[1].exists():
            _to_old_format(tmp_path, stem)
    assert json.loads((tmp_path / "dbn-resume.json").read_text())["tensor_file"] == "dbn-resume.safetensors"
    with caplog.at_level(logging.WARNING, logger="unitlens"):
        result = _run(tmp_path, data)
    assert not caplog.records
    _assert_same_run(tmp_path, result, reference[:2])


def test_an_old_format_final_checkpoint_still_loads(
    tmp_path: Path, reference: tuple[DBN, list[dict[str, float]], int]
) -> None:
    data = _data()
    _run(tmp_path, data)
    _to_old_format(tmp_path, "dbn")
    assert "meta_sha256" not in json.loads((tmp_path / "dbn.json").read_text())
    _assert_same_run(tmp_path, _run(tmp_path, data), reference[:2])


def test_a_pair_torn_by_the_old_writer_falls_back_with_one_warning(
    tmp_path: Path, reference: tuple[DBN, list[dict[str, float]], int], caplog: pytest.LogCaptureFixture
) -> None:
    """The old writer, killed between its two files, left new tensors beside old metadata: every resume
    stopped on the SHA mismatch. Now the pair is discarded and training restarts (it had no layer start)."""
    data = _data()
    _interrupted(tmp_path / "later", data, 2 + 2)  # resume checkpoint at 40 examples
    folder = tmp_path / "run"
    _interrupted(folder, data, 2 + 1)  # at 20
    later = read_checkpoint(tmp_path / "later" / "dbn-resume")
    _to_old_format(folder, "dbn-resume")
    paths_for(folder / "dbn-resume")[0].write_bytes(st_save(later.tensors))  # the torn pair
    with caplog.at_level(logging.WARNING, logger="unitlens"):
        result = _run(folder, data)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "dbn-resume" in warnings[0] and "SHA-256" in warnings[0] and "first layer" in warnings[0]
    _assert_same_run(folder, result, reference[:2])


def test_a_damaged_resume_checkpoint_falls_back_to_the_start_of_its_layer(
    tmp_path: Path, reference: tuple[DBN, list[dict[str, float]], int], caplog: pytest.LogCaptureFixture
) -> None:
    data = _data()
    _interrupted(tmp_path, data, 2 + 3 + 2 + 2)  # layer 1 done, 40 examples into layer 2
    meta = json.loads((tmp_path / "dbn-resume.json").read_text())
    assert meta["state"]["layer"] == 2 and meta["state"]["examples_seen"] == 40
    tensors = paths_for(tmp_path / "dbn-resume")[0]
    blob = bytearray(tensors.read_bytes())
    blob[-3] ^= 0x40  # a bit flipped on disk
    tensors.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="unitlens"):
        result = _run(tmp_path, data)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "dbn-resume" in warnings[0] and "layer 2 after 0 examples" in warnings[0]
    _assert_same_run(tmp_path, result, reference[:2])


def test_a_damaged_final_checkpoint_says_how_to_recover(
    tmp_path: Path, reference: tuple[DBN, list[dict[str, float]], int]
) -> None:
    data = _data()
    _run(tmp_path, data)
    tensors, meta = paths_for(tmp_path / "dbn")
    tensors.write_bytes(tensors.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(UnitlensError) as error:
        _run(tmp_path, data)
    message = str(error.value)
    assert str(tensors) in message and "SHA-256" in message
    assert "delete the checkpoint pair (dbn.safetensors and dbn.json" in message and "again" in message
    # Following the advice retrains that stage, to the same result.
    tensors.unlink()
    meta.unlink()
    _assert_same_run(tmp_path, _run(tmp_path, data), reference[:2])


def test_an_overwrite_killed_at_any_point_leaves_the_old_or_the_new_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``save_checkpoint`` over an existing pair, killed at each of its file operations: the pair reads as
    the old checkpoint or the new one, and ``settle_checkpoint`` brings it back to ``NAME.*`` at rest."""
    from unitlens.checkpoint import save_checkpoint, settle_checkpoint

    old, new = (DBN.build([6, 5, 4], generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    with monkeypatch.context() as mp:
        counter = Killer(mp, None)
        save_checkpoint(tmp_path / "count" / "m", old)
        save_checkpoint(tmp_path / "count" / "m", new)
    n_ops = counter.count // 2
    assert n_ops >= 4
    for k in range(1, n_ops + 1):
        stem = tmp_path / f"kill-{k}" / "m"
        save_checkpoint(stem, old, meta={"seed": 1})
        with monkeypatch.context() as mp:
            Killer(mp, k)
            with pytest.raises(Killed):
                save_checkpoint(stem, new, meta={"seed": 2})
        loaded, ckpt = load_model(stem, kind="dbn")
        expected = {1: old, 2: new}[ckpt.meta["seed"]]
        for a, b in zip(expected.state_dict().values(), loaded.state_dict().values(), strict=True):
            assert torch.equal(a, b), k
        settle_checkpoint(stem)
        assert sorted(p.name for p in stem.parent.iterdir()) == ["m.json", "m.safetensors"], k
        assert json.loads((stem.parent / "m.json").read_text())["tensor_file"] == "m.safetensors"
        assert load_model(stem)[1].meta["seed"] == ckpt.meta["seed"]
