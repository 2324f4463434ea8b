"""Self-checks for chapter 14 (learning with fewer labels): the NT-Xent loss by hand, the
accuracy of pseudo-labels and the zero-shot accuracy on digits drawn as the dataset draws. Each says right
or wrong and why, never the expected value, and computes its answer its own way (a loop over
the views; a count of matches; one caption at a time through the towers), not with
:mod:`mmcourse.fewlabels`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mmcourse import retrieval
from mmcourse.checks._core import CheckResult, as_number, describe_miss, known_mistake
from mmcourse.data.captions.dataset import CANVAS_MEAN, CANVAS_STD
from mmcourse.data.captions.layout import NUMBER_WORDS
from mmcourse.fewlabels.image_text import paste_on_canvas
from mmcourse.vocab import Vocabulary

__all__ = ["check_drawn_zero_shot_accuracy", "check_nt_xent", "check_pseudo_label_accuracy"]

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


@torch.no_grad()
def _zero_shot_predictions(
    dual: torch.nn.Module, vocab: Vocabulary, canvases: torch.Tensor, prompts: Sequence[str]
) -> torch.Tensor:
    classes = []
    for digit in range(10):  # one caption at a time through the text tower
        texts = []
        for template in prompts:
            ids = torch.tensor([vocab.encode(template.replace("{digit}", NUMBER_WORDS[digit]))])
            text = dual.text_projection(dual.text_encoder(ids))[0]
            texts.append(text / text.norm())
        mean = torch.stack(texts).mean(dim=0)
        classes.append(mean / mean.norm())
    standardised = (canvases.float()[:, None] / 255 - CANVAS_MEAN) / CANVAS_STD
    images = dual.image_projection(dual.image_encoder(standardised))
    images = images / images.norm(dim=1, keepdim=True)
    return (images @ torch.stack(classes).T).argmax(dim=1)


def check_drawn_zero_shot_accuracy(
    dual: torch.nn.Module,
    vocab: Vocabulary,
    digits: torch.Tensor,
    labels: torch.Tensor,
    value: object,
) -> CheckResult:
    """Is ``value`` the zero-shot accuracy of ``dual`` on the MNIST ``digits`` ``(N, 28, 28)``
    (true ``labels`` ``(N,)``) drawn **as the dataset draws them**
    (:func:`mmcourse.retrieval.place_digits_on_canvas`, one view at its default centre) and
    classified with the 36 default prompts of chapter 11, averaged per digit? Computed here one
    caption at a time through the towers. Slips named: a percentage, the share of errors, the
    digits pasted as they are, the nine views averaged."""
    if not isinstance(digits, torch.Tensor) or digits.dtype != torch.uint8 or digits.dim() != 3:
        return CheckResult(False, "digits should be uint8 MNIST digits (N, 28, 28)")
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(digits),):
        return CheckResult(False, "labels should hold one true digit per image")
    got = as_number("your accuracy", value)
    if isinstance(got, CheckResult):
        return got

    def share(predictions: torch.Tensor) -> float:
        pairs = zip(predictions.tolist(), labels.tolist())
        return sum(int(p) == int(t) for p, t in pairs) / len(labels)

    prompts = retrieval.DEFAULT_PROMPTS
    drawn = retrieval.place_digits_on_canvas(digits)
    expected = share(_zero_shot_predictions(dual, vocab, drawn, prompts))
    tolerance = 1.5 / len(labels)  # one digit's answer may flip between two ways of batching
    if abs(got - expected) <= tolerance:
        return CheckResult(
            True, f"{got:.3f} of the {len(labels):,} digits, drawn as the data draws"
        )
    how = "draw the digits with retrieval.place_digits_on_canvas, embed them with "
    how += "retrieval.embed_gallery, and give each the class of the nearest class embedding"
    if got == 0:  # the placeholder: no slip to look for, only the way to go
        return CheckResult(False, f"your accuracy {describe_miss(got, expected)}; {how}")
    mistakes = [
        (100 * expected, "give a share between 0 and 1, not a percentage"),
        (1 - expected, "that is the share of *wrong* answers"),
        (share(_zero_shot_predictions(dual, vocab, paste_on_canvas(digits), prompts)),
         "that is the digits pasted as they are; draw them with retrieval.place_digits_on_canvas"),
        (retrieval.zero_shot_accuracy(dual, vocab, digits, labels),
         "that averages nine views (zero_shot_accuracy's default); draw each digit once"),
    ]  # fmt: skip
    hint = known_mistake(got, expected, mistakes, tol=tolerance)
    hint = hint or how
    return CheckResult(False, f"your accuracy {describe_miss(got, expected)}; {hint}")
