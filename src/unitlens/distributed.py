"""The edge between unitlens and ``torch.distributed``: one program, one process or many.

``torchrun --nproc-per-node N -m unitlens train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment; :func:`join` turns them into a
process group (gloo for CPU tensors, NCCL when the model lives on a GPU). A command started any other way
(or by torchrun with one process) is a world of one, and runs exactly as it always has: nothing here
changes a one-process run.

Process 0 is the one that writes (the output folder, its lock, checkpoints, logs, the console); the
others compute and hand it what only they hold (:func:`gather`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch.distributed as dist

from unitlens.errors import UnitlensError

__all__ = ["ALONE", "World", "all_gather", "barrier", "gather", "join", "leave", "main_first"]


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size`` processes (0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0


ALONE = World()
"""A world of one process."""


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as error:
        raise UnitlensError(f"environment variable {name} must be an integer, got {value!r}") from error


def join(backend: str = "gloo") -> World:
    """This process's world: the process group torchrun set up the environment for, joined now (or already
    joined), or a world of one when there is none.

    Raises:
        UnitlensError: the environment names an impossible rank, or the group cannot be formed.
    """
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    size, rank = _env_int("WORLD_SIZE"), _env_int("RANK")
    if size is None or size <= 1:
        return ALONE
    if rank is None or not 0 <= rank < size:
        raise UnitlensError(f"RANK={os.environ.get('RANK')!r} is not a rank of WORLD_SIZE={size}")
    if not dist.is_available():
        raise UnitlensError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    try:
        dist.init_process_group(backend, rank=rank, world_size=size)
    except (RuntimeError, ValueError) as error:
        raise UnitlensError(f"could not join the process group of {size} processes: {error}") from error
    return World(rank, size)


def leave(world: World) -> None:
    """End this process's part of the group (after the last collective)."""
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    """Wait until every process gets here."""
    if world.size > 1:
        dist.barrier()


@contextmanager
def main_first(world: World) -> Iterator[None]:
    """Process 0 runs the block first (making a folder, filling a cache), the others once it is done."""
    if not world.main:
        barrier(world)
    yield
    if world.main:
        barrier(world)


def gather(world: World, value: Any) -> list[Any] | None:
    """Every process's ``value`` (any picklable object), in rank order, on process 0; None elsewhere."""
    if world.size == 1:
        return [value]
    out: list[Any] | None = [None] * world.size if world.main else None
    dist.gather_object(value, out, dst=0)
    return out


def all_gather(world: World, value: Any) -> list[Any]:
    """Every process's ``value`` (any picklable object), in rank order, on every process."""
    if world.size == 1:
        return [value]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, value)
    return out
