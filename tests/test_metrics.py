"""mmcourse.metrics against scikit-learn, nltk, sacrebleu, brute-force loops and hand sums."""

from __future__ import annotations

import math
import random
import warnings

import nltk.translate.bleu_score as nltk_bleu
import pytest
import sacrebleu
import sklearn.metrics as skm
import torch
import torch.nn.functional as F

from mmcourse import metrics as M
from mmcourse.data.questions import ATTRIBUTE_CLASSES

# ----------------------------------------------------------------------------------------------
# classification


def random_labels(seed: int, n: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, (n,), generator=g)
    noisy = torch.randint(0, num_classes, (n,), generator=g)
    pred = torch.where(torch.rand(n, generator=g) < 0.6, target, noisy)
    return pred, target


def test_accuracy_hand_example() -> None:
    assert M.accuracy(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert M.accuracy(logits, torch.tensor([1, 1, 1])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_matches_sklearn(seed: int) -> None:
    pred, target = random_labels(seed, 200, 7)
    assert M.accuracy(pred, target) == pytest.approx(skm.accuracy_score(target, pred))
    logits = torch.randn(200, 7, generator=torch.Generator().manual_seed(seed))
    expected = skm.accuracy_score(target, logits.argmax(1))
    assert M.accuracy(logits, target) == pytest.approx(expected)


def test_confusion_matrix_hand_example() -> None:
    cm = M.confusion_matrix(torch.tensor([0, 2, 2, 1, 0]), torch.tensor([0, 1, 2, 1, 2]), 3)
    expected = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 0, 1]])  # rows true, cols predicted
    assert cm.dtype == torch.long and torch.equal(cm, expected)


@pytest.mark.parametrize("seed", range(5))
def test_confusion_matrix_matches_sklearn(seed: int) -> None:
    pred, target = random_labels(seed, 150, 6)
    pred[pred == 5] = 4  # class 5 is never predicted
    target[target == 0] = 1  # class 0 never occurs
    expected = skm.confusion_matrix(target, pred, labels=list(range(6)))
    cm = M.confusion_matrix(pred, target, 6)
    assert cm.tolist() == expected.tolist()
    assert cm.sum().item() == 150
    logits = torch.nn.functional.one_hot(pred, 6).float()
    assert torch.equal(M.confusion_matrix(logits, target, 6), cm)


def test_precision_recall_f1_hand_example() -> None:
    # true 0 0 1 1 2 ; pred 0 1 1 1 0 -> class 2 never predicted
    pred, target = torch.tensor([0, 1, 1, 1, 0]), torch.tensor([0, 0, 1, 1, 2])
    per_class = M.precision_recall_f1(pred, target, 3, average="none")
    assert per_class["precision"].tolist() == pytest.approx([1 / 2, 2 / 3, 0.0])
    assert per_class["recall"].tolist() == pytest.approx([1 / 2, 1.0, 0.0])
    assert per_class["f1"].tolist() == pytest.approx([1 / 2, 4 / 5, 0.0])
    macro = M.precision_recall_f1(pred, target, 3)
    assert macro["precision"] == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert macro["f1"] == pytest.approx((1 / 2 + 4 / 5) / 3)
    micro = M.precision_recall_f1(pred, target, 3, average="micro")
    assert micro == pytest.approx({"precision": 0.6, "recall": 0.6, "f1": 0.6})


@pytest.mark.parametrize("average", ["macro", "micro", "none"])
@pytest.mark.parametrize("seed", range(4))
def test_precision_recall_f1_matches_sklearn(average: str, seed: int) -> None:
    num_classes = 7
    pred, target = random_labels(seed, 120, num_classes)
    pred[pred == 5] = 0  # never predicted: precision 0/0 -> 0
    target[target == 4] = 3  # never true: recall 0/0 -> 0
    pred[pred == 6] = 1  # class 6 neither true nor predicted
    target[target == 6] = 2
    sk_average = None if average == "none" else average
    everything = list(range(num_classes))
    for ours_labels, sk_labels in ((None, None), (everything, everything), ([1, 3, 6], [1, 3, 6])):
        if average == "none":
            ours_labels, sk_labels = None, everything  # "none": one score per class id
        p, r, f, _ = skm.precision_recall_fscore_support(
            target, pred, labels=sk_labels, average=sk_average, zero_division=0
        )
        ours = M.precision_recall_f1(pred, target, num_classes, average, labels=ours_labels)
        assert set(ours) == {"precision", "recall", "f1"}
        for name, expected in (("precision", p), ("recall", r), ("f1", f)):
            if average == "none":
                assert ours[name].shape == (num_classes,)
                assert ours[name].tolist() == pytest.approx(expected.tolist())
            else:
                assert isinstance(ours[name], float)
                assert ours[name] == pytest.approx(float(expected)), (name, ours_labels)


