"""Chapter 13's self-checks: right answers (computed here independently) pass, the usual slips
are named, and a failed check never prints the expected value."""

from __future__ import annotations

import pytest
import scipy.optimize
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.checks import ch13


@pytest.fixture(scope="module")
def predictions() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(400, 5, generator=generator)
    target = torch.multinomial((logits / 3).softmax(dim=1), 1, generator=generator)[:, 0]
    return logits.softmax(dim=1), target


def ece_by_loop(probs: torch.Tensor, target: torch.Tensor, bins: int = 10) -> float:
    total = 0.0
    confidence, predicted = probs.max(dim=1)
    for k in range(bins):
        inside = [i for i, c in enumerate(confidence.tolist()) if k / bins < c <= (k + 1) / bins]
        if inside:
            accuracy = sum(int(predicted[i] == target[i]) for i in inside) / len(inside)
            mean_confidence = sum(confidence[i].item() for i in inside) / len(inside)
            total += len(inside) / len(target) * abs(accuracy - mean_confidence)
    return total


def test_check_ece(predictions) -> None:
    probs, target = predictions
    right = ece_by_loop(probs, target)
    assert ch13.check_ece(probs, target, right)
    result = ch13.check_ece(probs, target, 100 * right)
    assert not result and "not a percentage" in str(result)
    result = ch13.check_ece(probs, target, 0)
    assert not result and "placeholder" in str(result)
    assert f"{right:.3f}" not in str(result) and f"{right:.4f}" not in str(result)
    assert "should be a number" in str(ch13.check_ece(probs, target, "0.1"))


def test_check_ece_names_an_unweighted_mean(predictions) -> None:
    probs, target = predictions
    bins = ch13._binned(probs, target)
    used = bins.count > 0
    unweighted = float((bins.accuracy[used] - bins.confidence[used]).abs().mean())
    assert "share of the predictions" in str(ch13.check_ece(probs, target, unweighted))


def separable_digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 2, (300,), generator=generator)
    images = 0.5 + 0.1 * (2 * target[:, None] - 1) + 0.1 * torch.randn(300, 6, generator=generator)
    model = nn.Linear(6, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0] * 6, [1.0] * 6]))
        model.bias.copy_(torch.tensor([3.0, -3.0]))
    return model, images.clamp(0, 1), target


def test_check_fgsm_accuracy() -> None:
    model, images, target = separable_digits()
    # FGSM by hand: for this model the loss's gradient points along w_other - w_true
    direction = torch.where(target[:, None] == 1, -1.0, 1.0).expand(-1, 6)
    attacked = (images + 0.1 * direction).clamp(0, 1)
    right = (model(attacked).argmax(dim=1) == target).double().mean().item()
    assert ch13.check_fgsm_accuracy(model, images, target, 0.1, right)
    up = (model((images - 0.1 * direction).clamp(0, 1)).argmax(dim=1) == target).double().mean()
    result = ch13.check_fgsm_accuracy(model, images, target, 0.1, up.item())
    assert not result and "up the loss" in str(result)
    assert f"{right:.3f}" not in str(result)


def test_check_temperature(predictions) -> None:
    probs, target = predictions
    logits = probs.log()
    best = scipy.optimize.minimize_scalar(
        lambda t: F.cross_entropy(logits.double() / t, target).item(), bounds=(0.05, 20),
        method="bounded",
    ).x  # fmt: skip
    assert ch13.check_temperature(logits, target, round(best, 2))
    result = ch13.check_temperature(logits, target, 1 / best)
    assert not result and "divide the logits" in str(result)
    assert f"{best:.3g}" not in str(result)
