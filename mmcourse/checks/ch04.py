"""Self-checks for chapter 04, image encoders.

Each check accepts the learner's answer (``None`` while the placeholder is still there) and
returns a :class:`~mmcourse.checks.CheckResult` that prints as "Correct: ..." or "Not yet: ...".
The expected values are computed here from PyTorch itself (a real forward pass, receptive
fields measured with autograd), never typed in -- and never printed: a failed check says whether
a number is too high or too low, by roughly how much, and which slip it looks like (a pool too
few, the windows' overlap forgotten), so the learner still works out the answer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from mmcourse.checks._core import CheckResult, as_number, describe_miss
from mmcourse.models.image import ArticleCNN


def _matching_hints(count: int, expected: int, mistakes: list[tuple[int, str]]) -> str:
    """The hints of every slip that gives ``count`` (and not ``expected``), joined by "or"."""
    hints = [hint for wrong, hint in mistakes if wrong == count != expected]
    return "; or ".join(dict.fromkeys(hints))


def check_feature_size_32(value: int | None) -> CheckResult:
    """Exercise 2: how many features the article's CNN makes of a 1x32x32 image.

    Spots the 28x28 answer, a pool too few or too many, the channels forgotten and the side
    not squared, without printing the right count.
    """
    if value is None:
        return CheckResult(False, "set features_32 to the number of output features")
    count = as_number("features_32", value, whole=True)
    if isinstance(count, CheckResult):
        return count
    model = ArticleCNN()
    with torch.no_grad():
        expected = model(torch.zeros(1, 1, 32, 32)).shape[1]
    if count == expected:
        return CheckResult(True, f"features_32 is {count}: channels x side x side after the pools")
    channels = model.blocks[-1][0].out_channels
    pools = len(model.blocks)
    side = 32 // 2**pools
    trace = f"trace the side 32 -> ? -> ? -> ? through the {pools} max-pools (2x2)"
    mistakes = [
        (model.feature_dim(28, 28), f"that is the size for 28x28 digits; {trace} for this image"),
        (channels * 32 * 32, f"that is the size before pooling: {trace}"),
        (channels * side * side * 4, "one pool is missing: each of the three halves the side"),
        (channels * side * side * 16, "two pools are missing: each of the three halves the side"),
        (channels * side * side // 4, "one pool too many: there are three"),
        (side * side, f"that is one channel's map; the last block has {channels} channels"),
        (channels * side, "the map is side x side: square the side"),
        (channels * side * 2, "the map is side x side: square the side, do not double it"),
        (channels // 2 * side * side, f"the last block has {channels} channels"),
    ]
    hint = _matching_hints(count, expected, mistakes)
    if hint:
        return CheckResult(False, hint)
    return CheckResult(
        False,
        f"features_32 {describe_miss(count, expected)}; {trace}, then multiply by the "
        f"{channels} channels at the end",
    )


def check_shape_keeping_block(block: nn.Module | None, channels: int = 32) -> CheckResult:
    """Exercise 4: a residual block that keeps ``(B, channels, H, W)``.

    Keeping the shape is the point of the exercise, so a wrong output shape is printed next
    to the input's, with what changed (channels, a shrinking or halving H and W).

    The block must keep the shape of a ``(2, channels, 14, 14)`` batch, have trainable
    parameters, and add its input back: with every parameter set to zero the convolutions
    output nothing, so a residual block returns ``relu(x)`` (or ``x`` without the final ReLU),
    while a plain stack returns zeros.
    """
    if block is None:
        return CheckResult(False, "build the block (an nn.Module) and pass it in")
    if not isinstance(block, nn.Module):
        return CheckResult(False, f"block must be an nn.Module, got {type(block).__name__}")
    if not any(p.requires_grad for p in block.parameters()):
        return CheckResult(False, "the block has no trainable parameters; add the convolutions")
    x = torch.randn(2, channels, 14, 14, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            out = block(x)
    except Exception as error:  # the learner's code may fail in any way
        return CheckResult(
            False,
            f"block(x) with x of shape {tuple(x.shape)} raised {type(error).__name__}: {error}",
        )
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        if not isinstance(out, torch.Tensor):
            return CheckResult(False, f"the block returned a {type(out).__name__}; return a tensor")
        got = tuple(out.shape)
        if len(got) != 4:
            hint = "keep all four dimensions (B, C, H, W): no flatten, no pooling to a vector"
        elif got[1] != channels:
            hint = "the number of channels changed: the last conv must output as many as it reads"
        elif got[2] > x.shape[2] // 2 and got[2] < x.shape[2]:
            hint = "H and W shrank: a 3x3 convolution keeps them with padding=1"
        elif got[2] < x.shape[2]:
            hint = "H and W halved or more: keep stride 1 and leave out pooling"
        else:
            hint = "H and W grew: a 3x3 convolution keeps them with padding=1, not more"
        return CheckResult(False, f"the block turned shape {tuple(x.shape)} into {got}; {hint}")
    zeroed = copy.deepcopy(block)
    with torch.no_grad():
        for p in zeroed.parameters():
            p.zero_()
        out_zero = zeroed(x)
    adds_input = torch.allclose(out_zero, torch.relu(x), atol=1e-5) or torch.allclose(
        out_zero, x, atol=1e-5
    )
    if not adds_input:
        return CheckResult(
            False,
            "the shape is kept, but the block does not add its input back: return "
            "relu(F(x) + x), where F(x) is conv -> BN -> ReLU -> conv -> BN",
        )
    return CheckResult(True, f"the block keeps shape {tuple(x.shape)} and adds its input back")


def _measured_receptive_field(layers: int, kernel: int) -> int:
    """The side of the input window one output pixel sees, measured with autograd: the
    gradient of the centre output with respect to the input is non-zero exactly there."""
    side = 2 * layers * kernel + 1
    stack = nn.Sequential(*(nn.Conv2d(1, 1, kernel, padding=kernel // 2) for _ in range(layers)))
    with torch.no_grad():
        for conv in stack:
            conv.weight.fill_(1.0)  # positive weights: nothing cancels inside the window
    image = torch.zeros(1, 1, side, side, requires_grad=True)
    stack(image)[0, 0, side // 2, side // 2].backward()
    rows = (image.grad[0, 0] != 0).any(dim=1).nonzero()
    return int(rows.max() - rows.min() + 1)


_FIELD_CASES = [(1, 3), (2, 3), (3, 3), (5, 3), (2, 5), (3, 7)]


def check_receptive_field(fn: Callable[[int, int], int] | None) -> CheckResult:
    """Exercise 1: ``fn(layers, kernel)`` gives the side of the receptive field of ``layers``
    stacked ``kernel x kernel`` convolutions (stride 1, "same" padding).

    The expected sides are measured on real ``nn.Conv2d`` stacks with autograd, never typed
    in; a failed check names the slip (the windows' overlap forgotten, the centre pixel
    forgotten, a product instead of a sum) without printing the formula.
    """
    if fn is None:
        return CheckResult(False, "write receptive_field(layers, kernel) and pass it in")
    if not callable(fn):
        return CheckResult(False, f"pass the function itself, got {type(fn).__name__}")
    slips = {
        "each layer adds a whole kernel: neighbouring windows overlap, so each layer only "
        "adds kernel - 1 pixels": lambda n, k: n * k,
        "the centre pixel is missing: one layer of a 3x3 convolution sees 3 pixels, not 2": (
            lambda n, k: n * (k - 1)
        ),
        "the field grows by a sum per layer, not a product": lambda n, k: k**n,
    }
    for layers, kernel in _FIELD_CASES:
        try:
            answer = fn(layers, kernel)
        except Exception as error:  # the learner's code may fail in any way
            return CheckResult(
                False, f"receptive_field({layers}, {kernel}) raised {type(error).__name__}: {error}"
            )
        number = as_number(f"receptive_field({layers}, {kernel})", answer, whole=True)
        if isinstance(number, CheckResult):
            return number
        expected = _measured_receptive_field(layers, kernel)
        if number != expected:
            hint = next(
                (
                    text
                    for text, slip in slips.items()
                    if all(fn(n, k) == slip(n, k) for n, k in _FIELD_CASES)
                ),
                "start from one layer (it sees kernel pixels) and ask how many new pixels "
                "each further layer adds on each side",
            )
            return CheckResult(
                False,
                f"receptive_field({layers}, {kernel}) = {number} "
                f"{describe_miss(number, expected)}; {hint}",
            )
    return CheckResult(
        True,
        f"your formula matches the fields measured with autograd on {len(_FIELD_CASES)} stacks",
    )


_VERDICTS = ("helps", "hurts", "no clear difference")
NOISE = 0.01
"""Accuracy differences below this are within the seed-to-seed spread of the recipe's runs
on 1,000 validation digits (section 9 of the chapter measures that spread)."""


def check_batch_norm_experiment(
    model: nn.Module | None,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    with_batch_norm: float,
    verdict: str | None,
) -> CheckResult:
    """Exercise 3: ``model`` is DigitNet trained without batch norm; ``with_batch_norm`` the
    validation accuracy of the recipe's DigitNet; ``verdict`` what batch norm does here.

    The check finds no ``BatchNorm`` layer left, measures the model's validation accuracy
    itself, and judges the verdict against *the learner's own* two numbers: a difference
    smaller than :data:`NOISE` is "no clear difference".
    """
    if model is None:
        return CheckResult(False, "train the model without batch norm and pass it in")
    if not isinstance(model, nn.Module):
        return CheckResult(False, f"model must be an nn.Module, got {type(model).__name__}")
    norms = [
        name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    if norms:
        return CheckResult(False, f"the model still has batch norm at {', '.join(norms)}")
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return CheckResult(False, "the model has no convolutions left: remove only the batch norm")
    accuracy_with = as_number("with_batch_norm", with_batch_norm)
    if isinstance(accuracy_with, CheckResult):
        return accuracy_with
    if not 0 <= accuracy_with <= 1:
        return CheckResult(False, "with_batch_norm should be an accuracy between 0 and 1")
    if verdict not in _VERDICTS:
        return CheckResult(False, f"verdict should be one of {_VERDICTS}, got {verdict!r}")
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        predicted = model(val_images.to(device)).argmax(dim=1).cpu()
    accuracy_without = (predicted == val_labels).float().mean().item()
    difference = accuracy_with - accuracy_without
    if abs(difference) < NOISE:
        right = "no clear difference"
    else:
        right = "helps" if difference > 0 else "hurts"
    if verdict != right:
        return CheckResult(
            False,
            f"your model without batch norm reaches {accuracy_without:.3f} against "
            f"{accuracy_with:.3f} with it; with a difference of that size, {verdict!r} is not "
            f"what your own numbers say (differences under {NOISE} are within seed noise)",
        )
    return CheckResult(
        True,
        f"without batch norm {accuracy_without:.3f}, with it {accuracy_with:.3f}: batch norm "
        f"{right if right != 'no clear difference' else 'makes no clear difference'} here",
    )