def test_macro_f1_averages_over_the_classes_present_like_sklearn() -> None:
    """43 answers, two never true nor predicted: by default they are left out of the average
    (scikit-learn's default); labels=range(43) brings them back, each scored 0."""
    pred, target = random_labels(3, 500, 41)
    absent = {"f1": M.precision_recall_f1(pred, target, 43)["f1"]}
    assert absent["f1"] == pytest.approx(skm.f1_score(target, pred, average="macro"))
    everything = M.precision_recall_f1(pred, target, 43, labels=range(43))["f1"]
    sk_everything = skm.f1_score(
        target, pred, average="macro", labels=list(range(43)), zero_division=0
    )
    assert everything == pytest.approx(sk_everything)
    assert everything == pytest.approx(absent["f1"] * 41 / 43)  # two zeros in the mean
    # without num_classes the classes run up to the largest label seen
    assert M.precision_recall_f1(pred, target) == pytest.approx(
        M.precision_recall_f1(pred, target, 43)
    )


def test_micro_scores_equal_accuracy() -> None:
    pred, target = random_labels(7, 90, 4)
    micro = M.precision_recall_f1(pred, target, 4, average="micro")
    assert micro["f1"] == pytest.approx(M.accuracy(pred, target))


def test_classification_errors() -> None:
    good = torch.tensor([0, 1])
    with pytest.raises(
        TypeError,
        match=r"pred must be a torch.Tensor of class indices \(N,\) or logits \(N, C\), got list",
    ):
        M.accuracy([0, 1], good)
    with pytest.raises(
        ValueError, match=r"pred must be an integer tensor of shape \(N,\), got shape \(2,\)"
    ):
        M.accuracy(torch.tensor([0.0, 1.0]), good)  # float labels are ambiguous
    with pytest.raises(ValueError, match=r"pred must be an integer tensor .*got shape \(2, 1, 1\)"):
        M.accuracy(torch.zeros(2, 1, 1), good)
    with pytest.raises(ValueError, match=r"need C >= 1 classes, got \(2, 0\)"):
        M.accuracy(torch.zeros(2, 0), good)
    with pytest.raises(
        TypeError,
        match=r"target must be a torch.Tensor of integers \(N,\) with N = 2 as in pred, got list",
    ):
        M.accuracy(good, [0, 1])
    with pytest.raises(
        ValueError,
        match=r"target must be an integer tensor of shape \(N,\) with N = 2 as in pred.*torch.float32",
    ):
        M.accuracy(good, good.float())
    with pytest.raises(ValueError, match=r"target must be an integer tensor .*got shape \(2, 1\)"):
        M.accuracy(good, good[:, None])
    with pytest.raises(
        ValueError,
        match=r"target must be an integer tensor of shape \(N,\) with N = 2 as in pred, got shape \(3,\)",
    ):
        M.accuracy(good, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=r"empty \(N = 0\)"):
        M.accuracy(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"num_classes must be a positive int, got 0"):
        M.confusion_matrix(good, good, 0)
    with pytest.raises(TypeError, match=r"num_classes must be a positive int, got float 2.0"):
        M.confusion_matrix(good, good, 2.0)
    with pytest.raises(ValueError, match=r"pred must hold classes in 0..1.*max 2"):
        M.confusion_matrix(torch.tensor([0, 2]), good, 2)
    with pytest.raises(ValueError, match=r"target must hold classes in 0..1.*min -1"):
        M.confusion_matrix(good, torch.tensor([-1, 1]), 2)
    with pytest.raises(ValueError, match=r"average must be one of \('macro', 'micro', 'none'\)"):
        M.precision_recall_f1(good, good, 2, average="weighted")
    with pytest.raises(ValueError, match=r"labels must hold classes in 0..1, got min 0, max 2"):
        M.precision_recall_f1(good, good, 2, labels=[0, 2])
    with pytest.raises(ValueError, match=r"labels is empty"):
        M.precision_recall_f1(good, good, 2, labels=[])
    with pytest.raises(ValueError, match=r"labels must be an integer tensor"):
        M.precision_recall_f1(good, good, 2, labels=[0.5])


