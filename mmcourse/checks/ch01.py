"""Self-checks for chapter 01 (concepts): kinds of fusion, and lookups in a shared space.

A failed check says what is wrong and why (which scenario, which kind of mistake, how far a
number is off) but never gives the expected answer away; see :mod:`mmcourse.checks`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.checks._core import CheckResult, as_number, check_close
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
    kinds of fusion of :data:`FUSION_SCENARIOS`?

    A wrong answer is explained by what the kind the learner chose means, never by the right
    kind; the message also says how many scenarios are already right.
    """
    if not isinstance(answers, dict):
        return CheckResult(False, "answer with a dict such as {'a': 'early', ...}")
    missing = sorted(set(FUSION_SCENARIOS) - set(answers))
    if missing:
        return CheckResult(False, f"give an answer for scenario(s) {', '.join(missing)}")
    if all(answers[letter] is None for letter in FUSION_SCENARIOS):
        return CheckResult(
            False, f"replace each None with one of {', '.join(repr(k) for k in FUSION_KINDS)}"
        )
    given = {letter: str(answers[letter]).strip().lower() for letter in FUSION_SCENARIOS}
    for letter in FUSION_SCENARIOS:
        if given[letter] not in FUSION_KINDS:
            return CheckResult(
                False, f"scenario {letter}: answer one of {FUSION_KINDS}, got {answers[letter]!r}"
            )
    wrong = [letter for letter, (_, truth) in FUSION_SCENARIOS.items() if given[letter] != truth]
    if wrong:
        letter = wrong[0]
        right = len(FUSION_SCENARIOS) - len(wrong)
        return CheckResult(
            False,
            f"{right} of {len(FUSION_SCENARIOS)} right; scenario {letter} is not "
            f"{given[letter]} fusion: in {given[letter]} fusion {_WHY[given[letter]]}; "
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
    """Is ``answer`` the word whose embedding is most cosine-similar to image ``index``?

    A wrong word gets a hint for the usual slips (the digit's true label, the largest dot
    product instead of the largest cosine, the *least* similar word) without naming the right
    one.
    """
    if not isinstance(answer, str) or not answer.strip():
        return CheckResult(False, "answer with a word such as 'seven'")
    answer = answer.strip().lower()
    if answer not in model.words:
        return CheckResult(False, f"{answer!r} is not one of the space's words {list(model.words)}")
    similarity = _similarities(model, images[index : index + 1])[0]
    expected = model.words[int(similarity.argmax())]
    true_word = model.words[int(labels[index])]
    if answer != expected:
        with torch.no_grad():
            dot = model.encode_images(images[index : index + 1])[0] @ model.encode_words().T
        if answer == true_word:
            hint = (
                "that is the digit's true label, but the question asks which word the model "
                "places nearest"
            )
        elif answer == model.words[int(dot.argmax())]:
            hint = (
                "that word has the largest dot product; cosine similarity divides by both "
                "lengths first"
            )
        elif answer == model.words[int(similarity.argmin())]:
            hint = "that is the *least* similar word; the nearest has the largest cosine"
        else:
            hint = "compare the image's point with every word by cosine similarity"
        return CheckResult(False, f"the nearest word is not {answer!r}: {hint}")
    note = "the model is right" if expected == true_word else (
        f"the model is wrong here: the digit is a {true_word}"
    )  # fmt: skip
    return CheckResult(
        True, f"image {index} lies nearest to {expected!r} (cosine {similarity.max():.3f}); {note}"
    )


def _precision(column: torch.Tensor, hits: torch.Tensor, k: int, descending: bool = True) -> float:
    top = column.argsort(descending=descending)[:k]
    return hits[top].double().mean().item()


def check_precision_at_k(
    model: DigitWordSpace,
    images: torch.Tensor,
    labels: torch.Tensor,
    word: str,
    k: int,
    answer: float,
) -> CheckResult:
    """Is ``answer`` the fraction of the ``k`` images nearest to ``word`` that show its digit?

    A miss says whether the answer is too high or too low and by roughly how much, and spots a
    count instead of a fraction, a percentage, and the ``k`` *least* similar images.
    """
    if word not in model.words:
        return CheckResult(False, f"{word!r} is not one of the space's words {list(model.words)}")
    if not isinstance(k, int) or not 1 <= k <= len(images):
        return CheckResult(False, f"k must be an int between 1 and {len(images)}, got {k!r}")
    name = f"precision@{k} for {word!r}"
    if answer is None:
        return CheckResult(False, "compute the precision as a number between 0 and 1")
    value = as_number(name, answer)
    if isinstance(value, CheckResult):
        return value
    column = _similarities(model, images)[:, model.words.index(word)]
    hits = labels == model.words.index(word)
    expected = _precision(column, hits, k)
    result = check_close(name, value, expected, atol=1e-3)
    if result:
        return CheckResult(True, f"{value:.3f} of the {k} images nearest to {word!r} show it")
    if value > 1:
        if value <= k and float(value).is_integer():
            hint = "give the fraction (between 0 and 1), not the count"
        elif value <= 100:
            hint = "give a fraction between 0 and 1, not a percentage"
        else:
            hint = "a precision is a fraction between 0 and 1"
        return CheckResult(False, f"{name} is above 1: {hint}")
    if value < 0:
        return CheckResult(False, f"{name} is negative: a precision is a fraction in [0, 1]")
    if value > 0 and abs(value - _precision(column, hits, k, descending=False)) < 1e-3:
        return CheckResult(
            False,
            f"{name}: those are the {k} *least* similar images; sort by descending cosine",
        )
    return CheckResult(
        False,
        f"{result.message}: of the {k} images with the highest cosine to {word!r}, count "
        "those whose label is its digit, then divide by k",
    )
