"""Self-checks of chapter 09 accept right answers and explain wrong ones."""

from __future__ import annotations

import pytest
import torch
from sacrebleu.metrics.bleu import BLEU
from test_checks_core import assert_hides

from mmcourse.checks import ch09
from mmcourse.models.attention_captioner import AdditiveAttention

KEYS = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
QUERY = torch.tensor([0.2, -0.3, 0.1])
W = torch.tensor([1.0, -2.0, 0.5])


def right_alpha() -> torch.Tensor:
    # Written out differently from the check: exp / sum over the regions, in float64.
    scores = (torch.tanh(KEYS.double() + QUERY.double()) * W.double()).sum(dim=1)
    return scores.exp() / scores.exp().sum()


def test_attention_weights_right() -> None:
    result = ch09.check_attention_weights(KEYS, QUERY, W, right_alpha().float())
    assert result and "sum to 1" in str(result)


def test_attention_weights_agree_with_the_course_module() -> None:
    """The check's formula is the one AdditiveAttention computes (an independent reference)."""
    torch.manual_seed(0)
    attention = AdditiveAttention(region_dim=6, hidden_dim=5, attention_dim=3)
    regions, hidden = torch.randn(1, 4, 6), torch.randn(1, 5)
    with torch.no_grad():
        keys = attention.project_keys(regions)
        alpha = attention(keys, hidden)
        query = attention.query(hidden)[0]
        w = attention.score.weight[0]  # the score's bias shifts every region alike
    assert ch09.check_attention_weights(keys[0], query, w, alpha[0])


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda: torch.tanh(KEYS + QUERY) @ W, "softmax"),
        (lambda: torch.softmax((KEYS + QUERY) @ W, dim=0), "tanh is missing"),
        (lambda: torch.full((4,), 0.25), "not the softmax"),
        (lambda: torch.zeros(4), "sum to 1"),
    ],
)
def test_attention_weights_wrong(wrong, hint) -> None:
    result = ch09.check_attention_weights(KEYS, QUERY, W, wrong())
    assert hint in str(result)
    assert_hides(result, *[round(a, 3) for a in right_alpha().tolist()])


def test_attention_weights_bad_input() -> None:
    assert "tensor" in str(ch09.check_attention_weights(KEYS, QUERY, W, [0.25] * 4))
    assert "shape (4,)" in str(ch09.check_attention_weights(KEYS, QUERY, W, torch.zeros(2, 2)))
    negative = torch.tensor([1.5, -0.5, 0.0, 0.0])
    assert "negative" in str(ch09.check_attention_weights(KEYS, QUERY, W, negative))


CANDIDATE = "a large seven and a large seven on the left"
REFERENCES = [
    "a large seven on the left and a small two on the right",
    "on the left a large seven , on the right a small two",
]


def sacrebleu_precision(n: int) -> float:
    """sacrebleu's clipped n-gram precision (no tokenisation, no smoothing)."""
    bleu = BLEU(tokenize="none", smooth_method="none", max_ngram_order=4)
    stats = bleu.corpus_score([CANDIDATE], [[r] for r in REFERENCES])
    return stats.counts[n - 1] / stats.totals[n - 1]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_clipped_precision_right_agrees_with_sacrebleu(n: int) -> None:
    result = ch09.check_clipped_precision(CANDIDATE, REFERENCES, n, sacrebleu_precision(n))
    assert result, str(result)
    assert ch09.check_clipped_precision(
        CANDIDATE, REFERENCES, n, torch.tensor(sacrebleu_precision(n))
    )


def test_clipped_precision_known_mistakes() -> None:
    # 9 bigrams; all but "seven and" appear in a reference: unclipped precision 8 / 9.
    unclipped = ch09.check_clipped_precision(CANDIDATE, REFERENCES, 2, 8 / 9)
    assert "clip each count" in str(unclipped)
    assert_hides(unclipped, sacrebleu_precision(2))
    # "a large seven" three times: 8 bigrams, "a large" x3 and "large seven" x3 match; each
    # reference holds them once (clip 1), the two references added up twice.
    tripled = "a large seven a large seven a large seven"
    assert ch09.check_clipped_precision(tripled, REFERENCES, 2, 2 / 8)
    assert "clip each count" in str(ch09.check_clipped_precision(tripled, REFERENCES, 2, 6 / 8))
    summed = ch09.check_clipped_precision(tripled, REFERENCES, 2, 4 / 8)
    assert "largest" in str(summed), str(summed)


def test_clipped_precision_other_answers() -> None:
    assert "between 0 and 1" in str(ch09.check_clipped_precision(CANDIDATE, REFERENCES, 2, 1.5))
    low = ch09.check_clipped_precision(CANDIDATE, REFERENCES, 2, 0.1)
    assert "too low" in str(low) or "too small" in str(low)
    assert_hides(low, sacrebleu_precision(2))
    assert "number" in str(ch09.check_clipped_precision(CANDIDATE, REFERENCES, 2, "0.5"))
    assert "no 5-grams" in str(ch09.check_clipped_precision("a seven", REFERENCES, 5, 0.0))