@pytest.mark.parametrize(
    "metric",
    [
        M.accuracy,
        lambda pred, target: M.confusion_matrix(pred, target, 2),
        lambda pred, target: M.precision_recall_f1(pred, target, 2),
        lambda pred, target: M.precision_recall_f1(pred, target, 2, average="none"),
    ],
)
def test_classification_metrics_refuse_nan_logits(metric) -> None:
    """NaN logits used to score silently (argmax picks the NaN: accuracy 0.5, P = 0.25); the
    wording is the one recall_at_k uses for NaN similarities."""
    logits = torch.tensor([[0.1, 0.9], [math.nan, 0.2]])
    with pytest.raises(ValueError, match=r"^pred holds NaN; every score must be a number$"):
        metric(logits, torch.tensor([1, 1]))


# ----------------------------------------------------------------------------------------------
# BLEU and exact match

WORDS = "a the one two three four five six seven eight nine digit digits small big left".split()


def random_sentence(rng: random.Random, low: int = 4, high: int = 12) -> list[str]:
    return [rng.choice(WORDS) for _ in range(rng.randint(low, high))]


def random_corpus(seed: int, n: int = 30, refs: int = 3, variable: bool = False):
    """Candidates that are noisy copies of one of their references (so n-grams match)."""
    rng = random.Random(seed)
    candidates, references = [], []
    for _ in range(n):
        these = [random_sentence(rng) for _ in range(rng.randint(1, refs) if variable else refs)]
        candidate = [w if rng.random() < 0.7 else rng.choice(WORDS) for w in rng.choice(these)]
        if rng.random() < 0.3:
            candidate = candidate[: max(4, len(candidate) - 3)]  # some short candidates
        candidates.append(candidate)
        references.append(these)
    return candidates, references


def nltk_corpus_bleu(candidates, references, max_n: int, smoothing=None) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns about zero counts
        return nltk_bleu.corpus_bleu(
            references, candidates, weights=(1 / max_n,) * max_n, smoothing_function=smoothing
        )


def sacre_corpus_bleu(candidates, references, max_n: int, smooth: str = "none") -> float:
    """sacrebleu on whitespace-joined tokens; one stream per reference position (None = absent)."""
    streams = max(len(refs) for refs in references)
    ref_streams = [
        [" ".join(refs[k]) if k < len(refs) else None for refs in references]
        for k in range(streams)
    ]
    scorer = sacrebleu.BLEU(
        tokenize="none", force=True, smooth_method=smooth, max_ngram_order=max_n
    )
    return scorer.corpus_score([" ".join(c) for c in candidates], ref_streams).score / 100


def test_bleu_hand_example() -> None:
    candidate = "the cat the cat on the mat".split()
    refs = ["the cat is on the mat".split(), "there is a cat on the mat".split()]
    # p1: the x3 (clipped to 2), cat x2 (1), on, mat -> 5/7 ; p2: "the cat" x2 (1), "cat the"
    # (0), "cat on" (1), "on the" (1), "the mat" (1) -> 4/6 ; c = 7, r = 7 (closest) -> BP = 1
    expected = math.sqrt(5 / 7 * 4 / 6)
    assert M.bleu([candidate], [refs], max_n=2) == pytest.approx(expected)
    assert M.bleu([candidate], [refs], max_n=1) == pytest.approx(5 / 7)


def test_bleu_clips_repeated_words() -> None:
    # Papineni's example: 7 x "the" against refs holding "the" at most twice -> p1 = 2/7
    candidate = ["the"] * 7
    refs = ["the cat is on the mat".split(), "there is a cat on the mat".split()]
    # closest reference length to 7: 6 and 7 -> 7, no brevity penalty
    assert M.bleu([candidate], [refs], max_n=1) == pytest.approx(2 / 7)


def test_bleu_perfect_and_disjoint() -> None:
    refs = [["a seven on the left".split(), "a big seven".split()]]
    assert M.bleu(["a seven on the left".split()], refs) == 1.0
    assert M.bleu(["nothing here at all".split()], refs) == 0.0
    assert M.bleu([[]], refs) == 0.0  # empty candidate: c = 0
    assert M.exact_match(["a big seven".split()], refs) == 1.0


