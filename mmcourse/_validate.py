"""Argument checks shared across the package.

Each helper raises ``TypeError`` when the argument has the wrong type and ``ValueError`` when
it has the right type but a wrong value; the message names the argument, says what was
expected and what arrived, e.g. ``dropout must be a number in [0, 1), got 1.5``. They return
the value unchanged, so a valid call behaves exactly as without the check.
"""

from __future__ import annotations

import math
import sys
import warnings
from numbers import Integral, Real

import torch

__all__ = [
    "check_callable",
    "check_choice",
    "check_float",
    "check_index_range",
    "check_indices",
    "check_int",
    "check_module",
    "check_no_nan",
    "check_nonnegative",
    "check_positive",
    "check_probability",
    "check_same_batch",
    "check_sizes",
    "check_tensor",
    "Dims",
    "describe_tensor",
    "is_int",
    "require",
    "warn_at_caller",
]


def _got(value: object) -> str:
    """What arrived, for a type error: its type and a short repr, e.g. ``str '8'``."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def describe_tensor(value: object) -> str:
    """What arrived where a tensor was wanted: ``"torch.uint8 (2, 28, 28)"`` for a tensor,
    the type's name otherwise."""
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {tuple(value.shape)}"
    return type(value).__name__


def is_int(value: object) -> bool:
    """An integer (Python or NumPy) but not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def require(ok: object, message: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error(message)`` unless ``ok``: one line for a check that no helper here
    covers, e.g. ``require(d_model % 2 == 0, f"d_model must be even, got {d_model}")``.

    >>> require(2 % 2 == 0, "d_model must be even, got 2")
    >>> require(3 % 2 == 0, "d_model must be even, got 3")
    Traceback (most recent call last):
    ValueError: d_model must be even, got 3
    """
    if not ok:
        raise error(message)


