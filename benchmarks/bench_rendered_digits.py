"""How readable are the digits MNIST-Captions draws? A plain MNIST classifier on its digits.

The case study's decoders name a canvas's digits right 92-94 % of the time, where chapter 04's
DigitNet reads plain MNIST at 99 %. Is the gap in the drawing or in the encoder? This script
trains DigitNet on plain MNIST (chapter 04's recipe: the bundled training digits, 3 epochs; no
canvas, no caption), then shows it the *same* MNIST test digits two ways:

- as MNIST has them;
- drawn with a pen of a set width (``mmcourse.data.pen``), as MNIST-Captions draws them:
  deslanted, sheared, scaled by the size's factor, the pen's width from the word's band;

each drawing scaled back to MNIST's size around its centre of mass (so the classifier sees a
28x28 digit again), for every size, slant and thickness word.

    python benchmarks/bench_rendered_digits.py      # about 5 minutes on 2 CPU cores
"""

from __future__ import annotations

import itertools

import mmcourse  # noqa: F401  (first: its portable numerics settings must reach torch)

# isort: split
import torch

from mmcourse import config
from mmcourse.data import captions as C
from mmcourse.data import mnist
from mmcourse.data import pen as P
from mmcourse.digits import train_digit_classifier
from mmcourse.train import predict

EPOCHS = 3


def accuracy(model: torch.nn.Module, digits: torch.Tensor, labels: torch.Tensor) -> float:
    """``digits`` float ``(M, 28, 28)`` in [0, 1]."""
    inputs = (digits[:, None] - mnist.MEAN) / mnist.STD
    return float((predict(model, inputs).argmax(dim=1) == labels).float().mean())


def main() -> None:
    config.setup(seed=0, profile="fast")
    train_images, train_labels = mnist.load_digits("train")
    test_images, test_labels = mnist.load_digits("test")
    model, _ = train_digit_classifier(train_images, train_labels, epochs=EPOCHS)
    print(f"DigitNet on MNIST's {len(test_labels):,} test digits: "
          f"{accuracy(model, test_images.float() / 255, test_labels):.4f}")  # fmt: skip
    n = len(test_images)
    kinds = P.pool_kinds(test_images, test_labels)
    g = torch.Generator().manual_seed(0)
    print(f"\n{'size':6s}{'slant':8s}{'word':8s}{'pen':>8s}")
    rows = itertools.product(range(len(C.SIZES)), range(len(C.SLANTS)), range(len(C.THICKNESSES)))
    for size, slant, word in rows:
        scale = torch.full((n,), C.SCALES[size])
        shear = torch.full((n,), C.SHEARS[slant])
        words = torch.full((n,), word)
        centre = torch.full((n, 2), P.WINDOW / 2)
        place = (scale, shear, centre + P.WINDOW // 2, P.pen_widths(words, g))
        windows, corner, picks = P.draw_legibly(test_images, kinds, torch.arange(n), place, g)
        pen = P.to_mnist_frame(windows, centre, scale)
        print(
            f"{C.SIZES[size]:6s}{C.SLANTS[slant]:8s}{C.THICKNESSES[word]:8s}"
            f"{accuracy(model, pen, test_labels[picks]):8.4f}"
        )


if __name__ == "__main__":
    main()
