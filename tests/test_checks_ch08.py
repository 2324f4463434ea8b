"""Self-checks of chapter 08 accept right answers and explain wrong ones."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import f1_score, precision_score, recall_score
from test_checks_core import assert_hides
from torch import nn

from mmcourse import article, metrics
from mmcourse.checks import ch08
from mmcourse.models.text import BagOfWordsEncoder

# ----------------------------------------------------------------------------- the leak


@pytest.fixture
def setup() -> tuple[nn.Module, tuple[torch.Tensor, ...], torch.Tensor]:
    torch.manual_seed(0)
    model = article.JointClassifier(BagOfWordsEncoder(12, 4), image_dim=3, num_classes=5)
    answer_ids = torch.tensor([[4], [5], [6], [7], [8]])
    batch = (
        torch.randn(6, 3),
        torch.randint(4, 12, (6, 3)),
        torch.tensor([0, 1, 2, 3, 4, 0]),
    )
    return model, batch, answer_ids


def test_honest_forward_passes(setup) -> None:
    model, batch, _ = setup
    model.train()
    result = ch08.check_honest_forward(lambda m, b: (m(b[0], b[1]), b[2]), model, batch)
    assert result and "no leak" in str(result)
    assert model.training  # the check restores the mode it found


def test_leaky_forward_fails(setup) -> None:
    model, batch, answer_ids = setup
    result = ch08.check_honest_forward(lambda m, b: (m(b[0], answer_ids[b[2]]), b[2]), model, batch)
    assert not result and "answer still reaches" in result.message
    assert str(result).startswith("Not yet")


def test_forward_with_constant_targets_still_detects_the_leak(setup) -> None:
    model, batch, answer_ids = setup
    same = (*batch[:2], torch.zeros(6, dtype=torch.long))
    result = ch08.check_honest_forward(lambda m, b: (m(b[0], answer_ids[b[2]]), b[2]), model, same)
    assert not result


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        (lambda m, b: m(b[0], b[1]), "pair"),
        (lambda m, b: (m(b[0], b[1]), b[2] + 1), "own targets"),
        (lambda m, b: (m(b[0], b[1])[:1], b[2]), "one row per example"),
        (lambda m, b: (m(b[0]), b[2]), "TypeError"),
        ("not a function", "should be a function"),
    ],
)
def test_honest_forward_explains_mistakes(setup, forward, message: str) -> None:
    model, batch, _ = setup
    result = ch08.check_honest_forward(forward, model, batch)
    assert not result and message in result.message


def test_honest_forward_needs_a_real_batch(setup) -> None:
    model, batch, _ = setup
    forward = lambda m, b: (m(b[0], b[1]), b[2])
    assert "tuple" in ch08.check_honest_forward(forward, model, batch[0]).message
    small = tuple(t[:1] for t in batch)
    assert "at least two" in ch08.check_honest_forward(forward, model, small).message


# ----------------------------------------------------------------------------- macro-F1


@pytest.fixture
def confusion() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    truth = torch.randint(0, 4, (200,), generator=g)
    pred = torch.where(
        torch.rand(200, generator=g) < 0.6, truth, torch.randint(0, 4, (200,), generator=g)
    )
    pred[pred == 3] = 2  # class 3 is never predicted: its precision is 0/0
    cm = torch.zeros(5, 5, dtype=torch.long)  # class 4 never occurs at all
    for t, p in zip(truth.tolist(), pred.tolist()):
        cm[t, p] += 1
    return cm, truth, pred


def test_macro_f1_accepts_the_right_value(confusion) -> None:
    cm, truth, pred = confusion
    expected = f1_score(truth, pred, labels=list(range(5)), average="macro", zero_division=0)
    result = ch08.check_macro_f1(cm, float(expected))
    assert result and "5 F1s" in result.message
    assert ch08.check_macro_f1(cm, torch.tensor(expected))


def test_macro_f1_explains_other_averages(confusion) -> None:
    cm, truth, pred = confusion
    micro = f1_score(truth, pred, labels=list(range(5)), average="micro")
    weighted = f1_score(truth, pred, labels=list(range(5)), average="weighted", zero_division=0)
    assert "micro" in ch08.check_macro_f1(cm, float(micro)).message
    assert "weighted" in ch08.check_macro_f1(cm, float(weighted)).message
    assert "TP, FP and FN" in ch08.check_macro_f1(cm, 0.0).message
    assert "2 TP" in ch08.check_macro_f1(cm, 0.123).message


def test_macro_f1_hides_the_answer_and_names_the_slip(confusion) -> None:
    cm, truth, pred = confusion
    labels = list(range(5))
    macro = f1_score(truth, pred, labels=labels, average="macro", zero_division=0)
    present = f1_score(truth, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0)
    precision = precision_score(truth, pred, labels=labels, average="macro", zero_division=0)
    recall = recall_score(truth, pred, labels=labels, average="macro", zero_division=0)
    f1_of_means = 2 * precision * recall / (precision + recall)
    for guess, hint in (
        (0.0, "placeholder"),
        (macro * 1.02, "slightly too high"),
        (macro * 0.9, "too low"),
        (float(present), "leaves out the classes that never occur"),
        (float(precision), "macro precision"),
        (float(recall), "macro recall"),
        (float(f1_of_means), "F1 of the averaged precision and recall"),
        (round(100 * macro, 1), "percentage"),
        (f1_score(truth, pred, labels=labels, average="micro"), "micro"),
    ):
        result = ch08.check_macro_f1(cm, float(guess))
        assert hint in result.message, result
        assert_hides(result, float(macro))


def test_macro_f1_rejects_bad_inputs(confusion) -> None:
    cm, _, _ = confusion
    assert "square" in ch08.check_macro_f1(cm[:2], 0.5).message
    assert "a number, got str" in ch08.check_macro_f1(cm, "0.5").message
    assert "single number" in ch08.check_macro_f1(cm, torch.zeros(2)).message
    assert "still None" in ch08.check_macro_f1(cm, None).message


# ----------------------------------------------------------------------------- recall@K


def _recall_by_sorting(similarity: torch.Tensor, k: int) -> float:
    hits = 0
    for i, row in enumerate(similarity.tolist()):
        order = sorted(range(len(row)), key=lambda j: -row[j])
        hits += i in order[:k]
    return hits / len(similarity)


def test_recall_at_k_accepts_the_right_value() -> None:
    similarity = torch.randn(30, 30, generator=torch.Generator().manual_seed(0))
    similarity += 1.5 * torch.eye(30)
    for k in (1, 3, 10):
        expected = _recall_by_sorting(similarity, k)
        result = ch08.check_recall_at_k(similarity, k, expected)
        assert result, result.message
    assert ch08.check_recall_at_k(similarity, 3, torch.tensor(_recall_by_sorting(similarity, 3)))


def test_recall_at_k_explains_mistakes() -> None:
    similarity = torch.randn(30, 30, generator=torch.Generator().manual_seed(1))
    similarity += 1.5 * torch.eye(30)
    ascending = _recall_by_sorting(-similarity, 5)
    assert ascending != _recall_by_sorting(similarity, 5)
    assert "largest" in ch08.check_recall_at_k(similarity, 5, ascending).message
    count = _recall_by_sorting(similarity, 5) * 30
    assert "fraction" in ch08.check_recall_at_k(similarity, 5, count).message
    assert "among the k largest" in ch08.check_recall_at_k(similarity, 5, 0.0).message
    assert "square" in ch08.check_recall_at_k(similarity[:3], 1, 0.5).message
    assert "(N, N)" in ch08.check_recall_at_k(torch.zeros(3), 1, 0.5).message
    assert "still None" in ch08.check_recall_at_k(similarity, 1, None).message
    assert "a number, got str" in ch08.check_recall_at_k(similarity, 1, "0.5").message
    assert "k should be an int" in ch08.check_recall_at_k(similarity, 0, 0.5).message


def test_recall_at_k_hides_the_answer_and_names_the_slip() -> None:
    similarity = torch.randn(30, 30, generator=torch.Generator().manual_seed(1))
    similarity += 1.5 * torch.eye(30)
    k = 5
    recall = _recall_by_sorting(similarity, k)
    assert 0 < recall < 1
    for guess, hint in (
        (0.0, "placeholder"),
        (recall + 0.01, "slightly too high"),
        (_recall_by_sorting(-similarity, k), "largest"),
        (_recall_by_sorting(similarity.T, k), "rows"),
        (recall * 30, "not a count"),
        (round(100 * recall, 1), "percentage"),
    ):
        result = ch08.check_recall_at_k(similarity, k, guess)
        assert hint in result.message, result
        assert_hides(result, recall, round(recall * 30))
    for other_k, hint in ((k - 1, "not k - 1"), (k + 1, "not k + 1")):
        other = _recall_by_sorting(similarity, other_k)
        assert other != recall
        assert hint in ch08.check_recall_at_k(similarity, k, other).message


def test_recall_at_k_counts_ties_against_the_model_like_retrieval_ranks() -> None:
    """Worked by hand. Row 0: the correct 0.5 ties with a wrong 0.5 -> rank 2. Row 1: the
    correct 0.9 ties with a wrong 0.9 -> rank 2. Row 2: 0.7 is the strict best -> rank 1.
    So R@1 = 1/3 and R@2 = 1; counting ties in the model's favour would give R@1 = 1."""
    similarity = torch.tensor([[0.5, 0.5, 0.1], [0.2, 0.9, 0.9], [0.3, 0.1, 0.7]])
    targets = torch.arange(3)
    assert metrics.retrieval_ranks(similarity, targets).tolist() == [2, 2, 1]
    assert metrics.recall_at_k(similarity, targets, ks=(1, 2)) == pytest.approx({1: 1 / 3, 2: 1})
    assert ch08.check_recall_at_k(similarity, 1, 1 / 3)
    assert ch08.check_recall_at_k(similarity, 2, 1.0)
    favourable = ch08.check_recall_at_k(similarity, 1, 1.0)
    assert not favourable and "ties" in favourable.message
    assert "retrieval_ranks" in favourable.message
    assert_hides(favourable, 1 / 3)
    # everything tied: every wrong candidate counts as ahead, so nothing is found at k < N
    flat = torch.zeros(4, 4)
    assert metrics.retrieval_ranks(flat, torch.arange(4)).tolist() == [4, 4, 4, 4]
    assert ch08.check_recall_at_k(flat, 3, 0.0)
    assert ch08.check_recall_at_k(flat, 4, 1.0)
    assert not ch08.check_recall_at_k(flat, 3, 1.0)
