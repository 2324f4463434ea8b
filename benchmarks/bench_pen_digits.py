"""Digits drawn with a pen of a set width (mmcourse.data.pen), as MNIST-Captions draws them.

MNIST-Captions draws every digit along its own centre line with a pen whose width, in canvas
pixels, *is* the thickness word (``PEN_BANDS``). This script measures, on MNIST digits drawn
with random sizes (the dataset's ``SCALES``), slants and words:

- speed: digits per second of ``draw_legibly`` (redraws included);
- whether a measurement that is not the generator's reads the word back from the pixels:
  ``tests/test_thickness.py``'s ``stroke_thickness`` (2 x mean distance to the background on the
  ridge of a 4x upsampling), with the two cut points that read best on MNIST's *training*
  digits, scored on its *test* digits, per size;
- how often redrawing was needed and how often it failed.

(The second edition thinned or thickened each digit relative to its own stroke: the same
measurement read its word right for 82 % of small and 83.5 % of large digits.)

    python benchmarks/bench_pen_digits.py          # about a minute on 2 CPU cores
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import mmcourse  # noqa: F401  (first: its portable numerics settings must reach torch)

# isort: split
import numpy as np
import torch

from mmcourse import config
from mmcourse.data import captions as C
from mmcourse.data import mnist
from mmcourse.data import pen as P

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_thickness import stroke_thickness  # noqa: E402  (the tests' independent measure)

N = 3000


def placements(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    size = torch.randint(0, 2, (n,), generator=g)
    return {
        "size": size,
        "scale": torch.tensor(C.SCALES)[size],
        "shear": torch.tensor(C.SHEARS)[torch.randint(0, 3, (n,), generator=g)],
        "word": torch.randint(0, 3, (n,), generator=g),
        "centre": 31.5 + torch.rand(n, 2, generator=g),
        "generator": g,
    }


def pen_drawings(images, labels, picks, place) -> tuple[list[np.ndarray], float, dict]:
    width = P.pen_widths(place["word"], place["generator"])
    start = time.perf_counter()
    kinds = P.pool_kinds(images, labels)
    windows, _, final = P.draw_legibly(
        images, kinds, picks, (place["scale"], place["shear"], place["centre"], width),
        place["generator"],
    )  # fmt: skip
    seconds = time.perf_counter() - start
    faults = P.drawing_faults(windows, images[final])
    extra = {"redrawn": float((final != picks).float().mean()), "faulty": int(faults.sum())}
    return [w.numpy() for w in windows], seconds, extra


def best_cuts(thickness: np.ndarray, word: np.ndarray) -> tuple[float, float]:
    """The two cut points that read ``word`` best from ``thickness`` (midpoints between
    neighbouring measured values)."""
    values = np.unique(thickness)
    candidates = (values[1:] + values[:-1]) / 2
    candidates = candidates[:: max(1, len(candidates) // 300)]
    best, cuts = -1.0, (0.0, 0.0)
    for i, low in enumerate(candidates):
        for high in candidates[i:]:
            accuracy = float(np.mean(np.digitize(thickness, (low, high)) == word))
            if accuracy > best:
                best, cuts = accuracy, (float(low), float(high))
    return cuts


def main() -> None:
    config.setup(seed=0, profile="fast")
    pools = {split: mnist.load_digits(split, profile="fast") for split in ("train", "test")}
    measured, timings = {}, {}
    for split, (images, labels) in pools.items():
        picks = torch.randint(0, len(images), (N,), generator=torch.Generator().manual_seed(7))
        place = placements(N, seed=1 if split == "test" else 5)
        pen, pen_s, extra = pen_drawings(images, labels, picks, place)
        timings[split] = (N / pen_s, extra)
        measured[split, "pen"] = np.array([stroke_thickness(d) for d in pen])
        measured[split, "size"], measured[split, "word"] = (
            place["size"].numpy(),
            place["word"].numpy(),
        )
    for split, (pen_rate, extra) in timings.items():
        print(
            f"{split:5s}: pen {pen_rate:6.0f} digits/s (redrawn {extra['redrawn']:.1%}, "
            f"still faulty {extra['faulty']})"
        )
    print("\nthe word read back from the pixels (cuts fitted on train drawings, scored on test):")
    for name in ("pen",):
        for size, size_name in enumerate(C.SIZES):
            fit = measured["train", "size"] == size
            cuts = best_cuts(measured["train", name][fit], measured["train", "word"][fit])
            test = measured["test", "size"] == size
            read = np.digitize(measured["test", name][test], cuts)
            accuracy = float(np.mean(read == measured["test", "word"][test]))
            print(
                f"  {name:8s} {size_name:5s}: {accuracy:.4f} (cuts {cuts[0]:.2f}, {cuts[1]:.2f} px)"
            )


if __name__ == "__main__":
    main()