def test_bleu_brevity_penalty_by_hand() -> None:
    refs = [["one two three four five six seven eight".split(), "one two three".split()]]
    # a 4-word candidate: closest reference lengths are 3 (diff 1) -> no penalty
    assert M.bleu(["one two three four".split()], refs) == pytest.approx(1.0)
    # a 2-word candidate against refs of length 8 and 4: r = 4, c = 2 -> BP = exp(1 - 2)
    refs2 = [["one two x y z w v u".split(), "one two p q".split()]]
    assert M.bleu(["one two".split()], refs2, max_n=1) == pytest.approx(math.exp(-1))
    # tie in distance (6 vs 4 for c = 5): the shorter wins, so r = 4 and BP = 1
    refs3 = [["one two three four five six".split(), "one two three four".split()]]
    assert M.bleu(["one two three four five".split()], refs3, max_n=1) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("variable", [False, True])
def test_bleu_matches_nltk_and_sacrebleu(seed: int, variable: bool) -> None:
    candidates, references = random_corpus(seed, variable=variable)
    scores = M.bleu_scores(candidates, references)
    assert list(scores) == ["bleu1", "bleu2", "bleu3", "bleu4"]
    for n in range(1, 5):
        ours = M.bleu(candidates, references, max_n=n)
        assert scores[f"bleu{n}"] == pytest.approx(ours, abs=1e-12)
        assert 0.0 < ours < 1.0
        assert ours == pytest.approx(nltk_corpus_bleu(candidates, references, n), abs=1e-9)
        assert ours == pytest.approx(sacre_corpus_bleu(candidates, references, n), abs=1e-9)


def test_bleu_weights_match_nltk_multiple_weights() -> None:
    candidates, references = random_corpus(11)
    weights = [(1.0,), (1 / 2, 1 / 2), (1 / 3, 1 / 3, 1 / 3), (1 / 4, 1 / 4, 1 / 4, 1 / 4)]
    expected = nltk_bleu.corpus_bleu(references, candidates, weights=weights)
    ours = M.bleu_scores(candidates, references)
    assert list(ours.values()) == pytest.approx(expected, abs=1e-9)


def test_bleu_brevity_penalty_matches_references() -> None:
    candidates, references = random_corpus(3)
    short = [c[:5] for c in candidates]  # truncated: a strong brevity penalty
    long_refs = [[r + r for r in refs] for refs in references]
    for cands, refs in ((short, references), (candidates, long_refs)):
        ours = M.bleu(cands, refs)
        assert ours > 0.1
        assert ours == pytest.approx(nltk_corpus_bleu(cands, refs, 4), abs=1e-9)
        assert ours == pytest.approx(sacre_corpus_bleu(cands, refs, 4), abs=1e-9)
    bp = nltk_bleu.brevity_penalty(
        sum(nltk_bleu.closest_ref_length(r, len(c)) for c, r in zip(short, references)),
        sum(len(c) for c in short),
    )
    assert bp < 0.8
    assert M.bleu(short, references) < M.bleu(candidates, references)


def test_bleu_no_fourgram_match_is_zero_like_references() -> None:
    candidates = ["a b c d e".split(), "f g h i".split()]
    references = [["a b x c d".split()], ["f g y h i".split()]]  # bigrams match, no 4-grams
    assert M.bleu(candidates, references, max_n=2) > 0
    assert M.bleu(candidates, references) == 0.0
    assert nltk_corpus_bleu(candidates, references, 4) == pytest.approx(0.0, abs=1e-12)
    assert sacre_corpus_bleu(candidates, references, 4) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_bleu_smoothing_matches_nltk_and_sacrebleu(seed: int) -> None:
    rng = random.Random(seed)
    # few, short sentences with rare matches so that higher orders have zero matches
    candidates = [random_sentence(rng, 4, 6) for _ in range(3)]
    references = [[random_sentence(rng, 4, 7) for _ in range(2)] for _ in range(3)]
    smooth = nltk_bleu.SmoothingFunction()
    for ours_name, nltk_fn, sacre_name in (
        ("floor", smooth.method1, "floor"),
        ("add1", smooth.method2, "add-k"),
    ):
        ours = M.bleu(candidates, references, smoothing=ours_name)
        assert ours == pytest.approx(nltk_corpus_bleu(candidates, references, 4, nltk_fn), abs=1e-9)
        assert ours == pytest.approx(sacre_corpus_bleu(candidates, references, 4, sacre_name))
        scores = M.bleu_scores(candidates, references, smoothing=ours_name)
        assert scores["bleu4"] == pytest.approx(ours)


