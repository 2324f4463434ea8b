"""MNIST-Captions: the course's own image-and-text dataset, built from MNIST digits.

Each example is a 64x64 canvas with one to three MNIST digits standing in three slots (left,
middle, right). Every digit is changed *by construction*: its size (scaled), stroke thickness
(thinned or thickened as Morpho-MNIST's perturbations do: at 4x resolution, by a radius in
proportion to the digit's own measured stroke thickness, keeping a thin digit's skeleton so it
stays in one piece) and slant (first deslanted, then sheared). So every word of a caption is ground truth, not a guess:

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

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mmcourse import config
from mmcourse._validate import check_choice, check_int, is_int
from mmcourse.data import mnist
from mmcourse.data.shapes import image_moments, skeleton
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
SCALES = (0.6, 0.9)
"""How much a 28x28 MNIST digit is scaled for each size."""
THICKNESSES = ("thin", "normal", "thick")
SLANTS = ("left", "upright", "right")
CANVAS_MEAN = 0.0345
"""Mean pixel (scaled to [0, 1]) of the training canvases; most of a canvas is background,
so it is far below MNIST's 0.1307 (``tests/test_captions.py`` recomputes it)."""
CANVAS_STD = 0.1636
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

_BAND_W, _BAND_TOP, _BAND_H = 40, 8, 48  # each slot is drawn into a 48x40 band of the canvas
_PAD = 8  # the canvas is padded by this much while drawing, so bands may overhang its edges


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


_UP = 4
"""Morphology runs at this many times MNIST's resolution (as Morpho-MNIST does)."""
_FRAME = 2
"""Empty MNIST pixels added around each digit, so that a thickened digit is never cut off."""
THIN_KEEP = 0.5
"""A thin digit keeps about this fraction of its measured stroke thickness."""
THICK_GROW = 0.8
"""A thick digit's strokes grow by about this fraction of their measured thickness..."""
THICK_MAX_RADIUS = 1.5
"""...but by at most this many MNIST pixels on each side, so loops do not fill into blobs."""
MIN_THIN_WIDTH = 0.9
"""No stroke of a thin digit is drawn narrower than this many *canvas* pixels."""


def _count(mask: torch.Tensor) -> torch.Tensor:
    """How many pixels of each ``(H, W)`` mask in ``(M, H, W)`` are set (summed as uint8, ten
    times faster than a bool sum)."""
    return mask.contiguous().view(torch.uint8).flatten(1).sum(1, dtype=torch.int32).long()


def _erode(mask: torch.Tensor, square: bool) -> torch.Tensor:
    """Binary erosion of 0/1 uint8 images ``(M, H, W)`` by a 3x3 cross or square (outside
    counts as empty). Shifted slices of uint8: several times faster than pooling or bools."""
    out = mask.clone()
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[:, 0] = out[:, -1] = 0
    src = out.clone() if square else mask
    out[:, :, 1:] &= src[:, :, :-1]
    out[:, :, :-1] &= src[:, :, 1:]
    out[:, :, 0] = out[:, :, -1] = 0
    return out


def _dilate(mask: torch.Tensor, square: bool) -> torch.Tensor:
    """Binary dilation of 0/1 uint8 images ``(M, H, W)`` by a 3x3 cross or square."""
    out = mask.clone()
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    src = out.clone() if square else mask
    out[:, :, 1:] |= src[:, :, :-1]
    out[:, :, :-1] |= src[:, :, 1:]
    return out


def _by_radius(mask: torch.Tensor, radius: torch.Tensor, grow: bool) -> torch.Tensor:
    """Erode (``grow=False``) or dilate each ``(H, W)`` bool mask by its own integer ``radius``.

    The structuring element is an octagon: crosses and squares alternate, the closest a chain
    of 3x3 steps gets to a disk. Each step works only on the masks whose radius reaches it.
    """
    current = mask.contiguous().view(torch.uint8)
    out = current.clone()
    active = torch.arange(len(mask))
    for step in range(1, int(radius.max()) + 1 if len(radius) else 1):
        keep = radius[active] >= step
        active, current = active[keep], current[keep]
        current = (_dilate if grow else _erode)(current, square=step % 2 == 0)
        out[active] = current
    return out.view(torch.bool)


