"""Chapter 04 self-checks: placeholders say "Not yet", wrong answers say why, right ones pass."""

from __future__ import annotations

import math
import re

import pytest
import torch
from test_checks_core import assert_hides
from torch import nn

from mmcourse.checks import CheckResult, ch04


def hand_conv_out(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


class Residual(nn.Module):
    def __init__(self, channels: int, final_relu: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.final_relu = final_relu

    def forward(self, x):
        out = self.body(x) + x
        return torch.relu(out) if self.final_relu else out


def test_placeholders_say_not_yet():
    for check in (
        ch04.check_conv_output_size,
        ch04.check_feature_size_32,
        ch04.check_conv_parameters,
        ch04.check_shape_keeping_block,
    ):
        result = check(None)
        assert not result and str(result).startswith("Not yet: ")


def _without_call(result) -> str:
    """The message without its echo of the call "conv_out(28, 3, 1, 1)" (the inputs)."""
    return re.sub(r"conv_out\([^)]*\)", "conv_out(...)", str(result))


def test_conv_output_size():
    assert ch04.check_conv_output_size(hand_conv_out)
    # forgetting the padding, or rounding up, is caught
    no_padding = ch04.check_conv_output_size(lambda n, k, s, p: (n - k) // s + 1)
    assert not no_padding and "conv_out(28, 3, 1, 1) returned 26" in str(no_padding)
    assert "padding is missing" in str(no_padding)
    ceil = ch04.check_conv_output_size(lambda n, k, s, p: math.ceil((n + 2 * p - k) / s) + 1)
    assert not ceil and "round down" in str(ceil)
    true_division = ch04.check_conv_output_size(lambda n, k, s, p: (n + 2 * p - k) / s + 1)
    assert not true_division and "use // (floor division)" in str(true_division)
    fraction = ch04.check_conv_output_size(lambda n, k, s, p: (n + 2 * p - k) / s + 1.5)
    assert not fraction and "use // (floor division)" in str(fraction)
    crashing = ch04.check_conv_output_size(lambda n, k, s: n)
    assert not crashing and "raised TypeError" in str(crashing)
    assert "pass the function itself" in str(ch04.check_conv_output_size(28))
    assert "returned None" in str(ch04.check_conv_output_size(lambda n, k, s, p: None))


@pytest.mark.parametrize(
    ("conv_out", "hint"),
    [
        (lambda n, k, s, p: (n - k) // s + 1, "padding is missing"),
        (lambda n, k, s, p: (n + p - k) // s + 1, "both sides"),
        (lambda n, k, s, p: (n + 2 * p - k) // s, "off by one"),
        (lambda n, k, s, p: math.ceil((n + 2 * p - k) / s) + 1, "round down"),
        (lambda n, k, s, p: n + 2 * p - k + 1, "stride is missing"),
        (lambda n, k, s, p: (n + 2 * p) // s, "kernel is missing"),
        (lambda n, k, s, p: 0, "placeholder"),
        (lambda n, k, s, p: hand_conv_out(n, k, s, p) + 2, "too high"),
    ],
)
def test_conv_output_size_names_the_slip_and_hides_the_size(conv_out, hint):
    result = ch04.check_conv_output_size(conv_out)
    assert hint in str(result)
    case = tuple(int(v) for v in re.search(r"conv_out\((.*?)\)", str(result)).group(1).split(","))
    # the right size of the case that failed, by the formula (independent of nn.Conv2d)
    assert_hides(
        CheckResult(False, _without_call(result)[len("Not yet: ") :]), hand_conv_out(*case)
    )


def test_feature_size_32():
    assert ch04.check_feature_size_32(256 * 4 * 4)
    assert "the size for 28x28 digits" in str(ch04.check_feature_size_32(2304))
    assert "before pooling" in str(ch04.check_feature_size_32(256 * 32 * 32))
    assert "32 -> ? -> ? -> ?" in str(ch04.check_feature_size_32(256 * 32 * 32))


@pytest.mark.parametrize(
    ("guess", "hint"),
    [
        (0, "placeholder"),
        (4095, "slightly too low"),
        (5000, "too high"),
        (2304, "size for 28x28"),
        (256 * 8 * 8, "one pool is missing"),
        (256 * 16 * 16, "two pools are missing"),
        (256 * 2 * 2, "one pool too many"),
        (4 * 4, "one channel's map"),
        (256 * 4, "square the side"),
        (128 * 4 * 4, "256 channels"),
        ("4096", "should be a whole number, got str"),
    ],
)
def test_feature_size_32_hides_the_answer(guess, hint):
    result = ch04.check_feature_size_32(guess)
    assert hint in str(result)
    assert_hides(result, 256 * 4 * 4)  # 32 -> 16 -> 8 -> 4 through three 2x2 pools


def test_conv_parameters():
    assert ch04.check_conv_parameters(256 * 128 * 9 + 256)
    assert "weights only" in str(ch04.check_conv_parameters(256 * 128 * 9))
    assert not ch04.check_conv_parameters(12345)
    assert ch04.check_conv_parameters(8 * 3 * 25 + 8, in_channels=3, out_channels=8, kernel_size=5)


@pytest.mark.parametrize(
    ("guess", "hint"),
    [
        (0, "placeholder"),
        (256 * 128 * 9 + 255, "slightly too low"),
        (256 * 128 * 9, "weights only"),
        (256 * 128 * 9 + 128, "per *output* channel"),
        (256 * 9 + 256, "every input channel"),
        (256 * 128 * 3 + 256, "square the kernel size"),
        (256 * 128 + 256, "k x k weights per input channel"),
        (128 * 9 + 1, "one filter"),
        (2 * (256 * 128 * 9 + 256), "factor of about two"),
        (None, "set conv_params"),
        (250000.5, "whole number"),
    ],
)
def test_conv_parameters_hides_the_answer(guess, hint):
    result = ch04.check_conv_parameters(guess)
    assert hint in str(result)
    assert_hides(result, 256 * 128 * 3 * 3 + 256)  # 295,168, counted by hand


def test_shape_keeping_block():
    assert ch04.check_shape_keeping_block(Residual(32))
    assert ch04.check_shape_keeping_block(Residual(32, final_relu=False))
    plain = ch04.check_shape_keeping_block(Residual(32).body)
    assert not plain and "does not add its input back" in str(plain)
    shrinking = ch04.check_shape_keeping_block(nn.Conv2d(32, 32, 3))
    assert not shrinking and "(2, 32, 12, 12)" in str(shrinking)
    wrong_channels = ch04.check_shape_keeping_block(nn.Conv2d(16, 16, 3, padding=1))
    assert not wrong_channels and "raised RuntimeError" in str(wrong_channels)
    assert "no trainable parameters" in str(ch04.check_shape_keeping_block(nn.ReLU()))
    assert "must be an nn.Module" in str(ch04.check_shape_keeping_block("block"))
    # the learner's block is left untouched by the zeroing test
    block = Residual(32)
    before = [p.clone() for p in block.parameters()]
    ch04.check_shape_keeping_block(block)
    assert all(torch.equal(a, b) for a, b in zip(before, block.parameters()))
