"""mmcourse.caption_metrics against captions whose mistakes are counted by hand, nltk and
sacrebleu (BLEU), and the dataset's own captions (which must score perfectly)."""

from __future__ import annotations

import dataclasses
import random
import warnings

import nltk.translate.bleu_score as nltk_bleu
import pytest
import sacrebleu

from mmcourse import caption_metrics as CM
from mmcourse.data.captions import (
    NUMBER_WORDS,
    SIZES,
    SLANTS,
    SLOTS,
    THICKNESSES,
    DigitDescription,
    describe,
    make_mnist_captions,
)
from mmcourse.vocab import tokenize

D = DigitDescription


def truth_of(items: list[tuple[int, int, int, int, int]]) -> list[DigitDescription]:
    """The ground truth of ``describe``'s items, built here rather than by the dataset."""
    return [
        D(SLOTS[slot], digit, SIZES[size], THICKNESSES[thick], SLANTS[slant])
        for slot, digit, size, thick, slant in items
    ]


def random_items(rng: random.Random) -> list[tuple[int, int, int, int, int]]:
    slots = sorted(rng.sample(range(3), rng.randint(1, 3)))
    return [
        (s, rng.randrange(10), rng.randrange(2), rng.randrange(3), rng.randrange(3)) for s in slots
    ]


# ----------------------------------------------------------------------------------------------
# a hand-made corpus: five canvases, the mistakes of each caption counted by hand

T1 = [D("left", 7, "small", "thick", "upright"), D("right", 2, "large", "normal", "right")]
C1 = "there is a small thick seven on the left and a big two tilted right on the right"  # exact
T2 = [D("middle", 1, "large", "thin", "left")]
C2 = "a large thin seven in the middle"  # wrong digit, wrong slant
T3 = [
    D("left", 3, "small", "normal", "upright"),
    D("middle", 4, "large", "normal", "upright"),
    D("right", 5, "small", "thick", "left"),
]
C3 = "a small three on the left and a large four in the middle"  # misses the five
T4 = [D("right", 0, "small", "normal", "upright")]
C4 = "a a a seven"  # not a caption
T5 = [D("left", 8, "large", "normal", "upright")]
C5 = "a large eight on the left and a small six on the right"  # an extra digit

TEXTS = [C1, C2, C3, C4, C5]
TRUTHS = [T1, T2, T3, T4, T5]


def test_exact_caption_in_another_wording() -> None:
    score = CM.score_caption(C1, T1)
    assert score == CM.CaptionScore(True, True, True, True, 2, 2, 2, 2, 2, ())


def test_wrong_digit_and_slant() -> None:
    score = CM.score_caption(C2, T2)
    assert (score.parsed, score.exact, score.count, score.position) == (True, False, True, True)
    assert (score.n_digits, score.digit, score.size, score.thickness, score.slant) == (
        1,
        0,
        1,
        1,
        0,
    )
    assert score.errors == (
        "middle: said 'seven', is 'one'",
        "middle: said slant 'upright', is 'left'",
    )


def test_wrong_size_and_thickness() -> None:
    score = CM.score_caption("a large seven on the left", T1[:1])
    assert (score.digit, score.size, score.thickness, score.slant) == (1, 0, 0, 1)
    assert score.errors == (
        "left: said size 'large', is 'small'",
        "left: said thickness 'normal', is 'thick'",
    )
    assert score.count and score.position and not score.exact


def test_missing_digit() -> None:
    score = CM.score_caption(C3, T3)
    assert (score.parsed, score.exact, score.count, score.position) == (True, False, False, False)
    assert (score.n_digits, score.digit, score.size, score.thickness, score.slant) == (
        3,
        2,
        2,
        2,
        2,
    )
    assert score.errors == ("missed the five on the right",)


def test_extra_digit() -> None:
    score = CM.score_caption(C5, T5)
    assert (score.parsed, score.exact, score.count, score.position) == (True, False, False, False)
    assert (score.digit, score.size, score.thickness, score.slant) == (1, 1, 1, 1)
    assert score.errors == ("extra digit on the right",)


def test_right_count_in_wrong_slots() -> None:
    score = CM.score_caption("a small three in the middle", T3[:1])  # the three is on the left
    assert score.count and not score.position
    assert (score.digit, score.size, score.thickness, score.slant) == (0, 0, 0, 0)
    assert score.errors == ("missed the three on the left", "extra digit in the middle")


