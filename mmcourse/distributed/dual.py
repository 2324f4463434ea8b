"""The case study's dual encoder trained with DistributedDataParallel, under ``torchrun``.

    torchrun --standalone --nproc_per_node=2 -m mmcourse.distributed.dual --out runs/dual
    python -m mmcourse.distributed.dual --out runs/dual         # one process: the same loop

The loop is :func:`mmcourse.retrieval.train_dual_encoder`'s recipe written out step by step,
so that what data parallelism adds is visible:

1. every rank builds the same model (the same seed) and DDP checks that the weights agree;
2. every rank draws the **same global batch** (the same seeded order, paraphrases and hard
   negatives) and keeps its own equal part of it (:func:`~mmcourse.distributed.local_rows`):
   the run sees the batches one process would see, split ``N`` ways, and each epoch is
   reshuffled with the epoch's draw from the seeded generator (what ``set_epoch`` does for a
   ``DistributedSampler``);
3. the loss is CLIP's over **every rank's** pairs
   (:func:`~mmcourse.distributed.gathered_clip_loss`) plus the hard-negative loss of the
   rank's own captions; DDP averages the gradients over the ranks during ``backward``;
4. rank 0 alone prints, writes ``metrics.json``, the checkpoint after every epoch and the
   final weights; a run started again with ``--resume`` continues from the checkpoint
   (weights, optimizer, learning-rate schedule and every random generator), so an
   interrupted run ends with the weights an uninterrupted one would have.

One process gives the same numbers as ``train_dual_encoder``. With ``N`` processes the data,
the draws and the loss's negatives are the same, but the image tower's batch norm normalises
each rank's part with that part's statistics (PyTorch's ``SyncBatchNorm``, which would share
them, does not run on CPUs; :func:`train` converts the model to it there), so the runs differ by
more than rounding.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmcourse import config
from mmcourse._validate import check_int, require
from mmcourse.captioning import encode_captions
from mmcourse.casestudy.weights import save_weights
from mmcourse.checkpoints import write_atomically
from mmcourse.data.captions import Layout, MNISTCaptions, make_mnist_captions
from mmcourse.distributed.clip import gathered_clip_loss
from mmcourse.distributed.scaling import gradient_bytes
from mmcourse.distributed.world import World, current, local_rows, rank_0_first, start, stop
from mmcourse.losses import negative_caption_loss
from mmcourse.models.dual import DualEncoder, new_dual_encoder
from mmcourse.retrieval.descriptions import description_ids
from mmcourse.retrieval.training import ContrastiveRecipe, draw_texts
from mmcourse.vocab import Vocabulary

__all__ = ["Contrastive", "train"]

CHECKPOINT = "checkpoint.pt"


class Contrastive(nn.Module):
    """The dual encoder behind one ``forward``, which is what DDP wraps: DDP prepares its
    gradient averaging when ``forward`` runs, so both towers must be called through it."""

    def __init__(self, model: DualEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        image_emb, scale = self.model.encode_image(images), self.model.logit_scale()
        return image_emb, self.model.encode_text(texts), scale


def _tensors(data: MNISTCaptions, vocab: Vocabulary) -> tuple[torch.Tensor, ...]:
    layout = torch.stack([getattr(data.layout, f) for f in Layout.fields()], dim=2)
    return data.float_images(), encode_captions(data, vocab), layout, description_ids(data)


def _loss(outputs: tuple, groups: torch.Tensor, negatives: int, recipe: ContrastiveRecipe):
    image_emb, texts_emb, scale = outputs
    text_emb, *wrong_emb = texts_emb.split(len(image_emb))
    mode = None if recipe.mode == "none" else recipe.mode
    loss = gathered_clip_loss(
        image_emb, text_emb, scale, None if mode is None else groups, mode or "mask"
    )
    if negatives:
        loss = loss + recipe.negative_weight * negative_caption_loss(
            image_emb, text_emb, torch.stack(wrong_emb, dim=1), scale
        )
    return loss


@dataclass
class _Run:
    """Everything a checkpoint must hold for a resumed run to go on exactly as before."""

    model: DualEncoder
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    order_generator: torch.Generator  # the order of the batches
    text_generator: torch.Generator  # paraphrases and hard negatives
    history: list[dict] = field(default_factory=list)

    def state(self, epoch: int) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "epoch": epoch,
            "order_generator": self.order_generator.get_state(),
            "text_generator": self.text_generator.get_state(),
            "torch_rng": torch.get_rng_state(), "history": json.dumps(self.history),
        }  # fmt: skip

    def restore(self, path: Path) -> int:
        """Load the checkpoint at ``path``; returns the epoch it ended."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.order_generator.set_state(state["order_generator"])
        self.text_generator.set_state(state["text_generator"])
        torch.set_rng_state(state["torch_rng"])
        self.history = json.loads(state["history"])
        return int(state["epoch"])


def _new_run(vocab_size: int, recipe: ContrastiveRecipe, seed: int, total_steps: int) -> _Run:
    """The model, optimizer and schedule of ``train_dual_encoder``, built in its order."""
    model = new_dual_encoder(vocab_size, seed=seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=total_steps, pct_start=0.15
    )
    torch.manual_seed(seed)  # as fit does: anything else drawing random numbers
    generators = (torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed))
    return _Run(model, optimizer, schedule, *generators)


def _wrap(model: DualEncoder, world: World) -> nn.Module:
    """``Contrastive(model)``, in DistributedDataParallel when there are several ranks."""
    wrapped: nn.Module = Contrastive(model.to(world.device))
    if not world.distributed:
        return wrapped
    if world.device.type == "cuda":  # batch-norm statistics over every rank's rows
        wrapped = nn.SyncBatchNorm.convert_sync_batchnorm(wrapped)
    return DistributedDataParallel(wrapped)


