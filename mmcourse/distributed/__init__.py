"""Data parallelism with ``torchrun``: the same training on several processes.

- :mod:`~mmcourse.distributed.world` -- who this process is (:func:`start`, :func:`current`,
  :class:`World`) and which rows of a global batch it trains on (:func:`local_rows`);
- :mod:`~mmcourse.distributed.clip` -- CLIP's loss over every rank's negatives, gradients
  kept through the gather (:func:`gather_with_grad`, :func:`gathered_clip_loss`);
- :mod:`~mmcourse.distributed.check` -- ``torchrun ... -m mmcourse.distributed.check``: the
  gathered loss's gradients against one process's, and the naive loss's;
- :mod:`~mmcourse.distributed.dual` -- ``torchrun ... -m mmcourse.distributed.dual``: the case
  study's dual encoder trained with DistributedDataParallel, rank 0 writing, checkpoints
  after every epoch and ``--resume``.
"""

from mmcourse.distributed.clip import gather_ids, gather_with_grad, gathered_clip_loss
from mmcourse.distributed.world import BACKENDS, World, current, local_rows, start, stop

__all__ = [
    "BACKENDS",
    "World",
    "current",
    "gather_ids",
    "gather_with_grad",
    "gathered_clip_loss",
    "local_rows",
    "start",
    "stop",
]
