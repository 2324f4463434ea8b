"""Self-checks for chapter 01 (concepts): kinds of fusion, and lookups in a shared space."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.checks._core import CheckResult, check_close
from mmcourse.joint import DigitWordSpace

FUSION_KINDS = ("early", "intermediate", "late")
"""Where the modalities meet: at the input, between learned representations, or at the
decisions."""

FUSION_SCENARIOS: dict[str, tuple[str, str]] = {
    "a": (
        "The pixels of a chest X-ray and the word counts of its report are put into one long "
        "vector, and a single network learns from that vector.",
        "early",
    ),
    "b": (
        "An image classifier and a text classifier are trained separately; at test time the "
        "system averages their two vectors of class probabilities.",
        "late",
    ),
    "c": (
        "A CNN turns the photo into a feature vector, an LSTM turns the question into another, "
        "and a fully connected layer trained with both combines the two vectors before the "
        "answer classifier.",
        "intermediate",
    ),
    "d": (
        "A car's camera detector and its radar detector each output a list of obstacles; a "
        "rule keeps an obstacle when either detector is very sure of it.",
        "late",
    ),
}
"""Scenario letter -> (description, the kind of fusion it uses)."""

_WHY = {
    "early": "the modalities are joined at the input, before any modality-specific learning",
    "intermediate": "each modality is encoded first and a learned layer combines the "
    "representations",
    "late": "each modality reaches its own decision and only the decisions are combined",
}


def check_fusion_types(answers: dict[str, str]) -> CheckResult:
    """Are ``answers`` (scenario letter -> ``"early"``, ``"intermediate"`` or ``"late"``) the
    kinds of fusion of :data:`FUSION_SCENARIOS`?"""
    if not isinstance(answers, dict):
        return CheckResult(False, "answer with a dict such as {'a': 'early', ...}")
    missing = sorted(set(FUSION_SCENARIOS) - set(answers))
    if missing:
        return CheckResult(False, f"give an answer for scenario(s) {', '.join(missing)}")
    for letter, (_, truth) in FUSION_SCENARIOS.items():
        given = str(answers[letter]).strip().lower()
        if given not in FUSION_KINDS:
            return CheckResult(
                False, f"scenario {letter}: answer one of {FUSION_KINDS}, got {answers[letter]!r}"
            )
        if given != truth:
            return CheckResult(
                False,
                f"scenario {letter} is not {given} fusion: in {given} fusion {_WHY[given]}; "
                "ask where the modalities meet",
            )
    return CheckResult(True, ", ".join(f"{k}: {v[1]}" for k, v in FUSION_SCENARIOS.items()))


def _similarities(model: DigitWordSpace, images: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``(B, n_words)`` computed with torch's own cosine_similarity."""
    with torch.no_grad():
        points = model.encode_images(images)  # (B, d)
        words = model.encode_words()  # (W, d)
        return F.cosine_similarity(points[:, None, :], words[None, :, :], dim=2)


def check_nearest_word(
    model: DigitWordSpace, images: torch.Tensor, labels: torch.Tensor, index: int, answer: str
) -> CheckResult:
    """Is ``answer`` the word whose embedding is most cosine-similar to image ``index``?"""
    if not isinstance(answer, str) or not answer.strip():
        return CheckResult(False, "answer with a word such as 'seven'")
    answer = answer.strip().lower()
    if answer not in model.words:
        return CheckResult(False, f"{answer!r} is not one of the space's words {list(model.words)}")
    similarity = _similarities(model, images[index : index + 1])[0]
    expected = model.words[int(similarity.argmax())]
    if answer != expected:
        true_word = model.words[int(labels[index])]
        hint = (
            "that is the digit's true label, but the question asks which word the model "
            "places nearest"
            if answer == true_word
            else "compare the image's point with every word by cosine similarity"
        )
        return CheckResult(False, f"the nearest word is not {answer!r}: {hint}")
    note = "the model is right" if expected == model.words[int(labels[index])] else (
        f"the model is wrong here: the digit is a {model.words[int(labels[index])]}"
    )  # fmt: skip
    return CheckResult(
        True, f"image {index} lies nearest to {expected!r} (cosine {similarity.max():.3f}); {note}"
    )


def check_precision_at_k(
    model: DigitWordSpace,
    images: torch.Tensor,
    labels: torch.Tensor,
    word: str,
    k: int,
    answer: float,
) -> CheckResult:
    """Is ``answer`` the fraction of the ``k`` images nearest to ``word`` that show its digit?"""
    if word not in model.words:
        return CheckResult(False, f"{word!r} is not one of the space's words {list(model.words)}")
    if not isinstance(k, int) or not 1 <= k <= len(images):
        return CheckResult(False, f"k must be an int between 1 and {len(images)}, got {k!r}")
    if answer is None:
        return CheckResult(False, "compute the precision as a number between 0 and 1")
    column = _similarities(model, images)[:, model.words.index(word)]
    top = column.argsort(descending=True)[:k]
    expected = (labels[top] == model.words.index(word)).double().mean().item()
    if isinstance(answer, (int, float)) and 1 < answer <= k:
        return CheckResult(False, "give the fraction (between 0 and 1), not the count")
    result = check_close(f"precision@{k} for {word!r}", answer, expected, atol=1e-3)
    if not result:
        return result
    return CheckResult(True, f"{expected:.3f} of the {k} images nearest to {word!r} show it")
