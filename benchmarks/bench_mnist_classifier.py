"""How fast does the course's digit-classifier recipe pass 99 % test accuracy on full MNIST?

Run (full MNIST must be on disk, as <folder>/MNIST/raw/; nothing is downloaded)::

    MMCOURSE_DATA=/folder/holding/MNIST python benchmarks/bench_mnist_classifier.py
    python benchmarks/bench_mnist_classifier.py --epochs 2 --seeds 0 1 2 --threads 2

What is measured, and what is not:

- **training time** = wall-clock seconds inside the training loop (slicing mini-batches out of
  the in-memory tensors, forward, backward, optimiser and scheduler steps). It excludes loading
  and normalising MNIST (timed and printed separately) and the test-set evaluation at the end of
  every epoch (also printed separately). "Time to 99 %" is the training time at the end of the
  first epoch whose test accuracy is at least the threshold; accuracy is measured only at epoch
  ends, so it is an upper bound.
- **CPU seconds**: the CPU time the process used during training, all threads together. On an
  idle machine it is about threads x wall time; when other programs compete for the cores,
  wall time grows (and spinning threads burn CPU while they wait), so both numbers are printed
  with the load average, to judge how busy the machine was.
- **anchor**: the network of pytorch/examples' ``mnist/main.py`` (two conv layers and two
  linear layers, Adadelta, batch 64, 14 epochs in its defaults) timed for a few hundred
  training steps on the same machine and extrapolated to one epoch, so the comparison is made
  under the same load. ``--anchor-steps 0`` skips it.

OpenMP threads *spin* while they wait for each other by default. On a machine shared with other
busy programs that is ruinous: each of torch's many small parallel regions waits for a thread
that is not running, and the spinning steals the cores from the others. So this script sets
``OMP_WAIT_POLICY=PASSIVE`` (threads sleep while waiting) unless the variable is already set; on
a shared two-core machine that made an epoch several times faster, on an idle one it changes
little. Run with ``OMP_WAIT_POLICY=ACTIVE`` to compare.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its OpenMP threads

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.data.mnist import load_mnist, to_float
from mmcourse.digits import RECIPE, epochs_to_reach, train_digit_classifier
from mmcourse.models.image import DigitNet
from mmcourse.models.introspect import count_macs, count_parameters


class ExamplesNet(nn.Module):
    """The network of pytorch/examples mnist/main.py (for the time anchor only)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def time_anchor(images: torch.Tensor, labels: torch.Tensor, steps: int) -> tuple[float, float]:
    """Seconds per training step of ExamplesNet (batch 64, Adadelta) and its MACs per digit."""
    torch.manual_seed(0)
    model = ExamplesNet().train()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    order = torch.randperm(images.shape[0])
    warmup = 5
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        idx = order[step * 64 : (step + 1) * 64]
        loss = F.nll_loss(F.log_softmax(model(images[idx]), dim=1), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    per_step = (time.perf_counter() - start) / steps
    return per_step, count_macs(model, images[:1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs_full_mnist)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.99)
    parser.add_argument("--batch-size", type=int, default=RECIPE.batch_size)
    parser.add_argument("--lr", type=float, default=RECIPE.lr)
    parser.add_argument("--max-shift", type=int, default=0, help="random-shift augmentation (px)")
    parser.add_argument("--anchor-steps", type=int, default=200)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} cores visible, torch threads: {torch.get_num_threads()}, "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
    )
    print(f"load average (1, 5, 15 min) at start: {load_average()}")

    start = time.perf_counter()
    x_train, y_train = load_mnist("train")
    x_test, y_test = load_mnist("test")
    x_train, x_test = to_float(x_train), to_float(x_test)
    print(
        f"data: full MNIST, {x_train.shape[0]:,} training / {x_test.shape[0]:,} test digits, "
        f"loaded and normalised in {time.perf_counter() - start:.1f} s (not counted below)"
    )
    model = DigitNet(RECIPE.channels)
    print(
        f"recipe: DigitNet{RECIPE.channels} ({count_parameters(model):,} parameters, "
        f"{count_macs(model, x_test[:1]) / 1e6:.2f} M MACs per digit), AdamW + one-cycle, "
        f"peak lr {args.lr}, batch {args.batch_size}, channels_last, shift {args.max_shift} px, "
        f"{args.epochs} epoch(s)"
    )
    print()

    summary = []
    for seed in args.seeds:
        wall_start = time.perf_counter()
        _, history = train_digit_classifier(
            x_train,
            y_train,
            (x_test, y_test),
            epochs=args.epochs,
            recipe=replace(
                RECIPE, batch_size=args.batch_size, lr=args.lr, max_shift=args.max_shift
            ),
            seed=seed,
            record_time=True,
        )
        total_wall = time.perf_counter() - wall_start
        print(f"seed {seed}")
        print("  epoch  train wall s (cum.)  train CPU s (cum.)  test accuracy")
        for r in history.records:
            print(
                f"  {int(r['epoch']):>5}  {r['train_seconds']:>19.1f}  "
                f"{r['train_cpu_seconds']:>18.1f}  {r['test_accuracy']:>13.4f}"
            )
        train_wall = history.last["train_seconds"]
        print(
            f"  evaluation after each epoch took {total_wall - train_wall:.1f} s in all "
            "(not counted as training)"
        )
        reached = epochs_to_reach(history, args.threshold)
        if reached is None:
            print(f"  did not reach {args.threshold:.1%} in {args.epochs} epoch(s)")
            time_to = None
        else:
            time_to = history.records[reached - 1]["train_seconds"]
            print(
                f"  reached {args.threshold:.1%} after epoch {reached}: {time_to:.1f} s of training"
            )
        summary.append((seed, reached, time_to, history.last["test_accuracy"], train_wall))
        print()

    if args.anchor_steps > 0:
        per_step, macs = time_anchor(x_train, y_train, args.anchor_steps)
        steps_per_epoch = -(-x_train.shape[0] // 64)
        print(
            f"anchor: pytorch/examples' MNIST net ({macs / 1e6:.1f} M MACs per digit, batch 64, "
            f"Adadelta): {per_step * 1000:.0f} ms a step over {args.anchor_steps} steps -> "
            f"~{per_step * steps_per_epoch:.0f} s an epoch, ~{per_step * steps_per_epoch * 14:.0f} s "
            "for its default 14 epochs (estimated, same machine, same load)"
        )
        print()

    print(f"load average (1, 5, 15 min) at end: {load_average()}")
    busy = os.getloadavg()[0] > os.cpu_count() if hasattr(os, "getloadavg") else False
    if busy:
        print(
            "note: the machine was busier than its core count; the wall times above are pessimistic"
        )
    print(
        "summary (seed, epochs to threshold, training s to threshold, final accuracy, "
        "training s in all):"
    )
    for seed, reached, time_to, final, train_wall in summary:
        to = f"{time_to:.1f}" if time_to is not None else "-"
        print(
            f"  {seed}  {reached if reached is not None else '-'}  {to}  {final:.4f}  {train_wall:.1f}"
        )


if __name__ == "__main__":
    main()
