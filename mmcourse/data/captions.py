"""MNIST-Captions: the course's own image-and-text dataset, built from MNIST digits.

Each example is a 64x64 canvas with one to three MNIST digits standing in three slots (left,
middle, right). Every digit is drawn again *by construction* (:mod:`mmcourse.data.pen`): its
centre line is traced with a round pen whose width, in canvas pixels, lies in the band its
thickness word names (thin 1.0-1.4, normal 1.9-2.5, thick 3.3-3.9 pixels, the same at both
sizes); it is scaled for its size, and its own slant is removed before the caption's slant is
sheared in. A drawing that breaks a stroke or fills a loop is drawn again from another digit
of the same class. So every word of a caption is ground truth that the canvas shows:

    "a small thick seven on the left and a large two leaning right on the right"

The dataset builds on "Captioned MNIST" of alignDRAW (Mansimov et al., ICLR 2016: 60x60
canvases, captions about positions, held-out combinations) and Morpho-MNIST (Castro et al.,
JMLR 2019). Each canvas comes with:

- four paraphrased reference captions (templates), each at least five words long;
- structured ground truth (digit, size, thickness, slant and centre of each slot);
- question/answer pairs for visual question answering.

Splits: ``train`` draws its digits from MNIST's training set; ``val`` and ``test`` from two
disjoint halves of MNIST's test set; ``compositional`` (test digits too) holds only canvases
with a combination that :data:`HOLDOUT` keeps out of the other three splits.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmcourse import config
from mmcourse._validate import check_choice, check_int, describe_tensor, is_int
from mmcourse.data import mnist
from mmcourse.data.cache import cached, fingerprint
from mmcourse.data.pen import (
    WINDOW,
    draw_legibly,
    draw_with_pen,
    pen_widths,
    pool_kinds,
    to_mnist_frame,
)
from mmcourse.vocab import tokenize

CANVAS = 64
MAX_DIGITS = 3
SLOTS = ("left", "middle", "right")
SLOT_X = (12.0, 32.0, 52.0)
"""Horizontal centre of each slot, in pixels (x grows to the right, pixel centres at integers)."""
CENTER_Y_RANGE = (26.0, 38.0)
"""A digit's vertical centre is drawn uniformly from this range (y grows downwards)."""
JITTER_X = 1.5

SIZES = ("small", "large")
SCALES = (0.7, 1.0)
"""How much a 28x28 MNIST digit is scaled for each size."""
THICKNESSES = ("thin", "normal", "thick")
SLANTS = ("left", "upright", "right")
CANVAS_MEAN = 0.0362
"""Mean pixel (scaled to [0, 1]) of the training canvases; most of a canvas is background,
so it is far below MNIST's 0.1307 (``tests/test_captions.py`` recomputes it)."""
CANVAS_STD = 0.1713
"""Standard deviation of the training canvases' pixels (scaled to [0, 1])."""
SHEARS = (-0.3, 0.0, 0.3)
"""Shear of each slant: x moves by ``shear * height`` above the centre (positive leans right)."""
ATTRIBUTES = {"size": SIZES, "thickness": THICKNESSES, "slant": SLANTS}

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = ("train", "val", "test", "compositional")
DEFAULT_SIZES = {
    "fast": {"train": 10_000, "val": 2_000, "test": 2_000, "compositional": 2_000},
    "full": {"train": 60_000, "val": 10_000, "test": 10_000, "compositional": 10_000},
}


