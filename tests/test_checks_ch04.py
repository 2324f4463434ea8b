"""Chapter 04 self-checks: placeholders say "Not yet", wrong answers say why, right ones pass."""

from __future__ import annotations

import pytest
import torch
from test_checks_core import assert_hides
from torch import nn

from mmcourse.checks import ch04


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
        ch04.check_feature_size_32,
        ch04.check_shape_keeping_block,
    ):
        result = check(None)
        assert not result and str(result).startswith("Not yet: ")


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
