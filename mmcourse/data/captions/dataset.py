"""The dataset: :class:`MNISTCaptions` (canvases, layouts, captions, questions of one split),
:func:`generate` to build one, and :func:`make_mnist_captions` to build it once and read it
back from the cache after that.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmcourse import config
from mmcourse._validate import check_choice, check_int
from mmcourse.data import mnist
from mmcourse.data.cache import cached, fingerprint
from mmcourse.data.captions.language import N_TEMPLATES, DigitDescription, describe, questions_for
from mmcourse.data.captions.layout import (
    HOLDOUT,
    MAX_DIGITS,
    SIZES,
    SLANTS,
    SLOTS,
    SPLITS,
    THICKNESSES,
    Holdout,
    Layout,
    sample_split_layout,
)
from mmcourse.data.captions.render import render_layout
from mmcourse.data.pen import pool_kinds

__all__ = [
    "CANVAS_MEAN",
    "CANVAS_STD",
    "DEFAULT_SIZES",
    "MNISTCaptions",
    "digit_pool",
    "generate",
    "make_mnist_captions",
]


CANVAS_MEAN = 0.0362
"""Mean pixel (scaled to [0, 1]) of the training canvases; most of a canvas is background,
so it is far below MNIST's 0.1307 (``tests/test_captions.py`` recomputes it)."""


CANVAS_STD = 0.1713
"""Standard deviation of the training canvases' pixels (scaled to [0, 1])."""


DEFAULT_SIZES = {
    "fast": {"train": 10_000, "val": 2_000, "test": 2_000, "compositional": 2_000},
    "full": {"train": 60_000, "val": 10_000, "test": 10_000, "compositional": 10_000},
}


@dataclass
class MNISTCaptions:
    """A split of MNIST-Captions, held in memory as tensors and lists.

    Attributes:
        split: ``"train"``, ``"val"``, ``"test"`` or ``"compositional"``.
        images: uint8 ``(N, 64, 64)`` canvases.
        layout: the ground truth, ``(N, 3)`` tensors with one column per slot.
        centers: float ``(N, 3, 2)``: each digit's centre (x, y): the centre of mass of its
            centre line; NaN if empty.
        source: long ``(N, 3)``: which pool digit was drawn in each slot (``-1`` if empty).
        pen_width: float ``(N, 3)``: the width of each digit's pen, in canvas pixels (NaN if
            empty); its thickness word names the band it lies in (:data:`mmcourse.data.pen.PEN_BANDS`).
        captions: ``N`` lists of four reference captions.
        qa: ``N`` lists of ``(type, question, answer)``.
    """

    split: str
    images: torch.Tensor
    layout: Layout
    centers: torch.Tensor
    source: torch.Tensor
    pen_width: torch.Tensor
    captions: list[list[str]] = field(repr=False)
    qa: list[list[tuple[str, str, str]]] = field(repr=False)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"MNISTCaptions(split={self.split!r}, canvases={len(self)})"

    @property
    def n_digits(self) -> torch.Tensor:
        """``(N,)`` how many digits stand on each canvas."""
        return (self.layout.digits >= 0).sum(dim=1)

    def items(self, index: int) -> list[tuple[int, int, int, int, int]]:
        """``(slot, digit, size, thickness, slant)`` of each digit on canvas ``index``."""
        row = [getattr(self.layout, f)[index].tolist() for f in Layout.fields()]
        return [
            (slot, row[0][slot], row[1][slot], row[2][slot], row[3][slot])
            for slot in range(MAX_DIGITS)
            if row[0][slot] >= 0
        ]

    def descriptions(self, index: int) -> list[DigitDescription]:
        """The ground truth of canvas ``index`` in the form :func:`parse_caption` returns."""
        return [
            DigitDescription(SLOTS[slot], d, SIZES[s], THICKNESSES[t], SLANTS[sl])
            for slot, d, s, t, sl in self.items(index)
        ]

    def __getitem__(self, index: int) -> dict[str, object]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} canvases")
        return {
            "image": self.images[index],
            "captions": self.captions[index],
            "digits": self.descriptions(index),
            "qa": self.qa[index],
        }

    def float_images(self, normalize: bool = True) -> torch.Tensor:
        """Canvases as float ``(N, 1, 64, 64)`` in [0, 1], standardised when ``normalize``
        with the *training canvases'* statistics (:data:`CANVAS_MEAN`, :data:`CANVAS_STD`),
        so that training canvases have mean 0 and standard deviation 1."""
        return mnist.to_float(self.images, normalize, mean=CANVAS_MEAN, std=CANVAS_STD)

    def select(self, index: torch.Tensor | Sequence[int]) -> MNISTCaptions:
        """A new dataset holding the canvases at ``index``."""
        index = torch.as_tensor(index, dtype=torch.long)
        rows = index.tolist()
        return MNISTCaptions(
            self.split,
            self.images[index],
            self.layout.select(index),
            self.centers[index],
            self.source[index],
            self.pen_width[index],
            [self.captions[i] for i in rows],
            [self.qa[i] for i in rows],
        )


