"""Evaluation metrics: classification, caption overlap (BLEU) and cross-modal retrieval.

Three families, each small and written out so a learner can read it:

- classification (a digit classifier, a VQA answer head): :func:`accuracy`,
  :func:`confusion_matrix`, :func:`precision_recall_f1`, and per attribute of a canvas's slots
  :func:`slot_attribute_accuracy`;
- generated captions against reference captions: :func:`bleu`, :func:`bleu_scores`,
  :func:`exact_match`;
- retrieval from a similarity matrix (image -> text or text -> image): :func:`retrieval_ranks`,
  :func:`recall_at_k`, :func:`median_rank`.

Every function checks its inputs and raises ``TypeError`` (wrong type) or ``ValueError`` (wrong
value, e.g. NaN scores) saying what it expected and what arrived. The tests compare each metric with an independent implementation (scikit-learn, nltk,
sacrebleu, a brute-force loop).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from mmcourse._validate import (
    Dims,
    check_choice,
    check_float,
    check_index_range,
    check_indices,
    check_int,
    check_no_nan,
    check_tensor,
    require,
)
from mmcourse.data.captions import QUESTION_TYPES
from mmcourse.data.questions import VQAExamples, split_slot_logits

AVERAGES = ("macro", "micro", "none")
SMOOTHINGS = (None, "floor", "add1")


# ----------------------------------------------------------------------------------------------
# classification


def _as_labels(pred: torch.Tensor, name: str = "pred") -> torch.Tensor:
    """Class indices ``(N,)`` from indices ``(N,)`` or scores/logits ``(N, C)`` (argmax)."""
    check_tensor(pred, name, "of class indices (N,) or logits (N, C)")
    if not (pred.is_floating_point() and pred.dim() == 2):
        return check_indices(pred, name, ("N",))
    if pred.shape[1] == 0:
        raise ValueError(f"{name} logits (N, C) need C >= 1 classes, got {tuple(pred.shape)}")
    return check_no_nan(pred, name).argmax(dim=1)  # argmax would silently pick a NaN's class


def _check_target(target: torch.Tensor, n: int) -> None:
    Dims().bind("N", n, "pred").indices(target, "target", "N")
    require(n != 0, "pred and target are empty (N = 0); a metric needs at least one example")


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of examples whose predicted class equals the target.

    Args:
        pred: class indices ``(N,)`` (integer) or logits/scores ``(N, C)`` (float; argmax taken).
        target: true class indices ``(N,)`` (integer).

    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    0.5
    """
    labels = _as_labels(pred)
    _check_target(target, labels.shape[0])
    return (labels == target.to(labels.device)).float().mean().item()


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """LongTensor ``(C, C)``: entry ``[i, j]`` counts examples of true class ``i`` predicted as
    ``j`` (rows = truth, columns = prediction, as in scikit-learn).

    Args:
        pred: class indices ``(N,)`` or logits ``(N, C)``.
        target: true class indices ``(N,)``.
        num_classes: ``C``; every label must lie in ``0..C-1``.
    """
    check_int(num_classes, "num_classes")
    labels = _as_labels(pred)
    _check_target(target, labels.shape[0])
    check_index_range(labels, "pred", num_classes)
    check_index_range(target, "target", num_classes)
    flat = target.long().cpu() * num_classes + labels.long().cpu()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def _divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 0 where ``den == 0`` (scikit-learn's ``zero_division=0``)."""
    num, den = num.double(), den.double()
    return torch.where(den > 0, num / den.clamp_min(1), torch.zeros_like(num))


def precision_recall_f1(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int | None = None,
    average: str = "macro",
    labels: Sequence[int] | None = None,
) -> dict[str, float] | dict[str, torch.Tensor]:
    """Precision, recall and F1 as ``{"precision": ..., "recall": ..., "f1": ...}``.

    Per class ``c``: precision = TP / (TP + FP), recall = TP / (TP + FN),
    F1 = 2 TP / (2 TP + FP + FN); a ratio whose denominator is 0 counts as 0 (like
    scikit-learn's ``zero_division=0``), e.g. the precision of a class never predicted.

    Which classes an average runs over follows scikit-learn: by default the classes that
    occur in ``target`` or ``pred``. A class that is neither present nor predicted has no
    precision, recall or F1 to speak of, so it is left out rather than counted as 0 (which
    would pull the macro average down by an amount that depends only on how many such classes
    the label set happens to have). Pass ``labels=range(num_classes)`` to average over every
    class anyway (scikit-learn's ``labels=...``).

    Args:
        pred: class indices ``(N,)`` or logits ``(N, C)``.
        target: true class indices ``(N,)``.
        num_classes: ``C``; every label must lie in ``0..C-1``. Default: one more than the
            largest label in ``pred`` or ``target``.
        average: ``"macro"`` (plain mean of the per-class values, floats), ``"micro"`` (from
            TP/FP/FN summed over the classes, floats; for single-label data all three equal
            the accuracy) or ``"none"`` (per-class ``(C,)`` float64 tensors indexed by class
            id, every class included).
        labels: the classes to average over (see above); ignored for ``"none"``.

    >>> pred, target = torch.tensor([0, 1, 1, 3]), torch.tensor([0, 1, 2, 3])  # 2: missed
    >>> round(precision_recall_f1(pred, target, num_classes=5)["f1"], 4)  # class 4 absent
    0.6667
    >>> round(precision_recall_f1(pred, target, 5, labels=range(5))["f1"], 4)  # class 4 as 0
    0.5333
    """
    check_choice(average, "average", AVERAGES)
    predicted = _as_labels(pred)
    _check_target(target, predicted.shape[0])
    if num_classes is None:
        num_classes = int(torch.cat([predicted, target.to(predicted.device)]).max()) + 1
    cm = confusion_matrix(predicted, target, num_classes)
    tp = cm.diag()
    fp = cm.sum(dim=0) - tp  # predicted c, truly something else
    fn = cm.sum(dim=1) - tp  # truly c, predicted something else
    if average != "none":
        chosen = _averaged_classes(cm, labels, num_classes)
        tp, fp, fn = tp[chosen], fp[chosen], fn[chosen]
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    scores = {
        "precision": _divide(tp, tp + fp),
        "recall": _divide(tp, tp + fn),
        "f1": _divide(2 * tp, 2 * tp + fp + fn),
    }
    if average == "none":
        return scores
    return {name: value.mean().item() for name, value in scores.items()}


def _averaged_classes(
    cm: torch.Tensor, labels: Sequence[int] | None, num_classes: int
) -> torch.Tensor:
    """The class ids an average runs over: ``labels``, or those present in the data."""
    if labels is None:
        return ((cm.sum(dim=0) + cm.sum(dim=1)) > 0).nonzero().flatten()
    chosen = torch.as_tensor(labels if isinstance(labels, torch.Tensor) else list(labels))
    require(chosen.numel() != 0, "labels is empty; name at least one class to average over")
    check_indices(chosen, "labels", ("K",))
    check_index_range(chosen, "labels", num_classes)
    return chosen.long()


def slot_attribute_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, occupied_only: bool = False
) -> torch.Tensor:
    """``(4,)``: accuracy of digit, size, thickness and slant over all slots (empty included),
    or with ``occupied_only`` over the slots that hold a digit (as a caption's per-digit
    scores count them; an empty slot is easy to call empty)."""
    parts = split_slot_logits(logits, targets)
    keep = (
        targets[..., 0] > 0 if occupied_only else torch.ones_like(targets[..., 0], dtype=torch.bool)
    )
    return torch.stack(
        [(part.argmax(-1) == targets[..., i])[keep].float().mean() for i, part in enumerate(parts)]
    )


