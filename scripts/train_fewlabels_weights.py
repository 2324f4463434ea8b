"""Train chapter 14's committed SimCLR encoder (``data/weights/simclr_digits.pt``) -- the
script that made it.

Self-supervised pretraining (:func:`mmcourse.fewlabels.pretrain`) on the fast profile's
10,000 bundled MNIST training digits, **with their labels never read**: the same digits the
chapter then labels 1 %, 10 % or 100 % of. Longer than the chapter's own demonstration run
(``--epochs``), so that the chapter stays within three minutes on a laptop.

    python scripts/train_fewlabels_weights.py          # about 15 minutes on 2 CPU cores

It writes the weights, records their SHA-256 in ``data/weights/fewlabels/SHA256SUMS`` and the loss of
every epoch, the seconds and the versions in ``data/weights/simclr_training_log.json``. Every
step is seeded: the same kind of machine gives the same file.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import time
from pathlib import Path

import mmcourse  # noqa: F401  (first: its portable numerics settings must reach torch)

# isort: split
import torch

from mmcourse import config
from mmcourse.casestudy.weights import save_weights
from mmcourse.data import mnist
from mmcourse.fewlabels import pretrained
from mmcourse.fewlabels.simclr import SimCLR, pretrain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=pretrained.EPOCHS)
    parser.add_argument("--out", type=Path, default=pretrained.FILE)
    args = parser.parse_args()
    config.setup(seed=0, profile="fast")
    digits, _ = mnist.load_digits("train", profile="fast")  # the labels are not used
    pixels = mnist.to_float(digits, normalize=False)
    model = SimCLR()
    start = time.perf_counter()
    losses = []
    for epoch in range(args.epochs):  # one epoch at a time, so progress shows
        losses += pretrain(model, pixels, 1, (mnist.MEAN, mnist.STD), seed=epoch)
        print(f"epoch {epoch + 1}/{args.epochs}: NT-Xent {losses[-1]:.4f}", flush=True)
    seconds = time.perf_counter() - start
    sha = save_weights(model, args.out)
    log = {
        "file": args.out.name,
        "sha256": sha,
        "digits": len(digits),
        "epochs": args.epochs,
        "losses": [round(x, 5) for x in losses],
        "seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mmcourse": importlib.metadata.version("mmcourse"),
    }
    log_path = pretrained.LOG if args.out == pretrained.FILE else args.out.with_suffix(".json")
    log_path.write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({seconds / 60:.1f} min) and {log_path.name}")


if __name__ == "__main__":
    main()