def generate(
    n: int,
    split: str,
    pool_images: torch.Tensor,
    pool_labels: torch.Tensor,
    seed: int = 0,
    holdout: Holdout = HOLDOUT,
    min_digits: int = 1,
    max_digits: int = MAX_DIGITS,
    chunk: int = 4096,
) -> MNISTCaptions:
    """Generate ``n`` canvases of ``split`` from a pool of digits (deterministic in ``seed``).

    Args:
        n: number of canvases (at least 1).
        pool_images: uint8 ``(M, 28, 28)`` digits; ``pool_labels``: long ``(M,)`` 0..9.
        min_digits, max_digits: how many digits a canvas may hold (1..3).
        chunk: how many canvases are rendered at once (a positive int; only memory depends
            on it, not the result).
    """
    check_choice(split, "MNIST-Captions split", SPLITS)
    check_int(n, "n")
    check_int(chunk, "chunk")
    if (
        pool_images.dtype != torch.uint8
        or pool_images.dim() != 3
        or pool_images.shape[1:] != (28, 28)
    ):
        raise ValueError(
            f"pool_images must be uint8 (M, 28, 28), got {pool_images.dtype} {tuple(pool_images.shape)}"
        )
    if pool_labels.shape != pool_images.shape[:1]:
        raise ValueError(
            f"pool_labels must have shape ({len(pool_images)},), got {tuple(pool_labels.shape)}"
        )
    if len(pool_labels) and (pool_labels.min() < 0 or pool_labels.max() > 9):
        raise ValueError("pool_labels must be digits 0..9")
    generator = torch.Generator().manual_seed(seed * 10 + SPLITS.index(split))
    layout = sample_split_layout(n, split, generator, holdout, min_digits, max_digits)
    kinds = pool_kinds(pool_images, pool_labels)
    parts = []
    for start in range(0, n, chunk):
        part = layout.select(torch.arange(start, min(n, start + chunk)))
        parts.append(render_layout(part, pool_images, pool_labels.long(), generator, kinds))
    images, centers, sources, widths = (torch.cat(column) for column in zip(*parts))
    data = MNISTCaptions(split, images, layout, centers, sources, widths, [], [])
    for index in range(n):
        items = data.items(index)
        data.captions.append([describe(items, t) for t in range(N_TEMPLATES)])
        data.qa.append(questions_for(items))
    return data


def digit_pool(
    split: str, profile: str | None = None, root: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The MNIST digits a split draws from: ``train`` from MNIST's training set; ``val`` and
    ``test``/``compositional`` from two disjoint, class-balanced halves of its test set."""
    check_choice(split, "MNIST-Captions split", SPLITS)
    if split == "train":
        return mnist.load_digits("train", profile=profile, root=root)
    images, labels = mnist.load_digits("test", profile=profile, root=root)
    rank = torch.zeros_like(labels)
    for digit in range(10):
        where = (labels == digit).nonzero().squeeze(1)
        rank[where] = torch.arange(len(where))
    half = rank % 2 == (0 if split == "val" else 1)
    return images[half], labels[half]


def make_mnist_captions(
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    profile: str | None = None,
    root: str | os.PathLike | None = None,
    holdout: Holdout = HOLDOUT,
    min_digits: int = 1,
    max_digits: int = MAX_DIGITS,
) -> MNISTCaptions:
    """Build a split of MNIST-Captions from MNIST (the bundled subset in the fast profile).

    ``n`` defaults to :data:`DEFAULT_SIZES` for the profile (fast: 10,000 training canvases).
    A split is generated once and then read from the disk cache (:mod:`mmcourse.data.cache`;
    ``MMCOURSE_CACHE=off`` generates it every time): the same canvases, bit for bit.
    """
    check_choice(split, "MNIST-Captions split", SPLITS)
    chosen = config.pick(fast="fast", full="full", profile=profile)
    if n is None:
        n = DEFAULT_SIZES[chosen][split]
    pool_images, pool_labels = digit_pool(split, chosen, root)
    arguments = (n, split, pool_images, pool_labels, seed, holdout, min_digits, max_digits)
    key = fingerprint(*arguments, *_DRAWING_CODE, torch.__version__)
    stored = cached(f"mnist-captions-{split}", key, lambda: _as_dict(generate(*arguments)))
    return _from_dict(split, stored)


_DRAWING_CODE = (
    *sorted(Path(__file__).parent.glob("*.py")),  # this package: layout, drawing, words
    *(Path(__file__).parent.with_name(name) for name in ("pen.py", "shapes.py")),
)
"""The modules whose code decides every pixel and word: part of a cached split's key."""


_STORED = ("images", "centers", "source", "pen_width")


def _as_dict(data: MNISTCaptions) -> dict[str, object]:
    # Texts as one string each: the weights-only unpickler reads a million small strings slowly.
    texts = "\n".join("\t".join(refs) for refs in data.captions)
    qa = "\n".join("\x1f".join("\t".join(item) for item in canvas) for canvas in data.qa)
    stored = {name: getattr(data, name) for name in _STORED} | {"captions": texts, "qa": qa}
    return stored | {name: getattr(data.layout, name) for name in Layout.fields()}


def _from_dict(split: str, stored: dict) -> MNISTCaptions:
    layout = Layout(*(stored[name] for name in Layout.fields()))
    images, centers, source, pen_width = (stored[name] for name in _STORED)
    texts = [line.split("\t") for line in stored["captions"].split("\n")]
    qa = [
        [tuple(item.split("\t")) for item in line.split("\x1f")]
        for line in stored["qa"].split("\n")
    ]
    return MNISTCaptions(split, images, layout, centers, source, pen_width, texts, qa)
