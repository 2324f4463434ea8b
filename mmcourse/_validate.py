"""Argument checks shared across the package.

Each helper raises ``TypeError`` when the argument has the wrong type and ``ValueError`` when
it has the right type but a wrong value; the message names the argument, says what was
expected and what arrived, e.g. ``dropout must be a number in [0, 1), got 1.5``. They return
the value unchanged, so a valid call behaves exactly as without the check.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch

__all__ = [
    "check_int",
    "check_no_nan",
    "check_nonnegative",
    "check_positive",
    "check_probability",
    "check_sizes",
    "check_tensor",
    "is_int",
]


def _got(value: object) -> str:
    """What arrived, for a type error: its type and a short repr, e.g. ``str '8'``."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def is_int(value: object) -> bool:
    """An integer (Python or NumPy) but not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_int(value: object, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` must be an int in ``minimum..maximum`` (no upper bound if ``maximum`` is None)."""
    if maximum is not None:
        want = f"an int in {minimum}..{maximum}"
    else:
        want = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if not is_int(value):
        raise TypeError(f"{name} must be {want}, got {_got(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return value  # type: ignore[return-value]


def check_sizes(values: object, name: str) -> tuple[int, ...]:
    """``values`` must be a non-empty tuple (or list) of positive ints, e.g. conv widths."""
    want = "a non-empty tuple of positive ints"
    if not isinstance(values, tuple | list) or not all(is_int(v) for v in values):
        raise TypeError(f"{name} must be {want}, got {_got(values)}")
    if len(values) == 0 or min(values) < 1:
        raise ValueError(f"{name} must be {want}, got {values!r}")
    return values  # type: ignore[return-value]


def _check_real(value: object, name: str, want: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be {want}, got {_got(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return value  # type: ignore[return-value]


def check_nonnegative(value: object, name: str) -> float:
    """``value`` must be a finite number ``>= 0`` (NaN and inf are refused)."""
    want = "a finite number >= 0"
    if _check_real(value, name, want) < 0:
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return value  # type: ignore[return-value]


def check_positive(value: object, name: str) -> float:
    """``value`` must be a finite number ``> 0``."""
    want = "a finite number > 0"
    if not _check_real(value, name, want) > 0:
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return value  # type: ignore[return-value]


def check_probability(value: object, name: str) -> float:
    """``value`` must be a number in ``[0, 1)``, e.g. a dropout probability."""
    want = "a number in [0, 1)"
    if not 0 <= _check_real(value, name, want) < 1:
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return value  # type: ignore[return-value]


def check_tensor(x: object, name: str, what: str = "") -> torch.Tensor:
    """``x`` must be a ``torch.Tensor``; ``what`` describes it, e.g. ``"(B, D) of floats"``."""
    if not isinstance(x, torch.Tensor):
        detail = f" {what}" if what else ""
        raise TypeError(f"{name} must be a torch.Tensor{detail}, got {_got(x)}")
    return x


def check_no_nan(x: torch.Tensor, name: str) -> torch.Tensor:
    """A float tensor of scores must hold no NaN (its argmax, ranks and losses would be
    meaningless, silently)."""
    if x.is_floating_point() and torch.isnan(x).any():
        raise ValueError(f"{name} holds NaN; every score must be a number")
    return x
