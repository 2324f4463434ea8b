"""The building blocks of the exercises' self-checks.

A failed check says *that* an answer is wrong and *why* -- in which direction it misses, by
roughly how much, and which mistake it looks like -- but never prints the expected value: a
learner who reads "Not yet" should still have something to work out. All wording about "how
far off" comes from :func:`describe_miss` (numbers) and :func:`describe_shape_miss` (shapes),
so every chapter phrases it the same way. Both are deliberately coarse (bands such as "within a
few percent" or "off by a factor of about two"), so that not even a placeholder guess of 0 can
be turned back into the answer.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

# Factors named in words; larger ones are only "several times" (coarser, harder to invert).
_TIMES = {2: "two", 3: "three", 4: "four"}
_PART = {2: "half", 3: "a third", 4: "a quarter"}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a self-check; prints as one line starting with "Correct" or "Not yet"."""

    passed: bool
    message: str

    def __str__(self) -> str:
        return ("Correct: " if self.passed else "Not yet: ") + self.message

    def __repr__(self) -> str:
        return str(self)

    def __bool__(self) -> bool:
        return self.passed

    def confirm(self) -> None:
        """Print the result and raise ``AssertionError`` unless it passed: how a worked
        solution checks itself, so that a solution that stops passing fails its cell (and the
        notebook's test) instead of printing "Not yet" unnoticed."""
        print(self)
        if not self.passed:
            raise AssertionError(str(self))


def describe_miss(got: float, want: float) -> str:
    """How ``got`` misses ``want``, as a predicate ("is ...", "has ...") that never reveals
    ``want``: the direction (too high / too low / wrong sign) and a coarse relative size.

    The bands are coarse on purpose: "slightly too high (within a few percent)", "too low (by
    between a quarter and a half)", "off by a factor of about two", "far too high". A guess of
    0 is called out as a likely placeholder, without any size that would give the answer away.

    >>> describe_miss(0, 503)
    'is still 0, far too small (is it the placeholder?)'
    >>> describe_miss(1006, 503)
    'is too high (about double the right value, off by a factor of about two)'
    """
    got, want = float(got), float(want)
    if math.isnan(got):
        return "is NaN (not a number): look for a 0 / 0 or a log of 0"
    if math.isinf(got):
        return "is infinite: look for a division by 0 or a log of 0"
    if got == want:
        return "is right"
    direction = "high" if got > want else "low"
    if want == 0:
        return f"is too {direction}"
    if got == 0:
        if want > 0:
            return "is still 0, far too small (is it the placeholder?)"
        return "is 0, but the answer is negative (is it still the placeholder?)"
    if (got > 0) != (want > 0):
        if math.isclose(abs(got), abs(want), rel_tol=0.05):
            return "has the right size but the wrong sign"
        return "has the wrong sign"
    size = abs(got) / abs(want)  # > 0
    error = abs(size - 1)
    if error < 0.05:
        return f"is slightly too {direction} (within a few percent)"
    if error < 0.25:
        return f"is too {direction} (by between a twentieth and a quarter)"
    if error < 0.5:
        return f"is too {direction} (by between a quarter and a half)"
    factor = size if size > 1 else 1 / size  # >= 1.5
    whole = round(factor)
    near = whole in _TIMES and abs(factor - whole) < 0.1 * whole
    if size > 1:
        if near:
            what = "about double" if whole == 2 else f"about {_TIMES[whole]} times"
            return (
                f"is too {direction} ({what} the right value, "
                f"off by a factor of about {_TIMES[whole]})"
            )
        if factor < 2:
            return f"is too {direction} (by more than a half, but less than double)"
        if factor < 10:
            return f"is too {direction} (several times the right value)"
        return f"is far too {direction} (more than ten times the right value)"
    if near:
        return (
            f"is too {direction} (about {_PART[whole]} of the right value, "
            f"off by a factor of about {_TIMES[whole]})"
        )
    if factor < 10:
        return f"is too {direction} (only a fraction of the right value)"
    return f"is far too {direction} (less than a tenth of the right value)"


def describe_shape_miss(got: Sequence[int], want: Sequence[int]) -> str:
    """How the shape ``got`` differs from ``want``, as a predicate ("has ...") that names the
    wrong dimension and its direction but never prints ``want``."""
    got, want = tuple(got), tuple(want)
    if len(got) != len(want):
        more = "more" if len(got) > len(want) else "fewer"
        dims = f"{len(got)} dimension{'' if len(got) == 1 else 's'}"
        return f"has shape {got}: {dims}, {more} than it should have"
    if len(got) == 2 and got == want[::-1] and got != want:
        return f"has shape {got}: it looks transposed (rows and columns swapped)"
    for dim, (a, b) in enumerate(zip(got, want)):
        if a != b:
            size = "too large" if a > b else "too small"
            return f"has shape {got}: its size along dimension {dim} is {size}"
    return f"has shape {got}"


