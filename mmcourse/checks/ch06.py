"""Self-checks for chapter 06 (fusion).

A failed check says what is wrong and why -- which block of a fusion's output sees the wrong
input, which layers PyTorch cannot see, which slip a rule for "is the difference real?"
makes -- but never prints the expected answer; see :mod:`mmcourse.checks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from mmcourse.checks._core import CheckResult
from mmcourse.models.introspect import find_unregistered_modules


def _without_gradient(module: torch.nn.Module, out: torch.Tensor) -> list[str]:
    """The parameters of ``module`` that get no gradient from ``out``, found with
    ``torch.autograd.grad``, which leaves every ``.grad`` of the learner's model untouched."""
    named = list(module.named_parameters())
    live = [(name, p) for name, p in named if p.requires_grad]
    grads = (
        torch.autograd.grad(out.pow(2).sum(), [p for _, p in live], allow_unused=True)
        if live and out.requires_grad
        else [None] * len(live)
    )
    reached = {name for (name, _), grad in zip(live, grads) if grad is not None and grad.any()}
    return [name for name, _ in named if name not in reached]


def _blocks_depend_on(
    module: nn.Module, image: torch.Tensor, text: torch.Tensor, d: int
) -> tuple[bool, bool, bool, bool]:
    """Does the first block change with the text, the second with the image?"""
    out = module(image, text)
    other_text = module(image, torch.randn_like(text))
    other_image = module(torch.randn_like(image), text)
    first_sees_text = not torch.allclose(out[:, :d], other_text[:, :d])
    second_sees_image = not torch.allclose(out[:, d : 2 * d], other_image[:, d : 2 * d])
    first_sees_image = not torch.allclose(out[:, :d], other_image[:, :d])
    second_sees_text = not torch.allclose(out[:, d : 2 * d], other_text[:, d : 2 * d])
    return first_sees_text, second_sees_image, first_sees_image, second_sees_text


def check_concat_product_fusion(module: nn.Module | None) -> CheckResult:
    """Is ``module`` a fusion ``(B, image_dim), (B, text_dim) -> (B, 3 D)`` that returns
    ``[W_x x + b_x ; W_y y + b_y ; (W_x x + b_x) * (W_y y + b_y)]`` and trains every weight?

    A failure names the block that is wrong (it sees the wrong input, it is not the product)
    or the parameters that get no gradient."""
    if not isinstance(module, nn.Module):
        return CheckResult(False, "build your fusion module (an nn.Module) and pass it in")
    dims = [getattr(module, name, None) for name in ("image_dim", "text_dim", "out_dim")]
    if not all(isinstance(v, int) and v > 0 for v in dims):
        return CheckResult(False, "give the module int attributes image_dim, text_dim and out_dim")
    dx, dy, out_dim = dims
    if out_dim % 3:
        return CheckResult(False, f"out_dim should be 3 * D (three blocks of D), got {out_dim}")
    d = out_dim // 3
    hidden = find_unregistered_modules(module)
    if hidden:
        return CheckResult(
            False, f"{', '.join(hidden)} hide layers from PyTorch: use nn.ModuleList"
        )
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(5, dx, generator=generator)
    text = torch.randn(5, dy, generator=generator)
    try:
        out = module(image, text)
    except Exception as error:
        return CheckResult(False, f"calling module(image, text) failed: {error}")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (5, out_dim):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        hint = ""
        if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] == 2 * d:
            hint = ": only two blocks; the third is the product x' * y'"
        elif isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == 5:
            hint = ": concatenate the three blocks of D along dimension 1"
        return CheckResult(
            False, f"for a batch of 5 the output should be (5, out_dim), got {shape}{hint}"
        )
    with torch.no_grad():
        first_text, second_image, first_image, second_text = _blocks_depend_on(
            module, image, text, d
        )
    if first_text or not first_image:
        return CheckResult(False, "the first block should be the projected image, and only that")
    if second_image or not second_text:
        return CheckResult(False, "the second block should be the projected text, and only that")
    if not torch.allclose(out[:, 2 * d :], out[:, :d] * out[:, d : 2 * d], atol=1e-5):
        return CheckResult(False, "the third block should be the product of the first two")
    missing = _without_gradient(module, out)
    if missing:
        return CheckResult(False, f"these parameters get no gradient: {missing}")
    params = sum(p.numel() for p in module.parameters())
    return CheckResult(True, f"[x'; y'; x' * y'] with {params} parameters, all trained")