@pytest.mark.parametrize("text", [C4, "", "a small seven", "a small seven on the left , banana"])
def test_unparseable_caption_is_wrong_on_everything(text: str) -> None:
    score = CM.score_caption(text, T1)
    assert score == CM.CaptionScore(
        False, False, False, False, 2, 0, 0, 0, 0, ("not a valid caption",)
    )


def test_score_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CM.score_caption(C1, T1).exact = False


@pytest.mark.parametrize("seed", range(5))
def test_every_template_scores_exact(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20):
        items = random_items(rng)
        truth = truth_of(items)
        for template in range(4):
            score = CM.score_caption(describe(items, template), truth)
            n = len(items)
            assert score == CM.CaptionScore(True, True, True, True, n, n, n, n, n, ()), template


@pytest.mark.parametrize("seed", range(5))
def test_one_changed_attribute_is_one_error(seed: int) -> None:
    """Describe the canvas with one attribute of one digit changed: only that is wrong."""
    rng = random.Random(seed)
    for _ in range(20):
        items = random_items(rng)
        which, field = rng.randrange(len(items)), rng.randrange(1, 5)  # 1..4: digit..slant
        changed = [list(item) for item in items]
        sizes = (10, 2, 3, 3)[field - 1]
        changed[which][field] = (changed[which][field] + rng.randrange(1, sizes)) % sizes
        text = describe([tuple(item) for item in changed], rng.randrange(4))
        score = CM.score_caption(text, truth_of(items))
        n = len(items)
        name = CM.FIELDS[field - 1]
        expected = {f: n - (f == name) for f in CM.FIELDS}
        assert {f: getattr(score, f) for f in CM.FIELDS} == expected
        assert score.parsed and score.count and score.position and not score.exact
        assert len(score.errors) == 1 and score.errors[0].startswith(SLOTS[items[which][0]] + ":")


def test_truth_may_come_in_any_order() -> None:
    assert CM.score_caption(C1, T1[::-1]).exact


# ----------------------------------------------------------------------------------------------
# the corpus report


def test_report_by_hand() -> None:
    refs = [[C1]] * 5  # BLEU is checked below; here only the fact scores
    report = CM.caption_report(TEXTS, refs, TRUTHS)
    assert list(report) == list(CM.REPORT_KEYS)
    # canvases: parsed 1-4 and 5; exact only 1; right count (and slots) only 1 and 2
    assert report["parsed"] == pytest.approx(4 / 5)
    assert report["exact"] == pytest.approx(1 / 5)
    assert report["count"] == pytest.approx(2 / 5)
    assert report["position"] == pytest.approx(2 / 5)
    # 2 + 1 + 3 + 1 + 1 = 8 true digits
    assert report["digit"] == pytest.approx((2 + 0 + 2 + 0 + 1) / 8)
    assert report["size"] == pytest.approx((2 + 1 + 2 + 0 + 1) / 8)
    assert report["thickness"] == pytest.approx((2 + 1 + 2 + 0 + 1) / 8)
    assert report["slant"] == pytest.approx((2 + 0 + 2 + 0 + 1) / 8)


def references_of(truths: list[list[DigitDescription]]) -> list[list[str]]:
    """The four dataset paraphrases of each hand-made truth."""
    refs = []
    for truth in truths:
        items = [
            (
                SLOTS.index(d.slot),
                d.digit,
                SIZES.index(d.size),
                THICKNESSES.index(d.thickness),
                SLANTS.index(d.slant),
            )
            for d in truth
        ]
        refs.append([describe(items, t) for t in range(4)])
    return refs


def test_implied_exact_match_by_hand() -> None:
    accuracies, estimate = CM.implied_exact_match(CM.score_captions(TEXTS, TRUTHS))
    # counted by hand over the five canvases and their eight true digits
    expected = {
        "count": 2 / 5,
        "position": 2 / 5,
        "digit": 5 / 8,
        "size": 6 / 8,
        "thickness": 6 / 8,
        "slant": 5 / 8,
    }
    assert accuracies == pytest.approx(expected)
    p = (5 / 8) * (6 / 8) * (6 / 8) * (5 / 8)  # one digit right in every attribute
    n_digits = [2, 1, 3, 1, 1]
    assert estimate == pytest.approx(sum(0.16 * p**n for n in n_digits) / 5)
    _, fixed = CM.implied_exact_match(CM.score_captions(TEXTS, TRUTHS), ["digit", "count"])
    p = 1.0 * (6 / 8) * (6 / 8) * (5 / 8)
    assert fixed == pytest.approx(sum(0.4 * p**n for n in n_digits) / 5)
    with pytest.raises(ValueError, match="assume_right must be a list of facts"):
        CM.implied_exact_match(CM.score_captions(TEXTS, TRUTHS), "digit")
    with pytest.raises(ValueError, match="non-empty list of CaptionScore"):
        CM.implied_exact_match([])
    with pytest.raises(TypeError, match="CaptionScore"):
        CM.implied_exact_match(["a small seven on the left"])


