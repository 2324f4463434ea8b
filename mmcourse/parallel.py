"""What :func:`mmcourse.train.fit` does when ``torchrun`` starts several copies of a program.

``torchrun --nproc_per_node=N`` starts ``N`` processes; once the program has joined their
process group (:func:`mmcourse.distributed.start`), :func:`~mmcourse.train.fit` trains
*data-parallel*, with nothing else to change:

- every rank draws the **same global batches** (the same seeded order) and trains on its
  own equal part of each (:meth:`Ranks.rows`), so the run sees the batches one process would
  see, split ``N`` ways -- what a ``DistributedSampler`` with ``set_epoch`` gives;
- the model is wrapped in ``DistributedDataParallel`` (:func:`replicate`), which averages
  the gradients over the ranks during ``backward``: every rank takes the same step;
- random draws inside a step (dropout, a caption's paraphrase) come from ``seed + rank``,
  so the ranks do not repeat each other's;
- the recorded loss is the mean over every rank's rows (:func:`sum_over_ranks`), buffers
  such as batch norm's running statistics are rank 0's after each epoch
  (:func:`share_buffers`), so validation gives the same answer on every rank, and only
  rank 0 prints and writes.

Without torchrun (or before the process group is joined) there is one rank and every
function here leaves things as they are: one process trains exactly as it always did.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from mmcourse._validate import check_int, require

__all__ = [
    "Ranks",
    "from_rank_0",
    "gather_objects",
    "replicate",
    "share_buffers",
    "sum_over_ranks",
]


def _joined() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@dataclass(frozen=True)
class Ranks:
    """This process's rank among ``size`` processes (``Ranks()``: one process, rank 0)."""

    rank: int = 0
    size: int = 1

    @classmethod
    def now(cls) -> Ranks:
        """The ranks of the process group this process has joined; one rank if none."""
        if not _joined():
            return cls()
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints and writes."""
        return self.rank == 0

    def rows(self, global_rows: int) -> slice:
        """The rows of a global batch of ``global_rows`` that this rank trains on: equal
        contiguous parts, rank 0 first. DDP averages the ranks' gradients with equal weights,
        which is the mean over the global batch only if every rank holds as many rows, so the
        batch must divide evenly."""
        check_int(global_rows, "global_rows")
        require(
            global_rows % self.size == 0,
            f"a global batch of {global_rows} rows does not split evenly over {self.size} "
            f"processes; use a batch size divisible by {self.size}",
        )
        part = global_rows // self.size
        return slice(self.rank * part, (self.rank + 1) * part)

    def check_batches(self, rows: int, batch_size: int) -> None:
        """A clear error, before training, if a batch of ``rows`` split into batches of
        ``batch_size`` (the last one smaller) cannot be shared equally by the ranks."""
        last = rows % batch_size
        require(
            batch_size % self.size == 0 and last % self.size == 0,
            f"{rows} rows in batches of {batch_size} ({rows // batch_size} full, the last of "
            f"{last}) do not split evenly over {self.size} processes: choose a batch size and "
            f"a number of rows whose batches are all divisible by {self.size}",
        )


def replicate(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel(model)`` when several processes run, else ``model`` itself.

    DDP copies rank 0's weights to every rank when it is built, then averages the gradients
    over the ranks during each ``backward``. It holds the model's own parameters, so an
    optimizer built on ``model.parameters()`` steps the replica. On GPUs each rank's model
    must already be on its own device (``cuda:LOCAL_RANK``)."""
    if not _joined():
        return model
    device = next(model.parameters()).device
    ids = [device] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The sum of ``value`` over every rank (in place, and returned); itself in one process."""
    if _joined():
        dist.all_reduce(value)
    return value


@torch.no_grad()
def share_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (batch norm's running statistics) to every rank. DDP sends them
    at the start of each forward, so after the last step each rank holds its own; after
    this, the ranks' models are equal and evaluate alike."""
    if not _joined():
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def gather_objects(value: object) -> list[object]:
    """``[value of rank 0, value of rank 1, ...]`` on every rank; ``[value]`` in one process.
    (Used for what each rank keeps for itself, such as its random generator's state.)"""
    if not _joined():
        return [value]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def from_rank_0(value: object) -> object:
    """Rank 0's ``value``, on every rank (itself in one process). For a decision every rank
    must take alike, such as whether to go on from a checkpoint: ranks that each looked for
    themselves could disagree (a file on one machine and not on another) and then wait
    forever for each other's messages."""
    if not _joined():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