def check_registered(
    model: nn.Module | None, image_dim: int = 64, text_dim: int = 32
) -> CheckResult:
    """Does PyTorch see every layer of ``model`` (a fusion ``(image, text) -> (B, D)``), and
    does every one of its parameters get a gradient?"""
    if not isinstance(model, nn.Module):
        return CheckResult(False, "build the fixed module and pass it in")
    hidden = find_unregistered_modules(model)
    if hidden:
        return CheckResult(
            False, f"{', '.join(hidden)} still hide layers in a plain Python container"
        )
    if not any(True for _ in model.parameters()):
        return CheckResult(False, "the module has no parameters at all")
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(4, image_dim, generator=generator)
    text = torch.randn(4, text_dim, generator=generator)
    try:
        missing = _without_gradient(model, model(image, text))
    except Exception as error:
        return CheckResult(False, f"a forward and backward pass failed: {error}")
    if missing:
        return CheckResult(False, f"these parameters get no gradient: {missing}")
    count = sum(p.numel() for p in model.parameters())
    return CheckResult(True, f"all {count} parameters are registered and get gradients")


def _rule(
    a: list[float], b: list[float], error: Callable[[torch.Tensor, torch.Tensor], float]
) -> bool:
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    return abs(ta.mean().item() - tb.mean().item()) > 2 * error(ta, tb)


_SE_RULES: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "right": lambda a, b: math.sqrt(a.var().item() / len(a) + b.var().item() / len(b)),
    "you compared with the spread of single runs (the standard deviations); the mean of n "
    "seeds varies less: divide each variance by its number of seeds": lambda a, b: math.sqrt(
        a.var().item() + b.var().item()
    ),
    "you used the population variance (dividing by n); the spread of a few seeds is "
    "estimated with n - 1 (torch's default, var(unbiased=True))": lambda a, b: math.sqrt(
        a.var(unbiased=False).item() / len(a) + b.var(unbiased=False).item() / len(b)
    ),
    "the standard error is the square root of the summed variances of the means": lambda a, b: (
        a.var().item() / len(a) + b.var().item() / len(b)
    ),
    "both sides have a spread: add the variances of both means": lambda a, b: math.sqrt(
        a.var().item() / len(a)
    ),
}
# (a, b): pairs of per-seed accuracies chosen so that each slip above decides one differently
_SE_CASES = [
    ([0.80, 0.82, 0.84], [0.76, 0.78, 0.80]),
    ([0.80, 0.81, 0.82], [0.70, 0.71, 0.72]),
    ([0.80, 0.83, 0.81], [0.81, 0.82, 0.80]),
    ([0.850, 0.852, 0.848], [0.840, 0.842, 0.838]),
    ([0.84, 0.86, 0.85], [0.83, 0.83, 0.83]),
    ([0.84, 0.86, 0.85, 0.85], [0.80, 0.84, 0.82, 0.81]),
    ([0.841, 0.843, 0.842], [0.829, 0.851, 0.836]),
    ([0.83, 0.85, 0.87], [0.80, 0.82, 0.84]),
]


def check_real_difference(fn: Callable[[list[float], list[float]], bool] | None) -> CheckResult:
    """Exercise 1: ``fn(a, b)`` says whether the means of two lists of per-seed accuracies
    differ by more than two standard errors of their difference.

    The right answers come from the rule computed here with torch; a failed check names the
    slip (standard deviation instead of standard error, population variance, no square root,
    one side's spread only) when the learner's answers match it on every case.
    """
    if fn is None:
        return CheckResult(False, "write is_real(a, b) and pass the function in")
    if not callable(fn):
        return CheckResult(False, f"pass the function itself, got {type(fn).__name__}")
    answers = []
    for a, b in _SE_CASES:
        try:
            answer = fn(list(a), list(b))
        except Exception as error:  # the learner's code may fail in any way
            return CheckResult(False, f"is_real(a, b) raised {type(error).__name__}: {error}")
        if isinstance(answer, torch.Tensor) and answer.numel() == 1:
            answer = bool(answer.item())
        if not isinstance(answer, bool):
            return CheckResult(False, f"return True or False, got {type(answer).__name__}")
        answers.append(answer)
    right = [_rule(a, b, _SE_RULES["right"]) for a, b in _SE_CASES]
    if answers == right:
        return CheckResult(True, f"your rule decides all {len(right)} pairs as it should")
    wrong = sum(x != y for x, y in zip(answers, right))
    if len(set(answers)) == 1:
        return CheckResult(
            False,
            f"{wrong} of {len(right)} pairs decided wrongly: your function says {answers[0]} "
            "for every pair; compare the gap between the means with their standard error",
        )
    for hint, rule in list(_SE_RULES.items())[1:]:
        if answers == [_rule(a, b, rule) for a, b in _SE_CASES]:
            return CheckResult(False, f"{wrong} of {len(right)} pairs decided wrongly: {hint}")
    return CheckResult(
        False,
        f"{wrong} of {len(right)} pairs decided wrongly: compare |mean(a) - mean(b)| with twice "
        "sqrt(var(a) / n_a + var(b) / n_b)",
    )
