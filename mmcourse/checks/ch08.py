"""Self-checks for chapter 08 (training and evaluation)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmcourse.checks._core import CheckResult

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


def check_macro_f1(cm: torch.Tensor, value: float) -> CheckResult:
    """Is ``value`` the macro-averaged F1 of the confusion matrix ``cm`` (rows = truth)?

    A class that is never predicted nor present counts as F1 = 0, as in scikit-learn's
    ``zero_division=0``.
    """
    if not isinstance(cm, torch.Tensor) or cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
        return CheckResult(False, "cm should be a square (K, K) confusion matrix")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return CheckResult(False, f"answer with one number, got shape {tuple(value.shape)}")
        value = value.item()
    if not isinstance(value, (int, float)):
        return CheckResult(False, f"answer with a number, got {type(value).__name__}")
    f1 = _per_class_f1(cm)
    expected = f1.mean().item()
    if abs(value - expected) <= 1e-4:
        return CheckResult(True, f"macro-F1 = {expected:.4f}, the plain mean of {len(f1)} F1s")
    counts = cm.double()
    micro = (counts.diag().sum() / counts.sum()).item()
    support = counts.sum(dim=1)
    weighted = (f1 * support).sum().item() / support.sum().item()
    if abs(value - micro) <= 1e-4:
        hint = "that is the micro average (= accuracy): average the per-class F1s instead"
    elif abs(value - weighted) <= 1e-4:
        hint = "that is weighted by class size; macro gives every class the same weight"
    elif value == 0:
        hint = "compute TP, FP and FN per class from the matrix first"
    else:
        hint = "per class c: F1 = 2 TP / (2 TP + FP + FN), then the plain mean"
    return CheckResult(False, f"you got {value:.4f}, expected {expected:.4f} ({hint})")


def check_recall_at_k(similarity: torch.Tensor, k: int, value: float) -> CheckResult:
    """Is ``value`` the recall@``k`` of ``similarity`` ``(N, N)``, where the correct
    candidate of query ``i`` is candidate ``i`` (the diagonal)?"""
    if not isinstance(similarity, torch.Tensor) or similarity.dim() != 2:
        return CheckResult(False, "similarity should be a (N, N) matrix")
    n = similarity.shape[0]
    if similarity.shape[1] != n:
        return CheckResult(False, "similarity should be square: one correct candidate per row")
    if isinstance(value, torch.Tensor):
        value = value.item()
    if not isinstance(value, (int, float)):
        return CheckResult(False, f"answer with a number, got {type(value).__name__}")
    hits = 0
    ascending_hits = 0
    for i in range(n):
        row = similarity[i]
        ahead = int((row > row[i]).sum())  # candidates scored strictly higher
        behind = int((row < row[i]).sum())
        hits += ahead < k
        ascending_hits += behind < k
    expected = hits / n
    if abs(value - expected) <= 1e-6:
        return CheckResult(True, f"R@{k} = {expected:.3f} ({hits} of {n} queries)")
    if value == 0:
        hint = "for each row, is the diagonal entry among the k largest?"
    elif abs(value - ascending_hits / n) <= 1e-6:
        hint = "higher similarity is better: take the k *largest* scores"
    elif value > 1:
        hint = "give the fraction of queries, not a count"
    else:
        hint = "for each row, is the diagonal entry among the k largest?"
    return CheckResult(False, f"you got {value:.3f}, expected {expected:.3f} ({hint})")