def known_mistake(
    got: float, expected: float, mistakes: Iterable[tuple[float, str]], tol: float = 1e-9
) -> str | None:
    """The hint of the first of ``mistakes`` -- ``(value that slip gives, hint)`` pairs --
    whose value ``got`` matches within ``tol``; slips that happen to give ``expected`` are
    skipped. ``None`` when the answer matches no known slip, and always for ``got == 0``:
    a 0 is most likely the untouched placeholder, whatever slip might also give 0."""
    if got == 0:
        return None
    for wrong, hint in mistakes:
        if abs(got - wrong) <= tol and abs(wrong - expected) > tol:
            return hint
    return None


def _type_name(value: object) -> str:
    return type(value).__name__


def as_number(name: str, value: object, whole: bool = False) -> float | int | CheckResult:
    """Read the learner's ``value`` as one number, or return a failed :class:`CheckResult`
    that says why it is not a usable one ("should be a number, got str", "is still None").

    Accepts ints, floats, NumPy scalars and one-element tensors. With ``whole=True`` the
    number must be a whole number (a count) and comes back as an ``int``. Test the result
    with ``isinstance(result, CheckResult)`` (a failed result is falsy, and so is 0).
    """
    if value is None:
        return CheckResult(False, f"{name} is still None: replace it with your answer")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return CheckResult(
                False,
                f"{name} should be a single number, got a tensor of shape {tuple(value.shape)}",
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        hint = ""
        if isinstance(value, str):
            try:
                float(value)
                hint = " (drop the quotes)"
            except ValueError:
                pass
        kind = "a whole number" if whole else "a number"
        return CheckResult(False, f"{name} should be {kind}, got {_type_name(value)}{hint}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        return CheckResult(False, f"{name} {describe_miss(number, 1.0)}")
    if whole:
        if not number.is_integer():
            return CheckResult(False, f"{name} should be a whole number, got a fraction")
        return int(number)
    return number


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_floating_point or dtype.is_complex:
        return "floating-point"
    return "integer"


def _where(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(index)


def _tensor_answer(name: str, value: object) -> tuple[torch.Tensor | None, CheckResult | None]:
    if value is None:
        return None, CheckResult(False, f"{name} is still None: replace it with your answer")
    if isinstance(value, torch.Tensor):
        return value.detach().cpu(), None
    if isinstance(value, (list, tuple, numbers.Number)) and not isinstance(value, bool):
        return None, CheckResult(
            False,
            f"{name} should be a torch.Tensor, got {_type_name(value)}: wrap it in "
            "torch.tensor(...)",
        )
    return None, CheckResult(False, f"{name} should be a torch.Tensor, got {_type_name(value)}")


def _equal_tensors(name: str, value: object, expected: torch.Tensor) -> CheckResult:
    got, failure = _tensor_answer(name, value)
    if failure is not None:
        return failure
    want = expected.detach().cpu()
    if got.shape != want.shape:
        return CheckResult(False, f"{name} {describe_shape_miss(got.shape, want.shape)}")
    if _kind(got.dtype) != _kind(want.dtype):
        return CheckResult(
            False, f"{name} should hold {_kind(want.dtype)} values, got dtype {got.dtype}"
        )
    if torch.equal(got, want):
        return CheckResult(True, f"{name} is right (shape {tuple(got.shape)})")
    wrong = got != want
    first = tuple(int(i) for i in wrong.nonzero()[0])
    where = (
        f"{int(wrong.sum())} of {got.numel()} entries differ, the first at index {_where(first)}"
    )
    if want.dtype == torch.bool:
        return CheckResult(False, f"{name}: {where}")
    return CheckResult(
        False,
        f"{name}: {where}, where yours {describe_miss(got[first].item(), want[first].item())}",
    )


def check_equal(name: str, value: object, expected: object) -> CheckResult:
    """Is ``value`` exactly ``expected``?

    Works for numbers (a one-element tensor counts as a number), strings, tuples and lists
    (item by item) and tensors (shape, kind of dtype, then every entry). A wrong answer is
    described by direction and size (:func:`describe_miss`), never by the expected value; a
    wrong type gets a "should be a number, got str" message instead of an exception.
    """
    if isinstance(expected, torch.Tensor):
        return _equal_tensors(name, value, expected)
    if isinstance(expected, bool):
        if not isinstance(value, bool):
            return CheckResult(False, f"{name} should be True or False, got {_type_name(value)}")
        if value != expected:
            return CheckResult(False, f"{name} is not {value}")
        return CheckResult(True, f"{name} is {value}")
    if isinstance(expected, numbers.Real):
        whole = isinstance(expected, numbers.Integral)
        got = as_number(name, value, whole=whole)
        if isinstance(got, CheckResult):
            return got
        if got == expected:
            return CheckResult(True, f"{name} is {got!r}")
        return CheckResult(False, f"{name} {describe_miss(got, float(expected))}")
    if isinstance(expected, str):
        if not isinstance(value, str):
            return CheckResult(False, f"{name} should be a string, got {_type_name(value)}")
        if value == expected:
            return CheckResult(True, f"{name} is {value!r}")
        if value.strip().lower() == expected.strip().lower():
            return CheckResult(False, f"{name} differs only in upper/lower case or spaces")
        return CheckResult(False, f"{name} is not {value!r}")
    if isinstance(expected, (tuple, list)):
        if isinstance(value, torch.Size):
            value = tuple(value)
        if not isinstance(value, (tuple, list)):
            return CheckResult(
                False, f"{name} should be a {_type_name(expected)}, got {_type_name(value)}"
            )
        if len(value) != len(expected):
            more = "too many" if len(value) > len(expected) else "too few"
            return CheckResult(False, f"{name} has {len(value)} items, {more}")
        for i, (item, want) in enumerate(zip(value, expected)):
            result = check_equal(f"item {i} of {name}", item, want)
            if not result:
                return result
        return CheckResult(True, f"{name} is {value!r}")
    try:
        same = bool(value == expected)
    except Exception:
        same = False
    if same:
        return CheckResult(True, f"{name} is {value!r}")
    if type(value) is not type(expected):
        return CheckResult(
            False, f"{name} should be a {_type_name(expected)}, got {_type_name(value)}"
        )
    return CheckResult(False, f"{name} is not right yet")


def check_close(
    name: str, value: object, expected: float | torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4
) -> CheckResult:
    """Is ``value`` numerically close to ``expected`` (a number or a tensor)?

    Like :func:`check_equal`, a miss is described by direction and relative size, never by
    the expected value or the absolute difference (with a guess of 0 that difference would be
    the answer).
    """
    if value is None:
        return CheckResult(False, f"{name} is still None: replace it with your answer")
    if isinstance(value, (str, bytes, bool)):
        return CheckResult(False, f"{name} should be a number or a tensor, got {_type_name(value)}")
    try:
        got = torch.as_tensor(
            value.detach().cpu() if isinstance(value, torch.Tensor) else value,
            dtype=torch.float64,
        )
    except (TypeError, ValueError, RuntimeError):
        return CheckResult(False, f"{name} should be a number or a tensor, got {_type_name(value)}")
    want = torch.as_tensor(expected, dtype=torch.float64).detach().cpu()
    if want.numel() == 1 and got.numel() == 1:
        got, want = got.reshape(()), want.reshape(())
    elif want.numel() == 1:
        return CheckResult(False, f"{name} should be a single number, got shape {tuple(got.shape)}")
    if got.shape != want.shape:
        return CheckResult(False, f"{name} {describe_shape_miss(got.shape, want.shape)}")
    if torch.isnan(got).any():
        return CheckResult(False, f"{name} contains NaN (not a number): look for 0 / 0")
    close = torch.isclose(got, want, atol=atol, rtol=rtol)
    if bool(close.all()):
        if got.dim() == 0:
            return CheckResult(True, f"{name} is {got.item():.4g}")
        return CheckResult(True, f"all {got.numel()} entries of {name} are right")
    if got.dim() == 0:
        return CheckResult(False, f"{name} {describe_miss(got.item(), want.item())}")
    error = torch.where(close, torch.zeros_like(got), (got - want).abs())
    worst = tuple(int(i) for i in torch.unravel_index(error.argmax(), got.shape))
    return CheckResult(
        False,
        f"{name}: {int((~close).sum())} of {got.numel()} entries are off; the worst, at index "
        f"{_where(worst)}, {describe_miss(got[worst].item(), want[worst].item())}",
    )


def recall_range_hint(got: float, count: int, what: str) -> str | None:
    """The hint for a recall@k answer above 1 -- a count of ``what`` (at most ``count``), a
    percentage, or simply out of range; ``None`` for an answer of at most 1."""
    if got <= 1:
        return None
    if float(got).is_integer() and got <= count:
        return f"give the fraction of {what}, not a count"
    if got <= 100:
        return "give a fraction between 0 and 1, not a percentage"
    return "a recall is a fraction between 0 and 1"
