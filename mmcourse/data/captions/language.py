"""The words: a layout described in four paraphrased templates (:func:`describe`), a caption
read back into its facts (:func:`parse_caption`), and the question/answer pairs of a canvas
(:func:`questions_for`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mmcourse._validate import check_int, is_int, require
from mmcourse.data.captions.layout import (
    MAX_DIGITS,
    NUMBER_WORDS,
    SIZES,
    SLANTS,
    SLOTS,
    THICKNESSES,
)
from mmcourse.vocab import tokenize

__all__ = [
    "ANSWERS",
    "DigitDescription",
    "N_TEMPLATES",
    "QUESTION_TYPES",
    "describe",
    "parse_caption",
    "questions_for",
]


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
    require(len(set(slots)) == len(slots), f"two digits share a slot in {text!r}")
    if count is not None and count != len(found):
        raise ValueError(f"{text!r} counts {count} digit(s) but describes {len(found)}")
    return sorted(found, key=lambda d: SLOTS.index(d.slot))


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
