"""Which part of a generated caption is wrong: MNIST-Captions captions against the ground truth.

BLEU (:func:`mmcourse.metrics.bleu`) only counts words shared with the reference captions, so it
cannot say *what* a caption gets wrong: "a small seven on the left" and "a large seven on the
left" differ in one word out of six, yet one of them is false. MNIST-Captions knows every fact
of every canvas, so a generated caption can be read back with
:func:`~mmcourse.data.captions.parse_caption` and checked fact by fact.

Definitions, for one canvas: ``truth`` is the list of its true digits, ``said`` what the parsed
caption says (both :class:`~mmcourse.data.captions.DigitDescription`, one per slot).

==============  ===================================================================  =========
score           right when                                                           averaged
==============  ===================================================================  =========
``parsed``      the caption follows the grammar (``parse_caption`` reads it)         canvases
``exact``       ``said == truth``: the same slots and every attribute of each digit  canvases
``count``       ``len(said) == len(truth)``: as many digits as there are             canvases
``position``    the set of slots said equals the set of true slots                   canvases
``digit``,      for one *true* digit: the caption names a digit in the same slot     true
``size``,       with the same value of this attribute. A digit the caption leaves    digits
``thickness``,  out is wrong on all four; a digit it invents in an empty slot costs
``slant``       nothing here (``count``, ``position`` and ``exact`` catch it).
==============  ===================================================================  =========

A caption that cannot be parsed is wrong on everything. Canvas scores are averaged over
canvases; the four attribute scores over all true digits of the corpus (a canvas with three
digits weighs three times as much as one with one digit).

>>> truth = [DigitDescription("left", 7, "small", "thick", "upright")]
>>> score_caption("a small thick seven on the left", truth).exact
True
>>> score_caption("a large thick one on the left and a small two in the middle", truth).errors
("left: said 'one', is 'seven'", "left: said size 'large', is 'small'", 'extra digit in the middle')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from mmcourse._validate import check_int, require
from mmcourse.data.captions import (
    ATTRIBUTES,
    HOLDOUT,
    MAX_DIGITS,
    NUMBER_WORDS,
    SLOTS,
    DigitDescription,
    Holdout,
    MNISTCaptions,
    parse_caption,
)
from mmcourse.metrics import bleu_scores
from mmcourse.vocab import tokenize

__all__ = [
    "FIELDS",
    "REPORT_KEYS",
    "CaptionScore",
    "HeldOutResult",
    "attribute_confusion",
    "caption_report",
    "caption_report_for",
    "held_out_breakdown",
    "implied_exact_match",
    "rank_errors",
    "score_caption",
    "score_captions",
]

FIELDS = ("digit", "size", "thickness", "slant")
"""The attributes of a digit a caption can get right or wrong."""
REPORT_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "exact", "parsed", "count", "position") + FIELDS
"""The keys of :func:`caption_report`, in this order."""

_WHERE = {"left": "on the left", "middle": "in the middle", "right": "on the right"}


@dataclass(frozen=True)
class CaptionScore:
    """How one caption fares against its canvas's true digits (see the module's table).

    Attributes:
        parsed, exact, count, position: the canvas-level scores, each right or wrong.
        n_digits: how many digits stand on the canvas.
        digit, size, thickness, slant: how many of those ``n_digits`` true digits the caption
            describes right in this attribute (0 to ``n_digits``).
        errors: what is wrong, in words, left to right, e.g. ``"middle: said 'seven', is
            'one'"``, ``"missed the two on the right"``, ``"extra digit on the left"`` or
            ``"not a valid caption"``; empty when ``exact``.
    """

    parsed: bool
    exact: bool
    count: bool
    position: bool
    n_digits: int
    digit: int
    size: int
    thickness: int
    slant: int
    errors: tuple[str, ...]


def _check_truth(truth: object, name: str) -> Sequence[DigitDescription]:
    """``truth``: 1 to 3 DigitDescriptions with valid values, in distinct slots."""
    if isinstance(truth, str) or not isinstance(truth, Sequence):
        raise TypeError(f"{name} must be a list of DigitDescription, got {type(truth).__name__}")
    if not 1 <= len(truth) <= MAX_DIGITS:
        raise ValueError(f"{name} must hold 1 to {MAX_DIGITS} digits, got {len(truth)}")
    for i, item in enumerate(truth):
        if not isinstance(item, DigitDescription):
            raise TypeError(f"{name}[{i}] must be a DigitDescription, got {item!r:.60}")
        if item.slot not in SLOTS or item.digit not in range(10):
            raise ValueError(f"{name}[{i}] has no valid slot and digit (0..9): {item}")
        for field, values in ATTRIBUTES.items():
            if getattr(item, field) not in values:
                raise ValueError(f"{name}[{i}].{field} must be one of {values}, got {item}")
    if len({item.slot for item in truth}) != len(truth):
        raise ValueError(f"{name} has two digits in one slot: {truth}")
    return truth


def _check_texts(texts: object, name: str = "texts") -> None:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of str, got {type(texts).__name__}")
    require(len(texts) != 0, f"{name} is empty; it must hold at least one caption")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(text).__name__} {text!r:.60}")


def _check_same_length(a: Sequence, b: Sequence, name_a: str, name_b: str) -> None:
    if isinstance(b, str) or not isinstance(b, Sequence):
        raise TypeError(f"{name_b} must be a list, got {type(b).__name__}")
    if len(a) != len(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same length (one per canvas), got "
            f"{len(a)} and {len(b)}"
        )


def _show(field: str, value: object) -> str:
    return repr(NUMBER_WORDS[value] if field == "digit" else value)


def score_caption(text: str, truth: Sequence[DigitDescription]) -> CaptionScore:
    """Check what ``text`` says against ``truth``, the digits on its canvas (the list that
    :meth:`MNISTCaptions.descriptions <mmcourse.data.captions.MNISTCaptions.descriptions>`
    gives). Any of the four paraphrases of the true description scores ``exact``.

    >>> truth = [DigitDescription("left", 3, "large", "normal", "upright"),
    ...          DigitDescription("right", 8, "small", "thin", "left")]
    >>> score = score_caption("there is a large three on the left", truth)
    >>> score.count, score.digit, score.n_digits, score.errors
    (False, 1, 2, ('missed the eight on the right',))
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__} {text!r:.60}")
    return _score(text, _check_truth(truth, "truth"))