def morph_thickness(
    digits: torch.Tensor, thickness: torch.Tensor, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Thin or thicken the strokes of uint8 digits ``(M, H, W)``, one choice per digit, as
    Morpho-MNIST does: at 4x resolution, by a radius proportional to each digit's own stroke
    thickness. Returns float images ``(M, H + 4, W + 4)`` in [0, 1] (a 2-pixel frame added);
    *normal* digits are returned as they are.

    1. Upsample 4x (bilinear, exact integer weights) and binarise at half ink.
    2. Measure the stroke thickness: ``2 * area / perimeter`` (the perimeter from the count of
       boundary edges, times pi/4 to turn that city-block length into a Euclidean one).
    3. *thin*: erode by ``(1 - THIN_KEEP) / 2`` of the thickness, and put back the digit's
       skeleton (:func:`skeleton` of the 28x28 digit, at least :data:`MIN_THIN_WIDTH` canvas
       pixels wide for a digit drawn at ``scale``) so that no stroke vanishes and the digit
       stays in as many pieces as it had. *thick*: dilate by ``THICK_GROW / 2`` of the
       thickness (at most :data:`THICK_MAX_RADIUS`).
    4. Average each 4x4 block back down.

    Every step is integer or boolean arithmetic, so the result is the same on every CPU.
    """
    if digits.dim() != 3 or digits.dtype != torch.uint8:
        raise ValueError(
            f"morph_thickness expects uint8 (M, H, W), got {digits.dtype} {tuple(digits.shape)}"
        )
    if thickness.shape != digits.shape[:1]:
        raise ValueError(
            f"thickness must have shape ({len(digits)},), got {tuple(thickness.shape)}"
        )
    scale = torch.ones(len(digits)) if scale is None else scale
    result = F.pad(digits, (_FRAME,) * 4).float() / 255.0  # normal digits stay as drawn
    changed = (thickness != THICKNESSES.index("normal")).nonzero().squeeze(1)
    if len(changed) == 0:
        return result
    thickness, scale = thickness[changed], scale[changed]
    m = len(changed)
    framed = F.pad(digits[changed], (_FRAME,) * 4)
    # Work only on a window around each digit's ink (MNIST digits fill at most 20x20 pixels).
    rows, cols = framed.any(dim=2), framed.any(dim=1)
    size = framed.shape[-1]
    first_row = rows.float().argmax(dim=1)
    last_row = size - 1 - rows.flip(1).float().argmax(dim=1)
    first_col = cols.float().argmax(dim=1)
    last_col = size - 1 - cols.flip(1).float().argmax(dim=1)
    side = int(torch.maximum(last_row - first_row, last_col - first_col).max()) + 1 if m else 1
    side = min(side + 2 * _FRAME, size)
    top = (first_row - _FRAME).clamp(0, size - side)
    left = (first_col - _FRAME).clamp(0, size - side)
    span = torch.arange(side)
    index = (
        torch.arange(m)[:, None, None],
        (top[:, None] + span)[:, :, None],
        (left[:, None] + span)[:, None, :],
    )
    window = framed[index]
    # Bilinear weights at 4x are multiples of 1/8, so this is exact in float32.
    ink = F.interpolate(window[:, None].float(), scale_factor=_UP, mode="bilinear")[:, 0] >= 128
    area = _count(ink)
    edges = _count(ink[:, 1:] != ink[:, :-1]) + _count(ink[:, :, 1:] != ink[:, :, :-1])
    width = 8.0 * area.double() / (math.pi * edges.clamp_min(1).double())  # in 4x pixels
    out = ink.clone()
    thin = (thickness == THICKNESSES.index("thin")).nonzero().squeeze(1)
    if len(thin):
        radius = torch.floor((1 - THIN_KEEP) / 2 * width[thin] + 0.5).long().clamp_min(1)
        eroded = _by_radius(ink[thin], radius, grow=False)
        centre = skeleton(window[thin] >= 128)
        centre = centre.repeat_interleave(_UP, dim=1).repeat_interleave(_UP, dim=2)
        # A skeleton pixel is one MNIST pixel wide; widen it where the canvas needs more.
        extra = MIN_THIN_WIDTH / scale[thin].double() - 1.0  # MNIST pixels
        extra = torch.floor(extra * _UP / 2 + 0.5).long().clamp_min(0)
        out[thin] = eroded | _by_radius(centre, extra, grow=True)
    thick = (thickness == THICKNESSES.index("thick")).nonzero().squeeze(1)
    if len(thick):
        radius = torch.floor(THICK_GROW / 2 * width[thick] + 0.5).long()
        radius = radius.clamp(1, int(THICK_MAX_RADIUS * _UP))
        out[thick] = _by_radius(ink[thick], radius, grow=True)
    # The mean of 16 zeros and ones is exact in float32.
    morphed = torch.zeros(m, size, size)
    morphed[index] = F.avg_pool2d(out[:, None].float(), _UP)[:, 0]
    result[changed] = morphed
    return result


def render_digits(
    digits: torch.Tensor,
    scale: torch.Tensor,
    shear: torch.Tensor,
    thickness: torch.Tensor,
    offset: torch.Tensor,
    band: tuple[int, int] = (_BAND_H, _BAND_W),
) -> torch.Tensor:
    """Draw each MNIST digit transformed into a band: ``(M, H, W)`` float images in [0, 1].

    Args:
        digits: ``(M, 28, 28)`` uint8 MNIST digits.
        scale, shear: ``(M,)`` size factor and slant shear (see :data:`SHEARS`).
        thickness: ``(M,)`` index into :data:`THICKNESSES`.
        offset: ``(M, 2)`` where the digit's centre of mass lands, in band pixels (x, y).

    Each digit is deslanted first (its own slant, measured by image moments, is sheared away)
    and then sheared by ``shear``, so a caption's "upright" or "leaning right" is true.
    """
    source = morph_thickness(digits, thickness, scale)[:, None]
    centre, mu11, mu02 = image_moments(source[:, 0])
    natural_slant = (mu11 / mu02.clamp_min(1e-6)).float()
    centre = centre.float()
    height, width = band
    ys = torch.arange(height, dtype=torch.float32)[None, :, None]
    xs = torch.arange(width, dtype=torch.float32)[None, None, :]
    # Inverse map: for each band pixel, where to read in the (deslanted, sheared) digit.
    v = (ys - offset[:, 1, None, None]) / scale[:, None, None]
    u = (xs - offset[:, 0, None, None]) / scale[:, None, None]
    u = u + (natural_slant + shear)[:, None, None] * v
    size_in = source.shape[-1]
    grid_x = (centre[:, 0, None, None] + u) / (size_in - 1) * 2.0 - 1.0
    grid_y = (centre[:, 1, None, None] + v) / (size_in - 1) * 2.0 - 1.0
    grid = torch.stack(torch.broadcast_tensors(grid_x, grid_y), dim=-1)
    drawn = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return drawn[:, 0]


def render_layout(
    layout: Layout,
    pool_images: torch.Tensor,
    pool_labels: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw canvases for ``layout`` from a pool of MNIST digits.

    Returns ``images`` uint8 ``(N, 64, 64)``, ``centers`` float ``(N, 3, 2)`` (x, y of each
    digit's centre of mass; NaN for an empty slot) and ``source`` long ``(N, 3)`` (the index in
    the pool of each digit used, ``-1`` if empty).
    """
    n = len(layout)
    order = torch.argsort(pool_labels, stable=True)
    counts = torch.bincount(pool_labels, minlength=10)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().squeeze(1).tolist()
        raise ValueError(f"the digit pool has no example of digit(s) {missing}")
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
    return compose(layout, pool_images[source.clamp_min(0)], centers), centers, source


def compose(layout: Layout, digits: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Draw canvases from what :func:`render_layout` chose, with no randomness left: uint8
    ``(N, 64, 64)`` for ``layout``, the MNIST ``digits`` ``(N, 3, 28, 28)`` of each slot and
    their ``centers`` ``(N, 3, 2)`` (ignored where a slot is empty). Change a digit's size,
    thickness or slant in ``layout`` and the same digit is drawn again, changed, at the same
    place."""
    n = len(layout)
    if digits.dtype != torch.uint8 or digits.shape != (n, MAX_DIGITS, 28, 28):
        raise ValueError(
            f"digits must be uint8 ({n}, {MAX_DIGITS}, 28, 28), got {digits.dtype} "
            f"{tuple(digits.shape)}"
        )
    if not centers.is_floating_point() or centers.shape != (n, MAX_DIGITS, 2):
        raise ValueError(
            f"centers must be float ({n}, {MAX_DIGITS}, 2), got {tuple(centers.shape)}"
        )
    present = layout.digits >= 0
    canvas = torch.zeros(n, CANVAS, CANVAS + 2 * _PAD)
    for slot in range(MAX_DIGITS):
        rows = present[:, slot].nonzero().squeeze(1)
        if len(rows) == 0:
            continue
        left = int(SLOT_X[slot]) - _BAND_W // 2  # band's first column, in canvas pixels
        center_x, center_y = centers[rows, slot, 0], centers[rows, slot, 1]
        offset = torch.stack([center_x - left, center_y - _BAND_TOP], dim=1)
        drawn = render_digits(
            digits[rows, slot],
            torch.tensor(SCALES)[layout.size[rows, slot]],
            torch.tensor(SHEARS)[layout.slant[rows, slot]],
            layout.thickness[rows, slot],
            offset,
        )
        cols = slice(left + _PAD, left + _PAD + _BAND_W)
        band = canvas[rows, _BAND_TOP : _BAND_TOP + _BAND_H, cols]
        canvas[rows, _BAND_TOP : _BAND_TOP + _BAND_H, cols] = torch.maximum(band, drawn)
    return (canvas[:, :, _PAD : _PAD + CANVAS].clamp(0, 1) * 255).round().to(torch.uint8)


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
        centers: float ``(N, 3, 2)``: each digit's centre of mass (x, y); NaN if empty.
        source: long ``(N, 3)``: which pool digit was drawn in each slot (``-1`` if empty).
        captions: ``N`` lists of four reference captions.
        qa: ``N`` lists of ``(type, question, answer)``.
    """

    split: str
    images: torch.Tensor
    layout: Layout
    centers: torch.Tensor
    source: torch.Tensor
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
    images, centers, sources = [], [], []
    for start in range(0, n, chunk):
        part = layout.select(torch.arange(start, min(n, start + chunk)))
        image, center, source = render_layout(part, pool_images, pool_labels.long(), generator)
        images.append(image)
        centers.append(center)
        sources.append(source)
    data = MNISTCaptions(
        split, torch.cat(images), layout, torch.cat(centers), torch.cat(sources), [], []
    )
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
    """
    check_choice(split, "MNIST-Captions split", SPLITS)
    chosen = config.pick(fast="fast", full="full", profile=profile)
    if n is None:
        n = DEFAULT_SIZES[chosen][split]
    pool_images, pool_labels = digit_pool(split, chosen, root)
    return generate(n, split, pool_images, pool_labels, seed, holdout, min_digits, max_digits)
