"""Case-study benchmark: how fast the captioning recipe trains, and when it reaches each target.

For the encoder's pretraining and for each decoder (trained on the frozen encoder's stored
regions) it records canvases per second, and after every decoder epoch the validation BLEU-4
and exact match with the time spent so far, so the time to reach each target can be read off
(targets are checked on *validation* canvases here; the test split is scored once, in the
notebook). Results go to ``data/results/casestudy_bench.json``.

    python benchmarks/bench_casestudy.py                   # fast profile, the CPU
    python benchmarks/bench_casestudy.py --profile full --device cuda
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import time
from pathlib import Path

from mmcourse import config
from mmcourse.casestudy import recipe
from mmcourse.models.grid import StoredGrid

TARGETS = {"bleu4": 0.85, "exact": 0.80}
OUT = Path(__file__).resolve().parents[1] / "data" / "results" / "casestudy_bench.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("fast", "full"), default="fast")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--pretrain-epochs", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    settings = config.setup(
        seed=0, profile=args.profile, device=None if args.device == "auto" else args.device
    )
    pretrain_epochs = args.pretrain_epochs or config.pick(fast=6, full=12)
    epochs = args.epochs or config.pick(fast=6, full=12)
    data = recipe.build_data()
    n_train = len(data.splits["train"])
    result: dict[str, object] = {
        "profile": settings.profile,
        "device": str(settings.device),
        "threads": settings.threads,
        "processor": platform.processor() or platform.machine(),
        "torch": importlib.metadata.version("torch"),
        "canvases": {s: len(d) for s, d in data.splits.items()},
    }
    start = time.perf_counter()
    encoder, _, _ = recipe.pretrain_encoder(
        data.splits["train"], pretrain_epochs, device=settings.device, progress=True
    )
    seconds = time.perf_counter() - start
    result["pretrain"] = {
        "epochs": pretrain_epochs,
        "seconds": round(seconds, 1),
        "canvases_per_s": round(pretrain_epochs * n_train / seconds, 1),
    }
    start = time.perf_counter()
    regions = {s: recipe.store_regions(encoder, data.images(s)) for s in ("train", "val")}
    result["store_regions_s"] = round(time.perf_counter() - start, 1)
    decoders = {}
    for kind in recipe.DECODERS:
        model = recipe.make_decoder(kind, len(data.vocab), StoredGrid(64, recipe.REGION_DIM))
        start = time.perf_counter()
        history = recipe.train_decoder(
            model,
            (regions["train"], data.captions["train"]),
            epochs=epochs,
            val=(regions["val"], data.splits["val"]),
            vocab=data.vocab,
            device=settings.device,
            progress=True,
        )
        seconds = time.perf_counter() - start
        per_epoch = seconds / epochs
        curve = [
            {"epoch": e + 1, "seconds": round(per_epoch * (e + 1), 1), "bleu4": b, "exact": x}
            for e, (b, x) in enumerate(zip(history["val_bleu4"], history["val_exact"]))
        ]
        reached = {
            name: next((p["seconds"] for p in curve if p[name] >= target), None)
            for name, target in TARGETS.items()
        }
        decoders[kind] = {
            "seconds": round(seconds, 1),
            "canvases_per_s": round(epochs * n_train / seconds, 1),
            "best_epoch": history.best_epoch,
            "curve": curve,
            "seconds_to_target_on_validation": reached,
        }
        print(kind, json.dumps(decoders[kind]["seconds_to_target_on_validation"]), flush=True)
    result["decoders"] = decoders
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