@dataclass(frozen=True)
class Holdout:
    """Combinations kept out of train/val/test and found only in the ``compositional`` split.

    ``digit_attributes``: (digit, attribute, value) -- e.g. no thick seven is ever seen in
    training. ``digit_pairs``: two digits that never share a canvas in training.
    """

    digit_attributes: tuple[tuple[int, str, str], ...] = (
        (7, "thickness", "thick"),
        (2, "slant", "left"),
        (4, "size", "small"),
    )
    digit_pairs: tuple[tuple[int, int], ...] = ((3, 8), (1, 6))

    def __post_init__(self) -> None:
        for digit, attribute, value in self.digit_attributes:
            if not 0 <= digit <= 9 or attribute not in ATTRIBUTES:
                raise ValueError(f"bad held-out combination {(digit, attribute, value)}")
            if value not in ATTRIBUTES[attribute]:
                raise ValueError(
                    f"{value!r} is not a value of {attribute}: {ATTRIBUTES[attribute]}"
                )
        for a, b in self.digit_pairs:
            if not (0 <= a <= 9 and 0 <= b <= 9) or a == b:
                raise ValueError(f"bad held-out digit pair {(a, b)}")

    def describe(self) -> list[str]:
        """The held-out combinations in words."""
        words = [
            f"{NUMBER_WORDS[d]} with {attr} '{value}'" for d, attr, value in self.digit_attributes
        ]
        words += [f"{NUMBER_WORDS[a]} and {NUMBER_WORDS[b]} together" for a, b in self.digit_pairs]
        return words

    def violations(self, layout: Layout) -> torch.Tensor:
        """``(N,)`` bool: which canvases of ``layout`` contain a held-out combination."""
        hit = torch.zeros(len(layout.digits), dtype=torch.bool)
        for digit, attribute, value in self.digit_attributes:
            values = getattr(layout, attribute)
            index = ATTRIBUTES[attribute].index(value)
            hit |= ((layout.digits == digit) & (values == index)).any(dim=1)
        for a, b in self.digit_pairs:
            hit |= (layout.digits == a).any(dim=1) & (layout.digits == b).any(dim=1)
        return hit


HOLDOUT = Holdout()
"""The one place where the compositional split's held-out combinations are declared."""


@dataclass
class Layout:
    """What stands on each canvas: ``(N, 3)`` tensors, one column per slot, ``-1`` if empty."""

    digits: torch.Tensor
    size: torch.Tensor
    thickness: torch.Tensor
    slant: torch.Tensor

    def __len__(self) -> int:
        return len(self.digits)

    def select(self, index: torch.Tensor) -> Layout:
        return Layout(
            self.digits[index], self.size[index], self.thickness[index], self.slant[index]
        )

    @staticmethod
    def cat(parts: Sequence[Layout]) -> Layout:
        return Layout(*(torch.cat([getattr(p, f) for p in parts]) for f in Layout.fields()))

    @staticmethod
    def fields() -> tuple[str, ...]:
        return ("digits", "size", "thickness", "slant")


# --------------------------------------------------------------------------- layouts


def sample_layout(
    n: int,
    generator: torch.Generator,
    min_digits: int = 1,
    max_digits: int = MAX_DIGITS,
) -> Layout:
    """Draw ``n`` random layouts: how many digits, which slots, which digits and attributes."""
    check_int(n, "n", minimum=0)
    for value, name in ((min_digits, "min_digits"), (max_digits, "max_digits")):
        if not is_int(value):
            raise TypeError(f"{name} must be an int in 1..{MAX_DIGITS}, got {value!r}")
    if not 1 <= min_digits <= max_digits <= MAX_DIGITS:
        raise ValueError(
            f"need 1 <= min_digits <= max_digits <= {MAX_DIGITS}, got {min_digits}, {max_digits}"
        )
    count = torch.randint(min_digits, max_digits + 1, (n,), generator=generator)
    slot_rank = torch.rand(n, MAX_DIGITS, generator=generator).argsort(dim=1).argsort(dim=1)
    present = slot_rank < count[:, None]

    def draw(high: int) -> torch.Tensor:
        values = torch.randint(0, high, (n, MAX_DIGITS), generator=generator)
        return torch.where(present, values, torch.full_like(values, -1))

    return Layout(draw(10), draw(len(SIZES)), draw(len(THICKNESSES)), draw(len(SLANTS)))


def repair_layout(layout: Layout, holdout: Holdout, generator: torch.Generator) -> Layout:
    """Remove held-out combinations by redrawing only what makes them, in place.

    A held-out (digit, attribute, value) gets another value of that attribute; of a held-out
    pair, one of the two digits (chosen at random) is replaced by a digit outside the pair.
    Redrawing only the offending part, rather than rejecting the canvas, keeps the digits and
    attributes balanced.
    """
    for _ in range(100):
        if not holdout.violations(layout).any():
            return layout
        for digit, attribute, value in holdout.digit_attributes:
            values = getattr(layout, attribute)
            index = ATTRIBUTES[attribute].index(value)
            hit = (layout.digits == digit) & (values == index)
            draw = torch.randint(
                0, len(ATTRIBUTES[attribute]) - 1, values.shape, generator=generator
            )
            values[hit] = (draw + (draw >= index).long())[hit]
        for a, b in holdout.digit_pairs:
            both = (layout.digits == a).any(dim=1) & (layout.digits == b).any(dim=1)
            pick_a = torch.rand(len(layout), generator=generator) < 0.5
            victim = torch.where(pick_a, torch.tensor(a), torch.tensor(b))
            hit = both[:, None] & (layout.digits == victim[:, None])
            allowed = torch.tensor([d for d in range(10) if d not in (a, b)])
            draw = torch.randint(0, len(allowed), layout.digits.shape, generator=generator)
            layout.digits[hit] = allowed[draw][hit]
    raise ValueError("could not remove the held-out combinations: is every combination held out?")


