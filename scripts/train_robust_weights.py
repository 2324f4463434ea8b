"""Train chapter 13's committed robust digit reader (``data/weights/robust/robust_reader.pt``)
-- the script that made it, and the one place the course measures it on the full test set.

Fast adversarial training (Wong, Rice and Kolter, 2020) at Madry et al.'s ``epsilon = 0.3``:
every batch is replaced by :func:`mmcourse.robust.fast_adversarial` examples (a random start,
one FGSM step of ``1.25 epsilon``). Full MNIST is split once: 55,000 digits to train, the
last 5,000 of the training file to validate. After every epoch the reader is attacked on
1,000 validation digits (PGD-10); the epoch with the best validation robust accuracy is
kept (fast adversarial training can collapse suddenly, "catastrophic overfitting", and
adversarial training over-fits late: Rice et al., 2020). Then, once, the 10,000 test digits:
clean, the random-noise control, FGSM and PGD-40 from three random starts.

    MMCOURSE_DATA=/folder/holding/MNIST/raw python scripts/train_robust_weights.py
    # about 35 minutes on 2 CPU cores (the log records the seconds)

It needs the full MNIST files (the bundled subset is too small for this). It writes the
weights, records their SHA-256 in ``data/weights/robust/SHA256SUMS`` and writes every
measurement, the seconds and the versions to ``data/weights/robust/training_log.json``.
Every step is seeded: the same kind of machine gives the same file.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path

import mmcourse  # noqa: F401  (first: its portable numerics settings must reach torch)

# isort: split
import torch
import torch.nn.functional as F

from mmcourse import config, robust
from mmcourse.casestudy.weights import save_weights
from mmcourse.data import mnist
from mmcourse.portable import SETTINGS, SWITCH
from mmcourse.robust import pretrained

N_VAL = 5_000
N_VAL_ATTACKED = 1_000
BATCH = 128
LEARNING_RATE = 0.01  # AdamW with a one-cycle schedule, as chapter 13's in-notebook run
WEIGHT_DECAY = 0.01
VAL_STEPS = 10
TEST_STEPS = 40
TEST_RESTARTS = 3


def pixels(images: torch.Tensor) -> torch.Tensor:
    return mnist.to_float(images, normalize=False)


def train_one_epoch(model, optimizer, schedule, images, labels, epoch, generator) -> float:
    """One pass over the training digits in a seeded order; returns the mean loss."""
    model.train()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(epoch))
    total = 0.0
    for start in range(0, len(images), BATCH):
        index = order[start : start + BATCH]
        x, y = images[index], labels[index]
        attacked = robust.fast_adversarial(model, x, y, pretrained.EPSILON, generator)
        loss = F.cross_entropy(model(attacked), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.item() * len(index)
    return total / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=pretrained.FILE)
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny run (2,000 digits) that checks the script works")  # fmt: skip
    args = parser.parse_args()
    if args.smoke and args.out == pretrained.FILE:
        parser.error("--smoke writes a toy model: give it an --out of its own")
    config.setup(seed=0, profile="full", device="cpu")
    train_images, train_labels = mnist.load_mnist("train", download=False)
    test_images, test_labels = mnist.load_mnist("test", download=False)
    train_x, train_y = pixels(train_images[:-N_VAL]), train_labels[:-N_VAL]
    val_x, val_y = pixels(train_images[-N_VAL:]), train_labels[-N_VAL:]
    if args.smoke:
        train_images, train_labels = train_images[: 2_000 + N_VAL], train_labels[: 2_000 + N_VAL]
        test_images, test_labels = test_images[:200], test_labels[:200]
    test_x = pixels(test_images)

    torch.manual_seed(0)
    model = pretrained.robust_reader()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = -(-len(train_x) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, LEARNING_RATE, total_steps=args.epochs * steps_per_epoch, pct_start=0.25
    )
    generator = torch.Generator().manual_seed(0)
    epochs, best, best_state = [], -1.0, None
    start = time.perf_counter()
    for epoch in range(args.epochs):
        loss = train_one_epoch(model, optimizer, schedule, train_x, train_y, epoch, generator)
        model.eval()
        watched = val_x[:N_VAL_ATTACKED], val_y[:N_VAL_ATTACKED]
        clean = robust.attack_accuracy(model, *watched, 0.0)
        under_pgd = robust.attack_accuracy(model, *watched, pretrained.EPSILON, steps=VAL_STEPS)
        epochs.append({"epoch": epoch + 1, "train_loss": round(loss, 4),
                       "val_clean": clean, f"val_pgd{VAL_STEPS}": under_pgd})  # fmt: skip
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss:.4f}, validation clean {clean:.3f}, "
              f"PGD-{VAL_STEPS} {under_pgd:.3f}", flush=True)  # fmt: skip
        if under_pgd > best:
            best, best_state, best_epoch = under_pgd, copy.deepcopy(model.state_dict()), epoch + 1
    train_seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    model.eval()
    sha = save_weights(model, args.out)

    start = time.perf_counter()
    eps = pretrained.EPSILON
    test = {
        "digits": len(test_x),
        "clean": robust.attack_accuracy(model, test_x, test_labels, 0.0),
        "random_noise": robust.attack_accuracy(model, test_x, test_labels, eps, "noise"),
        "fgsm": robust.attack_accuracy(model, test_x, test_labels, eps, "fgsm"),
        f"pgd{TEST_STEPS}": robust.attack_accuracy(
            model, test_x, test_labels, eps, "pgd", steps=TEST_STEPS
        ),  # fmt: skip
        f"pgd{TEST_STEPS}_restarts{TEST_RESTARTS}": robust.robust_accuracy(
            model, test_x, test_labels, eps, steps=TEST_STEPS, restarts=TEST_RESTARTS
        ),
    }
    test_seconds = time.perf_counter() - start
    print("test, once:", test, flush=True)
    log = {
        "file": args.out.name,
        "sha256": sha,
        "channels": list(pretrained.CHANNELS),
        "epsilon": eps,
        "method": "fast adversarial training (random start, FGSM step 1.25 epsilon)",
        "train_digits": len(train_x),
        "val_digits": N_VAL,
        "val_attacked": N_VAL_ATTACKED,
        "epochs": epochs,
        "chosen_epoch": best_epoch,
        "test": test,
        "train_seconds": round(train_seconds, 1),
        "test_seconds": round(test_seconds, 1),
        "threads": torch.get_num_threads(),
        "environment": {key: os.environ.get(key) for key in (*SETTINGS, SWITCH)},
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mmcourse": importlib.metadata.version("mmcourse"),
    }
    log_path = pretrained.LOG if args.out == pretrained.FILE else args.out.with_suffix(".json")
    log_path.write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} (training {train_seconds / 60:.1f} min, test {test_seconds / 60:.1f} "
          f"min) and {log_path.name}")  # fmt: skip


if __name__ == "__main__":
    main()