def _score(text: str, truth: Sequence[DigitDescription]) -> CaptionScore:
    """:func:`score_caption` of checked arguments."""
    true_at = {item.slot: item for item in truth}
    try:
        said_at = {item.slot: item for item in parse_caption(text)}
    except ValueError:  # not MNIST-Captions' grammar: wrong on everything
        return CaptionScore(
            parsed=False,
            exact=False,
            count=False,
            position=False,
            n_digits=len(truth),
            errors=("not a valid caption",),
            **dict.fromkeys(FIELDS, 0),
        )
    right = dict.fromkeys(FIELDS, 0)
    errors = []
    for slot in SLOTS:  # left to right, so the errors read in the order of the canvas
        true, got = true_at.get(slot), said_at.get(slot)
        if true is None:
            if got is not None:
                errors.append(f"extra digit {_WHERE[slot]}")
        elif got is None:
            errors.append(f"missed the {NUMBER_WORDS[true.digit]} {_WHERE[slot]}")
        else:
            for field in FIELDS:
                want, have = getattr(true, field), getattr(got, field)
                if want == have:
                    right[field] += 1
                else:
                    what = "" if field == "digit" else f"{field} "
                    errors.append(
                        f"{slot}: said {what}{_show(field, have)}, is {_show(field, want)}"
                    )
    return CaptionScore(
        parsed=True,
        exact=said_at == true_at,
        count=len(said_at) == len(true_at),
        position=set(said_at) == set(true_at),
        n_digits=len(truth),
        errors=tuple(errors),
        **right,
    )