# ----------------------------------------------------------------------------------------------
# captions: BLEU and exact match


def _check_tokens(tokens: object, name: str) -> None:
    if isinstance(tokens, str):
        raise TypeError(
            f"{name} must be a list of tokens (list[str]), got a str {tokens[:30]!r}; "
            "tokenise it first, e.g. caption.split()"
        )
    if not isinstance(tokens, Sequence) or not all(isinstance(t, str) for t in tokens):
        raise TypeError(f"{name} must be a list of tokens (list[str]), got {tokens!r:.60}")


def _check_corpus(candidates: object, references: object) -> None:
    """Candidates ``list[list[str]]``, references ``list[list[list[str]]]``, same length."""
    for value, name in ((candidates, "candidates"), (references, "references")):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise TypeError(f"{name} must be a list, got {type(value).__name__}")
    if len(candidates) != len(references):
        raise ValueError(
            "candidates and references must have the same length (one list of references per "
            f"candidate), got {len(candidates)} candidates and {len(references)} reference lists"
        )
    if len(candidates) == 0:
        raise ValueError("candidates is empty; a corpus score needs at least one candidate")
    for i, (candidate, refs) in enumerate(zip(candidates, references)):
        _check_tokens(candidate, f"candidates[{i}]")
        if isinstance(refs, str) or not isinstance(refs, Sequence):
            raise TypeError(
                f"references[{i}] must be a non-empty list of references (list[list[str]]), "
                f"got {refs!r:.60}"
            )
        if len(refs) == 0:
            raise ValueError(
                f"references[{i}] must be a non-empty list of references (list[list[str]]), "
                f"got {refs!r:.60}"
            )
        if isinstance(refs[0], str):
            raise TypeError(
                f"references[{i}] must be a list of token lists (list[list[str]]), got a list "
                f"of str {refs!r:.60}; wrap a single reference as [reference]"
            )
        for j, ref in enumerate(refs):
            _check_tokens(ref, f"references[{i}][{j}]")


def ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    """How often each run of ``n`` consecutive tokens occurs in ``tokens``.

    >>> ngrams("a seven and a seven".split(), 2)[("a", "seven")]
    2
    """
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _bleu_statistics(
    candidates: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int,
) -> tuple[list[int], list[int], int, int]:
    """Corpus sums: clipped matches per order, candidate n-grams per order, c, r."""
    matches, totals = [0] * max_n, [0] * max_n
    cand_len = ref_len = 0
    for candidate, refs in zip(candidates, references):
        cand_len += len(candidate)
        # the reference length closest to the candidate's; ties go to the shorter one
        ref_len += min((abs(len(r) - len(candidate)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = ngrams(candidate, n)
            max_ref = Counter()  # each n-gram is credited at most as often as one reference has it
            for ref in refs:
                max_ref |= ngrams(ref, n)
            matches[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            totals[n - 1] += sum(counts.values())
    return matches, totals, cand_len, ref_len


def _bleu_from_statistics(
    matches: list[int], totals: list[int], cand_len: int, ref_len: int, smoothing: str | None
) -> float:
    if cand_len == 0 or matches[0] == 0:
        return 0.0  # no candidate words, or not one word in common with a reference
    log_precision = 0.0
    for n, (m, t) in enumerate(zip(matches, totals), start=1):
        if smoothing == "add1" and n > 1:
            m, t = m + 1, t + 1
        if t == 0:
            return 0.0  # no n-grams of this order in the corpus: precision undefined
        if m == 0:
            if smoothing != "floor":
                return 0.0  # geometric mean with a zero factor
            m = 0.1
        log_precision += math.log(m / t) / len(matches)
    brevity = 1.0 if cand_len > ref_len else math.exp(1 - ref_len / cand_len)
    return brevity * math.exp(log_precision)


def _check_bleu_args(max_n: int, smoothing: str | None) -> None:
    check_int(max_n, "max_n")
    check_choice(smoothing, "smoothing", SMOOTHINGS)


def bleu(
    candidates: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int = 4,
    smoothing: str | None = None,
) -> float:
    """Corpus BLEU (Papineni et al., 2002) in ``[0, 1]``, with several references per candidate.

    ``BLEU = BP * exp(mean_n log p_n)`` for ``n = 1..max_n``, where

    - ``p_n`` = (clipped n-gram matches) / (candidate n-grams), both summed over the corpus;
      a candidate n-gram is credited at most as often as it occurs in any *one* reference;
    - ``BP = 1`` if ``c > r`` else ``exp(1 - r / c)``, with ``c`` the total candidate length and
      ``r`` the sum of the reference lengths closest to each candidate (ties: the shorter).

    Without smoothing a corpus with no matching n-gram of some order scores 0. ``smoothing``:
    ``"floor"`` counts 0.1 matches for such an order (nltk's ``method1``, sacrebleu's
    ``floor``); ``"add1"`` adds 1 to the matches and totals of orders ``n >= 2`` (nltk's
    ``method2``, sacrebleu's ``add-k``).

    Args:
        candidates: ``N`` generated captions, each a list of tokens.
        references: ``N`` lists of reference captions (each a list of tokens), one list per
            candidate; the number of references may differ between candidates.
        max_n: highest n-gram order (4 for the usual BLEU-4).
        smoothing: ``None``, ``"floor"`` or ``"add1"``.

    Equals nltk's ``corpus_bleu`` with weights ``(1/max_n,) * max_n`` and sacrebleu's
    ``corpus_bleu(..., tokenize="none", smooth_method="none") / 100`` — except that nltk counts
    at least one n-gram for a candidate shorter than ``n`` (this function, like sacrebleu and
    the paper, counts none).

    >>> bleu([["a", "cat", "sat", "down"]], [[["a", "cat", "sat", "down"], ["a", "cat"]]])
    1.0
    """
    _check_bleu_args(max_n, smoothing)
    _check_corpus(candidates, references)
    stats = _bleu_statistics(candidates, references, max_n)
    return _bleu_from_statistics(*stats, smoothing)


def bleu_scores(
    candidates: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int = 4,
    smoothing: str | None = None,
) -> dict[str, float]:
    """``{"bleu1": ..., "bleu2": ..., ..., f"bleu{max_n}": ...}``: cumulative BLEU-n, i.e.
    :func:`bleu` with uniform weights over orders ``1..n`` (nltk's ``corpus_bleu`` with
    weights ``(1,)``, ``(1/2, 1/2)``, ``(1/3, 1/3, 1/3)``, ...), as captioning papers report."""
    _check_bleu_args(max_n, smoothing)
    _check_corpus(candidates, references)
    matches, totals, cand_len, ref_len = _bleu_statistics(candidates, references, max_n)
    return {
        f"bleu{n}": _bleu_from_statistics(matches[:n], totals[:n], cand_len, ref_len, smoothing)
        for n in range(1, max_n + 1)
    }


def exact_match(
    candidates: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]
) -> float:
    """Fraction of candidates whose token list equals at least one of their references.

    >>> exact_match([["two", "digits"], ["a", "seven"]], [[["two", "digits"]], [["a", "one"]]])
    0.5
    """
    _check_corpus(candidates, references)
    hits = sum(list(c) in [list(r) for r in refs] for c, refs in zip(candidates, references))
    return hits / len(candidates)


# ----------------------------------------------------------------------------------------------
# retrieval


def _relevance(similarity: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Check the inputs of a retrieval metric; return the bool relevance matrix ``(Nq, Nc)``."""
    nq, nc = check_float(similarity, "similarity", ("Nq", "Nc")).shape
    if nq == 0 or nc == 0:
        raise ValueError(f"similarity is empty, got shape {(nq, nc)}; need Nq >= 1 and Nc >= 1")
    check_no_nan(similarity, "similarity")
    check_tensor(targets, "targets", "of candidate indices (Nq,) or a bool matrix (Nq, Nc)")
    if targets.dtype == torch.bool:
        if targets.shape != similarity.shape:
            raise ValueError(
                f"a bool relevance matrix must have the shape of similarity {(nq, nc)}, "
                f"got {tuple(targets.shape)}"
            )
        empty = (~targets.any(dim=1)).nonzero().flatten()
        if len(empty):
            raise ValueError(
                f"every query needs at least one relevant candidate, but row(s) "
                f"{empty[:5].tolist()} of targets are all False"
            )
        return targets.to(similarity.device)
    check_indices(targets, "targets", (nq,))
    check_index_range(targets, "targets", nc, "candidate indices")
    relevant = torch.zeros(nq, nc, dtype=torch.bool, device=similarity.device)
    relevant[torch.arange(nq), targets.to(similarity.device).long()] = True
    return relevant


def retrieval_ranks(similarity: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """LongTensor ``(Nq,)``: the 1-based rank of the best-placed relevant candidate per query.

    Args:
        similarity: ``(Nq, Nc)`` scores, higher = more similar (e.g. cosine similarities of
            image embeddings against caption embeddings).
        targets: ``(Nq,)`` index of the one correct candidate per query, or a bool ``(Nq, Nc)``
            matrix marking every relevant candidate (e.g. the 5 captions of each image).

    Ties count against the model: an irrelevant candidate scoring *equal* to the best relevant
    one is ranked ahead of it, so a model that scores everything the same gets the worst ranks.
    """
    relevant = _relevance(similarity, targets)
    best = similarity.masked_fill(~relevant, -math.inf).max(dim=1).values  # (Nq,)
    ahead = (similarity >= best[:, None]) & ~relevant  # irrelevant ones at least as high
    return ahead.sum(dim=1) + 1


def recall_at_k(
    similarity: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5, 10)
) -> dict[int, float]:
    """``{k: R@k}``: the fraction of queries with a relevant candidate among the top ``k``.

    Args:
        similarity: ``(Nq, Nc)`` scores, higher = better.
        targets: ``(Nq,)`` correct candidate indices or a bool relevance matrix ``(Nq, Nc)``.
        ks: cut-offs, each an int in ``1..Nc``.

    See :func:`retrieval_ranks` for how ties are ranked.

    >>> recall_at_k(torch.eye(3), torch.tensor([0, 1, 2]), ks=(1,))
    {1: 1.0}
    """
    if isinstance(ks, int | str) or not isinstance(ks, Sequence):
        raise TypeError(f"ks must be a non-empty sequence of ints, e.g. (1, 5, 10), got {ks!r}")
    require(len(ks) != 0, f"ks must be a non-empty sequence of ints, e.g. (1, 5, 10), got {ks!r}")
    ranks = retrieval_ranks(similarity, targets)
    for k in ks:
        check_int(k, "every k (at most the number of candidates)", maximum=similarity.shape[1])
    return {k: (ranks <= k).float().mean().item() for k in ks}


def median_rank(similarity: torch.Tensor, targets: torch.Tensor) -> float:
    """Median over queries of :func:`retrieval_ranks` (1 = perfect; the mean of the two middle
    ranks when ``Nq`` is even, as ``numpy.median``)."""
    ranks = retrieval_ranks(similarity, targets)
    return torch.quantile(ranks.double(), 0.5).item()


def multilabel_exact_match(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose every label is right (predict 1 where ``logits > 0``).

    ``logits`` and ``targets``: ``(N, C)``.
    """
    check_tensor(logits, "logits")
    check_tensor(targets, "targets")
    if logits.shape != targets.shape or logits.dim() != 2:
        raise ValueError(
            f"logits and targets must both be (N, C), got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    check_no_nan(logits, "logits")  # NaN > 0 is False: it would silently predict 0
    predicted = logits > 0
    return (predicted == targets.bool()).all(dim=1).float().mean().item()


def accuracy_by_type(predictions: torch.Tensor, examples: VQAExamples) -> dict[str, float]:
    """Accuracy for each question type present in ``examples`` (in QUESTION_TYPES order).

    ``predictions``: answer ids ``(Q,)`` or logits ``(Q, len(ANSWERS))``.
    """
    if not isinstance(predictions, torch.Tensor):
        raise ValueError(f"predictions must be a tensor, got {type(predictions).__name__}")
    if predictions.dim() == 2:
        predictions = check_no_nan(predictions, "predictions").argmax(dim=1)
    if predictions.shape != examples.answers.shape:
        raise ValueError(
            f"predictions must have one answer per example: expected {len(examples)}, "
            f"got shape {tuple(predictions.shape)}"
        )
    correct = (predictions.cpu() == examples.answers).float()
    return {
        name: correct[examples.types == i].mean().item()
        for i, name in enumerate(QUESTION_TYPES)
        if (examples.types == i).any()
    }
