"""Pretraining on image--text pairs, then reading single digits (chapter 14).

CLIP (Radford et al., 2021) learns from images and the captions that come with them. The
case study's dual encoder (:mod:`mmcourse.retrieval`) does the same on MNIST-Captions, but
its canvases are drawn from the bundled 10,000 training digits -- the very digits chapter 14
labels 1 %, 10 % or 100 % of, and its captions name every digit. So that no label leaks,
chapter 14's image--text encoder is trained with the same recipe on canvases drawn from
:func:`disjoint_pool`: 10,000 *other* MNIST training digits.

- :func:`disjoint_pool` -- those digits (full MNIST needed; the committed weights are not);
- :func:`paste_on_canvas` -- a 28x28 digit pasted, pixel for pixel, into the canvas's middle
  slot, so that the canvas tower can read chapter 14's digits.

Zero-shot recognition and the image embeddings are chapter 11's
(:func:`mmcourse.retrieval.zero_shot_weights`, :func:`mmcourse.retrieval.embed_gallery`).
"""

from __future__ import annotations

import os

import torch

from mmcourse._validate import Dims, check_int, check_tensor, require
from mmcourse.data import mnist, subset
from mmcourse.data.captions.layout import CANVAS, SLOT_X, SLOTS

__all__ = [
    "DISJOINT_PER_CLASS",
    "DISJOINT_SEED",
    "disjoint_indices",
    "disjoint_pool",
    "paste_on_canvas",
]

DISJOINT_PER_CLASS = 1000
"""Digits of each class in :func:`disjoint_pool`: as many as the bundled subset holds."""
DISJOINT_SEED = 14
"""The seed that draws them."""

MIDDLE = SLOTS.index("middle")


def disjoint_indices(
    train_labels: torch.Tensor, per_class: int = DISJOINT_PER_CLASS, seed: int = DISJOINT_SEED
) -> torch.Tensor:
    """Indices into full MNIST's 60,000 training digits: ``per_class`` of each class, drawn
    at random among those **not** in the bundled subset (:mod:`mmcourse.data.subset`)."""
    Dims().indices(train_labels, "train_labels", "N")
    require(
        len(train_labels) == 60_000,
        f"train_labels must be full MNIST's 60,000 training labels, got {len(train_labels):,}",
    )
    check_int(per_class, "per_class")
    bundled = subset.balanced_indices(train_labels, subset.TRAIN_PER_CLASS, subset.SUBSET_SEED)
    outside = torch.ones(len(train_labels), dtype=torch.bool)
    outside[bundled] = False
    candidates = outside.nonzero().squeeze(1)
    picked = subset.balanced_indices(train_labels[candidates], per_class, seed)
    return candidates[picked]


def disjoint_pool(root: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 digits ``(10000, 28, 28)`` and labels of :func:`disjoint_indices`, read from full
    MNIST (``root`` as in :func:`mmcourse.data.mnist.load_mnist`)."""
    images, labels = mnist.load_mnist("train", root=root)
    keep = disjoint_indices(labels)
    return images[keep], labels[keep]


def paste_on_canvas(digits: torch.Tensor) -> torch.Tensor:
    """uint8 MNIST digits ``(N, 28, 28)`` -> uint8 canvases ``(N, 64, 64)``: each digit's own
    pixels, at its own size, in the middle slot of a blank canvas -- what the captions call
    "a large ... in the middle" (scale 1.0). Unlike
    :func:`mmcourse.retrieval.place_digits_on_canvas`, which redraws the digit as the dataset
    does (its centre line deslanted and traced with a pen), nothing is changed: the canvas
    tower reads the same pixels as every other encoder of chapter 14."""
    check_tensor(digits, "digits", "uint8 (N, 28, 28)")
    require(
        digits.dtype == torch.uint8,
        f"digits must be uint8 MNIST digits (0..255), got {digits.dtype}; "
        "pass the digits as mnist.load_digits returns them",
    )
    require(
        digits.dim() == 3 and tuple(digits.shape[1:]) == (28, 28),
        f"digits must have shape (N, 28, 28), got {tuple(digits.shape)}",
    )
    canvases = torch.zeros(len(digits), CANVAS, CANVAS, dtype=torch.uint8)
    top = left = int(SLOT_X[MIDDLE]) - 14  # the 28x28 frame's centre on the slot's centre
    canvases[:, top : top + 28, left : left + 28] = digits
    return canvases