def score_captions(
    texts: Sequence[str], truths: Sequence[Sequence[DigitDescription]]
) -> list[CaptionScore]:
    """:func:`score_caption` of each caption against the truth of its canvas."""
    _check_texts(texts)
    _check_same_length(texts, truths, "texts", "truths")
    return [
        _score(text, _check_truth(truth, f"truths[{i}]"))
        for i, (text, truth) in enumerate(zip(texts, truths))
    ]


def caption_report(
    texts: Sequence[str],
    references: Sequence[Sequence[str]],
    truths: Sequence[Sequence[DigitDescription]],
) -> dict[str, float]:
    """Every caption score of a corpus in one dict with the keys :data:`REPORT_KEYS`, each in
    ``[0, 1]``:

    - ``"bleu1"`` .. ``"bleu4"``: corpus BLEU-n (:func:`mmcourse.metrics.bleu_scores`, no
      smoothing) of ``texts`` against *all* reference captions of each canvas, every caption
      cut into tokens by :func:`mmcourse.vocab.tokenize` (lower case, punctuation apart);
    - ``"exact"``, ``"parsed"``, ``"count"``, ``"position"``: fractions of canvases;
    - ``"digit"``, ``"size"``, ``"thickness"``, ``"slant"``: fractions of all true digits.

    Args:
        texts: ``N`` generated captions.
        references: ``N`` non-empty lists of reference captions (str).
        truths: ``N`` lists of true digits, as :meth:`MNISTCaptions.descriptions` gives.

    >>> truth = [DigitDescription("middle", 1, "small", "normal", "upright")]
    >>> report = caption_report(["a small one in the middle"], [["a small one in the middle"]],
    ...                         [truth])
    >>> report["bleu4"], report["exact"], report["digit"]
    (1.0, 1.0, 1.0)
    """
    scores = score_captions(texts, truths)
    _check_same_length(texts, references, "texts", "references")
    for i, refs in enumerate(references):
        _check_texts(refs, f"references[{i}]")  # a non-empty list of str
    report = bleu_scores(
        [tokenize(text) for text in texts],
        [[tokenize(ref) for ref in refs] for refs in references],
        max_n=4,
    )
    for key in ("exact", "parsed", "count", "position"):
        report[key] = sum(getattr(score, key) for score in scores) / len(scores)
    n_digits = sum(score.n_digits for score in scores)
    for field in FIELDS:
        report[field] = sum(getattr(score, field) for score in scores) / n_digits
    return report


def caption_report_for(texts: Sequence[str], data: MNISTCaptions) -> dict[str, float]:
    """:func:`caption_report` of ``texts``, one caption per canvas of ``data``, against the
    dataset's own reference captions and ground truth."""
    if not isinstance(data, MNISTCaptions):
        raise TypeError(f"data must be an MNISTCaptions, got {type(data).__name__}")
    _check_texts(texts)
    if len(texts) != len(data):
        raise ValueError(
            f"texts must hold one caption per canvas of data, got {len(texts)} captions for "
            f"{len(data)} canvases"
        )
    truths = [data.descriptions(i) for i in range(len(data))]
    return caption_report(texts, data.captions, truths)


def rank_errors(
    texts: Sequence[str], truths: Sequence[Sequence[DigitDescription]], k: int
) -> list[int]:
    """Indices of the ``k`` worst captions, worst first, for a gallery of mistakes.

    Unparseable captions come first, then the others by how many errors they make (the length
    of :attr:`CaptionScore.errors`: one per wrong attribute of a digit, one per missed digit and
    one per extra digit). Ties keep the order of ``texts``. Fewer than ``k`` indices come back
    when there are fewer captions; right captions, with no error, come last.

    >>> truth = [DigitDescription("left", 2, "large", "normal", "upright")]
    >>> rank_errors(["a large two on the left", "a small one on the left", "two two"],
    ...             [truth] * 3, k=2)
    [2, 1]
    """
    check_int(k, "k")
    scores = score_captions(texts, truths)
    return sorted(range(len(scores)), key=lambda i: (scores[i].parsed, -len(scores[i].errors)))[:k]