def test_attribute_confusion_by_hand() -> None:
    # rows: the true value; columns: what was said (missed, unparsed and extra digits left out)
    assert CM.attribute_confusion(TEXTS, TRUTHS, "thickness") == [[1, 0, 0], [0, 4, 0], [0, 0, 1]]
    assert CM.attribute_confusion(TEXTS, TRUTHS, "slant") == [[0, 1, 0], [0, 4, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match="field must be one of"):
        CM.attribute_confusion(TEXTS, TRUTHS, "digit")
    with pytest.raises(ValueError, match="same length"):
        CM.attribute_confusion(TEXTS, TRUTHS[:2], "size")


def test_bleu_of_the_references_themselves_is_one() -> None:
    refs = references_of(TRUTHS)
    for template in range(4):
        report = CM.caption_report([r[template] for r in refs], refs, TRUTHS)
        assert all(report[f"bleu{n}"] == 1.0 for n in range(1, 5))
        assert report["exact"] == 1.0


def test_bleu_matches_nltk_and_sacrebleu() -> None:
    refs = references_of(TRUTHS)
    report = CM.caption_report(TEXTS, refs, TRUTHS)
    candidates = [tokenize(text) for text in TEXTS]
    tokenized_refs = [[tokenize(r) for r in these] for these in refs]
    streams = [[" ".join(these[k]) for these in tokenized_refs] for k in range(4)]
    for n in range(1, 5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = nltk_bleu.corpus_bleu(tokenized_refs, candidates, weights=(1 / n,) * n)
        scorer = sacrebleu.BLEU(tokenize="none", smooth_method="none", max_ngram_order=n)
        sacre = scorer.corpus_score([" ".join(c) for c in candidates], streams).score / 100
        assert 0 < report[f"bleu{n}"] < 1
        assert report[f"bleu{n}"] == pytest.approx(expected)
        assert report[f"bleu{n}"] == pytest.approx(sacre)


def test_bleu_tokenises_like_the_vocabulary() -> None:
    """Case and the spacing of punctuation do not change BLEU: captions are tokenised."""
    truth = [
        D("left", 1, "small", "normal", "upright"),
        D("right", 2, "small", "normal", "upright"),
    ]
    text = "a small one on the left , and a small two on the right"
    shouted = "A small ONE on the left, and a small two on the right"
    assert CM.caption_report([shouted], [[text]], [truth])["bleu4"] == 1.0


# ----------------------------------------------------------------------------------------------
# ranking for a gallery


def test_rank_errors_by_hand() -> None:
    # errors: C1 none, C2 two, C3 one, C4 unparseable, C5 one
    assert CM.rank_errors(TEXTS, TRUTHS, k=3) == [3, 1, 2]
    assert CM.rank_errors(TEXTS, TRUTHS, k=10) == [3, 1, 2, 4, 0]
    assert CM.rank_errors(TEXTS, TRUTHS, k=1) == [3]


# ----------------------------------------------------------------------------------------------
# real canvases


@pytest.fixture(scope="module")
def val():
    return make_mnist_captions("val", n=50)


@pytest.mark.parametrize("template", range(4))
def test_dataset_captions_score_perfectly(val, template: int) -> None:
    texts = [captions[template] for captions in val.captions]
    report = CM.caption_report_for(texts, val)
    assert report == dict.fromkeys(CM.REPORT_KEYS, 1.0)


def test_dataset_with_one_wrong_digit(val) -> None:
    texts = [captions[0] for captions in val.captions]
    truth = val.descriptions(0)
    first = truth[0]
    wrong = (first.digit + 1) % 10
    said = NUMBER_WORDS[first.digit]
    texts[0] = texts[0].replace(f" {said} ", f" {NUMBER_WORDS[wrong]} ", 1)
    assert CM.score_caption(texts[0], truth).errors == (
        f"{first.slot}: said '{NUMBER_WORDS[wrong]}', is '{said}'",
    )
    report = CM.caption_report_for(texts, val)
    n_digits = int(val.n_digits.sum())
    assert report["exact"] == pytest.approx(49 / 50)
    assert report["digit"] == pytest.approx((n_digits - 1) / n_digits)
    assert report["size"] == report["count"] == report["position"] == report["parsed"] == 1.0
    assert CM.rank_errors(texts, [val.descriptions(i) for i in range(50)], k=1) == [0]


# ----------------------------------------------------------------------------------------------
# bad inputs


def test_bad_inputs_name_the_argument() -> None:
    refs = [[C1]] * 5
    with pytest.raises(ValueError, match="texts and truths"):
        CM.caption_report(TEXTS[:4], refs, TRUTHS)
    with pytest.raises(ValueError, match="texts and references"):
        CM.caption_report(TEXTS, refs[:4], TRUTHS)
    with pytest.raises(ValueError, match="texts is empty"):
        CM.caption_report([], [], [])
    with pytest.raises(ValueError, match=r"references\[2\] is empty"):
        CM.caption_report(TEXTS, [[C1], [C1], [], [C1], [C1]], TRUTHS)
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        CM.caption_report([C1, 7, C3, C4, C5], refs, TRUTHS)
    with pytest.raises(TypeError, match="texts must be a list"):
        CM.rank_errors(C1, TRUTHS, k=1)
    with pytest.raises(TypeError, match=r"references\[0\] must be a list"):
        CM.caption_report(TEXTS, [C1] * 5, TRUTHS)
    with pytest.raises(TypeError, match="text must be a str"):
        CM.score_caption(["a", "small"], T1)
    with pytest.raises(ValueError, match="k must be"):
        CM.rank_errors(TEXTS, TRUTHS, k=0)
    with pytest.raises(TypeError, match="k must be"):
        CM.rank_errors(TEXTS, TRUTHS, k="2")


def test_bad_truths_name_the_argument() -> None:
    with pytest.raises(ValueError, match="truth must hold 1 to 3"):
        CM.score_caption(C1, [])
    with pytest.raises(TypeError, match=r"truth\[0\] must be a DigitDescription"):
        CM.score_caption(C1, [("left", 7, "small", "thick", "upright")])
    with pytest.raises(ValueError, match=r"truth\[0\]\.size"):
        CM.score_caption(C1, [D("left", 7, "tiny", "thick", "upright")])
    with pytest.raises(ValueError, match=r"truth\[0\] has no valid slot"):
        CM.score_caption(C1, [D("top", 7, "small", "thick", "upright")])
    with pytest.raises(ValueError, match="two digits in one slot"):
        CM.score_caption(C1, [T1[0], T1[0]])
    with pytest.raises(ValueError, match=r"truths\[1\] must hold"):
        CM.rank_errors([C1, C2], [T1, []], k=1)


def test_report_for_checks_its_dataset(val) -> None:
    with pytest.raises(ValueError, match="one caption per canvas"):
        CM.caption_report_for(["a small one on the left"], val)
    with pytest.raises(TypeError, match="data must be an MNISTCaptions"):
        CM.caption_report_for([C1], [[C1]])


def test_held_out_breakdown_counted_by_hand() -> None:
    from mmcourse.caption_metrics import held_out_breakdown

    D = DigitDescription
    truths = [
        [D("left", 4, "small", "normal", "upright")],  # a small four, written as a nine
        [D("left", 4, "small", "thin", "upright"), D("right", 7, "large", "thick", "upright")],
        [D("middle", 3, "large", "normal", "upright"), D("right", 8, "large", "normal", "left")],
        [D("middle", 4, "large", "normal", "upright")],  # a large four: not held out
    ]
    texts = [
        "a small nine on the left",
        "a small thin four on the left and a large thick seven on the right",  # all right
        "a large three in the middle and a large six leaning left on the right",
        "a large four in the middle",
    ]
    rows = {row.combination: row for row in held_out_breakdown(texts, truths)}
    assert list(rows) == [
        "seven with thickness 'thick'",
        "four with size 'small'",
        "three and eight together",
    ]  # no canvas holds a left-leaning two or a one with a six: left out
    four = rows["four with size 'small'"]
    assert (four.canvases, four.instances, four.right, four.exact) == (2, 2, 0.5, 0.5)
    assert four.said_instead == (("nine, size small", 1),)
    seven = rows["seven with thickness 'thick'"]
    assert (seven.canvases, seven.right, seven.exact, seven.said_instead) == (1, 1.0, 1.0, ())
    pair = rows["three and eight together"]
    assert (pair.canvases, pair.right, pair.exact) == (1, 0.0, 0.0)
    assert pair.said_instead == (("three and six", 1),)
    garbled = held_out_breakdown(["purple"], truths[:1])[0]
    assert garbled.said_instead == (("not a valid caption", 1),) and garbled.exact == 0.0
