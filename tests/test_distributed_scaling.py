"""mmcourse.distributed.scaling by hand-worked numbers, the torchrun command line, the data
parallel diagram, and chapter 15's self-checks."""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import pytest
from test_checks_core import assert_hides
from torch import nn

from mmcourse import diagrams
from mmcourse.checks import ch15
from mmcourse.distributed import launch, scaling


def test_ring_allreduce_by_hand() -> None:
    # 100 MB over 4 processes at 10 GB/s: 2 * 3/4 * 1e8 / 1e10 = 0.015 s
    assert scaling.ring_allreduce_seconds(1e8, 4, 1e10) == pytest.approx(0.015)
    assert scaling.ring_allreduce_seconds(1e8, 1, 1e10) == 0.0
    # the time approaches 2 * bytes / bandwidth as N grows, never beyond
    assert scaling.ring_allreduce_seconds(1e8, 1000, 1e10) < 0.02
    # with 10 us a hop: 2 * 3 hops more, 6e-5 s
    assert scaling.ring_allreduce_seconds(1e8, 4, 1e10, 1e-5) == pytest.approx(0.015 + 6e-5)
    with pytest.raises(ValueError, match="latency"):
        scaling.ring_allreduce_seconds(1e8, 4, 1e10, -1.0)
    with pytest.raises(ValueError, match="bandwidth"):
        scaling.ring_allreduce_seconds(1e8, 4, 0)


def test_gradient_bytes_and_step_seconds() -> None:
    model = nn.Linear(10, 3)  # 33 parameters
    model.bias.requires_grad_(False)
    assert scaling.gradient_bytes(model) == 4 * 30
    assert scaling.gradient_bytes(model, bytes_per_value=2) == 60
    # 0.8 s of compute on 4 processes, 1e8 bytes at 1e10 B/s, no latency: 0.2 + 0.015
    assert scaling.step_seconds(0.8, 1e8, 4, (1e10, 0.0)) == pytest.approx(0.215)
    assert all(bandwidth > 0 and latency > 0 for bandwidth, latency in scaling.LINKS.values())


def test_negatives_per_example() -> None:
    assert scaling.negatives_per_example(512, 8, gathered=True) == 511
    assert scaling.negatives_per_example(512, 8, gathered=False) == 63
    with pytest.raises(ValueError, match="evenly"):
        scaling.negatives_per_example(100, 8, gathered=True)


def test_the_torchrun_command_line() -> None:
    two = launch.torchrun_command("mmcourse.distributed.check", ["--out", "x"], 2)
    assert two[:2] == [sys.executable, "-m"] and "torch.distributed.run" in two
    assert "--standalone" in two and "--nproc_per_node=2" in two
    assert two[-4:] == ["-m", "mmcourse.distributed.check", "--out", "x"]
    assert launch.torchrun_command("m", [], 1) == [sys.executable, "-m", "m"]


def test_the_data_parallel_diagram_names_every_rank() -> None:
    figure = diagrams.data_parallel(3)
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert [t.split("\n")[0] for t in texts if t.startswith("replica")] == [
        "replica 0",
        "replica 1",
        "replica 2",
    ]
    assert any("all-reduce" in t for t in texts) and any("all-gather" in t for t in texts)
    plt.close(figure)
    with pytest.raises(ValueError, match="processes"):
        diagrams.data_parallel(8)


def test_check_negatives() -> None:
    assert ch15.check_negatives(512, 8, True, 511)
    assert ch15.check_negatives(512, 8, False, 63)
    for guess, hint in ((512, "own caption"), (63, "other case"), (100, "too low")):
        result = ch15.check_negatives(512, 8, True, guess)
        assert hint in result.message, (hint, result)
        assert_hides(result, 511)
    assert "evenly" in ch15.check_negatives(100, 8, True, 99).message


def test_check_allreduce_seconds() -> None:
    expected = 2 * 3 / 4 * 1e8 / 1e10  # worked by hand: 0.015 s
    assert ch15.check_allreduce_seconds(1e8, 4, 1e10, expected)
    for guess, hint in (
        (expected / 2, "twice"),
        (2e8 / 1e10, "(N - 1) / N"),
        (1000 * expected, "milliseconds"),
        (expected * 8, "bits"),
    ):
        result = ch15.check_allreduce_seconds(1e8, 4, 1e10, guess)
        assert hint in result.message, (hint, result)
        assert_hides(result, expected)
    assert "at least 2" in ch15.check_allreduce_seconds(1e8, 1, 1e10, 0.1).message


def test_check_token_weight() -> None:
    expected = (1 / 2 / 500) / (1 / 1200)  # worked by hand: 1200 / 1000 = 1.2
    assert ch15.check_token_weight([700, 500], 1, expected)
    assert ch15.check_token_weight([700, 500], 1, 1.2)
    assert "less" in ch15.check_token_weight([700, 500], 0, 1200 / 1400).message
    for guess, hint in ((1200 / 1400, "another rank"), (1000 / 1200, "inverse"),
                        (500 / 1200, "share"), (1.0, "equal only"), (2.4, "too high"),
                        (0, "placeholder")):  # fmt: skip
        result = ch15.check_token_weight([700, 500], 1, guess)
        assert not result and hint in result.message, (hint, result)
        assert_hides(result, expected)
    assert "two ranks" in ch15.check_token_weight([5], 0, 1.0).message
    assert "0..1" in ch15.check_token_weight([5, 6], 2, 1.0).message
    assert "whole number" in ch15.check_token_weight([5, 0], 0, 1.0).message
