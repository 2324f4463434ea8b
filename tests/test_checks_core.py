"""The building blocks of the self-checks: right or wrong and why, never the expected value.

:func:`assert_hides` lives here and the chapter tests import it: it fails when a message
shows an expected value the way a check would print one.
"""

from __future__ import annotations

import re

import pytest
import torch

from mmcourse import checks
from mmcourse.checks import (
    CheckResult,
    as_number,
    check_close,
    check_equal,
    describe_miss,
    describe_shape_miss,
    known_mistake,
)


def _patterns(value: object) -> list[re.Pattern[str]]:
    """The ways a check could print ``value``; each must stand alone (no digit either side),
    so that 28 is not "found" inside 128."""
    if isinstance(value, (tuple, list)):
        forms = {str(tuple(value)), str(list(value))}
    elif isinstance(value, int) or float(value).is_integer():
        v = int(value)
        forms = {str(v), f"{v:,}"}
    else:
        v = float(value)
        forms = {f"{v:.2f}", f"{v:.3f}", f"{v:.4f}", f"{v:.2g}", f"{v:.3g}", f"{v:.4g}", repr(v)}
        forms = {f for f in forms if any(c in "123456789" for c in f)}  # "0.00" says nothing
    return [re.compile(rf"(?<![\d.]){re.escape(form)}(?!\d)") for form in forms]


def assert_hides(result: CheckResult, *values: object) -> None:
    """``result`` failed, says "Not yet", and prints none of ``values`` (ints, floats at the
    usual precisions, shapes as tuples or lists)."""
    text = str(result)
    assert not result and text.startswith("Not yet: "), text
    for value in values:
        for pattern in _patterns(value):
            assert not pattern.search(text), (
                f"{pattern.pattern!r} gives the answer away in {text!r}"
            )


def test_assert_hides_can_fail() -> None:
    with pytest.raises(AssertionError):
        assert_hides(CheckResult(False, "you counted 0, expected 503"), 503)
    with pytest.raises(AssertionError):
        assert_hides(CheckResult(False, "differs by up to 0.0348"), 0.034812)
    with pytest.raises(AssertionError):
        assert_hides(CheckResult(False, "has shape (64, 128)"), (64, 128))
    with pytest.raises(AssertionError):
        assert_hides(CheckResult(True, "fine"), 1)
    with pytest.raises(AssertionError):
        assert_hides(CheckResult(False, "precision 0.30 is right"), 0.3)
    assert_hides(CheckResult(False, "W_X has 128 rows"), 28)  # 28 is not inside 128
    assert_hides(CheckResult(False, "is 0.35 or 0.03"), 0.3)


# ----------------------------------------------------------------------------- describe_miss


@pytest.mark.parametrize(
    ("got", "want", "words"),
    [
        (0, 503, ["far too small", "placeholder"]),
        (0.0, 0.0348, ["far too small", "placeholder"]),
        (0, -2.5, ["negative", "placeholder"]),
        (504, 503, ["slightly too high", "within a few percent"]),
        (450, 503, ["too low", "between a twentieth and a quarter"]),
        (700, 503, ["too high", "between a quarter and a half"]),
        (800, 503, ["too high", "more than a half, but less than double"]),
        (1006, 503, ["too high", "double", "factor of about two"]),
        (251, 503, ["too low", "half", "factor of about two"]),
        (1509, 503, ["too high", "factor of about three"]),
        (3000, 503, ["too high", "several times"]),
        (6000, 503, ["far too high", "more than ten times"]),
        (10, 503, ["far too low", "less than a tenth"]),
        (-503, 503, ["right size but the wrong sign"]),
        (-100, 503, ["wrong sign"]),
        (3, 0, ["too high"]),
        (float("nan"), 1.0, ["NaN"]),
        (float("inf"), 1.0, ["infinite"]),
    ],
)
def test_describe_miss_gives_direction_and_rough_size(got: float, want: float, words) -> None:
    phrase = describe_miss(got, want)
    for word in words:
        assert word in phrase, phrase
    # no number at all, apart from the learner's own 0 and a "division by 0"
    assert not re.search(r"\d", re.sub(r"\b0\b", "", phrase)), phrase


