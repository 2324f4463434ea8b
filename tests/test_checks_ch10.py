"""Self-checks of chapter 10 accept right answers and explain wrong ones."""

from __future__ import annotations

import itertools
import math

import pytest

from mmcourse.checks import ch10

FIRST = {"A": 0.6, "B": 0.4}
SECOND = {"A": {"A": 0.35, "B": 0.35, "C": 0.3}, "B": {"A": 0.9, "B": 0.05, "C": 0.05}}


def best_by_hand() -> tuple[str, str]:
    # Enumerate in log space, a different route from the check's products.
    pairs = itertools.product(FIRST, "ABC")
    return max(pairs, key=lambda p: math.log(FIRST[p[0]]) + math.log(SECOND[p[0]][p[1]]))


def test_best_sequence() -> None:
    best = best_by_hand()
    assert best == ("B", "A")  # 0.36 against greedy's 0.21
    assert ch10.check_best_sequence(FIRST, SECOND, best)
    assert ch10.check_best_sequence(FIRST, SECOND, "B A")
    greedy = ch10.check_best_sequence(FIRST, SECOND, ("A", "A"))
    assert not greedy and "greedy" in str(greedy)
    other = ch10.check_best_sequence(FIRST, SECOND, ("A", "C"))
    assert not other and "B" not in str(other).replace("Not yet", "")
    assert "two words" in str(ch10.check_best_sequence(FIRST, SECOND, ("A",)))
    assert "replace" in str(ch10.check_best_sequence(FIRST, SECOND, ("?", "?")))
    assert "the toy model can say" in str(ch10.check_best_sequence(FIRST, SECOND, ("C", "A")))
    with pytest.raises(ValueError, match="after every first word"):
        ch10.check_best_sequence(FIRST, {"A": SECOND["A"]}, ("A", "A"))


CANDIDATES = [
    (["a", "seven", "<eos>"], -1.2),
    (["a", "large", "seven", "in", "the", "middle", "<eos>"], -2.0),
    (["a", "large", "thick", "seven", "in", "the", "middle", "<eos>"], -2.2),
]


@pytest.mark.parametrize(("penalty", "winner"), [(0.0, 0), (1.0, 2), (0.7, 1)])
def test_normalised_winner(penalty: float, winner: int) -> None:
    scores = [lp / len(t) ** penalty for t, lp in CANDIDATES]
    assert max(range(3), key=scores.__getitem__) == winner  # the hand-worked expectation
    assert ch10.check_normalised_winner(CANDIDATES, penalty, winner)
    for wrong in set(range(3)) - {winner}:
        result = ch10.check_normalised_winner(CANDIDATES, penalty, wrong)
        assert not result and str(winner) not in str(result).split(":", 1)[1]


def test_normalised_winner_hints() -> None:
    raw = ch10.check_normalised_winner(CANDIDATES, 1.0, 0)
    assert "raw log-probability" in str(raw)
    # Without <eos>, lengths 2 / 6 / 7: at penalty 0.7 candidate 2 would win.
    assert -2.2 / 7**0.7 > -2.0 / 6**0.7 and -2.2 / 8**0.7 < -2.0 / 7**0.7
    no_eos = ch10.check_normalised_winner(CANDIDATES, 0.7, 2)
    assert "<eos>" in str(no_eos)
    assert "int" in str(ch10.check_normalised_winner(CANDIDATES, 1.0, 1.0))
    assert "between 0 and 2" in str(ch10.check_normalised_winner(CANDIDATES, 1.0, 3))
