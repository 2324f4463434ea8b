"""Self-checks for chapter 10 (beam search, three decoders, transfer).

A failed check says what is wrong and why -- greedy's choice instead of the best sequence,
a ranking by raw log-probability where the length should count, an ``<eos>`` left out of
the length -- but never the expected answer; see :mod:`mmcourse.checks`. The answers are
worked out here by enumeration, independently of :mod:`mmcourse.decode`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmcourse.checks._core import CheckResult

Table = Mapping[str, float]


def _check_table(first: Table, second: Mapping[str, Table]) -> None:
    if set(second) != set(first):
        raise ValueError("second must give the next-word probabilities after every first word")


def check_best_sequence(first: Table, second: Mapping[str, Table], sequence: object) -> CheckResult:
    """Is ``sequence`` (two words) the most probable two-word sequence of the toy model?

    ``first[w]`` is p(w) for the first word, ``second[w][v]`` is p(v | w) for the second.
    """
    _check_table(first, second)
    if isinstance(sequence, str):
        sequence = tuple(sequence.split())
    if not isinstance(sequence, (tuple, list)) or len(sequence) != 2:
        return CheckResult(False, "give the sequence as two words, e.g. ('A', 'B')")
    w1, w2 = sequence
    if "?" in (w1, w2):
        return CheckResult(False, "replace ('?', '?') with the two words of your answer")
    if w1 not in first or w2 not in second.get(w1, {}):
        return CheckResult(False, f"{sequence!r} is not a sequence the toy model can say")
    probability = {(a, b): first[a] * second[a][b] for a in first for b in second[a]}
    best = max(probability, key=lambda pair: probability[pair])
    greedy_first = max(first, key=lambda a: first[a])
    greedy = (greedy_first, max(second[greedy_first], key=lambda b: second[greedy_first][b]))
    if tuple(sequence) == best:
        return CheckResult(
            True,
            f"{' '.join(best)}: a first word that looked worse leads to a much surer second "
            "word; the product of the two probabilities is what counts",
        )
    if tuple(sequence) == greedy:
        return CheckResult(
            False,
            "that is what greedy decoding says (the best first word, then the best second "
            "word); multiply p(first) by p(second | first) for every pair and compare",
        )
    return CheckResult(False, "another pair has a higher p(first) x p(second | first)")


def _score(log_prob: float, length: int, penalty: float) -> float:
    return log_prob / length**penalty


def check_normalised_winner(
    candidates: Sequence[tuple[Sequence[str], float]], length_penalty: float, index: object
) -> CheckResult:
    """Is ``index`` the candidate with the highest ``log_prob / length ** length_penalty``?

    ``candidates``: ``(tokens, log_prob)`` pairs, the tokens ending with ``"<eos>"``, which
    counts in the length.
    """
    if isinstance(index, bool) or not isinstance(index, int):
        return CheckResult(False, f"index should be an int, got {type(index).__name__}")
    if not 0 <= index < len(candidates):
        return CheckResult(False, f"index should be between 0 and {len(candidates) - 1}")
    scores = [_score(lp, len(tokens), length_penalty) for tokens, lp in candidates]
    best = max(range(len(candidates)), key=lambda i: scores[i])
    if index == best:
        return CheckResult(
            True,
            f"candidate {index}: with length_penalty {length_penalty} the score is "
            "log p / length ** length_penalty",
        )
    raw = max(range(len(candidates)), key=lambda i: candidates[i][1])
    without_eos = max(
        range(len(candidates)),
        key=lambda i: _score(candidates[i][1], max(1, len(candidates[i][0]) - 1), length_penalty),
    )
    if index == raw and length_penalty != 0:
        return CheckResult(
            False,
            "that is the winner by raw log-probability, which favours short captions: divide "
            "by length ** length_penalty first",
        )
    if index == without_eos:
        return CheckResult(False, "count <eos> in the length: it is a token the model chose")
    gap = scores[best] - scores[index]
    closeness = "close, but" if gap < 0.1 * abs(scores[best]) else "and"
    return CheckResult(False, f"{closeness} another candidate has a higher normalised score")
