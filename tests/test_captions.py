"""MNIST-Captions, checked independently of the generator's own code.

Image measurements (ink, centroid, slant) are recomputed here with NumPy, and held-out
combinations are looked for both in the ground truth and in the caption text itself.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mmcourse.data import captions as C
from mmcourse.data import mnist
from mmcourse.vocab import Vocabulary, tokenize


@pytest.fixture(scope="module")
def pool() -> tuple[torch.Tensor, torch.Tensor]:
    return mnist.load_subset("train")


@pytest.fixture(scope="module")
def train(pool: tuple[torch.Tensor, torch.Tensor]) -> C.MNISTCaptions:
    return C.generate(1500, "train", *pool, seed=0)


def moments(image: np.ndarray) -> tuple[float, float, float]:
    """Centroid x, y and skew mu11/mu02 of one image, with pixel centres at integers."""
    image = image.astype(np.float64)
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    mass = image.sum()
    cx, cy = (image * xs).sum() / mass, (image * ys).sum() / mass
    mu11 = (image * (xs - cx) * (ys - cy)).sum() / mass
    mu02 = (image * (ys - cy) ** 2).sum() / mass
    return cx, cy, mu11 / mu02


def single_digit_layout(digits: list[int], slant: int, thickness: int = 1, size: int = 1):
    n = len(digits)
    empty = torch.full((n, 3), -1)
    layout = C.Layout(empty.clone(), empty.clone(), empty.clone(), empty.clone())
    layout.digits[:, 1] = torch.tensor(digits)
    layout.size[:, 1], layout.thickness[:, 1], layout.slant[:, 1] = size, thickness, slant
    return layout


def test_same_seed_same_bytes(pool) -> None:
    a = C.generate(200, "val", *pool, seed=5)
    b = C.generate(200, "val", *pool, seed=5)
    c = C.generate(200, "val", *pool, seed=6)
    assert torch.equal(a.images, b.images) and a.captions == b.captions and a.qa == b.qa
    assert not torch.equal(a.images, c.images)


def test_shapes_and_types(train: C.MNISTCaptions) -> None:
    assert train.images.shape == (1500, 64, 64) and train.images.dtype == torch.uint8
    assert train.float_images().shape == (1500, 1, 64, 64)
    assert train.centers.shape == (1500, 3, 2)
    counts = train.n_digits
    assert counts.min() == 1 and counts.max() == 3
    assert torch.bincount(counts)[1:].min() > 400  # one, two and three digits about equally
    assert all(len(refs) == C.N_TEMPLATES for refs in train.captions)
    assert repr(train) == "MNISTCaptions(split='train', canvases=1500)"
    item = train[3]
    assert item["captions"] == train.captions[3] and item["image"].shape == (64, 64)
    with pytest.raises(IndexError):
        train[1500]
    part = train.select([2, 0])
    assert torch.equal(part.images[1], train.images[0]) and part.captions[0] == train.captions[2]


def test_source_digits_have_the_labels_the_ground_truth_claims(pool, train) -> None:
    _, labels = pool
    present = train.layout.digits >= 0
    assert torch.equal(present, train.source >= 0)
    assert torch.equal(labels[train.source[present]], train.layout.digits[present])


def one_digit_each(digits: torch.Tensor, thickness: int, pen_width: float):
    """``compose``'s arguments for each MNIST digit drawn alone, large and upright, in the
    middle slot with a pen ``pen_width`` canvas pixels wide."""
    n = len(digits)
    slots = torch.zeros(n, 3, 28, 28, dtype=torch.uint8)
    slots[:, 1] = digits
    centers = torch.full((n, 3, 2), 32.0)
    widths = torch.full((n, 3), pen_width)
    return single_digit_layout([0] * n, slant=1, thickness=thickness), slots, centers, widths


def test_thick_digits_have_more_ink_than_their_thin_twins(pool) -> None:
    images, _ = pool
    digits = images[:300]
    ink = {
        word: C.compose(*one_digit_each(digits, index, width)).float().sum(dim=(1, 2)).numpy()
        for index, (word, width) in enumerate(zip(C.THICKNESSES, (1.2, 2.2, 3.6)))
    }
    assert (ink["thick"] > ink["normal"]).all()
    assert (ink["normal"] > ink["thin"]).all()
    # A pen three times as wide lays about three times the ink along the same centre line.
    assert 2.4 < np.median(ink["thick"] / ink["thin"]) < 3.6


def test_stroke_width_is_the_pen_width(pool) -> None:
    """Morpho-MNIST's thickness estimate, 2 * area / perimeter of the binarised drawing,
    recovers the pen's width in canvas pixels to within a fifth of a pixel, once the grid's
    staircase outline (4/pi longer than a smooth one, on average over directions) is allowed
    for."""
    images, _ = pool
    digits = images[:100]

    def width(pen: float) -> np.ndarray:
        drawn = C.compose(*one_digit_each(digits, 1, pen)) >= 128
        binary = drawn.numpy()
        area = binary.sum(axis=(1, 2))
        edges = (binary[:, 1:, :] != binary[:, :-1, :]).sum(axis=(1, 2)) + (
            binary[:, :, 1:] != binary[:, :, :-1]
        ).sum(axis=(1, 2))
        return 2 * area / edges * (4 / np.pi)  # a grid outline is 4/pi longer than a smooth one

    for pen in (1.2, 2.2, 3.6):
        assert abs(np.median(width(pen)) - pen) < 0.2, (pen, np.median(width(pen)))


def test_render_layout_redraws_with_the_same_class_and_compose_repeats_it(pool, train) -> None:
    images, labels = pool
    present = train.layout.digits >= 0
    assert torch.equal(labels[train.source[present]], train.layout.digits[present])
    again = C.compose(
        train.layout, images[train.source.clamp_min(0)], train.centers, train.pen_width
    )
    assert torch.equal(again, train.images)
    with pytest.raises(ValueError, match="pen_width must be float"):
        C.compose(train.layout, images[train.source.clamp_min(0)], train.centers, train.source)
    off = train.centers.clone()
    off[present] = -5.0
    with pytest.raises(ValueError, match="on the canvas"):
        C.compose(train.layout, images[train.source.clamp_min(0)], off, train.pen_width)


def test_pen_widths_lie_in_the_band_of_the_word(train) -> None:
    from mmcourse.data.pen import PEN_BANDS

    present = train.layout.digits >= 0
    assert torch.isnan(train.pen_width[~present]).all()
    for index, word in enumerate(C.THICKNESSES):
        low, high = PEN_BANDS[word]
        widths = train.pen_width[present & (train.layout.thickness == index)]
        assert len(widths) > 300 and widths.min() >= low and widths.max() <= high


@pytest.mark.parametrize("slant", ["left", "upright", "right"])
def test_measured_slant_has_the_sign_the_caption_claims(pool, slant: str) -> None:
    images, labels = pool
    generator = torch.Generator().manual_seed(1)
    layout = single_digit_layout([d % 10 for d in range(100)], C.SLANTS.index(slant))
    canvases, _, _, _ = C.render_layout(layout, images, labels, generator)
    skews = np.array([moments(img.numpy())[2] for img in canvases])
    # Image y grows downwards: a digit whose top leans right has x falling as y grows.
    if slant == "right":
        assert (skews < -0.15).all()
    elif slant == "left":
        assert (skews > 0.15).all()
    else:
        assert (np.abs(skews) < 0.1).all()  # the ink's slant, not the centre line's


def test_positions_match_centroids(pool, train) -> None:
    images, labels = pool
    layout = single_digit_layout([d % 10 for d in range(60)], slant=1)
    for slot in (0, 2):  # move the digits to the left and right slots too
        if slot == 0:
            layout.digits[:20, 0], layout.digits[:20, 1] = layout.digits[:20, 1], -1
        else:
            layout.digits[20:40, 2], layout.digits[20:40, 1] = layout.digits[20:40, 1], -1
    for field in ("size", "thickness", "slant"):
        getattr(layout, field)[layout.digits < 0] = -1
        getattr(layout, field)[layout.digits >= 0] = 1
    canvases, centers, _, _ = C.render_layout(layout, images, labels, torch.Generator())
    for canvas, center, digits in zip(canvases, centers, layout.digits):
        slot = int((digits >= 0).nonzero())
        cx, cy, _ = moments(canvas.numpy())
        # centers are the centre line's centre of mass; round pen ends and ink that saturates
        # where strokes cross move the ink's by about a pixel at most.
        assert abs(cx - center[slot, 0].item()) < 1.2 and abs(cy - center[slot, 1].item()) < 1.2
        assert abs(cx - C.SLOT_X[slot]) < 3
    # On real multi-digit canvases each centre lies in its slot's third of the canvas.
    x = train.centers[..., 0]
    for slot in range(3):
        here = x[:, slot][~torch.isnan(x[:, slot])]
        assert ((here > slot * 64 / 3) & (here < (slot + 1) * 64 / 3)).all()


def test_every_caption_parses_back_to_the_ground_truth(train) -> None:
    for index in range(len(train)):
        truth = train.descriptions(index)
        for caption in train.captions[index]:
            assert C.parse_caption(caption) == truth, caption


def test_parser_on_hand_written_captions() -> None:
    D = C.DigitDescription
    assert C.parse_caption("a small thick seven leaning right on the left") == [
        D("left", 7, "small", "thick", "right")
    ]
    assert C.parse_caption(
        "two digits : a big one tilted left in the middle and a large eight on the right"
    ) == [D("middle", 1, "large", "normal", "left"), D("right", 8, "large", "normal", "upright")]
    assert C.parse_caption("on the right is a large thin zero , on the left is a small two") == [
        D("left", 2, "small", "normal", "upright"),
        D("right", 0, "large", "thin", "upright"),
    ]
    for bad in [
        "a seven on the left",  # no size
        "a small seven",  # no position
        "a small seven on the left and a big two on the left",  # two digits in one slot
        "a small seven on the left purple",  # a word outside the grammar
        "three digits : a small seven on the left and a big two on the right",  # miscounted
        "one digits : a small seven on the left",  # the count's noun disagrees
        "two : a small seven on the left and a big two on the right",  # no noun
        "",
    ]:
        with pytest.raises(ValueError):
            C.parse_caption(bad)


def test_captions_are_long_enough_and_the_vocabulary_small(train) -> None:
    texts = [caption for refs in train.captions for caption in refs]
    assert min(len(tokenize(t)) for t in texts) >= 5
    vocab = Vocabulary.build(texts)
    assert len(vocab) - 4 <= 60
    for number in C.NUMBER_WORDS:
        assert number in vocab
    assert len({tuple(refs) for refs in train.captions[:50]}) > 45
    assert all(len(set(refs)) == C.N_TEMPLATES for refs in train.captions)  # real paraphrases


def _held_out_in_text(caption: str) -> bool:
    """Look for the held-out combinations in the words themselves."""
    text = " ".join(tokenize(caption))
    phrases = re.split(r" , | and (?!a |an )|: ", text)
    number = "(" + "|".join(C.NUMBER_WORDS) + ")"
    found = False
    for phrase in phrases:
        if re.search(r"\bthick seven\b", phrase) or re.search(
            r"\bsmall( thin| thick)? four\b", phrase
        ):
            found = True
        if re.search(r"\btwo (leaning|tilted) left\b", phrase):
            found = True
    described = text.split(" : ", 1)[-1]  # "two digits : ..." counts, it names no digit
    words = set(re.findall(number, described))
    if {"three", "eight"} <= words or {"one", "six"} <= words:
        found = True
    return found


def test_no_held_out_combination_leaks_into_training(pool) -> None:
    data = C.generate(3000, "train", *pool, seed=1)
    spec = C.HOLDOUT
    for index in range(len(data)):
        items = data.items(index)
        digits = {d for _, d, _, _, _ in items}
        for _, d, s, t, sl in items:
            values = {"size": C.SIZES[s], "thickness": C.THICKNESSES[t], "slant": C.SLANTS[sl]}
            for digit, attribute, value in spec.digit_attributes:
                assert not (d == digit and values[attribute] == value)
        for a, b in spec.digit_pairs:
            assert not {a, b} <= digits
        assert not any(_held_out_in_text(c) for c in data.captions[index])


def test_compositional_split_holds_only_held_out_combinations() -> None:
    images, labels = mnist.load_subset("test")
    data = C.generate(500, "compositional", images, labels, seed=0)
    assert all(any(_held_out_in_text(c) for c in refs) for refs in data.captions)
    kinds = set()
    for index in range(len(data)):
        for _, d, _, t, sl in data.items(index):
            if d == 7 and C.THICKNESSES[t] == "thick":
                kinds.add("thick seven")
            if d == 2 and C.SLANTS[sl] == "left":
                kinds.add("two leaning left")
    assert kinds == {"thick seven", "two leaning left"}


def test_val_and_test_draw_from_disjoint_halves_of_the_test_digits() -> None:
    val_images, val_labels = C.digit_pool("val", profile="fast")
    test_images, test_labels = C.digit_pool("test", profile="fast")
    assert len(val_images) == len(test_images) == 1000
    assert torch.bincount(val_labels).tolist() == [100] * 10
    val_keys = {bytes(img.numpy()) for img in val_images}
    assert not val_keys & {bytes(img.numpy()) for img in test_images}
    train_keys = {bytes(img.numpy()) for img in C.digit_pool("train", profile="fast")[0]}
    assert not val_keys & train_keys


def test_questions_and_answers_agree_with_the_ground_truth(train) -> None:
    for index in range(200):
        digits = [d for d in train.layout.digits[index].tolist()]
        qa = {question: answer for _, question, answer in train.qa[index]}
        present = [d for d in digits if d >= 0]
        assert qa["how many digits are there ?"] == C.NUMBER_WORDS[len(present)]
        assert qa["what do the digits add up to ?"] == str(sum(present))
        left = digits[0]
        assert qa["which digit is on the left ?"] == (C.NUMBER_WORDS[left] if left >= 0 else "none")
        thick = (train.layout.thickness[index] == 2).any().item()
        assert qa["is any digit thick ?"] == ("yes" if thick else "no")
        assert all(answer in C.ANSWERS for answer in qa.values())
        assert {t for t, _, _ in train.qa[index]} <= set(C.QUESTION_TYPES)


def test_make_mnist_captions_uses_profile_sizes() -> None:
    data = C.make_mnist_captions("test", n=50, profile="fast")
    assert len(data) == 50 and data.split == "test"
    assert C.DEFAULT_SIZES["fast"]["train"] >= 10_000


def test_min_and_max_digits(pool) -> None:
    data = C.generate(100, "train", *pool, min_digits=2, max_digits=2)
    assert (data.n_digits == 2).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: C.generate(10, "dev", *p), "split must be one of"),
        (lambda p: C.generate(0, "train", *p), "n must be a positive int"),
        (lambda p: C.generate(10, "train", p[0].float(), p[1]), "pool_images must be uint8"),
        (lambda p: C.generate(10, "train", p[0][:, :20], p[1]), r"\(M, 28, 28\)"),
        (lambda p: C.generate(10, "train", p[0], p[1][:5]), "pool_labels must have shape"),
        (lambda p: C.generate(10, "train", p[0], p[1] + 10), "digits 0..9"),
        (
            lambda p: C.generate(10, "train", p[0][p[1] != 3], p[1][p[1] != 3]),
            r"no example of digit\(s\) \[3\]",
        ),
        (lambda p: C.generate(10, "train", *p, max_digits=4), "min_digits <= max_digits <= 3"),
        (lambda p: C.describe([(0, 1, 0, 1, 1)], template=9), "template must be in"),
        (lambda p: C.describe([], template=0), "1 to 3 digits"),
        (lambda p: C.Holdout(digit_attributes=((7, "colour", "red"),)), "bad held-out"),
        (lambda p: C.Holdout(digit_attributes=((7, "size", "huge"),)), "not a value of size"),
        (lambda p: C.Holdout(digit_pairs=((3, 3),)), "bad held-out digit pair"),
        (
            lambda p: C.compose(
                C.Layout(*[torch.zeros(1, 3, dtype=torch.long)] * 4),
                p[0][:1],
                torch.zeros(1, 3, 2),
                torch.ones(1, 3),
            ),
            "digits must be uint8",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(pool, call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(pool)


@pytest.mark.parametrize(
    ("chunk", "kind", "message"),
    [
        (0, ValueError, r"chunk must be a positive int, got 0"),
        (-5, ValueError, r"chunk must be a positive int, got -5"),
        (2.5, TypeError, r"chunk must be a positive int, got float 2.5"),
        ("64", TypeError, r"chunk must be a positive int, got str '64'"),
        (True, TypeError, r"chunk must be a positive int, got bool True"),
    ],
)
def test_generate_refuses_a_bad_chunk(pool, chunk, kind, message: str) -> None:
    with pytest.raises(kind, match=message):
        C.generate(10, "train", *pool, chunk=chunk)


def test_generate_refuses_non_int_sizes(pool) -> None:
    with pytest.raises(TypeError, match=r"n must be a positive int, got float 10.0"):
        C.generate(10.0, "train", *pool)
    with pytest.raises(TypeError, match=r"max_digits must be an int in 1..3, got 2.0"):
        C.generate(10, "train", *pool, max_digits=2.0)


GOOD_ITEM = (0, 7, 1, 2, 0)  # slot, digit, size, thickness, slant


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([(3, 7, 1, 2, 0)], r"the slot of items\[0\] must be an int in 0..2, got 3"),
        ([(-1, 7, 1, 2, 0)], r"the slot of items\[0\] must be an int in 0..2, got -1"),
        ([GOOD_ITEM, (1, 12, 0, 0, 0)], r"the digit of items\[1\] must be an int in 0..9, got 12"),
        ([(0, -1, 0, 0, 0)], r"the digit of items\[0\] must be an int in 0..9, got -1"),
        ([(0, 7, 2, 0, 0)], r"the size of items\[0\] must be an int in 0..1, got 2"),
        ([(0, 7, -1, 0, 0)], r"the size of items\[0\] must be an int in 0..1, got -1"),
        ([(0, 7, 0, 3, 0)], r"the thickness of items\[0\] must be an int in 0..2, got 3"),
        ([(0, 7, 0, 0, 3)], r"the slant of items\[0\] must be an int in 0..2, got 3"),
        ([GOOD_ITEM, GOOD_ITEM], r"each slot at most once, left to right.*got slots \[0, 0\]"),
        ([(2, 1, 0, 0, 0), GOOD_ITEM], r"left to right.*got slots \[2, 0\]"),
        ([GOOD_ITEM] * 4, r"a canvas holds 1 to 3 digits, got 4"),
    ],
)
def test_describe_and_questions_refuse_out_of_range_items(items, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        C.describe(items, template=0)
    with pytest.raises(ValueError, match=message):
        C.questions_for(items)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("0 7 1 2 0", r"items must be a list of \(slot, digit, size, thickness, slant\) tuples"),
        ([(0, 7, 1, 2)], r"items\[0\] must be a tuple \(slot, digit, size, thickness, slant\)"),
        ([(0, 7.0, 1, 2, 0)], r"the digit of items\[0\] must be an int in 0..9, got float 7.0"),
        ([(0, 7, True, 2, 0)], r"the size of items\[0\] must be an int in 0..1, got bool True"),
    ],
)
def test_describe_and_questions_refuse_items_of_the_wrong_type(items, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        C.describe(items, template=0)
    with pytest.raises(TypeError, match=message):
        C.questions_for(items)


def test_describe_refuses_a_bad_template() -> None:
    with pytest.raises(ValueError, match=r"template must be in 0..3, got -1"):
        C.describe([GOOD_ITEM], template=-1)
    with pytest.raises(TypeError, match=r"template must be in 0..3, got 1.0"):
        C.describe([GOOD_ITEM], template=1.0)


def test_questions_for_an_out_of_range_slot_no_longer_answers_one_digit() -> None:
    """It used to count "one" digit while answering "none" for every slot."""
    with pytest.raises(ValueError, match=r"the slot of items\[0\] must be an int in 0..2, got 5"):
        C.questions_for([(5, 3, 0, 1, 1)])


def test_impossible_holdout_is_reported(pool) -> None:
    everything = C.Holdout(
        digit_attributes=tuple((d, "size", s) for d in range(10) for s in C.SIZES)
    )
    with pytest.raises(ValueError, match="could not remove the held-out combinations"):
        C.generate(10, "train", *pool, holdout=everything)


def test_repair_keeps_digits_balanced(pool) -> None:
    """Redrawing only the held-out part keeps every digit at about a tenth of all digits."""
    data = C.generate(6000, "train", *pool, seed=3)
    present = data.layout.digits[data.layout.digits >= 0]
    share = present.bincount(minlength=10).float() / len(present)
    assert share.min() > 0.085 and share.max() < 0.11


def test_canvas_statistics_are_the_training_canvases_own() -> None:
    """CANVAS_MEAN/STD match the fast training split, recomputed with NumPy in float64."""
    pixels = C.make_mnist_captions("train").images.numpy().astype(np.float64) / 255
    assert abs(pixels.mean() - C.CANVAS_MEAN) < 5e-4
    assert abs(pixels.std(ddof=1) - C.CANVAS_STD) < 5e-4
    standardised = C.make_mnist_captions("train", n=2000).float_images().numpy()
    assert abs(standardised.mean()) < 0.05 and abs(standardised.std() - 1) < 0.05


def test_each_canvas_is_its_digits_drawn_alone_laid_over_one_another(pool, train) -> None:
    part = train.select(torch.arange(200))
    alone = C.draw_alone(part, pool[0])
    rows = (part.layout.digits >= 0).nonzero()[:, 0]
    assert len(alone) == len(rows) == int(part.n_digits.sum())
    overlaid = torch.zeros_like(part.images)
    for row, image in zip(rows.tolist(), alone):
        overlaid[row] = torch.maximum(overlaid[row], image)
    assert torch.equal(overlaid, part.images)
    assert (alone.flatten(1).amax(dim=1) > 200).all()  # every digit alone has its ink


def test_cut_out_resamples_each_digit_drawn_alone_as_scipy_does(pool, train) -> None:
    from scipy.ndimage import map_coordinates

    part = train.select(torch.arange(40))
    digits = C.cut_out(part, pool[0])
    alone = C.draw_alone(part, pool[0]).numpy().astype(np.float64)
    present = part.layout.digits >= 0
    assert digits.dtype == torch.uint8 and digits.shape == (int(present.sum()), 28, 28)
    centres = part.centers[present].numpy()
    scales = np.array(C.SCALES)[part.layout.size[present].numpy()]
    steps = np.arange(28) - 13.5
    for i, ((cx, cy), scale) in enumerate(zip(centres, scales)):
        ys, xs = np.meshgrid(cy + scale * steps, cx + scale * steps, indexing="ij")
        expected = map_coordinates(alone[i], [ys, xs], order=1, mode="grid-constant")
        assert np.abs(digits[i].numpy() - expected).max() <= 1.0, i  # uint8 rounding
    # Back in MNIST's frame: the ink's centre of mass is near the frame's middle.
    ink = digits.double()
    grid = torch.arange(28, dtype=torch.float64)
    mass = ink.sum(dim=(1, 2))
    cx = (ink.sum(dim=1) * grid).sum(dim=1) / mass
    cy = (ink.sum(dim=2) * grid).sum(dim=1) / mass
    assert ((cx - 13.5).abs() < 1.5).all() and ((cy - 13.5).abs() < 1.5).all()


def test_stroke_width_reads_bars_of_known_width() -> None:
    from mmcourse.data.shapes import stroke_width

    bars = torch.zeros(4, 24, 24, dtype=torch.uint8)
    for index, width in enumerate((1, 2, 3, 5)):
        bars[index, 3:21, 5 : 5 + width] = 255  # vertical bars
    bars[3] = bars[3].T.contiguous()  # and one lying down
    assert stroke_width(bars).tolist() == pytest.approx([1, 2, 3, 5], abs=0.25)
    assert stroke_width(torch.zeros(1, 5, 5, dtype=torch.uint8)).tolist() == [0.0]
    with pytest.raises(ValueError, match="uint8"):
        stroke_width(torch.zeros(1, 5, 5))
