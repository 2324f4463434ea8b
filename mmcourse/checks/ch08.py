"""Self-checks for chapter 08 (training and evaluation).

A failed check says what is wrong and why -- the answer still reaching the model, another
average than macro-F1, the k smallest scores, ties counted in the model's favour -- and
whether a metric is too high or too low, by roughly how much, but never the expected value;
see :mod:`mmcourse.checks`. Ranks follow :func:`mmcourse.metrics.retrieval_ranks`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmcourse.checks._core import (
    CheckResult,
    as_number,
    describe_miss,
    known_mistake,
    recall_range_hint,
)
from mmcourse.metrics import retrieval_ranks

Batch = tuple[torch.Tensor, ...]


def check_honest_forward(
    forward: Callable[[nn.Module, Batch], tuple[torch.Tensor, torch.Tensor]],
    model: nn.Module,
    batch: Batch,
) -> CheckResult:
    """Is ``forward(model, batch) -> (outputs, targets)`` free of the listing's leak?

    ``batch`` is ``(inputs..., targets)``. The check runs ``forward`` twice: on the batch, and
    on the batch with its targets shuffled. An honest forward returns the same outputs both
    times (the model never sees the answer) and hands back the batch's own targets.
    """
    if not callable(forward):
        return CheckResult(False, f"forward should be a function, got {type(forward).__name__}")
    if not isinstance(batch, tuple) or len(batch) < 2:
        return CheckResult(False, "batch should be a tuple (inputs..., targets)")
    targets = batch[-1]
    if len(targets) < 2:
        return CheckResult(False, "use a batch of at least two examples")
    shuffled = torch.roll(targets, shifts=1)
    if torch.equal(shuffled, targets):
        shuffled = (targets + 1) % (int(targets.max()) + 2)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            result = forward(model, batch)
            if not (isinstance(result, tuple) and len(result) == 2):
                return CheckResult(False, "forward should return a pair (outputs, targets)")
            outputs, returned = result
            other, _ = forward(model, (*batch[:-1], shuffled))
    except Exception as error:  # the learner's code may fail in any way; say how
        return CheckResult(False, f"forward raised {type(error).__name__}: {error}")
    finally:
        model.train(was_training)
    if not isinstance(outputs, torch.Tensor) or outputs.shape[:1] != targets.shape[:1]:
        return CheckResult(False, "outputs should be a tensor with one row per example")
    if not isinstance(returned, torch.Tensor) or not torch.equal(returned, targets):
        return CheckResult(False, "return the batch's own targets (its last tensor) unchanged")
    if not torch.equal(outputs, other):
        return CheckResult(
            False,
            "the outputs change when only the targets change: the answer still reaches the "
            "model. Feed it the question, never the answer",
        )
    return CheckResult(True, "the outputs do not depend on the targets: no leak")


def _per_class_f1(cm: torch.Tensor) -> torch.Tensor:
    values = []
    for c in range(cm.shape[0]):
        tp = float(cm[c, c])
        fp = float(cm[:, c].sum()) - tp
        fn = float(cm[c, :].sum()) - tp
        values.append(0.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    return torch.tensor(values, dtype=torch.float64)


def _macro_f1_mistakes(cm: torch.Tensor, f1: torch.Tensor) -> list[tuple[float, str]]:
    """The values the usual slips give for ``cm``, each with its hint."""
    counts = cm.double()
    tp = counts.diag()
    predicted, support = counts.sum(dim=0), counts.sum(dim=1)
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp_min(1), torch.zeros_like(tp))
    macro_p, macro_r = precision.mean().item(), recall.mean().item()
    seen = (predicted + support) > 0
    mistakes = [
        (
            (tp.sum() / counts.sum()).item(),
            "that is the micro average (= accuracy): average the per-class F1s instead",
        ),
        (
            (f1 * support).sum().item() / support.sum().item(),
            "that is weighted by class size; macro gives every class the same weight",
        ),
        (
            f1[seen].mean().item() if seen.any() else 0.0,
            "that leaves out the classes that never occur; macro-F1 averages over all K "
            "classes, such a class counting as F1 = 0",
        ),
        (macro_p, "that is the macro precision; F1 combines precision and recall per class"),
        (macro_r, "that is the macro recall; F1 combines precision and recall per class"),
        (
            0.0 if macro_p + macro_r == 0 else 2 * macro_p * macro_r / (macro_p + macro_r),
            "that is the F1 of the averaged precision and recall; macro-F1 averages the "
            "per-class F1s",
        ),
    ]
    return mistakes


def check_macro_f1(cm: torch.Tensor, value: float) -> CheckResult:
    """Is ``value`` the macro-averaged F1 of the confusion matrix ``cm`` (rows = truth)?

    A class that is never predicted nor present counts as F1 = 0, as in scikit-learn's
    ``zero_division=0``. A wrong value is described as too high or too low and, when it is
    another average (micro, weighted, over the present classes only, macro precision or
    recall, the F1 of the averages, a percentage), named -- never printed.
    """
    if not isinstance(cm, torch.Tensor) or cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
        return CheckResult(False, "cm should be a square (K, K) confusion matrix")
    got = as_number("your macro-F1", value)
    if isinstance(got, CheckResult):
        return got
    f1 = _per_class_f1(cm)
    expected = f1.mean().item()
    if abs(got - expected) <= 1e-4:
        return CheckResult(True, f"macro-F1 = {got:.4f}, the plain mean of {len(f1)} F1s")
    hint = known_mistake(got, expected, _macro_f1_mistakes(cm, f1), tol=1e-4)
    if hint is None and 1 < got <= 100 and abs(got / 100 - expected) <= 0.005:
        hint = "give a fraction between 0 and 1, not a percentage"
    elif hint is None and got > 1:
        hint = "an F1 score lies between 0 and 1"
    elif hint is None and got == 0:
        hint = "compute TP, FP and FN per class from the matrix first"
    elif hint is None:
        hint = "per class c: F1 = 2 TP / (2 TP + FP + FN), then the plain mean"
    return CheckResult(False, f"your macro-F1 {describe_miss(got, expected)}; {hint}")


def _recall(similarity: torch.Tensor, k: int) -> float:
    """R@k with the tie rule of :func:`mmcourse.metrics.retrieval_ranks` (ties count against)."""
    scores = similarity if similarity.is_floating_point() else similarity.double()
    ranks = retrieval_ranks(scores, torch.arange(scores.shape[0]))
    return (ranks <= k).double().mean().item()


def check_recall_at_k(similarity: torch.Tensor, k: int, value: float) -> CheckResult:
    """Is ``value`` the recall@``k`` of ``similarity`` ``(N, N)``, where the correct
    candidate of query ``i`` is candidate ``i`` (the diagonal)?

    Ranks follow :func:`mmcourse.metrics.retrieval_ranks`: a wrong candidate that scores the
    *same* as the correct one is ranked ahead of it (ties count against the model). A wrong
    value is described as too high or too low and, for the usual slips (the k smallest
    scores, a count, ties in the model's favour, k off by one, columns for rows), named.
    """
    if not isinstance(similarity, torch.Tensor) or similarity.dim() != 2:
        return CheckResult(False, "similarity should be a (N, N) matrix")
    n = similarity.shape[0]
    if similarity.shape[1] != n or n == 0:
        return CheckResult(False, "similarity should be square: one correct candidate per row")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        return CheckResult(False, f"k should be an int between 1 and {n}, got {k!r}")
    if similarity.is_floating_point() and torch.isnan(similarity).any():
        return CheckResult(False, "similarity contains NaN; a NaN score cannot be ranked")
    got = as_number("your R@k", value)
    if isinstance(got, CheckResult):
        return got
    expected = _recall(similarity, k)
    if abs(got - expected) <= 1e-6:
        hits = round(expected * n)
        return CheckResult(True, f"R@{k} = {got:.3f} ({hits} of {n} queries)")
    diagonal = similarity.diagonal()[:, None]
    favourable = ((similarity > diagonal).sum(dim=1) < k).double().mean().item()
    mistakes = [
        (_recall(-similarity, k), "higher similarity is better: take the k *largest* scores"),
        (
            favourable,
            "check the ties: a wrong candidate that scores the same as the correct one "
            "counts as ranked ahead of it (as mmcourse.metrics.retrieval_ranks does)",
        ),
        (_recall(similarity.T, k), "the queries are the rows: rank along each row (dim=1)"),
    ]
    if k > 1:
        mistakes.append((_recall(similarity, k - 1), "off by one: keep the top k, not k - 1"))
    if k < n:
        mistakes.append((_recall(similarity, k + 1), "off by one: keep the top k, not k + 1"))
    hint = known_mistake(got, expected, mistakes, tol=1e-6) or recall_range_hint(got, n, "queries")
    if hint is None:
        hint = "for each row, is the diagonal entry among the k largest?"
    return CheckResult(False, f"your R@{k} {describe_miss(got, expected)}; {hint}")
