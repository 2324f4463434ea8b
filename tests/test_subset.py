"""The bundled subset is rebuilt bit for bit from the raw MNIST files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmcourse.data import mnist, subset
from tests.conftest import full_mnist_root, needs_full_mnist


@needs_full_mnist
def test_rebuilding_the_subset_reproduces_it_bit_for_bit(tmp_path: Path) -> None:
    sums = subset.build_subset(tmp_path, root=full_mnist_root())
    for name in sums:
        assert (tmp_path / name).read_bytes() == (mnist.SUBSET_DIR / name).read_bytes(), name
    assert (tmp_path / "SHA256SUMS").read_text() == (mnist.SUBSET_DIR / "SHA256SUMS").read_text()


@needs_full_mnist
def test_subset_digits_come_from_the_right_split() -> None:
    """Every bundled digit is an original MNIST digit of the split it claims, with its label."""
    root = full_mnist_root()
    for split in mnist.SPLITS:
        full_images, full_labels = mnist.load_mnist(split, root=root)
        images, labels = mnist.load_subset(split)
        lookup = {bytes(img.numpy()): int(lab) for img, lab in zip(full_images, full_labels)}
        assert all(lookup.get(bytes(img.numpy())) == int(lab) for img, lab in zip(images, labels))
        assert len({bytes(img.numpy()) for img in images}) == len(images)  # no duplicates


def test_balanced_indices() -> None:
    labels = torch.arange(10).repeat_interleave(5)
    picked = subset.balanced_indices(labels, per_class=3, seed=0)
    assert torch.bincount(labels[picked], minlength=10).tolist() == [3] * 10
    assert len(set(picked.tolist())) == 30
    assert torch.equal(picked, subset.balanced_indices(labels, per_class=3, seed=0))
    with pytest.raises(ValueError, match="only 5 examples of digit 0, need 6"):
        subset.balanced_indices(labels, per_class=6, seed=0)
    with pytest.raises(ValueError, match="per_class must be positive"):
        subset.balanced_indices(labels, per_class=0, seed=0)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        subset.balanced_indices(labels[None], per_class=1, seed=0)
