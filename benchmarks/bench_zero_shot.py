"""Zero-shot MNIST with the committed dual encoder, on every MNIST test digit there is.

Chapter 11 chooses the zero-shot setting (views, prompts) on the validation half of MNIST's
test digits and scores the other half once. This script scores the committed dual encoder,
with each setting chapter 11 tries, on the validation half, on the test half and on all of
MNIST's test digits: the full 10,000 when ``MMCOURSE_DATA`` (or ``data/``) holds full MNIST,
else the bundled 2,000. The setting to report is the one that reads the validation half best.

    python benchmarks/bench_zero_shot.py                  # the setting chapter 11 chose
    python benchmarks/bench_zero_shot.py --all-settings   # every setting chapter 11 tries

The first takes about 3 minutes on 2 CPU cores with full MNIST, the second about 8.
"""

from __future__ import annotations

import argparse

import mmcourse  # noqa: F401  (first: its portable numerics settings must reach torch)

# isort: split
import torch

from mmcourse import config, metrics, retrieval
from mmcourse.casestudy import pretrained
from mmcourse.data import mnist
from mmcourse.data.captions import digit_pool

SETTINGS = {
    "one view, one prompt": {
        "prompts": ["a large {digit} in the middle"],
        "views": [retrieval.TYPICAL_CENTRE],
    },
    "one view, all prompts": {"views": [retrieval.TYPICAL_CENTRE]},
    "nine views, all prompts": {},
}
CHOSEN = "nine views, all prompts"
"""What chapter 11's validation digits chose (its output says so)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all-settings", action="store_true", help="not only the chosen one")
    args = parser.parse_args()
    settings = SETTINGS if args.all_settings else {CHOSEN: SETTINGS[CHOSEN]}
    config.setup(seed=0, profile="fast")
    vocab = pretrained.vocabulary()
    model = pretrained.load_dual_encoder(vocab)
    try:
        mnist.find_mnist_root()  # looks, never downloads
        profile, name = "full", "all 10,000 test digits"
    except FileNotFoundError:
        profile, name = "fast", "the bundled 2,000 test digits"
    everything = mnist.load_digits("test", profile=profile)
    sets = {
        "validation half": digit_pool("val", profile),
        "test half": digit_pool("test", profile),
        name: everything,
    }
    print(f"{'setting':26s}" + "".join(f"{label:>32s}" for label in sets))
    for setting, options in settings.items():
        scores = []
        for digits, labels in sets.values():
            predicted = retrieval.zero_shot_classify(model, vocab, digits, **options)
            scores.append(metrics.accuracy(predicted, labels))
        print(f"{setting:26s}" + "".join(f"{score:32.4f}" for score in scores), flush=True)
    counts = {label: len(labels) for label, (_, labels) in sets.items()}
    print("digits:", counts, "| torch threads:", torch.get_num_threads())


if __name__ == "__main__":
    main()
