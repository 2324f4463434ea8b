"""Self-checks for chapter 02 (the maths of a joint representation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from mmcourse.checks._core import CheckResult


def _as_shape(value: object) -> tuple[int, ...] | None:
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return tuple(value)
    return None


def check_weight_shapes(
    image_dim: int,
    text_dim: int,
    joint_dim: int,
    weight_x_shape: Sequence[int],
    weight_y_shape: Sequence[int],
    concat_weight_shape: Sequence[int],
) -> CheckResult:
    """Are these the shapes (as ``nn.Linear`` stores them) of ``W_X``, ``W_Y`` and of the
    weight of the single layer on the concatenation, for the given feature sizes?"""
    expected = {
        "W_X": (joint_dim, image_dim),
        "W_Y": (joint_dim, text_dim),
        "[W_X W_Y]": (joint_dim, image_dim + text_dim),
    }
    given = {
        "W_X": weight_x_shape,
        "W_Y": weight_y_shape,
        "[W_X W_Y]": concat_weight_shape,
    }
    for name, want in expected.items():
        got = _as_shape(given[name])
        if got is None:
            return CheckResult(False, f"give the shape of {name} as a tuple of ints, e.g. (3, 4)")
        if got == want[::-1] and want[0] != want[1]:
            return CheckResult(
                False, f"{name}: {got} is transposed; nn.Linear stores (out_features, in_features)"
            )
        if got != want:
            return CheckResult(False, f"{name} has shape {want}, not {got}")
    return CheckResult(True, ", ".join(f"{name} {shape}" for name, shape in expected.items()))


GradFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], object
]


def summed_squared_error(
    x: torch.Tensor,
    y: torch.Tensor,
    weight_x: torch.Tensor,
    weight_y: torch.Tensor,
    bias: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """The exercise's loss ``L = 1/2 sum_b |Z_b - T_b|^2`` with ``Z = x W_X^T + y W_Y^T + b``."""
    z = x @ weight_x.T + y @ weight_y.T + bias
    return 0.5 * (z - target).pow(2).sum()


def check_grad_weight_x(grad_weight_x: GradFn) -> CheckResult:
    """Does ``grad_weight_x(x, y, weight_x, weight_y, bias, target)`` return dL/dW_X of
    :func:`summed_squared_error`, as autograd computes it, on a few random problems?"""
    if not callable(grad_weight_x):
        return CheckResult(False, "pass your function itself (without calling it)")
    generator = torch.Generator().manual_seed(2)
    for batch, d_x, d_y, k in ((5, 3, 4, 2), (1, 6, 2, 3), (8, 2, 2, 4)):
        x, y = (
            torch.randn(batch, d_x, generator=generator),
            torch.randn(batch, d_y, generator=generator),
        )
        weight_x = torch.randn(k, d_x, generator=generator, requires_grad=True)
        weight_y, bias = (
            torch.randn(k, d_y, generator=generator),
            torch.randn(k, generator=generator),
        )
        target = torch.randn(batch, k, generator=generator)
        summed_squared_error(x, y, weight_x, weight_y, bias, target).backward()
        expected = weight_x.grad
        try:
            got = grad_weight_x(x, y, weight_x.detach(), weight_y, bias, target)
        except Exception as error:  # noqa: BLE001 -- report any learner error as a hint
            return CheckResult(False, f"your function raised {type(error).__name__}: {error}")
        if got is None:
            return CheckResult(False, "your function returns None; return dL/dW_X as a tensor")
        if not isinstance(got, torch.Tensor):
            return CheckResult(False, f"return a tensor, got {type(got).__name__}")
        if tuple(got.shape) != (k, d_x):
            hint = " (transposed?)" if tuple(got.shape) == (d_x, k) else ""
            return CheckResult(
                False,
                f"dL/dW_X must have the shape of W_X {(k, d_x)}, got {tuple(got.shape)}{hint}",
            )
        got = got.detach().double()
        if not torch.allclose(got, expected.double(), atol=1e-4, rtol=1e-4):
            if batch > 1 and torch.allclose(got * batch, expected.double(), atol=1e-4, rtol=1e-4):
                return CheckResult(
                    False, "off by a factor of the batch size: this loss is a sum, not a mean"
                )
            if torch.allclose(got, -expected.double(), atol=1e-4, rtol=1e-4):
                return CheckResult(False, "the sign is flipped: use Z - T, not T - Z")
            worst = (got - expected.double()).abs().max().item()
            return CheckResult(
                False, f"differs from autograd by up to {worst:.3g} (batch {batch}, k {k})"
            )
    return CheckResult(True, "dL/dW_X = (Z - T)^T X' agrees with autograd on 3 random problems")


def check_split_weights(
    linear: nn.Linear,
    image_dim: int,
    weight_x: torch.Tensor,
    weight_y: torch.Tensor,
    bias: torch.Tensor | None,
) -> CheckResult:
    """Are ``weight_x``, ``weight_y`` and ``bias`` the pieces of ``linear`` (applied to
    ``cat([x, y])`` with ``image_dim`` image features) that make ``W_X x + W_Y y + b`` equal
    to it -- checked on the weights and on a random batch?"""
    if not isinstance(linear, nn.Linear):
        return CheckResult(False, f"linear must be an nn.Linear, got {type(linear).__name__}")
    pieces = {"weight_x": weight_x, "weight_y": weight_y, "bias": bias}
    for name, value in pieces.items():
        if not isinstance(value, torch.Tensor):
            return CheckResult(False, f"{name} should be a tensor, got {type(value).__name__}")
    text_dim = linear.in_features - image_dim
    want = {
        "weight_x": (linear.out_features, image_dim),
        "weight_y": (linear.out_features, text_dim),
        "bias": (linear.out_features,),
    }
    for name, shape in want.items():
        if tuple(pieces[name].shape) != shape:
            return CheckResult(
                False, f"{name} should have shape {shape}, got {tuple(pieces[name].shape)}"
            )
    x = torch.randn(4, image_dim, generator=torch.Generator().manual_seed(0))
    y = torch.randn(4, text_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = linear(torch.cat([x, y], dim=1))
        summed = x @ weight_x.T + y @ weight_y.T + bias
    difference = (reference - summed).abs().max().item()
    if difference > 1e-5:
        return CheckResult(
            False,
            f"W_X x + W_Y y + b differs from the layer on cat([x, y]) by up to {difference:.3g}; "
            "W_X is the first image_dim columns of linear.weight",
        )
    return CheckResult(True, f"the two computations agree (largest difference {difference:.1e})")
