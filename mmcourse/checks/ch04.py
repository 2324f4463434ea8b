"""Self-checks for chapter 04, image encoders.

Each check accepts the learner's answer (``None`` while the placeholder is still there) and
returns a :class:`~mmcourse.checks.CheckResult` that prints as "Correct: ..." or "Not yet: ...".
The expected values are computed here from PyTorch itself (a real ``nn.Conv2d``, a real forward
pass), never typed in.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from mmcourse.checks._core import CheckResult, check_equal
from mmcourse.models.image import ArticleCNN

_CASES = [
    # (size, kernel, stride, padding)
    (28, 3, 1, 1),
    (28, 5, 1, 0),
    (28, 3, 2, 1),
    (7, 2, 2, 0),
    (32, 7, 2, 3),
    (15, 4, 3, 2),
    (9, 9, 1, 0),
    (224, 11, 4, 2),
]


def _conv_size_by_pytorch(size: int, kernel: int, stride: int, padding: int) -> int:
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, bias=False)
    with torch.no_grad():
        return conv(torch.zeros(1, 1, size, size)).shape[-1]


def check_conv_output_size(fn: Callable[[int, int, int, int], int] | None) -> CheckResult:
    """Exercise 1: ``fn(size, kernel, stride, padding)`` must give the output size of a conv.

    It is compared with a real ``nn.Conv2d`` on several (size, kernel, stride, padding) cases.
    """
    if fn is None:
        return CheckResult(False, "define conv_out(size, kernel, stride, padding) and pass it in")
    if not callable(fn):
        return CheckResult(False, f"pass the function itself, got {type(fn).__name__}")
    for size, kernel, stride, padding in _CASES:
        want = _conv_size_by_pytorch(size, kernel, stride, padding)
        try:
            got = fn(size, kernel, stride, padding)
        except Exception as error:  # the learner's code may fail in any way
            return CheckResult(
                False,
                f"conv_out({size}, {kernel}, {stride}, {padding}) raised "
                f"{type(error).__name__}: {error}",
            )
        if isinstance(got, float) and got.is_integer():
            return CheckResult(
                False,
                f"conv_out({size}, {kernel}, {stride}, {padding}) returned the float {got}; "
                "sizes are ints: use // (floor division), not /",
            )
        if got != want:
            return CheckResult(
                False,
                f"conv_out({size}, {kernel}, {stride}, {padding}) is {got!r}, but nn.Conv2d "
                f"outputs {want}; remember floor((size + 2*padding - kernel) / stride) + 1",
            )
    return CheckResult(True, f"conv_out agrees with nn.Conv2d on all {len(_CASES)} cases")


def check_feature_size_32(value: int | None) -> CheckResult:
    """Exercise 2: how many features the article's CNN makes of a 1x32x32 image."""
    if value is None:
        return CheckResult(False, "set features_32 to the number of output features")
    with torch.no_grad():
        expected = ArticleCNN()(torch.zeros(1, 1, 32, 32)).shape[1]
    if value == 2304:
        return CheckResult(
            False, "2304 is the size for 28x28 digits; trace 32 -> 16 -> ... for this image"
        )
    result = check_equal("features_32", value, expected)
    if not result:
        return CheckResult(
            False,
            f"features_32 is {value!r}; the side goes 32 -> ? -> ? -> ? through three 2x2 "
            "pools, and there are 256 channels at the end",
        )
    return result


def check_conv_parameters(
    value: int | None, in_channels: int = 128, out_channels: int = 256, kernel_size: int = 3
) -> CheckResult:
    """Exercise 3: the number of parameters of ``nn.Conv2d(in, out, kernel_size)``."""
    if value is None:
        return CheckResult(False, "set conv_params to the number you computed")
    conv = nn.Conv2d(in_channels, out_channels, kernel_size)
    expected = sum(p.numel() for p in conv.parameters())
    weights_only = out_channels * in_channels * kernel_size * kernel_size
    if value == weights_only:
        return CheckResult(
            False, f"{value:,} counts the weights only; each output channel also has a bias"
        )
    if value != expected:
        return CheckResult(
            False,
            f"conv_params is {value!r}; count out_channels x in_channels x k x k weights, "
            "plus one bias per output channel",
        )
    return CheckResult(
        True, f"nn.Conv2d({in_channels}, {out_channels}, {kernel_size}) has {expected:,} parameters"
    )


def check_shape_keeping_block(block: nn.Module | None, channels: int = 32) -> CheckResult:
    """Exercise 4: a residual block that keeps ``(B, channels, H, W)``.

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
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return CheckResult(
            False, f"the block turned shape {tuple(x.shape)} into {got}; use padding=1 with 3x3"
        )
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
