"""mmcourse.fewlabels.image_text against independent references: the pasted digit found back
in the canvas's pixels, and the disjoint pool checked index by index and image by image
(SHA-256 of the pixels) against the bundled digits."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from mmcourse.casestudy import pretrained as casestudy_weights
from mmcourse.data import mnist, subset
from mmcourse.data.captions.layout import SLOT_X, SLOTS
from mmcourse.fewlabels import image_text, pretrained
from tests.conftest import full_mnist_root, needs_full_mnist

pytestmark = pytest.mark.usefixtures("one_thread")


def test_paste_on_canvas_puts_the_digit_at_its_own_size_in_the_middle_slot() -> None:
    digits = torch.randint(1, 256, (3, 28, 28), dtype=torch.uint8)
    canvases = image_text.paste_on_canvas(digits)
    assert canvases.shape == (3, 64, 64) and canvases.dtype == torch.uint8
    rows, cols = canvases[0].nonzero().unbind(1)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (18, 45, 18, 45)
    assert torch.equal(canvases[:, 18:46, 18:46], digits)
    assert int(canvases.sum(dtype=torch.int64)) == int(digits.sum(dtype=torch.int64))
    # the frame's centre, (18 + 45) / 2 = 31.5, lies within half a pixel of the slot's x = 32
    assert abs((18 + 45) / 2 - SLOT_X[SLOTS.index("middle")]) <= 0.5


def test_paste_on_canvas_rejects_what_is_not_a_batch_of_uint8_digits() -> None:
    with pytest.raises(ValueError, match="uint8"):
        image_text.paste_on_canvas(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        image_text.paste_on_canvas(torch.zeros(2, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        image_text.paste_on_canvas(torch.zeros(28, 28, dtype=torch.uint8))
    with pytest.raises(TypeError, match="digits"):
        image_text.paste_on_canvas([[0] * 28] * 28)


def test_disjoint_indices_avoid_the_bundled_digits_and_are_balanced() -> None:
    labels = torch.arange(60_000) % 10
    chosen = image_text.disjoint_indices(labels, per_class=500)
    bundled = subset.balanced_indices(labels, subset.TRAIN_PER_CLASS, subset.SUBSET_SEED)
    assert len(chosen) == 5000 == len(set(chosen.tolist()))
    assert not set(chosen.tolist()) & set(bundled.tolist())
    assert labels[chosen].bincount().tolist() == [500] * 10
    with pytest.raises(ValueError, match="60,000"):
        image_text.disjoint_indices(labels[:1000])


@needs_full_mnist
def test_the_disjoint_pool_shares_no_image_with_the_bundled_digits() -> None:
    pool, pool_labels = image_text.disjoint_pool(root=full_mnist_root())
    bundled, _ = mnist.load_subset("train")

    def hashes(images: torch.Tensor) -> set[str]:
        return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in images}

    assert len(pool) == 10_000 and pool_labels.bincount().tolist() == [1000] * 10
    assert not hashes(pool) & hashes(bundled)  # no byte-identical digit either


def test_the_committed_image_text_encoder_loads_and_its_log_names_its_digits() -> None:
    dual = pretrained.load_image_text()
    assert not dual.training and not any(p.requires_grad for p in dual.parameters())
    assert dual.vocab_size == len(casestudy_weights.vocabulary())
    log = json.loads(pretrained.IMAGE_TEXT_LOG.read_text())
    assert log["digits"] == 10_000 and log["digits_per_class"] == [1000] * 10
    assert log["epochs"] == pretrained.IMAGE_TEXT_EPOCHS == len(log["train_loss"])
    assert log["train_loss"][-1] < log["train_loss"][0] / 4
    assert log["sha256"] == mnist.sha256_of(pretrained.IMAGE_TEXT_FILE)