def test_bleu_short_candidates_follow_sacrebleu() -> None:
    # a 2-token candidate has no trigrams: sacrebleu (and the paper) count none, nltk counts 1
    candidates = ["a seven on the left".split(), "two digits".split()]
    references = [["a seven on the left side".split()], ["two digits here".split()]]
    ours = M.bleu(candidates, references)
    assert ours == pytest.approx(sacre_corpus_bleu(candidates, references, 4), abs=1e-9)
    assert ours != pytest.approx(nltk_corpus_bleu(candidates, references, 4), abs=1e-3)
    # all candidates shorter than n: no n-grams of that order -> 0
    assert M.bleu([["a", "b"]], [[["a", "b"]]], max_n=3) == 0.0
    assert M.bleu([["a", "b"]], [[["a", "b"]]], max_n=2) == 1.0


def test_exact_match() -> None:
    candidates = [["two", "digits"], ["a", "seven"], ["a", "seven"], []]
    references = [
        [["two", "digits"]],
        [["a", "one"], ("a", "seven")],  # tuples count as token lists too
        [["a", "seven", "here"]],
        [[]],
    ]
    assert M.exact_match(candidates, references) == 0.75
    rng = random.Random(0)
    cands, refs = random_corpus(0)
    brute = sum(any(c == r for r in rs) for c, rs in zip(cands, refs)) / len(cands)
    assert M.exact_match(cands, refs) == brute
    hits = [rng.choice(rs) for rs in refs]
    assert M.exact_match(hits, refs) == 1.0


def test_bleu_errors() -> None:
    cand, refs = [["a", "b"]], [[["a", "b"]]]
    with pytest.raises(ValueError, match=r"max_n must be a positive int, got 0"):
        M.bleu(cand, refs, max_n=0)
    with pytest.raises(TypeError, match=r"max_n must be a positive int, got float 2.0"):
        M.bleu_scores(cand, refs, max_n=2.0)
    with pytest.raises(ValueError, match=r"smoothing must be one of \(None, 'floor', 'add1'\)"):
        M.bleu(cand, refs, smoothing="exp")
    with pytest.raises(TypeError, match=r"candidates must be a list, got str"):
        M.bleu("a b", refs)
    with pytest.raises(TypeError, match=r"references must be a list, got int"):
        M.exact_match(cand, 3)
    with pytest.raises(ValueError, match=r"same length.*got 1 candidates and 2 reference lists"):
        M.bleu(cand, refs * 2)
    with pytest.raises(ValueError, match=r"candidates is empty"):
        M.bleu([], [])
    with pytest.raises(TypeError, match=r"candidates\[0\] must be a list of tokens.*got a str"):
        M.bleu(["a b"], refs)
    with pytest.raises(TypeError, match=r"candidates\[0\] must be a list of tokens.*got \[1, 2\]"):
        M.exact_match([[1, 2]], refs)
    with pytest.raises(ValueError, match=r"references\[0\] must be a non-empty list.*got \[\]"):
        M.bleu(cand, [[]])
    with pytest.raises(TypeError, match=r"references\[0\] must be a list of token lists.*wrap"):
        M.bleu(cand, [["a", "b"]])  # one reference per candidate, missing a level of nesting
    with pytest.raises(TypeError, match=r"references\[0\]\[1\] must be a list of tokens.*a str"):
        M.bleu(cand, [[["a"], "a b"]])


# ----------------------------------------------------------------------------------------------
# retrieval


def brute_force_ranks(similarity: torch.Tensor, relevant: torch.Tensor) -> list[int]:
    """Sort each row (no ties in random data) and find the first relevant candidate."""
    ranks = []
    for scores, rel in zip(similarity.tolist(), relevant.tolist()):
        order = sorted(range(len(scores)), key=lambda j: -scores[j])
        ranks.append(next(pos + 1 for pos, j in enumerate(order) if rel[j]))
    return ranks


