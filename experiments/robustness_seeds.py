"""Chapter 13's corruption curves and augmentation study over several seeds, stored for the
chapter to read.

    python experiments/robustness_seeds.py            # fast profile, seeds 0 1 2 (about
                                                      # 9 min with two threads)
    MMCOURSE_PROFILE=full python experiments/robustness_seeds.py --seeds 0 1 2 3 4

Runs the chapter's recipe exactly (the backbone of :mod:`mmcourse.fusion_study`, pretrained
once with seed 0, and its heads trained with each seed: initial weights and batch order):

1. the four models of section 1 (image only, question only, concat, product) and their
   accuracy under every corruption at every severity (:func:`robust.study.corruption_curves`);
2. the product fusion trained plain, with image augmentation (of the backbone's pretraining:
   each seed pretrains one backbone on clean canvases and one on augmented views), with word
   dropout (of the head's training), and with both (:data:`robust.study.AUGMENTATIONS`),
   scored on the validation, test and compositional questions and on the test questions
   under each corruption at severity 3.

Writes ``data/results/robustness_seeds.json``. Seed 0 runs the chapter's own recipe through
the same functions (tests check that plain training here is chapter 06's, bit for bit).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import mmcourse  # noqa: F401  (first: its portable numerics settings must reach torch)

# isort: split
import torch

from mmcourse import config, fusion_study
from mmcourse.data.captions import make_mnist_captions
from mmcourse.data.questions import make_vqa
from mmcourse.robust import study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=study.RESULTS)
    args = parser.parse_args()

    settings = config.setup(seed=0)
    sizes = {
        "n_train": config.pick(fast=4_500, full=27_000),
        "n_val": config.pick(fast=500, full=3_000),
        "n_test": config.pick(fast=500, full=5_000),
    }
    epochs = config.pick(fast=3, full=15)
    pre_epochs = config.pick(fast=3, full=10)
    start = time.perf_counter()
    splits = fusion_study.make_splits(**sizes)
    splits["compositional"] = make_mnist_captions("compositional", n=sizes["n_test"])
    train_qa = make_vqa(splits["train"])
    qa = {
        name: make_vqa(data, vocab=train_qa.vocab)
        for name, data in splits.items()
        if name != "train"
    }
    qa["train"] = train_qa
    backbone, _ = fusion_study.pretrain_backbone(
        splits["train"], pre_epochs, device=settings.device
    )
    data = fusion_study.VQAData(
        {name: qa[name] for name in ("train", "val", "test")},
        {
            name: backbone.store_regions(splits[name].float_images())
            for name in ("train", "val", "test")
        },
    )
    print(f"backbone ready in {time.perf_counter() - start:.0f} s", flush=True)

    curves = {}
    for seed in args.seeds:
        models = {}
        for name in study.CURVE_MODELS:
            torch.manual_seed(seed)
            models[name] = fusion_study.build_vqa_model(
                fusion_study.FUSIONS[name](backbone), len(train_qa.vocab), backbone
            )
            fusion_study.train_and_predict(
                models[name], data, epochs, seed=seed, device=settings.device
            )
        curves[seed] = study.corruption_curves(models, backbone, splits["test"].images, qa["test"])
        print(f"seed {seed}: curves done at {time.perf_counter() - start:.0f} s", flush=True)

    augmentation: dict[str, dict[int, dict[str, float]]] = {v: {} for v in study.AUGMENTATIONS}
    for seed in args.seeds:
        for augmented in (False, True):
            if seed == 0 and not augmented:
                pretrained = backbone  # the chapter's, pretrained above with seed 0
            else:
                pretrained = study.pretrain(splits["train"], pre_epochs, seed, augmented)
            sets = study.held_out_sets(pretrained, splits, qa)
            regions = study.canvas_regions(pretrained, splits["train"].images)
            for variant, (image_side, word_drop) in study.AUGMENTATIONS.items():
                if image_side != augmented:
                    continue
                model = study.train_head(pretrained, train_qa, regions, word_drop, epochs, seed)
                augmentation[variant][seed] = study.held_out_scores(model, sets)
                scores = {k: round(v, 3) for k, v in augmentation[variant][seed].items()}
                elapsed = time.perf_counter() - start
                print(f"seed {seed} {variant:6} {scores} ({elapsed:.0f} s)", flush=True)

    stored = {
        "profile": settings.profile,
        **sizes,
        "n_compositional": sizes["n_test"],
        "epochs": epochs,
        "pretraining_epochs": pre_epochs,
        "augmented_share": 0.5,
        "word_drop": study.WORD_DROP,
        "corrupted_severity": study.CORRUPTED_SEVERITY,
        "seeds": args.seeds,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - start),
    }
    path = study.save_study(args.out, stored, curves, augmentation)
    print(f"wrote {path} in {stored['seconds']} s")


if __name__ == "__main__":
    main()
