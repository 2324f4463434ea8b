"""Build the bundled, class-balanced MNIST subset from the raw files.

The subset is what the ``fast`` profile trains on, so a classroom without internet runs the
whole course. It is rebuilt bit for bit by ``scripts/build_mnist_subset.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mmcourse._validate import require
from mmcourse.data import mnist

TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
SUBSET_SEED = 2016


def balanced_indices(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """``per_class`` indices of each of the ten digits, drawn at random, then shuffled together."""
    require(labels.dim() == 1, f"labels must be 1-D, got shape {tuple(labels.shape)}")
    require(per_class >= 1, f"per_class must be positive, got {per_class}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    chosen = []
    for digit in range(10):
        of_digit = order[labels[order] == digit]
        if len(of_digit) < per_class:
            raise ValueError(f"only {len(of_digit)} examples of digit {digit}, need {per_class}")
        chosen.append(of_digit[:per_class])
    picked = torch.cat(chosen)
    return picked[torch.randperm(len(picked), generator=generator)]


def build_subset(
    out_dir: str | os.PathLike = mnist.SUBSET_DIR,
    root: str | os.PathLike | None = None,
    train_per_class: int = TRAIN_PER_CLASS,
    test_per_class: int = TEST_PER_CLASS,
    seed: int = SUBSET_SEED,
) -> dict[str, str]:
    """Write the subset's four ``.gz`` IDX files and ``SHA256SUMS``; returns name -> SHA-256."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sums: dict[str, str] = {}
    for split, per_class, offset in (("train", train_per_class, 0), ("test", test_per_class, 1)):
        images, labels = mnist.load_mnist(split, root=root, download=False)
        keep = balanced_indices(labels, per_class, seed + offset)
        image_name, label_name = mnist.SPLIT_FILES[split]
        for name, tensor in (
            (image_name, images[keep]),
            (label_name, labels[keep].to(torch.uint8)),
        ):
            path = mnist.write_idx(tensor, out / f"{name}.gz")
            sums[path.name] = mnist.sha256_of(path)
    lines = [f"{sha}  {name}" for name, sha in sorted(sums.items())]
    (out / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return sums
