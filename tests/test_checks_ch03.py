"""Self-checks of chapter 03 accept right answers and explain wrong ones."""

from __future__ import annotations

import pytest
import torch

from mmcourse.checks import ch03
from mmcourse.data import captions as C
from mmcourse.data import mnist
from mmcourse.text import Vocabulary


@pytest.fixture(scope="module")
def data() -> C.MNISTCaptions:
    return C.generate(200, "compositional", *mnist.load_subset("test"), seed=0)


def test_check_caption(data: C.MNISTCaptions) -> None:
    for template in range(4):
        assert ch03.check_caption(data, 0, data.captions[0][template])
    wrong = data.captions[1][0]
    assert not ch03.check_caption(data, 0, wrong) or data.descriptions(0) == data.descriptions(1)
    first = data.descriptions(0)[0]
    other = C.NUMBER_WORDS[(first.digit + 1) % 10]
    swapped = data.captions[0][0].replace(C.NUMBER_WORDS[first.digit], other, 1)
    result = ch03.check_caption(data, 0, swapped)
    assert not result and "digit" in result.message
    assert "grammar" in ch03.check_caption(data, 0, "seven").message
    assert not ch03.check_caption(data, 0, "")


def test_check_held_out_count(data: C.MNISTCaptions) -> None:
    expected = sum(
        1
        for i in range(len(data))
        if any(d == 7 and C.THICKNESSES[t] == "thick" for _, d, _, t, _ in data.items(i))
    )
    assert ch03.check_held_out_count(data, expected)
    assert not ch03.check_held_out_count(data, expected + 1)
    assert not ch03.check_held_out_count(data, "3")  # type: ignore[arg-type]


def test_check_pixel_stats(data: C.MNISTCaptions) -> None:
    pixels = data.images.double() / 255
    assert ch03.check_pixel_stats(data, pixels.mean().item(), pixels.std().item())
    assert "divide by 255" in ch03.check_pixel_stats(data, 20.0, 1.0).message
    assert not ch03.check_pixel_stats(data, pixels.mean().item(), 0.5)


def test_check_padding() -> None:
    vocab = Vocabulary.build(["a small one", "a large two on the left"])
    ids, lengths = vocab.encode_batch(["a small one", "a large two on the left"])
    padding = int(ids.numel() - lengths.sum())
    assert ch03.check_padding(ids, padding)
    assert not ch03.check_padding(ids, padding + 1)
    assert not ch03.check_padding(torch.zeros(3), 0)
