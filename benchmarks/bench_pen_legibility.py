"""How legible are MNIST-Captions' pen drawings themselves, to a classifier trained on them?

``bench_rendered_digits`` asks how a *plain* MNIST classifier reads the drawings; this asks
the stronger question: DigitNet (chapter 04's network) trained on pen drawings of MNIST's
60,000 training digits and tested on pen drawings of its 10,000 test digits, each drawn at a
random size, slant and thickness word as MNIST-Captions draws them (``data.pen.draw_legibly``,
faulty drawings drawn again from another digit), then scaled back to 28x28 around its
window's centre. The same network reads plain MNIST at about 0.99: what it loses on the
drawings is what the drawing loses, at this classifier's strength.

    MMCOURSE_DATA=../shared/data python benchmarks/bench_pen_legibility.py   # ~2 min, 2 cores
    python benchmarks/bench_pen_legibility.py --epochs 8 --profile fast       # bundled digits
"""

from __future__ import annotations

import argparse

import mmcourse  # noqa: F401  (first: its portable numerics settings must reach torch)

# isort: split
import torch
from bench_rendered_digits import accuracy

from mmcourse import config
from mmcourse.data import captions as C
from mmcourse.data import mnist
from mmcourse.data import pen as P
from mmcourse.digits import train_digit_classifier


def drawings(
    images: torch.Tensor, labels: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each digit drawn once at a random size, slant and word; the drawings at 28x28 (uint8),
    the labels of the digits drawn (a redrawn digit's own), the size and word indices."""
    n = len(images)
    generator = torch.Generator().manual_seed(seed)
    size = torch.randint(0, len(C.SCALES), (n,), generator=generator)
    scale = torch.tensor(C.SCALES)[size]
    shear = torch.tensor(C.SHEARS)[torch.randint(0, len(C.SHEARS), (n,), generator=generator)]
    words = torch.randint(0, len(P.PEN_BANDS), (n,), generator=generator)
    centre = torch.full((n, 2), P.WINDOW / 2)
    place = (scale, shear, centre + P.WINDOW // 2, P.pen_widths(words, generator))
    kinds = P.pool_kinds(images, labels)
    windows, _, picks = P.draw_legibly(images, kinds, torch.arange(n), place, generator)
    digits = (P.to_mnist_frame(windows, centre, scale) * 255).round().clamp(0, 255).to(torch.uint8)
    return digits, labels[picks], size, words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="DigitNet's epochs (chapter 04: 3)")
    parser.add_argument("--profile", choices=("fast", "full"), default="full")
    args = parser.parse_args()
    config.setup(seed=0, profile=args.profile)
    train_images, train_labels = mnist.load_digits("train")
    test_images, test_labels = mnist.load_digits("test")
    train_drawn, train_drawn_labels, _, _ = drawings(train_images, train_labels, seed=1)
    test_drawn, test_drawn_labels, size, words = drawings(test_images, test_labels, seed=2)
    on_pen, _ = train_digit_classifier(train_drawn, train_drawn_labels, epochs=args.epochs)
    plain, _ = train_digit_classifier(train_images, train_labels, epochs=args.epochs)
    test_float = test_drawn.float() / 255
    print(f"{len(test_images)} test digits, DigitNet {args.epochs} epochs, {args.profile} profile")
    print(
        f"plain DigitNet on plain MNIST:   {accuracy(plain, test_images.float() / 255, test_labels):.4f}"
    )
    print(f"pen DigitNet on pen drawings:    {accuracy(on_pen, test_float, test_drawn_labels):.4f}")
    for s, size_word in enumerate(C.SIZES):
        cells = []
        for k, word in enumerate(P.PEN_BANDS):
            keep = (size == s) & (words == k)
            cells.append(
                f"{word} {accuracy(on_pen, test_float[keep], test_drawn_labels[keep]):.4f}"
            )
        print(f"  {size_word:6s}", "  ".join(cells))


if __name__ == "__main__":
    main()
