"""Self-checks for chapter 13 (robust multimodal models): an ECE by hand, FGSM by hand, and a
temperature found by search. Each says right or wrong and why, never the expected value."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse import robust
from mmcourse.checks._core import CheckResult, as_number, describe_miss, known_mistake
from mmcourse.modes import eval_mode

__all__ = ["check_ece", "check_fgsm_accuracy", "check_temperature"]

ECE_BINS = 10
"""Exercise 1 bins the confidences into ten equal-width bins."""


def _binned(probs: torch.Tensor, target: torch.Tensor) -> robust.Reliability:
    return robust.reliability_bins(probs, target, n_bins=ECE_BINS)


def _ece_mistakes(probs: torch.Tensor, target: torch.Tensor) -> list[tuple[float, str]]:
    bins = _binned(probs, target)
    used = bins.count > 0
    gaps = bins.accuracy[used] - bins.confidence[used]
    weights = bins.count[used].double() / bins.count.sum()
    confidence, predicted = probs.max(dim=1)
    overall = float((predicted == target).double().mean() - confidence.double().mean())
    return [
        (float(gaps.abs().mean()), "weight each bin's gap by its share of the predictions"),
        (float((weights * gaps).sum()), "take the absolute value of each bin's gap before adding"),
        (abs(float((weights * gaps).sum())), "take each bin's |gap| before adding, not after"),
        (abs(overall), "one gap over all predictions hides over- and under-confident bins: bin"),
        (100 * bins.ece, "give the ECE as a fraction between 0 and 1, not a percentage"),
    ]


def check_ece(probs: torch.Tensor, target: torch.Tensor, value: object) -> CheckResult:
    """Is ``value`` the expected calibration error of ``probs`` ``(N, K)`` for ``target`` over
    ten equal-width confidence bins ``(k/10, (k+1)/10]``?"""
    got = as_number("your ECE", value)
    if isinstance(got, CheckResult):
        return got
    expected = _binned(probs, target).ece
    if math.isclose(got, expected, rel_tol=1e-3, abs_tol=1e-6):
        return CheckResult(True, f"ECE {got:.4f}: the gaps of the bins, weighted by their size")
    hint = known_mistake(got, expected, _ece_mistakes(probs, target), tol=1e-6)
    hint = hint or "per bin: |mean correctness - mean confidence|, times the bin's share"
    return CheckResult(False, f"your ECE {describe_miss(got, expected)}; {hint}")


def _fgsm_accuracy(model: nn.Module, images, target, epsilon: float, sign: float, clamp: bool):
    x = images.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), target), x)
    attacked = images + sign * epsilon * grad.sign()
    attacked = attacked.clamp(0, 1) if clamp else attacked
    with torch.no_grad():
        return float((model(attacked).argmax(dim=1) == target).double().mean())


def check_fgsm_accuracy(
    model: nn.Module, images: torch.Tensor, target: torch.Tensor, epsilon: float, value: object
) -> CheckResult:
    """Is ``value`` the accuracy of ``model`` (in eval mode) on ``images`` (pixels in [0, 1])
    after FGSM with ``epsilon``, clipped back to [0, 1]?"""
    got = as_number("your accuracy", value)
    if isinstance(got, CheckResult):
        return got
    expected = robust.attack_accuracy(model, images, target, epsilon, "fgsm")
    if math.isclose(got, expected, abs_tol=0.5 / len(images)):
        return CheckResult(True, f"accuracy {got:.3f} under FGSM at epsilon {epsilon:g}")
    with eval_mode(model):
        mistakes = [
            (
                _fgsm_accuracy(model, images, target, epsilon, -1.0, True),
                "step up the loss (+ sign), not down",
            ),
            (_fgsm_accuracy(model, images, target, epsilon, 1.0, False), "clip to [0, 1] after"),
            (100 * expected, "give the accuracy as a fraction between 0 and 1, not a percentage"),
        ]
    hint = known_mistake(got, expected, mistakes, tol=0.5 / len(images))
    hint = hint or "x + epsilon * sign(gradient of the loss with respect to x), clipped"
    return CheckResult(False, f"your accuracy {describe_miss(got, expected)}; {hint}")


TEMPERATURE_RTOL = 0.02
"""A search on a grid of step 0.01 to 0.05 lands this close to the best temperature."""


def check_temperature(logits: torch.Tensor, target: torch.Tensor, value: object) -> CheckResult:
    """Is ``value`` (within :data:`TEMPERATURE_RTOL`) the temperature that minimises the mean
    cross-entropy of ``logits / T`` on ``target``?"""
    got = as_number("your temperature", value)
    if isinstance(got, CheckResult):
        return got
    expected = robust.fit_temperature(logits, target)
    if math.isclose(got, expected, rel_tol=TEMPERATURE_RTOL):
        verdict = "over-confident: T > 1 softens" if got > 1 else "under-confident: T < 1 sharpens"
        return CheckResult(True, f"T = {got:.3g}; the model was {verdict} its probabilities")
    hint = known_mistake(got, expected, [(1 / expected, "divide the logits by T")], tol=0.02)
    hint = hint or "try T on a grid and keep the one with the lowest cross-entropy of logits / T"
    return CheckResult(False, f"your temperature {describe_miss(got, expected)}; {hint}")
