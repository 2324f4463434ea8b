"""Self-checks for chapter 02 (the maths of a joint representation).

The answers here are shapes, a gradient and slices of a weight matrix. A failed check names
what is wrong (which shape, which number of it and what that number should mean; which
factor or sign the gradient misses; which slice is swapped) but never prints the expected
shape or values; see :mod:`mmcourse.checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from mmcourse.checks._core import CheckResult, check_close, describe_shape_miss


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
    weight of the single layer on the concatenation, for the given feature sizes?

    The shapes are the answer, so a wrong one is explained by what each of its two numbers
    should *mean* (rows = out_features, columns = in_features), never by the right numbers.
    """
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
    columns = {
        "W_X": "the number of image features",
        "W_Y": "the number of text features",
        "[W_X W_Y]": "the number of features the layer reads: image and text together",
    }
    for name, want in expected.items():
        got = _as_shape(given[name])
        if got is None:
            return CheckResult(False, f"give the shape of {name} as a tuple of ints, e.g. (3, 4)")
        if len(got) != 2:
            return CheckResult(
                False, f"{name} is a matrix: give two numbers (rows, columns), got {len(got)}"
            )
        if got == want[::-1] and want[0] != want[1]:
            return CheckResult(
                False, f"{name}: {got} is transposed; nn.Linear stores (out_features, in_features)"
            )
        if got == want:
            continue
        problems = []
        if got[0] != want[0]:
            problems.append(
                "its first number (rows, nn.Linear's out_features) should be the size of the "
                "joint space"
            )
        if got[1] != want[1]:
            hint = f"its second number (columns, in_features) should be {columns[name]}"
            if name == "[W_X W_Y]" and got[1] in (image_dim, text_dim):
                hint += "; one layer on cat([x, y]) reads both modalities at once"
            elif name != "[W_X W_Y]" and got[1] in (image_dim, text_dim):
                hint += f"; {name} meets the {'image' if name == 'W_X' else 'text'} features"
            problems.append(hint)
        return CheckResult(False, f"{name} {got} is not right: " + "; ".join(problems))
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
    for sizes in ((5, 3, 4, 2), (1, 6, 2, 3), (8, 2, 2, 4)):
        problem = _random_problem(generator, *sizes)
        failure = _check_one_gradient(grad_weight_x, problem)
        if failure is not None:
            return failure
    return CheckResult(True, "dL/dW_X = (Z - T)^T X' agrees with autograd on 3 random problems")


def _random_problem(
    generator: torch.Generator, batch: int, d_x: int, d_y: int, k: int
) -> dict[str, torch.Tensor]:
    """x, y, weight_x (requiring grad), weight_y, bias, target of one problem, drawn in order."""
    x = torch.randn(batch, d_x, generator=generator)
    y = torch.randn(batch, d_y, generator=generator)
    weight_x = torch.randn(k, d_x, generator=generator, requires_grad=True)
    weight_y = torch.randn(k, d_y, generator=generator)
    bias = torch.randn(k, generator=generator)
    target = torch.randn(batch, k, generator=generator)
    return {"x": x, "y": y, "weight_x": weight_x, "weight_y": weight_y, "bias": bias,
            "target": target}  # fmt: skip


def _check_one_gradient(grad_weight_x: GradFn, problem: dict) -> CheckResult | None:
    """``None`` if the learner's gradient matches autograd's on ``problem``, else what is wrong."""
    x, y, weight_x, weight_y, bias, target = problem.values()
    (batch, d_x), k = x.shape, weight_x.shape[0]
    want = torch.autograd.grad(summed_squared_error(*problem.values()), weight_x)[0].double()
    try:
        got = grad_weight_x(x, y, weight_x.detach(), weight_y, bias, target)
    except Exception as error:
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
    if torch.allclose(got, want, atol=1e-4, rtol=1e-4):
        return None
    for candidate, hint in _gradient_slips(problem, want):
        if candidate is not None and torch.allclose(got, candidate.double(), atol=1e-4, rtol=1e-4):
            return CheckResult(False, f"{hint} (batch {batch}, k {k})")
    result = check_close("dL/dW_X", got, want, atol=1e-4, rtol=1e-4)
    return CheckResult(
        False, f"differs from autograd on a problem with batch {batch}, k {k}: {result.message}"
    )


def _gradient_slips(problem: dict, want: torch.Tensor) -> list[tuple[torch.Tensor | None, str]]:
    """The usual wrong gradients of ``problem``, each with what to say about it."""
    x, y, weight_x, weight_y, bias, target = problem.values()
    weight_x, batch = weight_x.detach(), x.shape[0]
    residual = x @ weight_x.T + y @ weight_y.T + bias - target  # dL/dZ = Z - T
    halving = "off by a factor of two: the 1/2 in L cancels the 2 from differentiating the square"
    return [
        (torch.zeros_like(want), "your function returns all zeros"),
        (want / batch, "off by a factor of the batch size: this loss is a sum, not a mean"),
        (-want, "the sign is flipped: use Z - T, not T - Z"),
        (2 * want, halving),
        (want / 2, halving),
        ((residual - bias).T @ x, "Z includes the bias b: Z = X W_X^T + Y W_Y^T + b"),
        ((x @ weight_x.T + bias - target).T @ x, "Z includes the text term Y W_Y^T too"),
        (
            residual.T @ y if y.shape[1] == x.shape[1] else None,
            "that is dL/dW_Y: multiply by X, not Y",
        ),
    ]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-6)


