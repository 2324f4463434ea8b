"""``torchrun --standalone --nproc_per_node=2 -m mmcourse.distributed.check``: does the
gathered CLIP loss give one process's gradients?

Every rank builds the same small two-tower model (seeded) and the same global batch of
image and text features, some pairs sharing a description. Then, for each way of scoring
the duplicates (none, ``"mask"``, ``"soft"``):

- the **reference**: one process's loss on the whole global batch
  (:func:`mmcourse.losses.clip_loss` or :func:`~mmcourse.losses.clip_loss_with_duplicates`)
  and the gradient of every parameter, computed on each rank without any communication;
- **gathered**: the model wrapped in DistributedDataParallel, each rank scoring its rows
  with :func:`~mmcourse.distributed.gathered_clip_loss`; DDP averages the gradients;
- **naive**: the same, each rank scoring its rows against its own rows only.

Rank 0 prints, and writes with ``--out``, the largest difference to the reference of the
loss (averaged over the ranks) and of any gradient, for both, and the negatives per row.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmcourse.distributed.clip import gathered_clip_loss
from mmcourse.distributed.world import current, local_rows, start, stop
from mmcourse.losses import LearnableTemperature, clip_loss, clip_loss_with_duplicates

IMAGE_FEATURES, TEXT_FEATURES, EMBED = 20, 12, 8
ROWS_PER_RANK = 6


class TwoTowers(nn.Module):
    """Two linear towers and a learned temperature: no batch norm, so a row's embedding does
    not depend on the other rows of its batch (as in the tests' reference)."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Linear(IMAGE_FEATURES, EMBED)
        self.text = nn.Linear(TEXT_FEATURES, EMBED)
        self.logit_scale = LearnableTemperature(0.2)

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> tuple:
        return self.image(images), self.text(texts), self.logit_scale()


def global_batch(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same features on every rank (seeded); groups with duplicates across ranks."""
    generator = torch.Generator().manual_seed(1)
    rows = ROWS_PER_RANK * size
    images = torch.randn(rows, IMAGE_FEATURES, generator=generator)
    texts = torch.randn(rows, TEXT_FEATURES, generator=generator)
    groups = torch.arange(rows) % (rows - 3)  # the first three descriptions come twice
    return images, texts, groups


def _reference_loss(outputs: tuple, groups: torch.Tensor, mode: str | None) -> torch.Tensor:
    if mode is None:
        return clip_loss(*outputs)
    return clip_loss_with_duplicates(*outputs, groups, mode)


def _gradients(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


def compare(mode: str | None) -> dict:
    """Largest differences to the single-process reference, for gathered and naive."""
    world_size = dist.get_world_size()
    torch.manual_seed(0)
    model = TwoTowers()
    images, texts, groups = global_batch(world_size)
    reference = copy.deepcopy(model)
    reference_loss = _reference_loss(reference(images, texts), groups, mode)
    reference_loss.backward()
    expected = _gradients(reference)
    mine = local_rows(len(images), current())
    result = {}
    for name in ("gathered", "naive"):
        ddp = DistributedDataParallel(copy.deepcopy(model))
        outputs = ddp(images[mine], texts[mine])
        if name == "gathered":
            loss = gathered_clip_loss(
                *outputs, None if mode is None else groups[mine], mode or "mask"
            )
        else:  # the rank's rows against its own rows only
            loss = _reference_loss(outputs, groups[mine], mode)
        loss.backward()  # DDP averages every gradient over the ranks here
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        mean_loss /= world_size
        got = _gradients(ddp.module)
        result[name] = {
            "loss_delta": abs(mean_loss.item() - reference_loss.item()),
            "gradient_delta": max(float((g - e).abs().max()) for g, e in zip(got, expected)),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the differences here (JSON)")
    args = parser.parse_args(argv)
    world = start("gloo")
    if not world.distributed:
        parser.error(
            "run it with torchrun: torchrun --standalone --nproc_per_node=2 -m mmcourse.distributed.check"
        )
    torch.set_num_threads(1)
    report = {
        "world_size": world.size,
        "global_batch": ROWS_PER_RANK * world.size,
        "negatives_per_row": {
            "gathered": ROWS_PER_RANK * world.size - 1,
            "naive": ROWS_PER_RANK - 1,
        },
        "modes": {str(mode): compare(mode) for mode in (None, "mask", "soft")},
    }
    if world.is_main:
        for mode, parts in report["modes"].items():
            for name, deltas in parts.items():
                print(
                    f"duplicates {mode:5s} {name:9s} max |loss - one process| "
                    f"{deltas['loss_delta']:.2e}   max |gradient - one process| "
                    f"{deltas['gradient_delta']:.2e}"
                )
        if args.out is not None:
            args.out.write_text(json.dumps(report, indent=1) + "\n")
    stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