def implied_exact_match(
    scores: Sequence[CaptionScore], assume_right: Sequence[str] = ()
) -> tuple[dict[str, float], float]:
    """The accuracy of each fact, and the exact match they would give if errors were
    independent: how much of a caption's failure each fact explains.

    Returns ``(accuracies, estimate)``. ``accuracies`` holds ``count`` and ``position``
    (fractions of canvases) and the four :data:`FIELDS` (fractions of true digits). A canvas
    with ``n`` digits is exactly right, under independence, with probability
    ``p_count * p_position * (p_digit * p_size * p_thickness * p_slant) ** n``; ``estimate``
    averages that over the canvases. A measured exact match above the estimate means errors
    come together on the same canvases; below it, that they spread out. The facts named in
    ``assume_right`` count as always right in the estimate (not in ``accuracies``): what
    the exact match could be if that fact were fixed and the others stayed as they are.

    >>> truth = [DigitDescription("left", 7, "small", "thick", "upright")]
    >>> scores = score_captions(["a small thick seven on the left",
    ...                          "a small thin seven on the left"], [truth, truth])
    >>> accuracies, estimate = implied_exact_match(scores)
    >>> accuracies["thickness"], accuracies["digit"], estimate
    (0.5, 1.0, 0.5)
    >>> implied_exact_match(scores, assume_right=["thickness"])[1]
    1.0
    """
    if isinstance(scores, str) or not isinstance(scores, Sequence) or len(scores) == 0:
        raise ValueError("scores must be a non-empty list of CaptionScore (from score_captions)")
    if not all(isinstance(s, CaptionScore) for s in scores):
        raise TypeError("scores must hold CaptionScore objects (from score_captions)")
    if isinstance(assume_right, str) or not set(assume_right) <= {*_CANVAS, *FIELDS}:
        raise ValueError(
            f"assume_right must be a list of facts among {(*_CANVAS, *FIELDS)}, got {assume_right!r}"
        )
    digits = sum(s.n_digits for s in scores)
    accuracies = {key: sum(getattr(s, key) for s in scores) / len(scores) for key in _CANVAS}
    accuracies.update({f: sum(getattr(s, f) for s in scores) / digits for f in FIELDS})
    assumed = {**accuracies, **dict.fromkeys(assume_right, 1.0)}
    per_digit = 1.0
    for field in FIELDS:
        per_digit *= assumed[field]
    canvas = assumed["count"] * assumed["position"]
    estimate = sum(canvas * per_digit**s.n_digits for s in scores) / len(scores)
    return accuracies, estimate


_CANVAS = ("count", "position")


def attribute_confusion(
    texts: Sequence[str], truths: Sequence[Sequence[DigitDescription]], field: str
) -> list[list[int]]:
    """How often each true value of ``field`` (``"size"``, ``"thickness"`` or ``"slant"``)
    was said as each value: ``counts[true][said]``, rows and columns in the order of
    :data:`~mmcourse.data.captions.ATTRIBUTES`. Only true digits that a parsed caption
    describes in their own slot count (a missed digit has no said value).

    >>> truth = [DigitDescription("left", 7, "small", "thick", "upright")]
    >>> attribute_confusion(["a small seven on the left"], [truth], "thickness")
    [[0, 0, 0], [0, 0, 0], [0, 1, 0]]
    """
    require(field in ATTRIBUTES, f"field must be one of {tuple(ATTRIBUTES)}, got {field!r}")
    _check_texts(texts)
    _check_same_length(texts, truths, "texts", "truths")
    values = ATTRIBUTES[field]
    counts = [[0] * len(values) for _ in values]
    for i, (text, truth) in enumerate(zip(texts, truths)):
        true_at = {item.slot: item for item in _check_truth(truth, f"truths[{i}]")}
        try:
            said = parse_caption(text)
        except ValueError:
            continue
        for item in said:
            if item.slot in true_at:
                want = values.index(getattr(true_at[item.slot], field))
                counts[want][values.index(getattr(item, field))] += 1
    return counts


