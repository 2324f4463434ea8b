"""Digits drawn again with a pen (mmcourse.data.pen), measured independently of its code.

The generator never measures a stroke: it *sets* the pen's width. Here each drawing is measured
from its pixels alone with ``tests/test_thickness.py``'s ``stroke_thickness`` (twice the mean
distance to the background along the ridge of a 4x upsampling, as Morpho-MNIST measures it),
pieces and loops with ``scipy.ndimage.label`` written out here, and the thickness word is read
back with two cut points calibrated on drawings of MNIST's *training* digits, then scored on
drawings of its *test* digits.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from mmcourse.data import captions as C
from mmcourse.data import mnist
from mmcourse.data import pen as P
from mmcourse.data.shapes import count_loops, count_pieces
from tests.test_thickness import stroke_thickness

SIZES = dict(zip(C.SIZES, C.SCALES))  # the dataset's own sizes
SHEARS = (-0.3, 0.0, 0.3)
LOOPS = {0: 1, 6: 1, 8: 2, 9: 1}  # the loops a closed 0, 6, 8 or 9 has
EIGHT = np.ones((3, 3), dtype=bool)
FOUR = ndimage.generate_binary_structure(2, 1)


def pieces_of(binary: np.ndarray) -> int:
    return ndimage.label(binary, structure=EIGHT)[1]


def loops_of(binary: np.ndarray, min_area: int = 1) -> int:
    """Background pockets (4-connected) not joined to the border, of ``min_area`` or more."""
    labels, n = ndimage.label(np.pad(~binary, 1, constant_values=True), structure=FOUR)
    areas = np.bincount(labels.ravel())[1:]
    outside = labels[0, 0]
    return int(
        sum(1 for label in range(1, n + 1) if label != outside and areas[label - 1] >= min_area)
    )


def draw(pool: str, seed: int, n: int) -> dict[str, np.ndarray]:
    """``n`` pool digits, each drawn with a random size, slant and word, redrawn where faulty."""
    images, labels = mnist.load_digits(pool, profile="fast")
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(images), (n,), generator=g)
    size = torch.randint(0, 2, (n,), generator=g)
    scale = torch.tensor(list(SIZES.values()))[size]
    shear = torch.tensor(SHEARS)[torch.randint(0, 3, (n,), generator=g)]
    word = torch.randint(0, 3, (n,), generator=g)
    width = P.pen_widths(word, g)
    centre = 31.5 + torch.rand(n, 2, generator=g)
    kinds = P.pool_kinds(images, labels)
    windows, _, final = P.draw_legibly(images, kinds, picks, (scale, shear, centre, width), g)
    drawn = [w.numpy() for w in windows]
    return {
        "size": size.numpy(),
        "word": word.numpy(),
        "width": width.numpy(),
        "label": labels[final].numpy(),
        "source": [images[i].numpy() >= 128 for i in final.tolist()],
        "thickness": np.array([stroke_thickness(w) for w in drawn]),
        "binary": [w >= w.max() / 2 for w in drawn],
    }


@pytest.fixture(scope="module")
def calibration() -> dict[str, np.ndarray]:
    return draw("train", seed=5, n=1500)


@pytest.fixture(scope="module")
def drawings() -> dict[str, np.ndarray]:
    return draw("test", seed=1, n=1500)


def cut_points(data: dict[str, np.ndarray], size: int) -> tuple[float, float]:
    """The two cut points that read the word best from the measured thickness (each
    candidate midway between neighbouring measured values)."""
    m = data["size"] == size
    thickness, word = data["thickness"][m], data["word"][m]
    values = np.unique(thickness)
    candidates = ((values[1:] + values[:-1]) / 2)[:: max(1, len(values) // 200)]
    scores = {
        (low, high): np.mean(np.digitize(thickness, (low, high)) == word)
        for i, low in enumerate(candidates)
        for high in candidates[i:]
    }
    return max(scores, key=scores.get)


@pytest.mark.parametrize("size", [0, 1], ids=list(SIZES))
def test_the_thickness_word_is_read_from_the_pixels_alone(calibration, drawings, size) -> None:
    cuts = cut_points(calibration, size)
    m = drawings["size"] == size
    read = np.digitize(drawings["thickness"][m], cuts)
    accuracy = float(np.mean(read == drawings["word"][m]))
    assert accuracy >= 0.99, f"{list(SIZES)[size]} digits: {accuracy:.4f} read right, cuts {cuts}"


def test_the_measured_thickness_grows_with_the_pen(drawings) -> None:
    """Within each size, the measured thickness follows the pen: rank correlation > 0.9."""
    for size in (0, 1):
        m = drawings["size"] == size
        pen, measured = drawings["width"][m], drawings["thickness"][m]
        ranks = [np.argsort(np.argsort(x)) for x in (pen, measured)]
        assert np.corrcoef(*ranks)[0, 1] > 0.9


def test_thin_digits_are_in_pieces_no_more_often_than_mnist(drawings) -> None:
    images, _ = mnist.load_digits("test", profile="fast")
    mnist_rate = np.mean([pieces_of(image.numpy() >= 128) > 1 for image in images])
    thin = drawings["word"] == 0
    drawn_rate = np.mean([pieces_of(b) > 1 for b, t in zip(drawings["binary"], thin) if t])
    assert drawn_rate <= mnist_rate + 0.02, (drawn_rate, mnist_rate)


@pytest.mark.parametrize("digit", sorted(LOOPS))
def test_loops_are_kept_as_often_as_in_the_digits_drawn(drawings, digit) -> None:
    """A loop of the MNIST digit (a hole of MIN_LOOP_AREA pixels or more) is still there in
    the drawing, as often within two points."""
    need = LOOPS[digit]
    chosen = [i for i, label in enumerate(drawings["label"]) if label == digit]
    source = np.mean([loops_of(drawings["source"][i], P.MIN_LOOP_AREA) >= need for i in chosen])
    drawn = np.mean([loops_of(drawings["binary"][i]) >= need for i in chosen])
    assert abs(drawn - source) <= 0.02, (digit, drawn, source)


def test_a_vertical_bar_holds_the_pens_width_of_ink_across_each_row() -> None:
    bar = torch.zeros(1, 28, 28, dtype=torch.uint8)
    bar[0, 5:23, 13:15] = 255
    for width in (1.0, 1.7, 2.4, 3.5):
        windows, _ = P.draw_with_pen(
            bar,
            torch.tensor([0.9]),
            torch.tensor([0.0]),
            torch.tensor([[20.0, 20.0]]),
            torch.tensor([width]),
        )
        assert windows[0, 16].sum().item() == pytest.approx(width, abs=0.02)
        assert pieces_of(windows[0].numpy() >= 0.5) == 1


def test_the_window_follows_the_centre_and_the_slant_shears_the_digit() -> None:
    bar = torch.zeros(1, 28, 28, dtype=torch.uint8)
    bar[0, 5:23, 13:15] = 255
    centre = torch.tensor([[40.3, 25.8]])
    upright, corner = P.draw_with_pen(
        bar, torch.tensor([0.9]), torch.tensor([0.0]), centre, torch.tensor([2.0])
    )
    assert corner.tolist() == [[40 - P.WINDOW // 2, 25 - P.WINDOW // 2]]
    ys, xs = np.nonzero(upright[0].numpy())
    weights = upright[0].numpy()[ys, xs]
    assert np.average(xs, weights=weights) + corner[0, 0].item() == pytest.approx(40.3, abs=0.3)
    leaning, _ = P.draw_with_pen(
        bar, torch.tensor([0.9]), torch.tensor([0.3]), centre, torch.tensor([2.0])
    )
    top, bottom = leaning[0, 12].argmax().item(), leaning[0, 21].argmax().item()
    assert top > bottom  # the top leans right (x grows to the right, y down)


def test_pieces_and_loops_by_hand() -> None:
    shapes = torch.zeros(3, 7, 7, dtype=torch.bool)
    shapes[0, 1:6, 1:6] = True
    shapes[0, 3, 3] = False  # a square with one hole
    shapes[1, 1, 1] = shapes[1, 2, 2] = shapes[1, 5, 5] = True  # a diagonal pair and a dot
    shapes[2, 1:6, 1:6] = True
    shapes[2, 2:5, 2:5] = False  # a ring with a 3x3 hole
    assert count_pieces(shapes).tolist() == [pieces_of(s.numpy()) for s in shapes] == [1, 2, 1]
    assert count_loops(shapes).tolist() == [1, 0, 1]
    assert count_loops(shapes, min_area=2).tolist() == [0, 0, 1]


def test_a_faulty_drawing_is_recognised() -> None:
    ring = torch.zeros(1, 28, 28, dtype=torch.uint8)
    ring[0, 9:19, 9:19] = 255
    ring[0, 12:16, 12:16] = 0  # an "0" with a 4x4 loop
    small = (torch.tensor([0.6]), torch.tensor([0.0]), torch.tensor([[20.0, 20.0]]))
    fine, _ = P.draw_with_pen(ring, *small, torch.tensor([1.2]))
    filled, _ = P.draw_with_pen(ring, *small, torch.tensor([3.8]))
    assert P.drawing_faults(fine, ring).tolist() == [False]
    assert P.drawing_faults(filled, ring).tolist() == [True]  # the wide pen fills the loop


def test_redrawing_keeps_the_class_and_is_deterministic() -> None:
    images, labels = mnist.load_digits("test", profile="fast")
    kinds = P.pool_kinds(images, labels)
    n = 200
    picks = torch.arange(n)
    place = (torch.full((n,), 0.6), torch.zeros(n), torch.full((n, 2), 20.0), torch.full((n,), 3.7))
    first = P.draw_legibly(images, kinds, picks, place, torch.Generator().manual_seed(0))
    again = P.draw_legibly(images, kinds, picks, place, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    final = first[2]
    assert (final != picks).any()  # a small digit with the widest pen needs some redraws
    assert torch.equal(kinds[final], kinds[picks])  # same class, same loops


def test_bad_arguments_are_named() -> None:
    digit = torch.zeros(1, 28, 28, dtype=torch.uint8)
    one = torch.tensor([1.0])
    good = (digit, one, torch.tensor([0.0]), torch.tensor([[20.0, 20.0]]), one)
    with pytest.raises(ValueError, match="digits must be uint8 MNIST digits"):
        P.draw_with_pen(digit.float(), *good[1:])
    with pytest.raises(ValueError, match=r"centre must have shape \(1, 2\)"):
        P.draw_with_pen(*good[:3], torch.tensor([20.0, 20.0]), one)
    with pytest.raises(ValueError, match="pen_width holds NaN"):
        P.draw_with_pen(*good[:4], torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="pen_width in"):
        P.draw_with_pen(*good[:4], torch.tensor([9.0]))
    with pytest.raises(ValueError, match="words must be indices 0..2"):
        P.pen_widths(torch.tensor([3]), torch.Generator())
    with pytest.raises(ValueError, match="bool tensor"):
        count_loops(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="min_area must be a positive int"):
        count_loops(torch.zeros(2, 3, 3, dtype=torch.bool), min_area=0)


def test_move_to_band_keeps_the_place_within_the_band() -> None:
    widths = P.pen_widths(torch.tensor([0, 1, 2, 0]), torch.Generator().manual_seed(3))
    moved = P.move_to_band(widths, torch.tensor([0, 1, 2, 0]), torch.tensor([2, 0, 1, 0]))
    for width, word, new_width, new_word in zip(
        widths.tolist(), (0, 1, 2, 0), moved.tolist(), (2, 0, 1, 0)
    ):
        (low, high), (new_low, new_high) = (list(P.PEN_BANDS.values())[w] for w in (word, new_word))
        assert new_low <= new_width <= new_high
        assert (new_width - new_low) / (new_high - new_low) == pytest.approx(
            (width - low) / (high - low), abs=1e-5
        )
    with pytest.raises(ValueError, match="new_word must be indices"):
        P.move_to_band(widths, torch.tensor([0, 1, 2, 0]), torch.tensor([0, 1, 2, 3]))


def test_widest_over_typical_equals_a_plain_loop_with_numpys_median() -> None:
    """The batched measure against the plain per-digit reference (scipy's distance transform
    and maximum filter, numpy's median), bit for bit, on every bundled digit's shape."""
    from mmcourse.data.shapes import widest_over_typical

    digits = torch.cat([mnist.load_subset("train")[0], mnist.load_subset("test")[0]])
    shapes = P._shape(digits)
    shapes[:3] = False  # images without ink give 0
    reference = torch.zeros(len(shapes))
    for index, image in enumerate(shapes.numpy()):
        if image.any():
            distance = ndimage.distance_transform_edt(np.pad(image, 1))
            ridge = (distance >= ndimage.maximum_filter(distance, size=3)) & (distance > 0)
            reference[index] = float(distance.max() / np.median(distance[ridge]))
    assert torch.equal(widest_over_typical(shapes), reference)
    assert (reference > P.MAX_BLOB).sum() > 0  # some bundled digits are blobs
