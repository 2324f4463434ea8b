"""Self-checks for chapter 09 (captioning with attention).

A failed check says what is wrong and why -- scores that were never turned into weights, a
missing ``tanh``, n-grams counted without clipping -- but never the expected value; see
:mod:`mmcourse.checks`. The right answers are computed here from the formulas, in plain
Python loops, independently of :mod:`mmcourse.models.attention_captioner` and
:mod:`mmcourse.caption_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mmcourse.checks._core import CheckResult, describe_miss
from mmcourse.metrics import ngrams


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def _scores(keys: torch.Tensor, query: torch.Tensor, w: torch.Tensor, squash: bool) -> list[float]:
    scores = []
    for r in range(keys.shape[0]):
        total = 0.0
        for j in range(keys.shape[1]):
            x = float(keys[r, j]) + float(query[j])
            total += float(w[j]) * (math.tanh(x) if squash else x)
        scores.append(total)
    return scores


def check_attention_weights(
    keys: torch.Tensor, query: torch.Tensor, w: torch.Tensor, alpha: object
) -> CheckResult:
    """Are ``alpha`` the additive attention weights ``softmax_r(w . tanh(keys_r + query))``?

    ``keys``: ``(R, A)`` (``W_a a_r`` of each region), ``query``: ``(A,)`` (``W_h h``),
    ``w``: ``(A,)``; ``alpha`` should be a tensor ``(R,)``.
    """
    if not isinstance(alpha, torch.Tensor):
        return CheckResult(False, f"alpha should be a tensor, got {type(alpha).__name__}")
    regions = keys.shape[0]
    if alpha.shape != (regions,):
        return CheckResult(
            False,
            f"alpha should hold one weight per region, shape ({regions},), "
            f"got {tuple(alpha.shape)}",
        )
    keys, query, w = (t.detach().double() for t in (keys, query, w))
    got = [float(a) for a in alpha.detach().double()]
    want = _softmax(_scores(keys, query, w, squash=True))
    if all(abs(g - v) <= 1e-4 for g, v in zip(got, want)):
        return CheckResult(
            True, "the weights are positive, sum to 1, and the best-matching region gets most"
        )
    if all(abs(g - v) <= 1e-4 for g, v in zip(got, _scores(keys, query, w, squash=True))):
        return CheckResult(False, "these are the scores e_r: turn them into weights with a softmax")
    if all(abs(g - v) <= 1e-4 for g, v in zip(got, _softmax(_scores(keys, query, w, False)))):
        return CheckResult(False, "the tanh is missing: squash keys + query before the dot product")
    if any(g < 0 for g in got):
        return CheckResult(False, "attention weights cannot be negative (a softmax is positive)")
    if abs(sum(got) - 1) > 1e-4:
        return CheckResult(
            False, f"the weights should sum to 1; their sum {describe_miss(sum(got), 1)}"
        )
    return CheckResult(
        False, "the weights sum to 1 but are not the softmax of w . tanh(keys + query)"
    )


def check_clipped_precision(
    candidate: str, references: Sequence[str], n: int, precision: object
) -> CheckResult:
    """Is ``precision`` BLEU's modified (clipped) n-gram precision of ``candidate``?

    Each n-gram of the candidate counts at most as often as it appears in the *one*
    reference that has it most often; the sum is divided by the candidate's n-gram count.
    """
    if isinstance(precision, torch.Tensor) and precision.numel() == 1:
        precision = precision.item()
    if not isinstance(precision, (int, float)) or isinstance(precision, bool):
        return CheckResult(False, f"precision should be a number, got {type(precision).__name__}")
    words = candidate.split()
    grams = ngrams(words, n)
    total = sum(grams.values())
    if total == 0:
        return CheckResult(False, f"the candidate has no {n}-grams; pick a longer one")
    refs = [ngrams(r.split(), n) for r in references]
    clipped = sum(min(c, max(r[g] for r in refs)) for g, c in grams.items())
    want = clipped / total
    if abs(precision - want) <= 1e-6:
        return CheckResult(
            True,
            f"{precision:.4f}: repeated n-grams are counted only as often as a reference has them",
        )
    unclipped = sum(c for g, c in grams.items() if any(r[g] for r in refs)) / total
    summed = sum(min(c, sum(r[g] for r in refs)) for g, c in grams.items()) / total
    if abs(precision - unclipped) <= 1e-6 and unclipped != want:
        return CheckResult(
            False,
            "every matching n-gram is counted however often it repeats: clip each count by "
            "the most times one reference holds it",
        )
    if abs(precision - summed) <= 1e-6 and summed != want:
        return CheckResult(
            False,
            "the clip uses the references' counts added up: take the *largest* count in any "
            "one reference",
        )
    if not 0 <= precision <= 1:
        return CheckResult(False, "a precision lies between 0 and 1")
    return CheckResult(False, f"your precision {describe_miss(precision, want)}")
