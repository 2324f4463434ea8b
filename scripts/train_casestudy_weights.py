"""Train the case study's committed weights (``data/weights/``) -- the script that made them.

The chapters 09-12 load these so that they stay within three minutes on a laptop; they are
the same recipe as the chapters', trained longer (``--epochs``), on the fast profile's
10,000 training canvases so that the vocabulary is the one a learner builds:

- ``encoder.pt``: the image encoder. Its three conv blocks start from chapter 04's DigitNet,
  trained on plain MNIST (``recipe.digitnet_encoder``: transfer from a model that never saw
  a canvas); it is then pretrained to name each slot's digit, size, thickness and slant
  (chapter 06's task) on ``--encoder-canvases`` training canvases (more than the decoders
  see, each canvas new), drawn from the bundled 10,000 MNIST training digits. With
  ``--encoder-pool full``, DigitNet and these canvases draw from all 60,000 instead
  (``MMCOURSE_DATA`` must point at MNIST's raw files; validation and test canvases draw from
  MNIST's *test* set, so none of their digits is seen); the committed weights use the
  bundled digits, so that anyone can train them again from the repository alone. This is
  the starting point for every decoder;
- ``show_and_tell.pt``, ``attention.pt``, ``transformer.pt``: the three caption decoders,
  each trained for the same number of epochs on the frozen encoder's regions, each keeping
  the epoch with the best *validation* exact match (the encoder is put back inside, so a
  file captions canvases on its own);
- ``dual_encoder.pt``: the CLIP-style dual encoder of :mod:`mmcourse.retrieval`;
- ``dual_encoder_seed*_negatives*.pt``: the hard-negative ablation (``pretrained.ABLATION``),
  the same recipe and budget with and without hard negatives, for two seeds;
- ``vocab.json``, ``SHA256SUMS`` and ``training_log.json`` (epochs, seconds, the validation
  scores of every epoch, versions).

    python scripts/train_casestudy_weights.py            # about 40 minutes on 2 CPU cores

Every step is seeded, so running it again on the same kind of machine gives the same
files (the SHA-256 sums may differ on another CPU, where float rounding differs; the scores
stay within a fraction of a percent).
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
from mmcourse.casestudy import pretrained, recipe
from mmcourse.casestudy.run import DEFAULT_WEIGHTS
from mmcourse.casestudy.weights import save_weights
from mmcourse.data import mnist
from mmcourse.data.captions import make_mnist_captions
from mmcourse.data.questions import slot_targets
from mmcourse.digits import train_digit_classifier
from mmcourse.metrics import slot_attribute_accuracy
from mmcourse.models.grid import StoredGrid, swap_encoder
from mmcourse.models.image import DigitNet
from mmcourse.retrieval.training import ContrastiveRecipe, train_dual_encoder

DIGITNET_EPOCHS = 3  # chapter 04's recipe
ATTRIBUTES = ("digit", "size", "thickness", "slant")


def pretrain_encoder(data: recipe.CaseStudyData, epochs: int, canvases: int, pool: str) -> tuple:
    """Chapter 04's DigitNet on plain MNIST, its blocks into the encoder, then slot pretraining
    on ``canvases`` training canvases, both drawn from the ``pool`` profile's MNIST training
    digits. Returns the encoder and its log entry."""
    start = time.perf_counter()
    digits, labels = mnist.load_digits("train", profile=pool)
    digitnet, _ = train_digit_classifier(
        digits, labels, epochs=DIGITNET_EPOCHS, model=DigitNet(channels=(16, 32, 64))
    )
    digitnet_seconds = time.perf_counter() - start
    train = make_mnist_captions("train", n=canvases, seed=0, profile=pool)
    encoder, head, history = recipe.pretrain_encoder(
        train, epochs, start=recipe.digitnet_encoder(digitnet.cpu()), progress=True
    )
    val = data.splits["val"]
    with torch.no_grad():
        logits = head(encoder(val.float_images()))
    accuracy = slot_attribute_accuracy(logits, slot_targets(val), occupied_only=True)
    return encoder, {
        "seconds": round(time.perf_counter() - start, 1),
        "digitnet_seconds": round(digitnet_seconds, 1),
        "canvases": canvases,
        "pool_digits": len(digits),
        "train_loss": history["train_loss"],
        "val_slot_accuracy": dict(zip(ATTRIBUTES, (round(a, 4) for a in accuracy.tolist()))),
    }


def train_ablation(data: recipe.CaseStudyData, epochs: int, out: Path) -> dict:
    """The hard-negative ablation: the dual encoder with and without hard negatives, for a
    second seed too (``dual_encoder.pt`` is seed 0 with them). Returns the log entries."""
    entries = {}
    for seed, negatives in pretrained.ABLATION:
        start = time.perf_counter()
        dual, history = train_dual_encoder(
            data.splits["train"],
            data.vocab,
            epochs=epochs,
            recipe=ContrastiveRecipe(negatives=negatives),
            seed=seed,
        )
        name = pretrained.dual_encoder_file(seed, negatives)
        save_weights(dual, out / name)
        entries[name] = {
            "seconds": round(time.perf_counter() - start, 1),
            "train_loss": history["train_loss"],
        }
        print(name, entries[name]["seconds"], flush=True)
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15, help="epochs of every stage")
    parser.add_argument(
        "--encoder-canvases", type=int, default=30_000, help="training canvases of the encoder"
    )
    parser.add_argument(
        "--encoder-pool",
        choices=("fast", "full"),
        default="fast",
        help="MNIST training digits of DigitNet and the encoder's canvases: the bundled 10,000 "
        "(fast) or all 60,000 (full)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS, help="where to write")
    parser.add_argument(
        "--only",
        choices=("captioning", "retrieval", "ablation"),
        default=None,
        help="train one part only",
    )
    args = parser.parse_args()
    settings = config.setup(seed=0, profile="fast")
    data = recipe.build_data(seed=0)
    log_path = args.out / "training_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    log["settings"] = {
        "profile": "fast",
        "epochs": args.epochs,
        "canvases": {s: len(d) for s, d in data.splits.items()},
        "threads": settings.threads,
        "processor": platform.processor() or platform.machine(),
        "torch": importlib.metadata.version("torch"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vocab.json").write_text(json.dumps(data.vocab.itos) + "\n")

    if args.only in (None, "captioning"):
        encoder, log["encoder"] = pretrain_encoder(
            data, args.epochs, args.encoder_canvases, args.encoder_pool
        )
        print("encoder", log["encoder"]["val_slot_accuracy"], flush=True)
        save_weights(encoder, args.out / "encoder.pt")
        regions = {s: recipe.store_regions(encoder, data.images(s)) for s in ("train", "val")}
        for kind in recipe.DECODERS:
            decoder = recipe.make_decoder(kind, len(data.vocab), StoredGrid(64, recipe.REGION_DIM))
            start = time.perf_counter()
            history = recipe.train_decoder(
                decoder,
                (regions["train"], data.captions["train"]),
                epochs=args.epochs,
                val=(regions["val"], data.splits["val"]),
                vocab=data.vocab,
                progress=True,
            )
            log[kind] = {
                "seconds": round(time.perf_counter() - start, 1),
                "best_epoch": history.best_epoch,
                "val_exact": history["val_exact"],
                "val_bleu4": [round(b, 4) for b in history["val_bleu4"]],
            }
            swap_encoder(decoder, encoder.encoder)
            save_weights(decoder, args.out / f"{kind}.pt")
            print(kind, log[kind]["best_epoch"], max(history["val_exact"]), flush=True)
            log_path.write_text(json.dumps(log, indent=1) + "\n")

    if args.only in (None, "retrieval"):
        start = time.perf_counter()
        dual, history = train_dual_encoder(
            data.splits["train"], data.vocab, epochs=args.epochs, progress=True
        )
        log["dual_encoder"] = {
            "seconds": round(time.perf_counter() - start, 1),
            "train_loss": history["train_loss"],
            "temperature": history["temperature"],
        }
        save_weights(dual, args.out / "dual_encoder.pt")
    if args.only in (None, "ablation"):
        log["dual_encoder_ablation"] = train_ablation(data, args.epochs, args.out)
    log_path.write_text(json.dumps(log, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
