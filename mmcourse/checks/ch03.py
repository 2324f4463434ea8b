"""Self-checks for chapter 03 (MNIST-Captions).

A failed check says what is wrong and why -- which word of a caption is false, whether a
count or a statistic is too high or too low and by roughly how much, and which slip it looks
like (digits counted instead of canvases, pixels not scaled, the variance instead of the
standard deviation, a shortcut missed or invented) -- but never prints the expected value; see :mod:`mmcourse.checks`.
"""

from __future__ import annotations

from mmcourse.checks._core import (
    CheckResult,
    as_number,
    check_close,
    describe_miss,
    known_mistake,
)
from mmcourse.data.captions import (
    NUMBER_WORDS,
    SLOTS,
    THICKNESSES,
    MNISTCaptions,
    parse_caption,
)

_POSITIONS = {"left": "on the left", "middle": "in the middle", "right": "on the right"}
_FIELD_HINTS = {
    "digit": "look at its shape again",
    "size": "compare its height with the canvas: small or large",
    "thickness": "look at the width of its strokes: thin, normal (the caption says nothing) "
    "or thick",
    "slant": "does it lean left, stand upright (the caption says nothing) or lean right?",
}


def check_caption(data: MNISTCaptions, index: int, caption: str) -> CheckResult:
    """Does ``caption`` describe canvas ``index`` correctly (any of the four phrasings)?

    A false caption is answered with the first false statement it makes (a digit in an empty
    slot, a missing digit, a wrong attribute), never with the true description.
    """
    if not isinstance(caption, str) or not caption.strip():
        return CheckResult(False, "write the caption as a non-empty string")
    try:
        said = parse_caption(caption)
    except ValueError as error:
        return CheckResult(False, f"the caption does not follow the grammar: {error}")
    truth = {d.slot: d for d in data.descriptions(index)}
    for got in said:
        want = truth.get(got.slot)
        if want is None:
            return CheckResult(
                False, f"there is no digit {_POSITIONS[got.slot]}; look at the slots again"
            )
        for field in ("digit", "size", "thickness", "slant"):
            if getattr(got, field) != getattr(want, field):
                where = _POSITIONS[got.slot]
                if field == "digit":
                    word = NUMBER_WORDS[got.digit]
                    article = "an" if word == "eight" else "a"
                    wrong = f"the digit {where} is not {article} {word}"
                else:
                    wrong = f"the {field} of the digit {where} is not {getattr(got, field)!r}"
                return CheckResult(False, f"{wrong}: {_FIELD_HINTS[field]}")
    if len(said) < len(truth):
        return CheckResult(
            False,
            "every digit the caption names is right, but it leaves out a digit: look at "
            f"every slot ({', '.join(SLOTS)})",
        )
    return CheckResult(True, "every word of the caption is true")


def count_with(data: MNISTCaptions, digit: int, attribute: str, value_index: int) -> int:
    """How many canvases of ``data`` hold ``digit`` with ``attribute == value_index``."""
    values = getattr(data.layout, attribute)
    return int(((data.layout.digits == digit) & (values == value_index)).any(dim=1).sum())


def _held_out_mistakes(data: MNISTCaptions) -> list[tuple[int, str]]:
    """The counts the usual slips give, each with its hint."""
    digits, thickness = data.layout.digits, data.layout.thickness
    thick = THICKNESSES.index("thick")
    sevens, thick_digits = digits == 7, (thickness == thick) & (digits >= 0)
    mistakes = [
        (
            int((sevens & thick_digits).sum()),
            "that counts the thick sevens themselves; count the canvases that hold one (a "
            "canvas with two thick sevens counts once)",
        ),
        (int(sevens.any(dim=1).sum()), "that counts every seven; keep only the thick ones"),
        (
            int(thick_digits.any(dim=1).sum()),
            "that counts every thick digit; keep only the sevens",
        ),
        (
            int((sevens & thick_digits)[:, 0].sum()),
            "that looks in the first slot only; a seven may stand in any slot",
        ),
        (len(data), "that is the number of canvases of the whole split"),
    ]
    mistakes += [
        (
            count_with(data, 7, "thickness", other),
            f"that counts {name} sevens: check which index 'thick' has in THICKNESSES",
        )
        for other, name in enumerate(THICKNESSES)
        if other != thick
    ]
    return mistakes


def check_held_out_count(data: MNISTCaptions, answer: int) -> CheckResult:
    """Is ``answer`` the number of canvases of ``data`` that hold a thick seven?

    A wrong count is described as too high or too low (and by roughly how much), with a hint
    when it matches a usual slip: digits counted instead of canvases, every seven, every
    thick digit, only the first slot, another thickness.
    """
    count = as_number("your count", answer, whole=True)
    if isinstance(count, CheckResult):
        return count
    expected = count_with(data, 7, "thickness", THICKNESSES.index("thick"))
    if count == expected:
        return CheckResult(True, f"{count} canvases of the {data.split} split hold a thick seven")
    hint = known_mistake(count, expected, _held_out_mistakes(data))
    if hint is not None:
        return CheckResult(False, f"your count {describe_miss(count, expected)}; {hint}")
    hint = (
        "a canvas counts once, and only a seven that is thick counts"
        if count > expected
        else "look in every slot: test data.layout.digits == 7 and data.layout.thickness "
        "together, then ask which canvases have any such slot"
    )
    return CheckResult(False, f"your count {describe_miss(count, expected)}; {hint}")