@dataclass(frozen=True)
class HeldOutResult:
    """How captions fare on one combination that training never showed.

    Attributes:
        combination: the combination in words, as :meth:`Holdout.describe` gives it.
        canvases: how many canvases hold it.
        exact: the exact match on those canvases.
        instances: how many times it occurs: each held-out digit (a thick seven), or each
            canvas holding a held-out pair (a three and an eight).
        right: the share of instances described right in *both* parts: the digit and its
            held-out value, or both digits of the pair.
        said_instead: the most frequent wrong descriptions of an instance, with their counts,
            most frequent first (at most three), e.g. ``("nine, size small", 41)``.
    """

    combination: str
    canvases: int
    exact: float
    instances: int
    right: float
    said_instead: tuple[tuple[str, int], ...]


def _said_at(text: str) -> dict[str, DigitDescription] | None:
    try:
        return {item.slot: item for item in parse_caption(text)}
    except ValueError:
        return None


def held_out_breakdown(
    texts: Sequence[str],
    truths: Sequence[Sequence[DigitDescription]],
    holdout: Holdout = HOLDOUT,
) -> list[HeldOutResult]:
    """Captions scored separately on each held-out combination of ``holdout`` (the
    compositional split's): one :class:`HeldOutResult` per combination, in the order of
    :meth:`Holdout.describe`. Combinations that no canvas holds are left out.

    >>> truth = [DigitDescription("left", 4, "small", "normal", "upright")]
    >>> [row.said_instead for row in held_out_breakdown(["a small nine on the left"], [truth])]
    [(('nine, size small', 1),)]
    """
    _check_texts(texts)
    _check_same_length(texts, truths, "texts", "truths")
    truths = [_check_truth(truth, f"truths[{i}]") for i, truth in enumerate(truths)]
    saids = [_said_at(text) for text in texts]
    exact = [score.exact for score in map(_score, texts, truths)]
    names = iter(holdout.describe())
    results = []
    for digit, field, value in holdout.digit_attributes:
        found = [
            (row, item)
            for row, truth in enumerate(truths)
            for item in truth
            if item.digit == digit and getattr(item, field) == value
        ]
        outcomes = []
        for row, item in found:
            said = (saids[row] or {}).get(item.slot)
            if said is None:
                outcomes.append("nothing" if saids[row] is not None else "not a valid caption")
            elif said.digit == digit and getattr(said, field) == value:
                outcomes.append(None)
            else:
                outcomes.append(f"{NUMBER_WORDS[said.digit]}, {field} {getattr(said, field)}")
        results.append(_held_out_result(next(names), {row for row, _ in found}, outcomes, exact))
    for first, second in holdout.digit_pairs:
        rows, outcomes = set(), []
        for row, truth in enumerate(truths):
            slots = {item.digit: item.slot for item in truth}
            if first in slots and second in slots:
                rows.add(row)
                said = saids[row] or {}
                words = [
                    said[slots[d]].digit if slots[d] in said else None for d in (first, second)
                ]
                if words == [first, second]:
                    outcomes.append(None)
                else:
                    outcomes.append(
                        " and ".join("nothing" if w is None else NUMBER_WORDS[w] for w in words)
                    )
        results.append(_held_out_result(next(names), rows, outcomes, exact))
    return [result for result in results if result.instances]


def _held_out_result(
    name: str, rows: set[int], outcomes: list[str | None], exact: list[bool]
) -> HeldOutResult:
    wrong = Counter(outcome for outcome in outcomes if outcome is not None)
    return HeldOutResult(
        combination=name,
        canvases=len(rows),
        exact=sum(exact[row] for row in rows) / max(1, len(rows)),
        instances=len(outcomes),
        right=outcomes.count(None) / max(1, len(outcomes)),
        said_instead=tuple(wrong.most_common(3)),
    )
