"""Self-checks of chapter 03 accept right answers and explain wrong ones."""

from __future__ import annotations

import pytest
import torch
from test_checks_core import assert_hides

from mmcourse.checks import ch03
from mmcourse.data import captions as C
from mmcourse.data import mnist


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
    assert C.NUMBER_WORDS[first.digit] not in result.message  # the true digit is not told
    assert "grammar" in ch03.check_caption(data, 0, "seven").message
    assert not ch03.check_caption(data, 0, "")


def _canvas(data: C.MNISTCaptions, n_digits: int, **attributes: str) -> int:
    """The first canvas with ``n_digits`` digits whose first digit has these attributes."""
    return next(
        i
        for i in range(len(data))
        if len(data.descriptions(i)) == n_digits
        and all(getattr(data.descriptions(i)[0], k) == v for k, v in attributes.items())
    )


def test_check_caption_never_tells_the_true_attribute(data: C.MNISTCaptions) -> None:
    index = _canvas(data, 2, size="small", thickness="normal", slant="upright")
    first, second = data.descriptions(index)
    caption = data.captions[index][0]
    digit = C.NUMBER_WORDS[first.digit]
    big = ch03.check_caption(data, index, caption.replace(f"small {digit}", f"large {digit}", 1))
    assert "size of the digit" in big.message and "'large'" in big.message
    assert "'small'" not in big.message
    thick = ch03.check_caption(
        data, index, caption.replace(f"small {digit}", f"small thick {digit}", 1)
    )
    assert "thickness" in thick.message and "'thick'" in thick.message
    assert "stroke" in thick.message
    leaning = ch03.check_caption(data, index, caption.replace(digit, f"{digit} leaning left", 1))
    assert "slant" in leaning.message and "upright" not in leaning.message.split(":")[0]
    only_one = ch03.check_caption(data, index, C.describe(data.items(index)[:1], template=0))
    assert not only_one and "leaves out a digit" in only_one.message
    empty_slot = next(s for s in C.SLOTS if s not in (first.slot, second.slot))
    extra = C.describe(sorted([*data.items(index), (C.SLOTS.index(empty_slot), 1, 0, 1, 1)]), 0)
    result = ch03.check_caption(data, index, extra)
    assert not result and "there is no digit" in result.message


def _thick_sevens_by_hand(data: C.MNISTCaptions) -> tuple[int, int, int]:
    """(canvases with a thick seven, thick sevens, canvases with any seven), by looping."""
    canvases = digits = any_seven = 0
    for i in range(len(data)):
        items = data.items(i)
        found = sum(d == 7 and C.THICKNESSES[t] == "thick" for _, d, _, t, _ in items)
        canvases += found > 0
        digits += found
        any_seven += any(d == 7 for _, d, _, _, _ in items)
    return canvases, digits, any_seven


def test_check_held_out_count(data: C.MNISTCaptions) -> None:
    expected, _, _ = _thick_sevens_by_hand(data)
    assert ch03.check_held_out_count(data, expected)
    assert ch03.check_held_out_count(data, float(expected))
    assert not ch03.check_held_out_count(data, expected + 1)
    assert not ch03.check_held_out_count(data, "3")  # type: ignore[arg-type]


def test_check_held_out_count_hides_the_answer_and_names_the_slip(
    data: C.MNISTCaptions,
) -> None:
    expected, digits, any_seven = _thick_sevens_by_hand(data)
    for guess in (0, 1, expected - 1, expected + 1, 2 * expected, len(data)):
        assert_hides(ch03.check_held_out_count(data, guess), expected)
    assert "placeholder" in str(ch03.check_held_out_count(data, 0))
    assert "too high" in str(ch03.check_held_out_count(data, expected + 1))
    assert "too low" in str(ch03.check_held_out_count(data, expected - 1))
    assert "every seven" in str(ch03.check_held_out_count(data, any_seven))
    assert "number of canvases" in str(ch03.check_held_out_count(data, len(data)))
    if digits != expected:  # some canvas holds two thick sevens
        assert "count the canvases" in str(ch03.check_held_out_count(data, digits))
    assert "whole number, got str" in str(ch03.check_held_out_count(data, "3"))  # type: ignore[arg-type]
    assert "whole number" in str(ch03.check_held_out_count(data, 2.5))  # type: ignore[arg-type]