def _close(a: float, b: float) -> bool:
    """Within this exercise's tolerance (0.001)."""
    return abs(a - b) <= 1e-3


def check_pixel_stats(data: MNISTCaptions, mean: float, std: float) -> CheckResult:
    """Are ``mean`` and ``std`` the canvases' pixel mean and standard deviation in [0, 1]?

    Spots unscaled pixels, mean and std swapped, the variance instead of the standard
    deviation, and the average of per-canvas standard deviations.
    """
    pixels = data.images.double() / 255.0
    want_mean, want_std = pixels.mean().item(), pixels.std().item()
    got_mean = as_number("mean", mean)
    if isinstance(got_mean, CheckResult):
        return got_mean
    got_std = as_number("std", std)
    if isinstance(got_std, CheckResult):
        return got_std
    if got_mean > 1.5 or got_std > 1.5:
        return CheckResult(False, "scale the pixels to [0, 1] first (divide by 255)")
    if (
        not _close(got_mean, want_mean)
        and _close(got_mean, want_std)
        and _close(got_std, want_mean)
    ):
        return CheckResult(False, "mean and std are swapped")
    result = check_close("mean", got_mean, want_mean, atol=1e-3)
    if not result:
        return CheckResult(
            False, f"{result.message}; average every pixel of every canvas, scaled to [0, 1]"
        )
    if _close(got_std, want_std):
        return CheckResult(
            True,
            f"mean {got_mean:.4f}, std {got_std:.4f}: a canvas is mostly empty background, so "
            "the mean is small and the std larger than it",
        )
    if got_std > 0 and _close(got_std, want_std**2):
        hint = "that is the variance; the standard deviation is its square root"
    elif _close(got_std, pixels.flatten(1).std(dim=1).mean().item()):
        hint = "that averages the std of each canvas; take the std over all pixels at once"
    else:
        hint = "take the standard deviation over every pixel of every canvas, scaled to [0, 1]"
    return CheckResult(
        False, f"the mean is right, but std {describe_miss(got_std, want_std)}; {hint}"
    )


def _shortcuts(data: MNISTCaptions) -> set[tuple[int, str, str]]:
    """(digit, attribute, value) wherever every copy of ``digit`` in ``data`` has that value."""
    from mmcourse.data.captions import ATTRIBUTES

    found = set()
    layout = data.layout
    for attribute, names in ATTRIBUTES.items():
        values = getattr(layout, attribute)
        for digit in range(10):
            seen = values[layout.digits == digit].unique().tolist()
            if len(seen) == 1:
                found.add((digit, attribute, names[seen[0]]))
    return found


def check_shortcuts(data: MNISTCaptions, fn: object) -> CheckResult:
    """Exercise 4: ``fn(data)`` returns the set of ``(digit, attribute, value)`` such that
    *every* copy of ``digit`` in ``data`` has that attribute value (a shortcut a model could
    learn). Run on the training split and on the compositional split, where it differs."""
    from mmcourse.data.captions import make_mnist_captions

    if fn is None:
        return CheckResult(False, "write shortcuts(data) and pass the function in")
    if not callable(fn):
        return CheckResult(False, f"pass the function itself, got {type(fn).__name__}")
    compositional = make_mnist_captions("compositional", n=600)
    for split_data in (data, compositional):
        try:
            answer = fn(split_data)
        except Exception as error:  # the learner's code may fail in any way
            return CheckResult(False, f"shortcuts(data) raised {type(error).__name__}: {error}")
        if not isinstance(answer, (set, frozenset, list, tuple)):
            return CheckResult(
                False,
                f"return a set of (digit, attribute, value) tuples, got {type(answer).__name__}",
            )
        answer = {tuple(item) for item in answer}
        expected = _shortcuts(split_data)
        if answer == expected:
            continue
        where = f"on the {split_data.split} split"
        if any(isinstance(item[2], int) for item in answer if len(item) == 3):
            return CheckResult(False, f"{where}: give each value by name ('large'), not by index")
        missing, extra = expected - answer, answer - expected
        if extra and not missing:
            return CheckResult(
                False,
                f"{where} {len(extra)} of your triples are not shortcuts: a value counts only "
                "when every copy of the digit has it (check the empty slots, -1, are left out)",
            )
        if missing and not extra:
            return CheckResult(
                False,
                f"{where} you missed at least one shortcut: look at every digit and every "
                "attribute (size, thickness and slant)",
            )
        return CheckResult(
            False,
            f"{where} at least one shortcut is missing and {len(extra)} of your triples "
            "are not shortcuts: for each digit, collect the values its copies take, and keep "
            "an attribute only when there is exactly one",
        )
    return CheckResult(
        True,
        f"{len(_shortcuts(data))} shortcut(s) in the {data.split} split and "
        f"{len(_shortcuts(compositional))} in the compositional split: a model that learned "
        "one would be caught out there",
    )