def check_int(value: object, name: str, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``value`` must be an int in ``minimum..maximum`` (no bound where one is None)."""
    if maximum is not None:
        want = f"an int in {minimum}..{maximum}"
    elif minimum is None:
        want = "an int"
    else:
        want = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    require(is_int(value), f"{name} must be {want}, got {_got(value)}", TypeError)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return value  # type: ignore[return-value]


def check_sizes(values: object, name: str, length: int | None = None) -> tuple[int, ...]:
    """``values`` must be a non-empty tuple (or list) of positive ints, e.g. conv widths;
    exactly ``length`` of them if given, e.g. 2 for ``(height, width)``."""
    want = f"a tuple of {length} positive ints" if length else "a non-empty tuple of positive ints"
    if not isinstance(values, tuple | list) or not all(is_int(v) for v in values):
        raise TypeError(f"{name} must be {want}, got {_got(values)}")
    if len(values) == 0 or min(values) < 1 or (length is not None and len(values) != length):
        raise ValueError(f"{name} must be {want}, got {values!r}")
    return values  # type: ignore[return-value]


def check_choice(value: object, name: str, choices: tuple) -> object:
    """``value`` must be one of ``choices``, e.g. ``average`` one of ``("macro", "micro")``."""
    if value not in choices:
        kinds = {type(choice) for choice in choices}
        error = ValueError if type(value) in kinds else TypeError
        raise error(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_real(value: object, name: str, want: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be {want}, got {_got(value)}")
    require(math.isfinite(value), f"{name} must be {want}, got {value!r}")
    return value  # type: ignore[return-value]


def check_nonnegative(value: object, name: str) -> float:
    """``value`` must be a finite number ``>= 0`` (NaN and inf are refused)."""
    want = "a finite number >= 0"
    require(_check_real(value, name, want) >= 0, f"{name} must be {want}, got {value!r}")
    return value  # type: ignore[return-value]


def check_positive(value: object, name: str) -> float:
    """``value`` must be a finite number ``> 0``."""
    want = "a finite number > 0"
    require(_check_real(value, name, want) > 0, f"{name} must be {want}, got {value!r}")
    return value  # type: ignore[return-value]


def check_probability(value: object, name: str) -> float:
    """``value`` must be a number in ``[0, 1)``, e.g. a dropout probability."""
    want = "a number in [0, 1)"
    require(0 <= _check_real(value, name, want) < 1, f"{name} must be {want}, got {value!r}")
    return value  # type: ignore[return-value]


def check_tensor(x: object, name: str, what: str = "") -> torch.Tensor:
    """``x`` must be a ``torch.Tensor``; ``what`` describes it, e.g. ``"(B, D) of floats"``."""
    if not isinstance(x, torch.Tensor):
        detail = f" {what}" if what else ""
        raise TypeError(f"{name} must be a torch.Tensor{detail}, got {_got(x)}")
    return x


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _shape_text(shape: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(size) for size in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_shape(
    x: object, name: str, shape: tuple[int | str, ...], kind: str, ok: bool, hint: str = ""
) -> None:
    check_tensor(x, name, f"of {kind}s {_shape_text(shape)}")
    fits = x.dim() == len(shape) and all(
        isinstance(size, str) or x.shape[i] == size for i, size in enumerate(shape)
    )
    if not (fits and ok):
        raise ValueError(
            f"{name} must be {_article(kind)} {kind} tensor of shape {_shape_text(shape)}, "
            f"got shape {tuple(x.shape)} and dtype {x.dtype}{hint if not ok else ''}"
        )


def check_float(x: object, name: str, shape: tuple[int | str, ...]) -> torch.Tensor:
    """``x`` must be a float tensor of ``shape``: one entry per dimension, the size where it is
    fixed and a letter where any size goes, e.g. ``("B", 64)`` for a batch of 64-vectors.

    >>> check_float(torch.zeros(2, 3), "x", ("B", 3)).shape
    torch.Size([2, 3])
    >>> check_float(torch.zeros(2, 4), "x", ("B", 3))
    Traceback (most recent call last):
    ValueError: x must be a float tensor of shape (B, 3), got shape (2, 4) and dtype torch.float32
    """
    _check_shape(x, name, shape, "float", isinstance(x, torch.Tensor) and x.is_floating_point())
    return x  # type: ignore[return-value]


def check_indices(x: object, name: str, shape: tuple[int | str, ...]) -> torch.Tensor:
    """``x`` must be an integer tensor (class or token indices, not bool) of ``shape`` (as in
    :func:`check_float`)."""
    ok = isinstance(x, torch.Tensor) and not x.is_floating_point() and x.dtype != torch.bool
    hint = "; convert float labels with .long(), one-hot rows with .argmax(-1)"
    _check_shape(x, name, shape, "integer", ok and not x.is_complex(), hint)
    return x  # type: ignore[return-value]


_KINDS = {
    "float": (lambda x: x.is_floating_point(), ""),
    "integer": (
        lambda x: not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool,
        "; convert float labels with .long(), one-hot rows with .argmax(-1)",
    ),
}


class Dims:
    """Dimension letters bound across the arguments of one call, so that one line per argument
    checks what the arguments must share, and an error names every argument involved.

    The first argument that uses a letter sets its size; every later one must agree:

    >>> dims = Dims()
    >>> dims.float(torch.zeros(3, 4), "image_emb", "B D").shape
    torch.Size([3, 4])
    >>> dims.float(torch.zeros(2, 4), "text_emb", "B D")
    Traceback (most recent call last):
    ValueError: text_emb must be a float tensor of shape (B, D) with B = 3 and D = 4 as in image_emb, got shape (2, 4) and dtype torch.float32
    >>> dims["B"]  # a size, once bound
    3
    >>> Dims().indices(torch.tensor([1, 2]), "target", "N 1")
    Traceback (most recent call last):
    ValueError: target must be an integer tensor of shape (N, 1), got shape (2,) and dtype torch.int64
    """

    def __init__(self) -> None:
        self._bound: dict[str, tuple[int, str]] = {}  # letter -> (size, argument that set it)

    def __getitem__(self, letter: str) -> int:
        return self._bound[letter][0]

    def bind(self, letter: str, size: int, source: str) -> Dims:
        """Set ``letter`` to ``size``, as read from ``source`` (e.g. the rows of a prediction
        that is checked in another way); returns ``self``."""
        self._bound[letter] = (size, source)
        return self

    def float(self, x: object, name: str, spec: str) -> torch.Tensor:
        """``x`` must be a float tensor of shape ``spec`` (letters and sizes, e.g. ``"B 64"``)."""
        return self._check(x, name, spec, "float")

    def indices(self, x: object, name: str, spec: str) -> torch.Tensor:
        """``x`` must be an integer tensor (indices, not bool) of shape ``spec``."""
        return self._check(x, name, spec, "integer")

    def _sources(self, letters: list) -> str:
        """`` with B = 3 and D = 4 as in image_emb``: the bound sizes and where they came from."""
        by_source: dict[str, list[str]] = {}
        for letter in letters:
            size, source = self._bound[letter]
            by_source.setdefault(source, []).append(f"{letter} = {size}")
        parts = [f"{' and '.join(sizes)} as in {source}" for source, sizes in by_source.items()]
        return f" with {' and '.join(parts)}" if parts else ""

    def _check(self, x: object, name: str, spec: str, kind: str) -> torch.Tensor:
        shape = tuple(int(part) if part.isdigit() else part for part in spec.split())
        known = [letter for letter in dict.fromkeys(shape) if letter in self._bound]
        check_tensor(x, name, f"of {kind}s {_shape_text(shape)}{self._sources(known)}")
        kind_ok, hint = _KINDS[kind]
        fits = x.dim() == len(shape) and all(
            isinstance(want, str) or got == want for got, want in zip(x.shape, shape)
        )
        clash = fits and any(
            letter in known and self._bound[letter][0] != got for got, letter in zip(x.shape, shape)
        )
        if not (fits and kind_ok(x)) or clash:
            raise ValueError(
                f"{name} must be {_article(kind)} {kind} tensor of shape {_shape_text(shape)}"
                f"{self._sources(known)}, got shape {tuple(x.shape)} and dtype {x.dtype}"
                f"{hint if not kind_ok(x) else ''}"
            )
        for got, letter in zip(x.shape, shape):
            if isinstance(letter, str):
                self._bound.setdefault(letter, (got, name))
        return x  # type: ignore[return-value]


def check_index_range(x: torch.Tensor, name: str, high: int, what: str = "classes") -> None:
    """Every entry of the integer tensor ``x`` must lie in ``0..high - 1``, e.g. class ids
    below the number of classes (an empty ``x`` passes)."""
    if x.numel() and (x.min() < 0 or x.max() >= high):
        raise ValueError(
            f"{name} must hold {what} in 0..{high - 1}, got min {int(x.min())}, max {int(x.max())}"
        )


def check_same_batch(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """``a`` and ``b`` must hold the same number of examples (first dimension)."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must hold the same number of examples, got batch sizes "
            f"{a.shape[0]} and {b.shape[0]}"
        )


def _in_package(frame: object) -> bool:
    module = frame.f_globals.get("__name__", "")  # type: ignore[attr-defined]
    return module == "mmcourse" or module.startswith("mmcourse.")


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn, pointing at the first line outside ``mmcourse`` that led here (the learner's
    call, however many of the package's functions lie between), not at a fixed depth."""
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and _in_package(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def check_no_nan(x: torch.Tensor, name: str) -> torch.Tensor:
    """A float tensor of scores must hold no NaN (its argmax, ranks and losses would be
    meaningless, silently)."""
    if x.is_floating_point() and torch.isnan(x).any():
        raise ValueError(f"{name} holds NaN; every score must be a number")
    return x


def check_module(x: object, name: str = "model") -> torch.nn.Module:
    """``x`` must be a ``torch.nn.Module``."""
    if not isinstance(x, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {_got(x)}")
    return x


def check_callable(x: object, name: str) -> object:
    """``x`` must be callable, e.g. a loss function."""
    require(callable(x), f"{name} must be callable, got {_got(x)}", TypeError)
    return x
