"""Where and what: a canvas's layout (which digit stands in each slot, with its size, thickness
and slant), sampled per split so that the combinations :data:`HOLDOUT` names stay in the
compositional split only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mmcourse._validate import check_choice, check_int, is_int, require

__all__ = [
    "ATTRIBUTES",
    "CANVAS",
    "CENTER_Y_RANGE",
    "HOLDOUT",
    "Holdout",
    "JITTER_X",
    "Layout",
    "MAX_DIGITS",
    "NUMBER_WORDS",
    "SCALES",
    "SHEARS",
    "SIZES",
    "SLANTS",
    "SLOTS",
    "SLOT_X",
    "SPLITS",
    "THICKNESSES",
    "repair_layout",
    "sample_layout",
    "sample_split_layout",
]


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


SHEARS = (-0.3, 0.0, 0.3)
"""Shear of each slant: x moves by ``shear * height`` above the centre (positive leans right)."""


ATTRIBUTES = {"size": SIZES, "thickness": THICKNESSES, "slant": SLANTS}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = ("train", "val", "test", "compositional")


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
            require((0 <= a <= 9 and 0 <= b <= 9) and a != b, f"bad held-out digit pair {(a, b)}")

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