def _pieces_problem(
    linear: nn.Module, image_dim: int, pieces: dict[str, object]
) -> CheckResult | None:
    """What is wrong with the types or shapes of the learner's pieces (``None``: nothing)."""
    if not isinstance(linear, nn.Linear):
        return CheckResult(False, f"linear must be an nn.Linear, got {type(linear).__name__}")
    sources = {
        "weight_x": "a slice of linear.weight",
        "weight_y": "a slice of linear.weight",
        "bias": "linear.bias",
    }
    for name, value in pieces.items():
        if not isinstance(value, torch.Tensor):
            return CheckResult(
                False,
                f"{name} should be a tensor ({sources[name]}), got {type(value).__name__}",
            )
    text_dim = linear.in_features - image_dim
    want = {
        "weight_x": (linear.out_features, image_dim),
        "weight_y": (linear.out_features, text_dim),
        "bias": (linear.out_features,),
    }
    meaning = {
        "weight_x": "one row per output of the layer and one column per image feature",
        "weight_y": "one row per output of the layer and one column per text feature",
        "bias": "one number per output of the layer",
    }
    for name, shape in want.items():
        got = tuple(pieces[name].shape)
        if got != shape:
            return CheckResult(
                False, f"{name} {describe_shape_miss(got, shape)}; it needs {meaning[name]}"
            )
    return None


def check_split_weights(
    linear: nn.Linear,
    image_dim: int,
    weight_x: torch.Tensor,
    weight_y: torch.Tensor,
    bias: torch.Tensor | None,
) -> CheckResult:
    """Are ``weight_x``, ``weight_y`` and ``bias`` the pieces of ``linear`` (applied to
    ``cat([x, y])`` with ``image_dim`` image features) that make ``W_X x + W_Y y + b`` equal
    to it -- checked on the weights and on a random batch?

    A wrong piece is named with the likely slip (the two slices swapped, a missing bias),
    never with the expected values.
    """
    pieces = {"weight_x": weight_x, "weight_y": weight_y, "bias": bias}
    problem = _pieces_problem(linear, image_dim, pieces)
    if problem is not None:
        return problem
    text_dim = linear.in_features - image_dim
    weight = linear.weight.detach()
    with torch.no_grad():
        pieces = {name: value.detach().to(weight.dtype) for name, value in pieces.items()}
    first, last = weight[:, :image_dim], weight[:, image_dim:]
    tail, head = weight[:, text_dim:], weight[:, :text_dim]  # the slices taken the wrong way
    if not _same(pieces["weight_x"], first) or not _same(pieces["weight_y"], last):
        if _same(pieces["weight_x"], tail) and _same(pieces["weight_y"], head):
            hint = (
                "the slices are swapped: the image features come first in cat([x, y]), so W_X "
                "is the first image_dim columns of linear.weight and W_Y the rest"
            )
        elif _same(pieces["weight_x"], first):
            hint = "weight_x is right; weight_y should be the columns that follow it"
        elif _same(pieces["weight_y"], last):
            hint = "weight_y is right; weight_x is the first image_dim columns of linear.weight"
        else:
            hint = (
                "W_X is the first image_dim columns of linear.weight and W_Y the remaining "
                "columns (slice the columns, dimension 1, not the rows)"
            )
        return CheckResult(False, f"W_X x + W_Y y + b is not the layer on cat([x, y]): {hint}")
    if linear.bias is None:
        layer_bias = torch.zeros(linear.out_features, dtype=weight.dtype)
    else:
        layer_bias = linear.bias.detach()
    if not _same(pieces["bias"], layer_bias):
        if not pieces["bias"].any():
            hint = "your bias is all zeros; the layer's own bias is linear.bias"
        else:
            hint = "the bias is not the layer's; take linear.bias as it is"
        return CheckResult(False, f"the weights are right, but {hint}")
    x = torch.randn(4, image_dim, generator=torch.Generator().manual_seed(0))
    y = torch.randn(4, text_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = linear(torch.cat([x, y], dim=1))
        summed = x @ pieces["weight_x"].T + y @ pieces["weight_y"].T + pieces["bias"]
    difference = (reference - summed).abs().max().item()
    if difference > 1e-5:  # only if the layer itself does something unusual
        return CheckResult(False, "W_X x + W_Y y + b is not the layer on cat([x, y])")
    return CheckResult(True, "the two computations agree to 1e-5: W_X x + W_Y y + b is the layer")
