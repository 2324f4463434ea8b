"""Train chapter 14's committed encoders (``data/weights/fewlabels/``) -- the script that
made them.

- SimCLR (the default): self-supervised pretraining (:func:`mmcourse.fewlabels.pretrain`) on
  the fast profile's 10,000 bundled MNIST training digits, **with their labels never read**:
  the same digits the chapter then labels 1 %, 10 % or 100 % of. Longer than the chapter's
  own demonstration run (``--epochs``), so that the chapter stays within three minutes.
- ``--image-text``: the case study's dual encoder (:func:`mmcourse.retrieval.train_dual_encoder`,
  its recipe and vocabulary), trained on 10,000 MNIST-Captions canvases drawn from 10,000
  *other* MNIST training digits (:func:`mmcourse.fewlabels.image_text.disjoint_pool`): the
  captions name every digit, so none of them may be one the chapter labels. Needs full MNIST
  (``MMCOURSE_DATA`` or ``data/MNIST/raw``); the chapter itself needs only the weights.

    python scripts/train_fewlabels_weights.py               # about 15 minutes on 2 CPU cores
    python scripts/train_fewlabels_weights.py --image-text  # about 4 minutes

It writes the weights, records their SHA-256 in ``data/weights/fewlabels/SHA256SUMS`` and the
loss of every epoch, the seconds and the versions in the training log. Every step is seeded:
the same kind of machine gives the same file.
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
from mmcourse.fewlabels import image_text, pretrained
from mmcourse.fewlabels.simclr import SimCLR, pretrain


def versions() -> dict:
    return {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mmcourse": importlib.metadata.version("mmcourse"),
    }


def train_image_text(epochs: int, out: Path) -> None:
    """The dual encoder on canvases of digits disjoint from the bundled ones."""
    from mmcourse.casestudy import pretrained as casestudy_weights
    from mmcourse.data.captions.dataset import generate
    from mmcourse.retrieval.training import train_dual_encoder
    from mmcourse.vocab import tokenize

    digits, labels = image_text.disjoint_pool()
    canvases = generate(len(digits), "train", digits, labels, seed=0)
    vocab = casestudy_weights.vocabulary()
    words = {word for caption in canvases.captions for text in caption for word in tokenize(text)}
    unknown = sorted(words - set(vocab.itos))
    if unknown:
        raise SystemExit(f"the captions hold words the case study's vocabulary lacks: {unknown}")
    start = time.perf_counter()
    dual, history = train_dual_encoder(canvases, vocab, epochs=epochs, progress=True)
    seconds = time.perf_counter() - start
    sha = save_weights(dual, out)
    log = {
        "file": out.name,
        "sha256": sha,
        "digits": len(digits),
        "digits_per_class": labels.bincount().tolist(),
        "canvases": len(canvases.images),
        "epochs": epochs,
        "train_loss": [round(x, 5) for x in history["train_loss"]],
        "seconds": round(seconds, 1),
    } | versions()
    log_path = (
        pretrained.IMAGE_TEXT_LOG if out == pretrained.IMAGE_TEXT_FILE else out.with_suffix(".json")
    )
    log_path.write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out} ({seconds / 60:.1f} min) and {log_path.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-text", action="store_true", help="train the dual encoder")
    parser.add_argument("--epochs", type=int, help="default: 20 (SimCLR), 15 (--image-text)")
    parser.add_argument("--out", type=Path, help="default: the committed file")
    args = parser.parse_args()
    config.setup(seed=0, profile="fast")
    if args.image_text:
        train_image_text(
            args.epochs or pretrained.IMAGE_TEXT_EPOCHS, args.out or pretrained.IMAGE_TEXT_FILE
        )
        return
    args.epochs = args.epochs or pretrained.EPOCHS
    args.out = args.out or pretrained.FILE
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
    } | versions()
    log_path = pretrained.LOG if args.out == pretrained.FILE else args.out.with_suffix(".json")
    log_path.write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({seconds / 60:.1f} min) and {log_path.name}")


if __name__ == "__main__":
    main()