def test_check_held_out_count_names_each_slip_on_a_layout_made_by_hand() -> None:
    """Six canvases (T thick, t thin, n normal): [7T 7T], [3t 7T], [7t], [7n 1T], [2T], [5T].

    Canvases with a thick seven: 2. Thick sevens: 3. Canvases with a seven: 4. Canvases with a
    thick digit: 5. Thick sevens in the first slot: 1.
    """
    t, n, thick = (C.THICKNESSES.index(w) for w in ("thin", "normal", "thick"))
    layout = C.Layout(
        digits=torch.tensor(
            [[7, 7, -1], [3, 7, -1], [7, -1, -1], [7, 1, -1], [2, -1, -1], [-1, -1, 5]]
        ),
        size=torch.zeros(6, 3, dtype=torch.long),
        thickness=torch.tensor(
            [
                [thick, thick, -1],
                [t, thick, -1],
                [t, -1, -1],
                [n, thick, -1],
                [thick, -1, -1],
                [-1, -1, thick],
            ]
        ),
        slant=torch.zeros(6, 3, dtype=torch.long),
    )
    data = C.MNISTCaptions(
        "train",
        torch.zeros(6, 64, 64, dtype=torch.uint8),
        layout,
        torch.zeros(6, 3, 2),
        torch.zeros(6, 3, dtype=torch.long),
        torch.full((6, 3), 2.0),
        [],
        [],
    )
    assert ch03.check_held_out_count(data, 2)
    for guess, hint in (
        (3, "count the canvases that hold one"),
        (4, "counts every seven"),
        (5, "counts every thick digit"),
        (1, "first slot only"),
        (6, "number of canvases of the whole split"),
    ):
        result = ch03.check_held_out_count(data, guess)
        assert hint in str(result), result
        assert_hides(result, 2)


def test_check_pixel_stats(data: C.MNISTCaptions) -> None:
    pixels = data.images.double() / 255
    assert ch03.check_pixel_stats(data, pixels.mean().item(), pixels.std().item())
    assert "divide by 255" in ch03.check_pixel_stats(data, 20.0, 1.0).message
    assert not ch03.check_pixel_stats(data, pixels.mean().item(), 0.5)


def test_check_pixel_stats_hides_the_answer_and_names_the_slip(data: C.MNISTCaptions) -> None:
    pixels = data.images.double().flatten() / 255
    n = pixels.numel()
    mean = pixels.sum().item() / n
    std = ((pixels - mean).pow(2).sum().item() / (n - 1)) ** 0.5  # the sample std, by hand
    result = ch03.check_pixel_stats(data, 0.0, 0.0)
    assert_hides(result, mean, std)
    assert "mean is still 0" in str(result) and "placeholder" in str(result)
    for got_mean, got_std in ((mean * 1.1, std), (mean, 0.0), (mean, std * 1.1), (mean, std * 0.9)):
        assert_hides(ch03.check_pixel_stats(data, got_mean, got_std), mean, std)
    assert "mean is too high" in str(ch03.check_pixel_stats(data, mean * 1.1, std))
    assert "the mean is right, but std is too low" in str(
        ch03.check_pixel_stats(data, mean, std * 0.9)
    )
    variance = ch03.check_pixel_stats(data, mean, std**2)
    assert_hides(variance, mean, std)
    assert "variance" in str(variance) and "square root" in str(variance)
    assert "swapped" in str(ch03.check_pixel_stats(data, std, mean))
    per_canvas = (data.images.double() / 255).flatten(1).std(dim=1).mean().item()
    assert "std of each canvas" in str(ch03.check_pixel_stats(data, mean, per_canvas))
    assert "should be a number, got str" in str(ch03.check_pixel_stats(data, "0.04", std))
    good = ch03.check_pixel_stats(data, mean, std)
    assert good and f"mean {mean:.4f}, std {std:.4f}" in str(good)
