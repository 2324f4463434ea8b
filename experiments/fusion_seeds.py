"""Chapter 06's fusion comparison over several seeds, stored for the chapter to read.

    python experiments/fusion_seeds.py            # fast profile, seeds 0 1 2 (about 5 min
                                                       # on two CPU cores)
    python experiments/fusion_seeds.py --seeds 0 1 2 3 4

Runs :mod:`mmcourse.fusion_study` exactly as the chapter does (the same backbone, pretrained
once with seed 0; every fusion head trained with each seed: its initial weights and its batch
order) and writes ``data/results/fusion_seeds.json`` and a Markdown table beside it.
The chapter checks that its own seed-0 run reproduces the stored seed-0 row.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mmcourse import config, fusion_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=fusion_study.RESULTS)
    args = parser.parse_args()

    settings = config.setup(seed=0)
    sizes = {
        "n_train": config.pick(fast=4500, full=27000),
        "n_val": config.pick(fast=500, full=3000),
        "n_test": config.pick(fast=500, full=5000),
    }
    epochs = config.pick(fast=3, full=15)
    pre_epochs = config.pick(fast=3, full=10)
    start = time.perf_counter()
    splits = fusion_study.make_splits(**sizes)
    backbone, _ = fusion_study.pretrain_backbone(
        splits["train"], pre_epochs, device=settings.device
    )
    data = fusion_study.VQAData.build(splits, backbone)
    results: dict[str, dict[int, dict[str, float]]] = {name: {} for name in fusion_study.FUSIONS}
    for seed in args.seeds:
        for name in fusion_study.FUSIONS:
            results[name][seed] = fusion_study.run_fusion(
                name, data, backbone, epochs, seed, device=settings.device
            )
            print(f"seed {seed} {name:18s} {results[name][seed]}", flush=True)
    stored = {
        "profile": settings.profile,
        **sizes,
        "epochs": epochs,
        "pretraining_epochs": pre_epochs,
        "seeds": args.seeds,
        "seconds": round(time.perf_counter() - start),
    }
    path = fusion_study.save_seed_study(args.out, results, stored)
    lines = [
        f"Fusion heads over seeds {args.seeds} ({settings.profile} profile), mean ± std",
        "",
        "| fusion | validation accuracy | test accuracy |",
        "| --- | --- | --- |",
    ]
    val = fusion_study.seed_summary(results, "val")
    test = fusion_study.seed_summary(results, "test")
    for name in sorted(val, key=lambda n: val[n][0]):
        lines.append(
            f"| {name} | {val[name][0]:.3f} ± {val[name][1]:.3f} "
            f"| {test[name][0]:.3f} ± {test[name][1]:.3f} |"
        )
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path} in {stored['seconds']} s")


if __name__ == "__main__":
    main()
