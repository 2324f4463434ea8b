"""Self-checks of chapter 12 accept right answers and explain wrong ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_checks_core import assert_hides
from torch import nn

from mmcourse import deploy
from mmcourse.checks import ch12

# ----------------------------------------------------------------------------- model size


def small_model() -> nn.Module:
    """Float32 weights, batch norm's float running stats and its int64 counter."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )


def bytes_by_hand(model: nn.Module) -> int:
    """The learner's way: parameters and buffers, each numel times its element size."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def test_model_bytes_accepts_the_right_count() -> None:
    model = small_model()
    # worked by hand: conv 4*1*3*3 + 4 = 40, batch norm 4 + 4 (weights) + 4 + 4 (running
    # mean, var) floats = 16, linear 144*5 + 5 = 725 -> 781 float32 = 3,124 bytes, + 8 (int64)
    assert bytes_by_hand(model) == 781 * 4 + 8
    result = ch12.check_model_bytes(model, bytes_by_hand(model))
    assert result and "3,132 bytes" in result.message
    assert ch12.check_model_bytes(model, float(bytes_by_hand(model)))
    assert ch12.check_model_bytes(model, torch.tensor(bytes_by_hand(model)))
    # the serialised file holds the same tensors, plus names and structure
    assert deploy.model_size_bytes(model) > bytes_by_hand(model)


def test_model_bytes_counts_a_shared_weight_once() -> None:
    torch.manual_seed(0)
    embedding, output = nn.Embedding(10, 4), nn.Linear(4, 10, bias=False)
    output.weight = embedding.weight  # tied, as language models often do
    model = nn.ModuleDict({"embedding": embedding, "output": output})
    assert bytes_by_hand(model) == 10 * 4 * 4
    assert ch12.check_model_bytes(model, 160)
    assert not ch12.check_model_bytes(model, 320)


def test_model_bytes_names_the_usual_slips() -> None:
    model = small_model()
    right = bytes_by_hand(model)
    numbers = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
    parameters_only = sum(p.numel() * p.element_size() for p in model.parameters())
    for guess, hint in (
        (0, "placeholder"),
        (numbers, "how many numbers"),
        (parameters_only, "add the buffers"),
        (4 * numbers, "int64"),
        (8 * right, "bits"),
        (right / 1024, "kibibytes"),
        (right / 1000, "kilobytes"),
        (deploy.model_size_bytes(model), "size of the saved file"),
        (right + 1, "slightly too high"),
        (right + 0.5, "whole number"),
        (right // 2, "too low"),
    ):
        result = ch12.check_model_bytes(model, guess)
        assert hint in result.message, result
        assert_hides(result, right)


def test_model_bytes_rejects_bad_inputs() -> None:
    model = small_model()
    assert "nn.Module" in ch12.check_model_bytes("model", 10).message
    assert "still None" in ch12.check_model_bytes(model, None).message
    assert "drop the quotes" in ch12.check_model_bytes(model, "3132").message
    assert "single number" in ch12.check_model_bytes(model, torch.zeros(2)).message


# ----------------------------------------------------------------------------- int8 by hand


@pytest.fixture
def weight() -> torch.Tensor:
    torch.manual_seed(0)
    w = torch.randn(6, 10) * torch.tensor([[0.1], [0.5], [1.0], [2.0], [0.05], [0.3]])
    w[3, 4] = 9.0  # an outlier: one row's scale is much coarser than the others
    return w


def int8_error_by_hand(w: torch.Tensor) -> float:
    """NumPy, row by row: scale = max|w| / 127, q = round(w / scale) in -127..127."""
    worst = 0.0
    for row in w.double().numpy():
        scale = np.abs(row).max() / 127
        q = np.clip(np.rint(row / scale), -127, 127)
        worst = max(worst, float(np.abs(row - q * scale).max()))
    return worst


def test_int8_error_accepts_the_right_value(weight) -> None:
    expected = int8_error_by_hand(weight)
    result = ch12.check_int8_error(weight, expected)
    assert result and "half a step" in result.message
    assert ch12.check_int8_error(weight, torch.tensor(expected, dtype=torch.float32))
    # the bound: rounding moves a weight by at most half a step of the coarsest row
    assert expected <= (weight.abs().amax(dim=1) / 127).max().item() / 2


def test_int8_error_with_a_zero_row_and_a_perfect_row() -> None:
    w = torch.tensor([[0.0, 0.0, 0.0], [-127.0, 1.0, 64.0]])  # the second: integer multiples
    assert int8_error_by_hand(w[1:]) == 0.0
    assert ch12.check_int8_error(w, 0.0)
    assert not ch12.check_int8_error(w, 0.5)


def test_int8_error_names_the_usual_slips(weight) -> None:
    expected = int8_error_by_hand(weight)
    w = weight.double()
    rows = w.abs().amax(dim=1, keepdim=True)
    scale = rows / 127
    q = torch.round(w / scale).clamp(-127, 127)
    per_tensor = w.abs().max() / 127
    linear = nn.Linear(10, 6)
    with torch.no_grad():
        linear.weight.copy_(weight)
    torchao_weight = deploy.quantize_int8(linear).weight.dequantize()
    for guess, hint in (
        (0.0, "placeholder"),
        ((w - torch.round(w / per_tensor) * per_tensor).abs().max(), "each row its own scale"),
        ((w - torch.trunc(w / scale) * scale).abs().max(), "not toward zero"),
        ((w - q).abs().max(), "de-quantise"),
        ((w - q * scale).abs().mean(), "mean error"),
        ((w - torchao_weight.double()).abs().max(), "torchao's convention"),
        (((w - q * scale).abs() / rows).max(), "relative"),
        (expected * 1.5, "too high"),
        (expected * 3, "cannot exceed"),
    ):
        result = ch12.check_int8_error(weight, float(guess))
        assert hint in result.message, (hint, result)
        assert_hides(result, expected)


def test_int8_error_rejects_bad_inputs(weight) -> None:
    assert "(rows, cols)" in ch12.check_int8_error(weight[0], 0.1).message
    assert "floating-point" in ch12.check_int8_error(weight.long(), 0.1).message
    assert "negative" in ch12.check_int8_error(weight, -0.01).message
    assert "still None" in ch12.check_int8_error(weight, None).message
    assert "a number, got list" in ch12.check_int8_error(weight, [0.1]).message


# ----------------------------------------------------------------------------- speed-up

LATENCY_MS, RATE = 0.8, 2500.0  # 0.4 ms per canvas in the batch: twice as fast


def test_speedup_accepts_the_right_value_within_rounding() -> None:
    assert ch12.check_speedup(LATENCY_MS, RATE, 2.0)
    assert ch12.check_speedup(LATENCY_MS, RATE, 2.05)  # from a rounded table
    assert not ch12.check_speedup(LATENCY_MS, RATE, 2.2)
    result = ch12.check_speedup(LATENCY_MS, RATE, 2.0)
    assert "speed-up 2:" in result.message and "less time in the batch" in result.message
    slower = ch12.check_speedup(0.2, RATE, 0.5)  # batching can lose, too
    assert slower and "slower" in slower.message


def test_speedup_names_the_usual_slips() -> None:
    expected = 2.0
    for guess, hint in (
        (0.0, "placeholder"),
        (0.5, "upside down"),
        (LATENCY_MS * RATE, "units"),
        (LATENCY_MS * RATE / 1e6, "units"),
        (0.4, "not their difference"),
        (50.0, "percentage of time saved"),
        (200.0, "not a percentage"),
        (1.5, "too low"),
    ):
        result = ch12.check_speedup(LATENCY_MS, RATE, guess)
        assert hint in result.message, (hint, result)
        assert_hides(result, expected)


def test_speedup_rejects_bad_inputs() -> None:
    assert "positive" in ch12.check_speedup(0.0, RATE, 2.0).message
    assert "positive" in ch12.check_speedup(LATENCY_MS, -1.0, 2.0).message
    assert "latency_ms" in ch12.check_speedup("0.8", RATE, 2.0).message
    assert "still None" in ch12.check_speedup(LATENCY_MS, RATE, None).message


# ----------------------------------------------------------------------------- AUROC
ORDINARY = torch.tensor([3.0, 2.0, 1.0])
UNUSUAL = torch.tensor([2.0, 0.0])
# worked by hand: of the 6 pairs the ordinary score is higher in 4, tied in 1 (2 vs 2),
# lower in 1 (1 vs 2): AUROC = 4/6 + 1/12 = 0.75


def test_auroc_accepts_the_pair_count_and_agrees_with_scikit_learn() -> None:
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(3), np.zeros(2)]
    assert roc_auc_score(labels, np.r_[ORDINARY.numpy(), UNUSUAL.numpy()]) == 0.75
    result = ch12.check_auroc(ORDINARY, UNUSUAL, 0.75)
    assert result and "0.7500" in result.message and "coin toss" in result.message
    assert ch12.check_auroc(ORDINARY, UNUSUAL, torch.tensor(0.75))
    assert ch12.check_auroc(torch.tensor([5.0, 6.0]), UNUSUAL, 1.0)


def test_auroc_names_the_usual_slips() -> None:
    for guess, hint in (
        (0.25, "swapped"),
        (4 / 6, "one half each"),
        (5 / 6, "not a win"),
        (0.6, "too low"),
        (1.5, "between 0 and 1"),
    ):
        result = ch12.check_auroc(ORDINARY, UNUSUAL, guess)
        assert hint in result.message, (hint, result)
        assert_hides(result, 0.75)


def test_auroc_rejects_bad_inputs() -> None:
    assert "1-D tensor" in ch12.check_auroc([3.0, 1.0], UNUSUAL, 0.5).message
    assert "1-D tensor" in ch12.check_auroc(ORDINARY, torch.tensor([]), 0.5).message
    assert "still None" in ch12.check_auroc(ORDINARY, UNUSUAL, None).message