def test_describe_miss_cannot_be_inverted_from_a_placeholder() -> None:
    """With a guess of 0 the phrase is the same whatever the answer (of the same sign)."""
    assert len({describe_miss(0, want) for want in (0.0348, 1.0, 56, 503, 1e6)}) == 1


def test_describe_shape_miss_names_the_dimension_not_the_shape() -> None:
    assert "dimension 1 is too large" in describe_shape_miss((3, 6), (3, 5))
    assert "dimension 0 is too small" in describe_shape_miss((2, 5), (3, 5))
    assert "transposed" in describe_shape_miss((5, 3), (3, 5))
    assert "more than it should" in describe_shape_miss((3, 5, 1), (3, 5))
    assert "fewer" in describe_shape_miss((15,), (3, 5))
    for got, want in (((3, 6), (3, 5)), ((5, 3), (3, 5)), ((15,), (3, 5))):
        assert str(want) not in describe_shape_miss(got, want)


def test_as_number_and_known_mistake() -> None:
    assert as_number("n", 3) == 3 and as_number("n", torch.tensor(2.5)) == 2.5
    assert as_number("n", 4.0, whole=True) == 4 and isinstance(as_number("n", 4.0, True), int)
    assert "should be a number, got str (drop the quotes)" in str(as_number("n", "3"))
    assert "should be a number, got bool" in str(as_number("n", True))
    assert "still None" in str(as_number("n", None))
    assert "single number" in str(as_number("n", torch.zeros(2)))
    assert "whole number" in str(as_number("n", 2.5, whole=True))
    mistakes = [(10, "ten"), (12, "twelve"), (0, "zero")]
    assert known_mistake(12, 11, mistakes) == "twelve"
    assert known_mistake(10, 10, mistakes) is None  # a "slip" that gives the answer is no slip
    assert known_mistake(0, 11, mistakes) is None  # 0 is the placeholder first
    assert known_mistake(13, 11, mistakes) is None


# ----------------------------------------------------------------------------- check_equal


def test_check_equal_numbers_hide_the_answer() -> None:
    assert check_equal("the number of canvases", 8, 8)
    assert str(check_equal("n", 8.0, 8)) == "Correct: n is 8"
    assert check_equal("n", torch.tensor(8), 8)
    for guess in (0, 7, 9, 16, 503):
        assert_hides(check_equal("the number of canvases", guess, 8), 8)
    assert "placeholder" in str(check_equal("n", 0, 8))
    assert "too high" in str(check_equal("n", 9, 8))
    assert "too low" in str(check_equal("n", 7, 8))
    assert "factor of about two" in str(check_equal("n", 16, 8))


def test_check_equal_wrong_types_say_so_without_raising() -> None:
    assert "should be a whole number, got str" in str(check_equal("n", "8", 8))
    assert "should be a number, got str" in str(check_equal("x", "0.5", 0.25))
    assert "should be a whole number, got list" in str(check_equal("n", [8], 8))
    assert "still None" in str(check_equal("n", None, 8))
    assert "whole number" in str(check_equal("n", 7.5, 8))
    assert "should be a single number" in str(check_equal("n", torch.tensor([8, 8]), 8))
    assert "should be True or False" in str(check_equal("flag", 1, True))
    assert "should be a string" in str(check_equal("word", 3, "three"))
    assert "upper/lower case" in str(check_equal("word", "Three", "three"))