def _epoch(run: _Run, wrapped: nn.Module, tensors: tuple, vocab: Vocabulary,
           recipe: ContrastiveRecipe, world: World) -> float:  # fmt: skip
    """One pass over the data; returns the mean loss over every rank's pairs."""
    wrapped.train()
    n, batch_size = len(tensors[0]), recipe.batch_size
    negatives = recipe.negatives if recipe.negative_weight else 0
    order = torch.randperm(n, generator=run.order_generator)  # this epoch's shuffle
    total = torch.zeros((), dtype=torch.float64, device=world.device)  # NCCL: on the GPU
    for first in range(0, n, batch_size):
        rows = order[first : first + batch_size]  # the global batch, as one process
        images, captions, layout, groups = (t[rows] for t in tensors)
        ids, wrong = draw_texts(captions, layout, vocab, negatives, run.text_generator)
        mine = local_rows(len(rows), world)  # this rank's equal part of it
        texts = torch.cat([ids[mine], *(w[mine] for w in wrong)]).to(world.device)
        outputs = wrapped(images[mine].to(world.device), texts)
        loss = _loss(outputs, groups[mine].to(world.device), negatives, recipe)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP averages the gradients over the ranks here
        run.optimizer.step()
        run.schedule.step()
        total += loss.detach().to(torch.float64) * len(rows)
    if world.distributed:
        dist.all_reduce(total)  # the ranks' losses, for the record
        total /= world.size
    return float(total) / n


def train(
    data: MNISTCaptions,
    vocab: Vocabulary,
    *,
    epochs: int,
    out: Path,
    recipe: ContrastiveRecipe | None = None,
    seed: int = 0,
    resume: bool = False,
    world: World | None = None,
) -> tuple[DualEncoder, list[dict]]:
    """Train the dual encoder on ``data`` on every rank of ``world`` (default: this run's);
    returns ``(model, history)`` on every rank. Rank 0 writes ``out/checkpoint.pt`` after
    each epoch; ``resume=True`` continues from the checkpoint."""
    world = world or current()
    recipe = recipe or ContrastiveRecipe()
    check_int(epochs, "epochs")
    tensors = _tensors(data, vocab)
    n, batch_size = len(tensors[0]), recipe.batch_size
    local_rows(batch_size, world)  # a clear error if the batch does not split evenly
    last = n % batch_size
    require(
        last % world.size == 0,
        f"the last batch holds {last} of the {n} canvases ({n} = {n // batch_size} x "
        f"{batch_size} + {last}), which does not split evenly over {world.size} processes; "
        f"choose a number of canvases whose remainder after full batches is divisible by "
        f"{world.size}",
    )
    run = _new_run(len(vocab), recipe, seed, epochs * math.ceil(n / batch_size))
    wrapped = _wrap(run.model, world)
    checkpoint = Path(out) / CHECKPOINT
    done = run.restore(checkpoint) if resume and checkpoint.exists() else 0
    start_time = time.perf_counter()
    for epoch in range(done + 1, epochs + 1):
        loss = _epoch(run, wrapped, tensors, vocab, recipe, world)
        run.history.append({
            "epoch": epoch, "train_loss": loss,
            "temperature": run.model.logit_scale.temperature,
            "seconds": round(time.perf_counter() - start_time, 2),
        })  # fmt: skip
        if world.is_main:
            print(f"epoch {epoch}/{epochs}: loss {loss:.4f}", flush=True)
            Path(out).mkdir(parents=True, exist_ok=True)
            write_atomically(run.state(epoch), checkpoint)  # never half a file
        if world.distributed:
            dist.barrier()  # nobody runs ahead of the checkpoint
    return run.model.cpu().eval(), run.history


def _build_data(canvases: int | None, seed: int, world: World) -> MNISTCaptions:
    """Rank 0 builds (and caches) the canvases first; the others then read the cache."""
    with rank_0_first(world):
        return make_mnist_captions("train", n=canvases, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="torchrun --standalone --nproc_per_node=N -m mmcourse.distributed.dual",
        description="Train the case study's dual encoder with DistributedDataParallel.",
    )
    parser.add_argument("--out", type=Path, required=True, help="metrics, checkpoint, weights")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--canvases", type=int, default=None, help="default: the profile's")
    parser.add_argument("--batch-size", type=int, default=ContrastiveRecipe().batch_size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument(
        "--backend",
        choices=("gloo", "nccl"),
        default=None,
        help="default: nccl where CUDA is available, else gloo (gloo keeps it on the CPUs)",
    )
    args = parser.parse_args(argv)
    require(args.epochs >= 1, f"--epochs must be at least 1, got {args.epochs}")
    world = start(args.backend)
    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or None
    config.setup(seed=args.seed, threads=threads)
    data = _build_data(args.canvases, args.seed, world)
    vocab = Vocabulary.build([c for captions in data.captions for c in captions])
    recipe = ContrastiveRecipe(batch_size=args.batch_size)
    started = time.perf_counter()
    model, history = train(data, vocab, epochs=args.epochs, out=args.out, recipe=recipe,
                           seed=args.seed, resume=args.resume, world=world)  # fmt: skip
    if world.is_main:
        save_weights(model, args.out / "dual_encoder.pt")
        report = {"processes": world.size, "canvases": len(data.images),
                  "global_batch": args.batch_size, "epochs": args.epochs,
                  "seconds": round(time.perf_counter() - started, 2),
                  "threads_per_process": torch.get_num_threads(),
                  "gradient_bytes": gradient_bytes(model), "history": history}  # fmt: skip
        (args.out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}/dual_encoder.pt and metrics.json")
    stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
