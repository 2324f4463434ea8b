"""CLIP's loss when the batch is split over processes: every rank's negatives, and gradients
that equal one process's.

With DistributedDataParallel each rank sees only its part of the global batch. The naive
port computes :func:`~mmcourse.losses.clip_loss` on that part: a global batch of 512 over 8
ranks then trains with 63 negatives per example instead of 511, and its gradient is not the
gradient of the loss on the global batch. The fix, as in open_clip (``gather_with_grad``,
``local_loss=True``): gather every rank's embeddings, **keeping their gradients**, and score
each local row against every gathered column::

    all_images, all_texts = gather_with_grad(images), gather_with_grad(texts)    # (G, D)
    loss_r = mean over local rows i of  CE(s * images_i @ all_texts.T, offset + i)
                                       + CE(s * texts_i @ all_images.T, offset + i), halved

The gather's backward sends the gradient of each gathered copy back to the rank that owns it
(summed over ranks), and DDP averages the ranks' parameter
gradients: the average of the ``loss_r`` over equal parts is the single-process loss on the
global batch, so the gradients agree to rounding.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F

from mmcourse._validate import Dims, check_choice, require
from mmcourse.distributed.world import current
from mmcourse.losses import DUPLICATE_MODES, _check_logit_scale

__all__ = ["gather_ids", "gather_with_grad", "gathered_clip_loss"]


def _world() -> tuple[int, int]:
    world = current()  # the one place that asks the process group who this is
    return world.rank, world.size


class _GatherWithGrad(torch.autograd.Function):
    """All-gather forward; backward, each rank gets the gradient of its own rows summed over
    the ranks (every rank's loss used them): an all-reduce of the whole gradient, then this
    rank's slice -- what a reduce-scatter does, with collectives gloo has."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        rank, size = _world()
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x.contiguous())
        ctx.own = slice(rank * len(x), (rank + 1) * len(x))
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # sum over the ranks of d(their loss) / d(every row)
        return grad[ctx.own]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` ``(B, ...)`` stacked in rank order ``(size * B, ...)``, with the
    gradient flowing back to each rank's own rows; ``x`` itself in one process.

    (PyTorch's ``torch.distributed.nn.functional.all_gather`` does the same and is what
    open_clip uses; it is deprecated in recent releases, so the course spells it out.)"""
    _, size = _world()
    if size == 1:
        return x
    return _GatherWithGrad.apply(x)


def gather_ids(ids: torch.Tensor) -> torch.Tensor:
    """Every rank's integer ``ids`` ``(B,)`` in rank order (no gradient: they are labels)."""
    _, size = _world()
    if size == 1:
        return ids
    parts = [torch.empty_like(ids) for _ in range(size)]
    dist.all_gather(parts, ids.contiguous())
    return torch.cat(parts)


def _check_equal_parts(rows: int, size: int, device: torch.device) -> None:
    if size == 1:
        return
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(size)]
    dist.all_gather(counts, torch.tensor([rows], device=device))
    counts = [int(c) for c in counts]
    require(
        len(set(counts)) == 1,
        f"every rank must hold as many pairs (DDP averages with equal weights); got {counts}",
    )


def gathered_clip_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor | float,
    groups: torch.Tensor | None = None,
    mode: str = "mask",
) -> torch.Tensor:
    """This rank's share of CLIP's symmetric InfoNCE on the global batch.

    Args:
        image_emb, text_emb: ``(B, D)`` this rank's embeddings (normalised here); every rank
            must hold the same ``B``.
        logit_scale: ``1 / temperature`` (> 0), a float or a 0-dim tensor.
        groups: ``(B,)`` description ids for duplicate-aware targets, as in
            :func:`~mmcourse.losses.clip_loss_with_duplicates` (``mode`` ``"mask"`` or
            ``"soft"``); ``None`` treats every other pair as a negative
            (:func:`~mmcourse.losses.clip_loss`).

    In one process it is exactly the single-process loss. Under DDP each rank returns the
    mean over its own rows; DDP's averaging of gradients then gives the gradient of the
    loss on the global batch.
    """
    check_choice(mode, "mode", DUPLICATE_MODES)
    dims = Dims()
    dims.float(image_emb, "image_emb", "B D")
    dims.float(text_emb, "text_emb", "B D")
    if groups is not None:
        dims.indices(groups, "groups", "B")
    logit_scale = _check_logit_scale(logit_scale)  # the single-process losses' own check
    rank, size = _world()
    rows = dims["B"]
    _check_equal_parts(rows, size, image_emb.device)
    images, texts = F.normalize(image_emb, dim=1), F.normalize(text_emb, dim=1)
    all_images, all_texts = gather_with_grad(images), gather_with_grad(texts)  # (G, D)
    labels = rank * rows + torch.arange(rows, device=images.device)  # my rows' columns
    image_to_text = logit_scale * images @ all_texts.T  # (B, G)
    # one process: the transpose, as clip_loss computes it, so that the numbers are the same
    text_to_image = image_to_text.T if size == 1 else logit_scale * texts @ all_images.T
    if groups is None:
        return (F.cross_entropy(image_to_text, labels) + F.cross_entropy(text_to_image, labels)) / 2
    all_groups = gather_ids(groups.to(images.device))
    same = groups.to(images.device)[:, None] == all_groups[None, :]  # (B, G)
    own = torch.zeros_like(same)
    own[torch.arange(rows), labels] = True
    if mode == "mask":
        hidden = same & ~own  # the same description, not the pair itself: out of the softmax
        return (
            F.cross_entropy(image_to_text.masked_fill(hidden, -math.inf), labels)
            + F.cross_entropy(text_to_image.masked_fill(hidden, -math.inf), labels)
        ) / 2
    target = same.to(images.dtype)
    target = target / target.sum(dim=1, keepdim=True)
    return (
        -(
            (target * F.log_softmax(image_to_text, dim=1)).sum(dim=1).mean()
            + (target * F.log_softmax(text_to_image, dim=1)).sum(dim=1).mean()
        )
        / 2
    )
