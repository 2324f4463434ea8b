"""Which process am I, among how many? The few lines every torchrun script starts with.

``torchrun --nproc_per_node=N`` starts ``N`` copies of one program and tells each, in its
environment, who it is: ``RANK`` (0..N-1 over all machines), ``LOCAL_RANK`` (0..N-1 on this
machine), ``WORLD_SIZE`` (N over all machines) and where rank 0 listens (``MASTER_ADDR``,
``MASTER_PORT``). :func:`start` reads them and joins the process group -- gloo on CPUs, NCCL
on GPUs -- and :func:`current` says who this process is. Run without torchrun, nothing is
started and the world is one process, rank 0, so the same code runs both ways.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mmcourse._validate import check_choice, require
from mmcourse.parallel import Ranks

__all__ = ["BACKENDS", "World", "current", "local_rows", "rank_0_first", "start", "stop"]

BACKENDS = ("gloo", "nccl")
"""gloo runs on CPUs (and GPUs); NCCL on NVIDIA GPUs only, and fastest there."""


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, writes metrics and saves checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process, joined in a process group."""
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    require(
        value.isdigit(), f"the environment variable {name} must be a whole number, got {value!r}"
    )
    return int(value)


def current() -> World:
    """The world as the process group (or, before :func:`start`, the environment) sees it."""
    ranks = Ranks.now()
    backend = dist.get_backend() if ranks.size > 1 else "gloo"
    local_rank = _env_int("LOCAL_RANK", 0) if ranks.size > 1 else 0
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    return World(ranks.rank, ranks.size, local_rank, device)


def start(backend: str | None = None) -> World:
    """Join the process group torchrun described in the environment, and return the world.

    Without torchrun (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``) nothing is started: one
    process, rank 0. ``backend`` defaults to NCCL where CUDA is available, gloo elsewhere.
    """
    if backend is not None:
        check_choice(backend, "backend", BACKENDS)
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        return current()
    require(dist.is_available(), "this PyTorch was built without torch.distributed")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        require(
            name in os.environ,
            f"WORLD_SIZE={size} but {name} is not set: start the program with torchrun "
            "(torchrun --standalone --nproc_per_node=2 -m ...), which sets all of them",
        )
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
    dist.init_process_group(backend)
    return current()


def stop() -> None:
    """Leave the process group (a no-op in one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_rows(global_rows: int, world: World) -> slice:
    """The rows of a global batch of ``global_rows`` that ``world``'s rank trains on: equal
    contiguous parts, rank 0 first. Every rank draws the same global batches (the same
    seeded order), so the run sees the batches one process would see, split ``world.size``
    ways. The global batch must divide evenly: DDP averages the ranks' gradients with equal
    weights, which is the global mean only if every rank holds as many rows."""
    return Ranks(world.rank, world.size).rows(global_rows)


@contextmanager
def rank_0_first(world: World) -> Iterator[None]:
    """Run the ``with`` block on rank 0 first, then on the other ranks: for work that fills a
    cache on disk (building the canvases), which the others then read instead of writing
    the same files at the same time. In one process, just the block."""
    if world.distributed and not world.is_main:
        dist.barrier()  # wait for rank 0's block
    yield
    if world.distributed and world.is_main:
        dist.barrier()  # let the others go