def test_check_equal_compares_tensors() -> None:
    """The old check_equal raised "Boolean value of Tensor ... is ambiguous" here."""
    want = torch.tensor([[11, 22, 33], [44, 55, 66]])
    assert check_equal("t", want.clone(), want)
    assert check_equal("t", want.int(), want)  # int32 for int64: the same integers
    assert "should hold integer values, got dtype torch.float64" in str(
        check_equal("t", want.double(), want)
    )
    off = want.clone()
    off[1, 2] = 70
    result = check_equal("t", off, want)
    assert_hides(result, 66)
    assert "1 of 6 entries differ" in result.message and "(1, 2)" in result.message
    assert "too high" in result.message
    assert "looks transposed" in str(check_equal("t", want.T, want))
    assert_hides(check_equal("t", want.T, want), (2, 3))
    assert "dimension 1 is too large" in str(check_equal("t", torch.zeros(2, 4), want))
    assert "should hold integer values, got dtype torch.bool" in str(
        check_equal("t", want > 2, want)
    )
    assert "wrap it in torch.tensor" in str(check_equal("t", want.tolist(), want))
    assert "should be a torch.Tensor, got int" in str(check_equal("t", 3, want))
    mask = torch.tensor([True, False, True])
    assert "3 of 3 entries differ, the first at index 0" in str(check_equal("mask", ~mask, mask))


def test_check_equal_sequences_item_by_item() -> None:
    assert check_equal("shape", torch.Size([64, 2304]), (64, 2304))
    result = check_equal("shape", (64, 2305), (64, 2304))
    assert_hides(result, 2304, (64, 2304))
    assert "item 1 of shape" in result.message and "slightly too high" in result.message
    assert "too few" in str(check_equal("shape", (64,), (64, 2304)))
    assert "should be a tuple, got int" in str(check_equal("shape", 64, (64, 2304)))


# ----------------------------------------------------------------------------- check_close


def test_check_close_hides_the_answer() -> None:
    want = 0.034812
    assert check_close("mean", want + 1e-6, want)
    assert str(check_close("mean", want, want)) == f"Correct: mean is {want:.4g}"
    for guess in (0.0, 0.03, want * 1.1, want * 2, 1.0, -want):
        assert_hides(check_close("mean", guess, want), want)
    assert "placeholder" in str(check_close("mean", 0.0, want))
    assert "factor of about two" in str(check_close("mean", 2 * want, want))
    assert "wrong sign" in str(check_close("mean", -want, want))


def test_check_close_tensors_and_bad_input() -> None:
    want = torch.tensor([[0.25, 0.5], [0.75, 1.0]])
    assert check_close("p", want.tolist(), want)
    result = check_close("p", torch.zeros(2, 2), want)
    assert_hides(result, 0.25, 0.5, 0.75)
    assert "4 of 4 entries are off" in result.message and "(1, 1)" in result.message
    assert "dimension 0 is too small" in str(check_close("p", torch.zeros(1, 2), want))
    assert "should be a number or a tensor, got str" in str(check_close("x", "0.5", 0.5))
    assert "should be a number or a tensor, got dict" in str(check_close("x", {}, 0.5))
    assert "still None" in str(check_close("x", None, 0.5))
    assert "should be a single number" in str(check_close("x", [0.5, 0.5], 0.5))
    assert "NaN" in str(check_close("x", float("nan"), 0.5))
    assert check_close("x", torch.tensor([0.5]), 0.5)  # one element is one number


def test_check_shape_is_gone() -> None:
    """It was never called; what is left is exported and documented."""
    assert not hasattr(checks, "check_shape")
    assert "never prints the expected value" in checks.__doc__.replace("\n", " ")
    for name in checks.__all__:
        assert getattr(checks, name).__doc__, name


def test_every_public_check_is_typed_and_documented() -> None:
    import importlib
    import inspect

    for name in ("_core", *(f"ch0{n}" for n in range(1, 9))):
        module = importlib.import_module(f"mmcourse.checks.{name}")
        assert module.__doc__, name
        for fname, function in inspect.getmembers(module, inspect.isfunction):
            if fname.startswith("_") or function.__module__ != module.__name__:
                continue
            assert function.__doc__, f"{name}.{fname} has no docstring"
            signature = inspect.signature(function)
            assert signature.return_annotation is not inspect.Signature.empty, fname
            for parameter in signature.parameters.values():
                assert parameter.annotation is not inspect.Parameter.empty, (fname, parameter)
