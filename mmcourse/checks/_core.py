"""The building blocks of the exercises' self-checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


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


def check_shape(name: str, value: object, expected: Sequence[int]) -> CheckResult:
    """Is ``value`` a tensor of shape ``expected``?"""
    if not isinstance(value, torch.Tensor):
        return CheckResult(False, f"{name} should be a torch.Tensor, got {type(value).__name__}")
    got = tuple(value.shape)
    if got != tuple(expected):
        return CheckResult(False, f"{name} has shape {got}, expected {tuple(expected)}")
    return CheckResult(True, f"{name} has shape {got}")


def check_equal(name: str, value: object, expected: object) -> CheckResult:
    """Is ``value == expected`` (exactly)?"""
    if value != expected:
        return CheckResult(False, f"{name} is {value!r}, expected {expected!r}")
    return CheckResult(True, f"{name} is {expected!r}")


def check_close(
    name: str, value: object, expected: float | torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4
) -> CheckResult:
    """Is ``value`` numerically close to ``expected`` (a number or a tensor)?"""
    try:
        got = torch.as_tensor(value, dtype=torch.float64)
        want = torch.as_tensor(expected, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return CheckResult(
            False, f"{name} should be a number or tensor, got {type(value).__name__}"
        )
    if got.shape != want.shape:
        return CheckResult(
            False, f"{name} has shape {tuple(got.shape)}, expected {tuple(want.shape)}"
        )
    if not torch.allclose(got, want, atol=atol, rtol=rtol):
        worst = (got - want).abs().max().item()
        return CheckResult(False, f"{name} differs from the expected value by up to {worst:.3g}")
    return CheckResult(True, f"{name} matches the expected value")
