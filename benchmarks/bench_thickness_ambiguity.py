"""How well can a caption's thickness word be read from the canvas alone?

MNIST-Captions draws each digit with a pen whose width in canvas pixels is its thickness word
(``mmcourse.data.pen.PEN_BANDS``). Is the word then readable from the canvas alone? This script
measures each digit's stroke width on the canvas (``tests/test_thickness.py``'s
``stroke_thickness``: twice the mean distance to the background along the stroke's ridge) and
finds the best two-threshold rule that reads thin / normal / thick from it, per size. The
rule's accuracy is a lower bound on what a model can do; the gap to 100 % is how much the word
depends on something the canvas does not show.

    python benchmarks/bench_thickness_ambiguity.py          # about 30 s

Measured (fast profile, 1,500 validation canvases): the best rule reads 100 % of small and
99.8 % of large digits right. On the second edition, which thinned or thickened each digit
relative to its own stroke (as Morpho-MNIST's perturbations do), it read 79 % and 86 %.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mmcourse.data.captions import SIZES, SLOT_X, THICKNESSES, make_mnist_captions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_thickness import stroke_thickness  # noqa: E402  (the tests' independent measure)


def best_two_thresholds(width: np.ndarray, label: np.ndarray) -> tuple[float, float, float]:
    """The accuracy of the best rule ``thin < t1 <= normal < t2 <= thick``, and t1, t2."""
    candidates = np.quantile(width, np.linspace(0.02, 0.98, 80))
    best = (0.0, 0.0, 0.0)
    for i, low in enumerate(candidates):
        for high in candidates[i:]:
            guess = np.where(width < low, 0, np.where(width < high, 1, 2))
            accuracy = float((guess == label).mean())
            if accuracy > best[0]:
                best = (accuracy, float(low), float(high))
    return best


def main() -> None:
    data = make_mnist_captions("val", n=1500, profile="fast")
    rows = []
    for i in range(len(data)):
        image = data.images[i].numpy() / 255.0
        for slot in range(3):
            if data.layout.digits[i, slot] < 0:
                continue
            x = int(SLOT_X[slot])
            crop = image[:, max(0, x - 10) : x + 10]
            rows.append(
                (
                    stroke_thickness(crop),
                    int(data.layout.size[i, slot]),
                    int(data.layout.thickness[i, slot]),
                )
            )
    table = np.array(rows)
    for size, name in enumerate(SIZES):
        part = table[table[:, 1] == size]
        width, label = part[:, 0], part[:, 2].astype(int)
        accuracy, low, high = best_two_thresholds(width, label)
        print(
            f"{name} digits ({len(part)}): best rule {accuracy:.3f} (t1 {low:.2f}, t2 {high:.2f})"
        )
        for k, word in enumerate(THICKNESSES):
            q10, q50, q90 = np.quantile(width[label == k], [0.1, 0.5, 0.9])
            print(f"  {word:6s} stroke width 10/50/90 %: {q10:.2f} {q50:.2f} {q90:.2f} px")


if __name__ == "__main__":
    main()