@pytest.mark.parametrize("seed", range(4))
def test_recall_at_k_matches_brute_force_with_indices(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    nq, nc = 40, 25
    targets = torch.randint(0, nc, (nq,), generator=g)
    similarity = torch.randn(nq, nc, generator=g)
    similarity[torch.arange(nq), targets] += 1.5  # better than chance
    relevant = torch.zeros(nq, nc, dtype=torch.bool)
    relevant[torch.arange(nq), targets] = True
    ranks = brute_force_ranks(similarity, relevant)
    assert M.retrieval_ranks(similarity, targets).tolist() == ranks
    recalls = M.recall_at_k(similarity, targets, ks=(1, 5, 10, nc))
    for k in (1, 5, 10, nc):
        assert recalls[k] == pytest.approx(sum(r <= k for r in ranks) / nq)
    assert recalls[nc] == 1.0
    median = sorted(ranks)[nq // 2 - 1 : nq // 2 + 1]
    assert M.median_rank(similarity, targets) == pytest.approx(sum(median) / 2)


@pytest.mark.parametrize("seed", range(3))
def test_recall_at_k_matches_brute_force_with_relevance(seed: int) -> None:
    # image -> text retrieval with 5 captions per image, as on COCO
    g = torch.Generator().manual_seed(seed)
    images, per_image = 9, 5
    owner = torch.arange(images).repeat_interleave(per_image)  # caption j belongs to owner[j]
    relevant = owner[None, :] == torch.arange(images)[:, None]  # (9, 45)
    similarity = torch.randn(images, images * per_image, generator=g) + relevant * 1.0
    ranks = brute_force_ranks(similarity, relevant)
    assert M.retrieval_ranks(similarity, relevant).tolist() == ranks
    recalls = M.recall_at_k(similarity, relevant)
    assert recalls == pytest.approx({k: sum(r <= k for r in ranks) / images for k in (1, 5, 10)})
    assert M.median_rank(similarity, relevant) == float(sorted(ranks)[images // 2])


def test_retrieval_hand_example_and_ties() -> None:
    similarity = torch.tensor([[0.9, 0.1, 0.3], [0.5, 0.2, 0.8], [0.1, 0.1, 0.1]])
    targets = torch.tensor([0, 1, 2])
    # query 0: target best -> rank 1; query 1: 0.2 below 0.5 and 0.8 -> rank 3;
    # query 2: all tied -> ties count against the model -> rank 3
    assert M.retrieval_ranks(similarity, targets).tolist() == [1, 3, 3]
    assert M.recall_at_k(similarity, targets, ks=(1, 2, 3)) == pytest.approx(
        {1: 1 / 3, 2: 1 / 3, 3: 1.0}
    )
    assert M.median_rank(similarity, targets) == 3.0
    assert M.recall_at_k(torch.zeros(4, 4), torch.arange(4), ks=(1,)) == {1: 0.0}
    assert M.median_rank(torch.eye(4), torch.arange(4)) == 1.0
    relevant = torch.tensor([[False, True, True], [True, False, False]])
    sim = torch.tensor([[0.9, 0.1, 0.5], [0.0, 0.3, 0.2]])
    assert M.retrieval_ranks(sim, relevant).tolist() == [2, 3]  # best relevant counts


def test_retrieval_errors() -> None:
    sim, targets = torch.randn(3, 4), torch.tensor([0, 1, 2])
    with pytest.raises(
        TypeError, match=r"similarity must be a torch.Tensor of floats \(Nq, Nc\), got list"
    ):
        M.recall_at_k(sim.tolist(), targets)
    with pytest.raises(
        ValueError, match=r"similarity must be a float tensor of shape \(Nq, Nc\), got shape \(3,\)"
    ):
        M.recall_at_k(torch.randn(3), targets)
    with pytest.raises(ValueError, match=r"similarity must be a float tensor .*torch.int64"):
        M.median_rank(torch.ones(3, 4, dtype=torch.long), targets)
    with pytest.raises(ValueError, match=r"similarity is empty, got shape \(3, 0\)"):
        M.recall_at_k(torch.randn(3, 0), targets)
    with pytest.raises(ValueError, match=r"similarity holds NaN"):
        M.recall_at_k(torch.full((3, 4), math.nan), targets)
    with pytest.raises(
        TypeError, match=r"targets must be a torch.Tensor of candidate indices \(Nq,\) or a bool"
    ):
        M.recall_at_k(sim, [0, 1, 2])
    with pytest.raises(
        ValueError, match=r"targets must be an integer tensor of shape \(3,\).*torch.float32"
    ):
        M.recall_at_k(sim, targets.float())
    with pytest.raises(ValueError, match=r"targets must be an integer tensor .*got shape \(3, 1\)"):
        M.recall_at_k(sim, targets[:, None])
    with pytest.raises(
        ValueError, match=r"targets must be an integer tensor of shape \(3,\), got shape \(2,\)"
    ):
        M.recall_at_k(sim, targets[:2])
    with pytest.raises(
        ValueError, match=r"targets must hold candidate indices in 0..3, got min 0, max 4"
    ):
        M.recall_at_k(sim, torch.tensor([0, 1, 4]))
    with pytest.raises(
        ValueError, match=r"relevance matrix must have the shape.*\(3, 4\).*\(3, 3\)"
    ):
        M.recall_at_k(sim, torch.ones(3, 3, dtype=torch.bool))
    no_relevant = torch.ones(3, 4, dtype=torch.bool)
    no_relevant[1] = False
    with pytest.raises(ValueError, match=r"at least one relevant candidate.*row\(s\) \[1\]"):
        M.median_rank(sim, no_relevant)
    with pytest.raises(
        ValueError,
        match=r"every k \(at most the number of candidates\) must be an int in 1..4, got 5",
    ):
        M.recall_at_k(sim, targets, ks=(1, 5))
    with pytest.raises(
        ValueError,
        match=r"every k \(at most the number of candidates\) must be an int in 1..4, got 0",
    ):
        M.recall_at_k(sim, targets, ks=(0,))
    with pytest.raises(TypeError, match=r"ks must be a non-empty sequence of ints.*got 5"):
        M.recall_at_k(sim, targets, ks=5)
    with pytest.raises(ValueError, match=r"ks must be a non-empty sequence.*got \(\)"):
        M.recall_at_k(sim, targets, ks=())
    with pytest.raises(
        TypeError,
        match=r"every k \(at most the number of candidates\) must be an int in 1..4, got float 1.0",
    ):
        M.recall_at_k(sim, targets, ks=(1.0,))
    partly_nan = sim.clone()
    partly_nan[1, 2] = math.nan
    with pytest.raises(ValueError, match=r"^similarity holds NaN; every score must be a number$"):
        M.retrieval_ranks(partly_nan, targets)


def test_slot_attribute_accuracy_counts_each_attribute() -> None:
    b = 6
    targets = torch.stack([torch.randint(0, c, (b, 3)) for c in ATTRIBUTE_CLASSES], dim=-1)
    perfect = torch.cat(
        [F.one_hot(targets[..., i], c).float() for i, c in enumerate(ATTRIBUTE_CLASSES)], -1
    )
    torch.testing.assert_close(M.slot_attribute_accuracy(perfect, targets), torch.ones(4))
    # the first slot's digit wrong on two canvases (2 of 18 digits), every slant wrong
    wrong = targets.clone()
    wrong[:2, 0, 0] = (wrong[:2, 0, 0] + 1) % ATTRIBUTE_CLASSES[0]
    wrong[..., 3] = (wrong[..., 3] + 1) % ATTRIBUTE_CLASSES[3]
    spoiled = torch.cat(
        [F.one_hot(wrong[..., i], c).float() for i, c in enumerate(ATTRIBUTE_CLASSES)], -1
    )
    expected = torch.tensor([1 - 2 / 18, 1.0, 1.0, 0.0])
    torch.testing.assert_close(M.slot_attribute_accuracy(spoiled, targets), expected)
    # only the occupied slots: two canvases with an empty first slot, one digit there wrong
    sparse = targets.clone()
    sparse[..., 0] = sparse[..., 0].clamp_min(1)
    sparse[:2, 0] = 0  # two empty slots (every attribute 0 = "empty")
    said = sparse.clone()
    said[2, 0, 0] = sparse[2, 0, 0] % 10 + 1  # another digit, still a digit
    said[:2, 0] = 1  # the empty slots called occupied: not counted with occupied_only
    as_logits = torch.cat(
        [F.one_hot(said[..., i], c).float() for i, c in enumerate(ATTRIBUTE_CLASSES)], -1
    )
    expected = torch.tensor([1 - 1 / 16, 1.0, 1.0, 1.0])
    got = M.slot_attribute_accuracy(as_logits, sparse, occupied_only=True)
    torch.testing.assert_close(got, expected)
    with_nan = perfect.clone()
    with_nan[0, 1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"^logits holds NaN; every score must be a number$"):
        M.slot_attribute_accuracy(with_nan, targets)
