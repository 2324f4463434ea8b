"""Chapter 04 self-checks: placeholders say "Not yet", wrong answers say why, right ones pass."""

from __future__ import annotations

import math

import torch
from torch import nn

from mmcourse.checks import ch04


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


def test_conv_output_size():
    assert ch04.check_conv_output_size(hand_conv_out)
    # forgetting the padding, or rounding up, is caught
    no_padding = ch04.check_conv_output_size(lambda n, k, s, p: (n - k) // s + 1)
    assert not no_padding and "nn.Conv2d outputs 28" in str(no_padding)
    ceil = ch04.check_conv_output_size(lambda n, k, s, p: math.ceil((n + 2 * p - k) / s) + 1)
    assert not ceil
    true_division = ch04.check_conv_output_size(lambda n, k, s, p: (n + 2 * p - k) / s + 1)
    assert not true_division and "use // (floor division)" in str(true_division)
    crashing = ch04.check_conv_output_size(lambda n, k, s: n)
    assert not crashing and "raised TypeError" in str(crashing)
    assert "pass the function itself" in str(ch04.check_conv_output_size(28))


def test_feature_size_32():
    assert ch04.check_feature_size_32(256 * 4 * 4)
    assert "2304 is the size for 28x28" in str(ch04.check_feature_size_32(2304))
    assert "32 -> ? -> ? -> ?" in str(ch04.check_feature_size_32(256 * 32 * 32))


def test_conv_parameters():
    assert ch04.check_conv_parameters(256 * 128 * 9 + 256)
    assert "weights only" in str(ch04.check_conv_parameters(256 * 128 * 9))
    assert not ch04.check_conv_parameters(12345)
    assert ch04.check_conv_parameters(8 * 3 * 25 + 8, in_channels=3, out_channels=8, kernel_size=5)


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