def sample_split_layout(
    n: int,
    split: str,
    generator: torch.Generator,
    holdout: Holdout = HOLDOUT,
    min_digits: int = 1,
    max_digits: int = MAX_DIGITS,
) -> Layout:
    """Layouts for ``split``. In ``train``, ``val`` and ``test`` held-out combinations are
    repaired away (:func:`repair_layout`); ``compositional`` keeps only canvases holding at
    least one of them (drawn by rejection)."""
    check_choice(split, "MNIST-Captions split", SPLITS)
    if split != "compositional":
        return repair_layout(
            sample_layout(n, generator, min_digits, max_digits), holdout, generator
        )
    if max_digits < 2 and not holdout.digit_attributes:
        raise ValueError("a compositional split of single digits needs digit_attributes")
    parts, have = [], 0
    for _ in range(1000):
        if have >= n:
            break
        candidates = sample_layout(max(2 * n, 64), generator, min_digits, max_digits)
        keep = holdout.violations(candidates)
        parts.append(candidates.select(keep.nonzero().squeeze(1)))
        have += int(keep.sum())
    else:
        raise ValueError("could not draw enough compositional layouts: is nothing held out?")
    return Layout.cat(parts).select(torch.arange(n))


# --------------------------------------------------------------------------- rendering


def _paste(n: int, windows: torch.Tensor, corner: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """uint8 ``(n, 64, 64)`` canvases: each pen window ``(M, WINDOW, WINDOW)`` laid on canvas
    ``rows[i]`` with its top-left pixel at ``corner[i]`` (x, y); where windows overlap, the
    darker ink wins. Windows may hang over the canvas's edges."""
    side = CANVAS + 2 * WINDOW  # the canvas with a window's margin all round
    steps = torch.arange(WINDOW)
    y = corner[:, 1, None, None] + WINDOW + steps[None, :, None]
    x = corner[:, 0, None, None] + WINDOW + steps[None, None, :]
    flat = rows[:, None, None] * side * side + y * side + x
    canvas = torch.zeros(n * side * side)
    canvas.scatter_reduce_(0, flat.flatten(), windows.flatten(), "amax")
    inner = canvas.view(n, side, side)[:, WINDOW : WINDOW + CANVAS, WINDOW : WINDOW + CANVAS]
    return (inner.clamp(0, 1) * 255).round().to(torch.uint8)


def _placement(
    layout: Layout, present: torch.Tensor, centers: torch.Tensor, pen_width: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(scale, shear, centre, pen_width)`` of every present digit, in row-major slot order,
    as :func:`mmcourse.data.pen.draw_with_pen` takes them."""
    scale = torch.tensor(SCALES)[layout.size[present]]
    shear = torch.tensor(SHEARS)[layout.slant[present]]
    return scale, shear, centers[present].float(), pen_width[present].float()


def render_layout(
    layout: Layout,
    pool_images: torch.Tensor,
    pool_labels: torch.Tensor,
    generator: torch.Generator,
    kinds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw canvases for ``layout`` from a pool of MNIST digits.

    Each digit is picked at random among the pool's digits of its class, placed in its slot
    (jittered), and drawn with a pen whose width is drawn from its thickness word's band
    (:data:`mmcourse.data.pen.PEN_BANDS`). A drawing that lost its digit's shape (a broken
    stroke, a loop filled or made: :func:`mmcourse.data.pen.drawing_faults`) is drawn again
    with another pool digit of the same class and number of loops. ``kinds`` is
    :func:`mmcourse.data.pen.pool_kinds` of the pool, computed here when not given.

    Returns ``images`` uint8 ``(N, 64, 64)``, ``centers`` float ``(N, 3, 2)`` (x, y of the
    centre of mass of each digit's centre line, which the pen's ink keeps to within about a
    pixel; NaN for an empty slot), ``source`` long ``(N, 3)`` (the index in
    the pool of each digit drawn, ``-1`` if empty) and ``pen_width`` float ``(N, 3)`` (in
    canvas pixels; NaN if empty).
    """
    n = len(layout)
    order = torch.argsort(pool_labels, stable=True)
    counts = torch.bincount(pool_labels, minlength=10)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().squeeze(1).tolist()
        raise ValueError(f"the digit pool has no example of digit(s) {missing}")
    if kinds is None:
        kinds = pool_kinds(pool_images, pool_labels)
    starts = torch.cumsum(counts, 0) - counts
    present = layout.digits >= 0
    safe_digits = layout.digits.clamp_min(0)
    pick = (torch.rand(n, MAX_DIGITS, generator=generator) * counts[safe_digits]).long()
    source = torch.where(present, order[starts[safe_digits] + pick], torch.full_like(pick, -1))
    jitter_x = (torch.rand(n, MAX_DIGITS, generator=generator) * 2 - 1) * JITTER_X
    low, high = CENTER_Y_RANGE
    center_y = low + torch.rand(n, MAX_DIGITS, generator=generator) * (high - low)
    center_x = torch.tensor(SLOT_X)[None, :] + jitter_x
    centers = torch.stack([center_x, center_y], dim=-1)
    centers[~present] = float("nan")
    pen_width = torch.full((n, MAX_DIGITS), float("nan"))
    pen_width[present] = pen_widths(layout.thickness[present], generator)
    placement = _placement(layout, present, centers, pen_width)
    windows, corner, picks = draw_legibly(pool_images, kinds, source[present], placement, generator)
    source[present] = picks
    rows = present.nonzero()[:, 0]
    return _paste(n, windows, corner, rows), centers, source, pen_width


def compose(
    layout: Layout, digits: torch.Tensor, centers: torch.Tensor, pen_width: torch.Tensor
) -> torch.Tensor:
    """Draw canvases from what :func:`render_layout` chose, with no randomness left: uint8
    ``(N, 64, 64)`` for ``layout``, the MNIST ``digits`` ``(N, 3, 28, 28)`` of each slot,
    their ``centers`` ``(N, 3, 2)`` and ``pen_width`` ``(N, 3)`` (both ignored where a slot
    is empty). Change a digit's size or slant in ``layout`` (or its pen width) and the same
    digit is drawn again, changed, at the same place; nothing is redrawn if the change breaks
    a stroke or fills a loop."""
    n = len(layout)
    if digits.dtype != torch.uint8 or digits.shape != (n, MAX_DIGITS, 28, 28):
        raise ValueError(
            f"digits must be uint8 ({n}, {MAX_DIGITS}, 28, 28), got {digits.dtype} "
            f"{tuple(digits.shape)}"
        )
    present = layout.digits >= 0
    for name, value, shape in (
        ("centers", centers, (n, MAX_DIGITS, 2)),
        ("pen_width", pen_width, (n, MAX_DIGITS)),
    ):
        if not value.is_floating_point() or tuple(value.shape) != shape:
            raise ValueError(f"{name} must be float {shape}, got {describe_tensor(value)}")
    on_canvas = (centers[present] >= 0) & (centers[present] <= CANVAS - 1)
    if not on_canvas.all():
        raise ValueError(f"every digit's centre must lie on the canvas, 0..{CANVAS - 1} pixels")
    windows, corner = draw_with_pen(
        digits[present], *_placement(layout, present, centers, pen_width)
    )
    return _paste(n, windows, corner, present.nonzero()[:, 0])


def draw_alone(data: MNISTCaptions, pool_images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(M, 64, 64)``: every digit of ``data`` (row by row, slot by slot, as
    ``data.layout.digits >= 0`` lists them) drawn alone on an empty canvas, exactly as it
    stands on its own canvas, so that one digit can be measured without its neighbours.
    ``pool_images`` is the pool the split was drawn from (:func:`digit_pool`)."""
    present = data.layout.digits >= 0
    rows, slots = present.nonzero().unbind(1)
    keep = torch.zeros(len(rows), MAX_DIGITS, dtype=torch.bool)
    keep[torch.arange(len(rows)), slots] = True
    fields = (getattr(data.layout, name)[rows] for name in Layout.fields())
    alone = Layout(*(torch.where(keep, field, -1) for field in fields))
    digits = pool_images[data.source[rows].clamp_min(0)]
    centers = data.centers[rows].nan_to_num(CANVAS / 2)
    return compose(alone, digits, centers, data.pen_width[rows].nan_to_num(1.0))


def cut_out(data: MNISTCaptions, pool_images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(M, 28, 28)``: every digit of ``data`` (in :func:`draw_alone`'s order) drawn
    alone and resampled around its centre by ``1 / scale`` (bilinear), so that it has MNIST's
    size and frame again and a classifier of plain MNIST digits can read it."""
    alone = draw_alone(data, pool_images).float() / 255
    present = data.layout.digits >= 0
    scale = torch.tensor(SCALES)[data.layout.size[present]]
    digits = to_mnist_frame(alone, data.centers[present], scale)
    return (digits * 255).round().clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------- language


def _digit_phrase(digit: int, size: int, thickness: int, slant: int, style: int) -> str:
    words = ["big" if style % 2 and size == 1 else SIZES[size]]
    if THICKNESSES[thickness] != "normal":
        words.append(THICKNESSES[thickness])
    words.append(NUMBER_WORDS[digit])
    if SLANTS[slant] != "upright":
        words += ["tilted" if style % 2 else "leaning", SLANTS[slant]]
    article = "an" if words[0][0] in "aeiou" else "a"
    return " ".join([article, *words])


_POSITION = {"left": "on the left", "middle": "in the middle", "right": "on the right"}
N_TEMPLATES = 4


def _join(items: list[str], separator: str = " , ") -> str:
    return items[0] if len(items) == 1 else separator.join(items[:-1]) + " and " + items[-1]


_ITEM_FIELDS = (
    ("slot", MAX_DIGITS),
    ("digit", len(NUMBER_WORDS)),
    ("size", len(SIZES)),
    ("thickness", len(THICKNESSES)),
    ("slant", len(SLANTS)),
)


def _check_items(items: object) -> None:
    """``items``: 1 to 3 tuples ``(slot, digit, size, thickness, slant)`` of indices in range,
    slots left to right (each slot at most once)."""
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise TypeError(
            "items must be a list of (slot, digit, size, thickness, slant) tuples, "
            f"got {type(items).__name__}"
        )
    if not 1 <= len(items) <= MAX_DIGITS:
        raise ValueError(f"a canvas holds 1 to {MAX_DIGITS} digits, got {len(items)}")
    for i, item in enumerate(items):
        if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 5:
            raise TypeError(
                f"items[{i}] must be a tuple (slot, digit, size, thickness, slant), got {item!r}"
            )
        for (part, count), value in zip(_ITEM_FIELDS, item):
            if not (type(value) is int and 0 <= value < count):  # fast path for valid items
                check_int(value, f"the {part} of items[{i}]", minimum=0, maximum=count - 1)
    slots = [item[0] for item in items]
    if any(a >= b for a, b in zip(slots, slots[1:])):
        raise ValueError(
            f"items must list each slot at most once, left to right (slots increasing), "
            f"got slots {slots}"
        )


def describe(items: Sequence[tuple[int, int, int, int, int]], template: int) -> str:
    """One caption for the digits ``items`` = ``(slot, digit, size, thickness, slant)``,
    listed left to right, in paraphrase ``template`` (0..3)."""
    if not is_int(template):
        raise TypeError(f"template must be in 0..{N_TEMPLATES - 1}, got {template!r}")
    if not 0 <= template < N_TEMPLATES:
        raise ValueError(f"template must be in 0..{N_TEMPLATES - 1}, got {template}")
    _check_items(items)
    phrases = [
        (_digit_phrase(d, s, t, sl, template), _POSITION[SLOTS[slot]])
        for slot, d, s, t, sl in items
    ]
    if template == 0:
        return _join([f"{d} {p}" for d, p in phrases])
    if template == 1:
        return "there is " + _join([f"{d} {p}" for d, p in phrases])
    if template == 2:
        count = NUMBER_WORDS[len(items)]
        noun = "digit" if len(items) == 1 else "digits"
        return f"{count} {noun} : " + _join([f"{d} {p}" for d, p in phrases])
    return _join([f"{p} is {d}" for d, p in phrases])


@dataclass(frozen=True)
class DigitDescription:
    """What a caption says about one digit."""

    slot: str
    digit: int
    size: str
    thickness: str
    slant: str


_DIGIT_RE = re.compile(
    r"\b(?:a|an) (small|large|big)(?: (thin|thick))? (" + "|".join(NUMBER_WORDS) + r")"
    r"(?: (?:leaning|tilted) (left|right))?\b"
)
_POS_RE = re.compile(r"\b(on the left|in the middle|on the right)\b")
_SLOT_OF = {phrase: slot for slot, phrase in _POSITION.items()}


def _read_count(head: list[str], text: str) -> int:
    """The number a caption's count ("two digits") gives, checked word by word."""
    numbers = NUMBER_WORDS[1 : MAX_DIGITS + 1]
    if len(head) == 2 and head[0] in numbers:
        count = NUMBER_WORDS.index(head[0])
        if head[1] == ("digit" if count == 1 else "digits"):
            return count
    raise ValueError(f"cannot read a count of digits in {' '.join(head)!r} of {text!r}")


def parse_caption(text: str) -> list[DigitDescription]:
    """Read a caption back into what it says about each digit (left to right).

    Raises ``ValueError`` when the caption does not follow MNIST-Captions' grammar, for
    example a caption produced by a half-trained model, or when its count ("two digits :")
    is not the number of digits it describes.
    """
    tokens = tokenize(text)
    count = None
    if ":" in tokens:
        head, tokens = tokens[: tokens.index(":")], tokens[tokens.index(":") + 1 :]
        count = _read_count(head, text)
    if tokens[:2] == ["there", "is"]:
        tokens = tokens[2:]
    chunks, current = [], []
    for token in tokens:
        if token in (",", "and"):
            chunks.append(current)
            current = []
        else:
            current.append(token)
    chunks.append(current)
    found = []
    for chunk in chunks:
        words = " ".join(chunk)
        digit = _DIGIT_RE.search(words)
        position = _POS_RE.search(words)
        if digit is None or position is None:
            raise ValueError(f"cannot read a digit and its position in {words!r} of {text!r}")
        leftover = (
            words[: min(digit.start(), position.start())]
            + words[max(digit.end(), position.end()) :]
        ).split()
        if _DIGIT_RE.sub("", _POS_RE.sub("", words)).split() not in ([], ["is"]) or leftover:
            raise ValueError(f"unexpected words in {words!r} of {text!r}")
        size, thickness, number, slant = digit.groups()
        found.append(
            DigitDescription(
                slot=_SLOT_OF[position.group(1)],
                digit=NUMBER_WORDS.index(number),
                size="large" if size == "big" else size,
                thickness=thickness or "normal",
                slant=slant or "upright",
            )
        )
    slots = [d.slot for d in found]
    if len(set(slots)) != len(slots):
        raise ValueError(f"two digits share a slot in {text!r}")
    if count is not None and count != len(found):
        raise ValueError(f"{text!r} counts {count} digit(s) but describes {len(found)}")
    return sorted(found, key=lambda d: SLOTS.index(d.slot))


# --------------------------------------------------------------------------- questions

ANSWERS = (
    ("yes", "no", "none", "small", "large")
    + NUMBER_WORDS
    + tuple(str(total) for total in range(28))
)
"""Every answer a question can have: a fixed list, so a VQA model is a classifier over it."""

QUESTION_TYPES = ("count", "digit_at", "size_at", "any_thickness", "any_slant", "sum")


def questions_for(items: Sequence[tuple[int, int, int, int, int]]) -> list[tuple[str, str, str]]:
    """All ``(type, question, answer)`` triples for a canvas holding ``items`` (as in
    :func:`describe`)."""
    _check_items(items)
    by_slot = {slot: (d, s, t, sl) for slot, d, s, t, sl in items}
    qa = [("count", "how many digits are there ?", NUMBER_WORDS[len(items)])]
    for slot, name in enumerate(SLOTS):
        where = _POSITION[name]
        answer = NUMBER_WORDS[by_slot[slot][0]] if slot in by_slot else "none"
        qa.append(("digit_at", f"which digit is {where} ?", answer))
        if slot in by_slot:
            size = SIZES[by_slot[slot][1]]
            qa.append(("size_at", f"is the digit {where} small or large ?", size))
    for value in ("thin", "thick"):
        has = any(THICKNESSES[t] == value for _, _, _, t, _ in items)
        qa.append(("any_thickness", f"is any digit {value} ?", "yes" if has else "no"))
    for value in ("left", "right"):
        has = any(SLANTS[sl] == value for _, _, _, _, sl in items)
        qa.append(("any_slant", f"is any digit leaning {value} ?", "yes" if has else "no"))
    total = sum(d for _, d, _, _, _ in items)
    qa.append(("sum", "what do the digits add up to ?", str(total)))
    return qa


# --------------------------------------------------------------------------- the dataset


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


_DRAWING_CODE = tuple(
    Path(__file__).with_name(name) for name in ("captions.py", "pen.py", "shapes.py")
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
