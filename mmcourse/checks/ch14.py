"""Self-checks for chapter 14 (learning with fewer labels): the NT-Xent loss by hand and the
accuracy of pseudo-labels. Each says right or wrong and why, never the expected value, and
computes its answer its own way (a loop over the views; a count of matches), not with
:mod:`mmcourse.fewlabels`."""

from __future__ import annotations

import math

import torch

from mmcourse.checks._core import CheckResult, as_number, describe_miss, known_mistake

__all__ = ["check_nt_xent", "check_pseudo_label_accuracy"]

NT_XENT_RTOL = 1e-4
"""Relative tolerance of :func:`check_nt_xent` (float32 against the check's float64)."""


def _nt_xent_by_views(
    first: torch.Tensor, second: torch.Tensor, temperature: float, keep_self: bool = False,
    one_side: bool = False, normalise: bool = True,
) -> float:  # fmt: skip
    views = torch.cat([first, second]).double()
    if normalise:
        views = views / views.norm(dim=1, keepdim=True)
    n = len(first)
    total, anchors = 0.0, range(n) if one_side else range(2 * n)
    for i in anchors:
        twin = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if keep_self or j != i]
        logits = torch.stack([views[i] @ views[j] for j in others]) / temperature
        total += float(torch.logsumexp(logits, 0) - views[i] @ views[twin] / temperature)
    return total / len(anchors)


def check_nt_xent(
    first: torch.Tensor, second: torch.Tensor, temperature: float, value: object
) -> CheckResult:
    """Is ``value`` SimCLR's NT-Xent loss of the two views ``first`` and ``second`` ``(N, D)``
    at ``temperature``: the mean over all ``2N`` views of the cross-entropy of picking the
    twin among the ``2N - 1`` other views, on cosine similarities? Slips named: a view left
    among its own candidates, one side's views only, vectors not normalised, no
    temperature."""
    for name, views in (("first", first), ("second", second)):
        if not isinstance(views, torch.Tensor) or views.dim() != 2:
            return CheckResult(False, f"{name} should be a (N, D) tensor of projections")
    if first.shape != second.shape or len(first) < 2:
        return CheckResult(False, "first and second should be two views of the same N >= 2 images")
    got = as_number("your loss", value)
    if isinstance(got, CheckResult):
        return got
    expected = _nt_xent_by_views(first, second, temperature)
    if math.isclose(got, expected, rel_tol=NT_XENT_RTOL):
        chance = math.log(2 * len(first) - 1)
        verdict = "below" if got < chance else "not below"
        return CheckResult(
            True, f"NT-Xent {got:.4f}, {verdict} log(2N - 1), the loss of a guess among the others"
        )
    mistakes = [
        (_nt_xent_by_views(first, second, temperature, keep_self=True),
         "leave each view out of its own candidates: its similarity to itself is always 1"),
        (_nt_xent_by_views(first, second, temperature, one_side=True),
         "average over all 2N views: the second views pick their twins too"),
        (_nt_xent_by_views(first, second, temperature, normalise=False),
         "normalise the vectors first: the similarities are cosines"),
        (_nt_xent_by_views(first, second, 1.0), "divide the similarities by the temperature"),
    ]  # fmt: skip
    hint = known_mistake(got, expected, mistakes, tol=abs(expected) * NT_XENT_RTOL)
    hint = hint or "for each view: logsumexp over the 2N - 1 others minus the twin's logit"
    return CheckResult(False, f"your loss {describe_miss(got, expected)}; {hint}")


def check_pseudo_label_accuracy(
    pseudo_labels: torch.Tensor, true_labels: torch.Tensor, value: object
) -> CheckResult:
    """Is ``value`` the share of the ``pseudo_labels`` a model gave (to the examples it took)
    that equal those examples' ``true_labels`` (both ``(K,)``)? Slips named: a count instead
    of a share, a percentage, the share of wrong ones."""
    for name, labels in (("pseudo_labels", pseudo_labels), ("true_labels", true_labels)):
        if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
            return CheckResult(False, f"{name} should be a 1-D tensor of class labels")
    if len(pseudo_labels) != len(true_labels) or len(pseudo_labels) == 0:
        return CheckResult(
            False, "pass the true labels of exactly the examples that received a pseudo-label"
        )
    got = as_number("your accuracy", value)
    if isinstance(got, CheckResult):
        return got
    matches = sum(int(a) == int(b) for a, b in zip(pseudo_labels.tolist(), true_labels.tolist()))
    expected = matches / len(pseudo_labels)
    if abs(got - expected) <= 1e-6:
        return CheckResult(
            True, f"{got:.3f} of the pseudo-labels are right, on {len(pseudo_labels):,} examples"
        )
    mistakes = [
        (float(matches), "give a share (right ones / all taken), not a count"),
        (100 * expected, "give a share between 0 and 1, not a percentage"),
        (1 - expected, "that is the share of *wrong* pseudo-labels"),
    ]
    hint = known_mistake(got, expected, mistakes, tol=1e-6)
    hint = hint or "compare each pseudo-label with the true label of the same example"
    return CheckResult(False, f"your accuracy {describe_miss(got, expected)}; {hint}")
