"""Data-parallel pre-training over torch.distributed: two gloo processes on this machine.

Each test spawns its processes with ``torch.multiprocessing`` (the ``spawn`` start method: a fresh
interpreter per process, as torchrun gives), which write what they end with to files the test compares.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.datasets import load_digits

from unitlens.data.stream import ShuffledBatches
from unitlens.models.dae import DAE, Corruption
from unitlens.models.dbn import DBN
from unitlens.models.sdae import SDAE
from unitlens.training.collective import SINGLE, ProcessGroupReducer, reducer_for_process_group
from unitlens.training.denoising import DenoisingTrainer
from unitlens.training.greedy import LayerwiseConfig, train_layerwise
from unitlens.training.sgd import SGDConfig

WORLD = 2
TIMEOUT_S = 120  # per spawned group; a run takes a few seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _digits() -> torch.Tensor:
    x = load_digits().data.astype(np.float32) / 16.0  # (1797, 64) in [0, 1]
    return torch.from_numpy(x)


def _join(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)


# ----------------------------------------------------------------------------------------- the workers
# Module-level functions: spawn pickles them by name.


def _dae_steps(rank: int, port: int, out: str) -> None:
    """Three steps of a deterministic DAE (no corruption, no sparsity) on this rank's half of a batch."""
    _join(rank, port)
    try:
        x = _digits()[:40]
        dae = DAE(64, 16, corruption=Corruption("none", 0.0), generator=torch.Generator().manual_seed(0))
        trainer = DenoisingTrainer(dae, SGDConfig(learning_rate=0.1), 1000, reducer=ProcessGroupReducer())
        generator = torch.Generator().manual_seed(rank)
        for step in range(3):
            batch = x[step * 10 : (step + 1) * 10]  # 10 examples per step in all
            trainer.step(batch[rank * 5 : (rank + 1) * 5], generator)
        torch.save({"state": dae.state_dict(), "seen": trainer.examples_seen}, Path(out) / f"dae{rank}.pt")
    finally:
        dist.destroy_process_group()


def _greedy(rank: int, port: int, out: str, kind: str, examples: int, batch: int) -> None:
    """Greedy pre-training of a 64-32-16 stack on the digits, each rank its own shuffled stream."""
    _join(rank, port)
    try:
        reducer = reducer_for_process_group()
        assert reducer.world == WORLD
        stack, history = _train(kind, examples, batch, rank, reducer)
        torch.save({"state": stack.state_dict(), "history": history}, Path(out) / f"{kind}{rank}.pt")
    finally:
        dist.destroy_process_group()


def _train(kind: str, examples: int, batch: int, rank: int, reducer: object) -> tuple[torch.nn.Module, list]:
    x = _digits()
    train, held_out = x[:1500], x[1500:]
    init = torch.Generator().manual_seed(0)
    stack = (
        DBN.build([64, 32, 16], generator=init) if kind == "dbn" else SDAE.build([64, 32, 16], generator=init)
    )
    # Each rank's own batches and draws; rank 0's seeds are a one-process run's.
    source = ShuffledBatches(train, None, batch, torch.Generator().manual_seed(100 + rank))
    config = LayerwiseConfig(
        examples_per_layer=examples, sgd=(SGDConfig(learning_rate=0.1),), eval_every=examples
    )
    state = train_layerwise(
        stack,
        source,
        held_out,
        config,
        torch.Generator().manual_seed(200 + rank),
        reducer=reducer,  # type: ignore[arg-type]
    )
    return stack, state.history


def _spawn(fn: object, *args: object) -> None:
    mp.start_processes(fn, args=(_free_port(), *args), nprocs=WORLD, join=True, start_method="spawn")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- tests


def test_one_process_is_the_single_reducer_and_trains_as_before() -> None:
    assert reducer_for_process_group() is SINGLE  # no process group: one process
    a, history_a = _train("dbn", 3000, 20, 0, SINGLE)
    x = _digits()
    init = torch.Generator().manual_seed(0)
    b = DBN.build([64, 32, 16], generator=init)
    source = ShuffledBatches(x[:1500], None, 20, torch.Generator().manual_seed(100))
    config = LayerwiseConfig(examples_per_layer=3000, sgd=(SGDConfig(learning_rate=0.1),), eval_every=3000)
    state = train_layerwise(b, source, x[1500:], config, torch.Generator().manual_seed(200))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name  # bit-identical: the default reducer changes nothing
    assert [r["train_loss"] for r in history_a] == [r["train_loss"] for r in state.history]


def test_two_processes_take_the_step_of_their_batches_together(tmp_path: Path) -> None:
    _spawn(_dae_steps, str(tmp_path))
    ranks = [torch.load(tmp_path / f"dae{r}.pt") for r in range(WORLD)]
    for name, p in ranks[0]["state"].items():
        assert torch.equal(p, ranks[1]["state"][name]), name  # the same update applied everywhere
    assert ranks[0]["seen"] == 30  # examples are counted over both processes
    # The reference: one process stepping on the whole 10-example batches. The DAE's update is the mean
    # over the batch, so the mean of two 5-example means is the same step, up to float rounding.
    x = _digits()[:40]
    dae = DAE(64, 16, corruption=Corruption("none", 0.0), generator=torch.Generator().manual_seed(0))
    trainer = DenoisingTrainer(dae, SGDConfig(learning_rate=0.1), 1000)
    for step in range(3):
        trainer.step(x[step * 10 : (step + 1) * 10], torch.Generator().manual_seed(0))
    for name, p in dae.state_dict().items():
        torch.testing.assert_close(ranks[0]["state"][name], p, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", ["dbn", "sdae"])
def test_two_processes_reach_the_quality_of_one(tmp_path: Path, kind: str) -> None:
    """Two processes with batches of 10 against one with batches of 20, the same examples in all."""
    examples = 6000
    _spawn(_greedy, str(tmp_path), kind, examples, 10)
    ranks = [torch.load(tmp_path / f"{kind}{r}.pt") for r in range(WORLD)]
    for name, p in ranks[0]["state"].items():
        assert torch.equal(p, ranks[1]["state"][name]), name  # identical stacks on both processes
    # One monitoring record, the same everywhere (but for each process's own clock).
    untimed = [[{k: v for k, v in row.items() if k != "seconds"} for row in r["history"]] for r in ranks]
    assert untimed[0] == untimed[1]
    _, single = _train(kind, examples, 20, 0, SINGLE)
    two = ranks[0]["history"]
    assert [r["examples"] for r in two] == [r["examples"] for r in single]
    for a, b in zip(two, single, strict=True):
        # Measured 2026-12-04: the two runs' held-out reconstruction errors differ by 0.1-1.1 % on layer 1
        # and 0.6-5.9 % on layer 2 (different batches and draws); 15 % leaves room for other seeds. The
        # exact check of the average is the DAE test above.
        assert a["heldout_reconstruction"] == pytest.approx(b["heldout_reconstruction"], rel=0.15)
