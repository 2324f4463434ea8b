"""Tests for mmcourse.decode: greedy and beam search against scripted models and brute force.

Beam search is checked against references that do not share its code: an exhaustive search
over every sequence of a toy model, hand-computed probabilities, greedy search, and the
log-probabilities a captioner gives the returned sequences under teacher forcing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from mmcourse.decode import (
    BeamSearchResult,
    StepModel,
    beam_candidates,
    beam_search,
    greedy_decode,
    length_normalised_score,
    select_state,
)
from mmcourse.models.captioner import Captioner
from mmcourse.models.image import CanvasEncoder
from mmcourse.vocab import BOS_ID, EOS_ID, PAD_ID

V = 10


pytestmark = pytest.mark.usefixtures("one_thread")


class Scripted:
    """A fake step model: row i says ``scripts[i][t]`` at step t (then <eos> forever).

    Its state is the step counter of every row, so rows are independent.
    """

    def __init__(self, scripts: list[list[int]], vocab: int = V) -> None:
        self.scripts, self.vocab = scripts, vocab
        self.seen: list[list[int]] = []

    def init_state(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"t": torch.zeros(images.shape[0], dtype=torch.long), "row": images[:, 0].long()}

    def step(self, tokens: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        self.seen.append(tokens.tolist())
        logits = torch.zeros(len(tokens), self.vocab)
        for i, (t, row) in enumerate(zip(state["t"].tolist(), state["row"].tolist())):
            script = self.scripts[row]
            logits[i, script[t] if t < len(script) else EOS_ID] = 5.0
        return logits, {"t": state["t"] + 1, "row": state["row"]}


def rows(n: int) -> torch.Tensor:
    """Inputs whose first column names the script row."""
    return torch.arange(n, dtype=torch.float32)[:, None]


def test_stops_at_eos_and_pads_after() -> None:
    model = Scripted([[5, 6, EOS_ID], [7, EOS_ID], [4, 4, 4, 4, EOS_ID]])
    out = greedy_decode(model, rows(3), max_len=20)
    assert out.tolist() == [
        [5, 6, EOS_ID, PAD_ID, PAD_ID],
        [7, EOS_ID, PAD_ID, PAD_ID, PAD_ID],
        [4, 4, 4, 4, EOS_ID],
    ]
    assert out.dtype == torch.long
    # it stopped once every row had finished: five steps, not twenty
    assert len(model.seen) == 5
    # the first input is <bos>, then each row's own previous token
    assert model.seen[0] == [BOS_ID] * 3
    assert model.seen[1] == [5, 7, 4]


def test_max_len_cuts_long_sequences() -> None:
    model = Scripted([[5, 6, 7, 8, EOS_ID], [9, EOS_ID]])
    out = greedy_decode(model, rows(2), max_len=3)
    assert out.tolist() == [[5, 6, 7], [9, EOS_ID, PAD_ID]]


def test_custom_special_ids() -> None:
    model = Scripted([[5, 8], [6, 6, 8]])  # 8 plays <eos>
    out = greedy_decode(model, rows(2), max_len=6, bos_id=9, eos_id=8, pad_id=7)
    assert out.tolist() == [[5, 8, 7], [6, 6, 8]]
    assert model.seen[0] == [9, 9]


def test_greedy_equals_brute_force_argmax_over_teacher_forcing() -> None:
    """Greedy decoding via step == re-running the whole prefix through forward each time."""
    torch.manual_seed(1)
    model = Captioner(
        V, embed_dim=8, hidden_dim=16, image_encoder=CanvasEncoder(16, channels=(4, 8))
    )
    model.eval()
    images = torch.randn(3, 1, 16, 16)
    out = greedy_decode(model, images, max_len=6, eos_id=V - 1)  # an id it rarely picks
    prefix = torch.full((3, 1), BOS_ID)
    expected = []
    for _ in range(6):
        nxt = model(images, prefix)[:, -1].argmax(-1)
        expected.append(nxt)
        prefix = torch.cat([prefix, nxt[:, None]], dim=1)
    expected = torch.stack(expected, dim=1)
    finished = torch.zeros(3, dtype=torch.bool)
    for t in range(expected.shape[1]):  # pad after <eos>, as documented
        expected[finished, t] = PAD_ID
        finished |= expected[:, t] == V - 1
    assert torch.equal(out, expected[:, : out.shape[1]])


def test_eval_mode_during_decoding_and_restored_after() -> None:
    model = Captioner(
        V, dropout=0.5, embed_dim=8, hidden_dim=16, image_encoder=CanvasEncoder(16, (4, 8))
    )
    images = torch.randn(4, 1, 16, 16)
    model.train()
    first = greedy_decode(model, images, max_len=8)
    second = greedy_decode(model, images, max_len=8)
    assert torch.equal(first, second)  # no dropout noise
    assert model.training
    model.eval()
    greedy_decode(model, images, max_len=8)
    assert not model.training


def test_captioner_is_a_step_model() -> None:
    assert isinstance(Captioner(V, image_encoder=CanvasEncoder(8, (4,))), StepModel)
    assert not isinstance(nn.Linear(2, 2), StepModel)


@dataclass
class PairState:
    a: torch.Tensor
    b: torch.Tensor | None


def test_select_state_reorders_every_tensor() -> None:
    index = torch.tensor([2, 0, 0])
    x = torch.arange(6).view(3, 2)
    assert select_state(x, index).tolist() == [[4, 5], [0, 1], [0, 1]]
    nested = {"h": (x, [x * 10]), "none": None}
    picked = select_state(nested, index)
    assert picked["h"][0].tolist() == x[[2, 0, 0]].tolist()
    assert isinstance(picked["h"][1], list)
    assert picked["h"][1][0].tolist() == (x * 10)[[2, 0, 0]].tolist()
    assert picked["none"] is None
    state = select_state(PairState(x, None), torch.tensor([1]))
    assert isinstance(state, PairState)
    assert state.a.tolist() == [[2, 3]] and state.b is None


def test_select_state_repeats_rows_for_a_beam() -> None:
    model = Captioner(V, cell="lstm", image_encoder=CanvasEncoder(8, (4,)))
    state = model.init_state(torch.randn(2, 1, 8, 8))
    beam = select_state(state, torch.arange(2).repeat_interleave(3))
    assert beam.hidden.shape[0] == beam.cell.shape[0] == 6
    torch.testing.assert_close(beam.hidden[3], state.hidden[1])
    torch.testing.assert_close(beam.cell[2], state.cell[0])


def test_select_state_errors() -> None:
    with pytest.raises(ValueError, match="1-D LongTensor"):
        select_state(torch.zeros(3), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="1-D LongTensor"):
        select_state(torch.zeros(3), [0, 1])
    with pytest.raises(ValueError, match="scalar"):
        select_state(torch.tensor(1.0), torch.tensor([0]))
    with pytest.raises(ValueError, match="got str"):
        select_state({"x": "hello"}, torch.tensor([0]))


def test_greedy_decode_errors() -> None:
    model = Scripted([[5, EOS_ID]])
    with pytest.raises(ValueError, match="init_state"):
        greedy_decode(nn.Linear(2, 2), rows(1), max_len=3)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(model, rows(1), max_len=0)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(model, rows(1), max_len=True)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(model, rows(1), max_len=2.0)
    with pytest.raises(ValueError, match="images must be a tensor"):
        greedy_decode(model, [[0.0]], max_len=3)
    with pytest.raises(ValueError, match="images must be a tensor"):
        greedy_decode(model, torch.zeros(0, 1), max_len=3)
    with pytest.raises(ValueError, match="eos_id and pad_id must differ"):
        greedy_decode(model, rows(1), max_len=3, eos_id=0, pad_id=0)
    with pytest.raises(ValueError, match="eos_id=12 is outside"):
        greedy_decode(model, rows(1), max_len=3, eos_id=12)
    with pytest.raises(ValueError, match="bos_id=-1 is outside"):
        greedy_decode(model, rows(1), max_len=3, bos_id=-1)


def test_greedy_decode_checks_what_step_returns() -> None:
    class Bad:
        def init_state(self, images: torch.Tensor) -> torch.Tensor:
            return images

        def step(self, tokens: torch.Tensor, state: torch.Tensor) -> tuple:
            return torch.zeros(len(tokens), 3, V), state

    with pytest.raises(ValueError, match=r"logits of shape \(2, V\)"):
        greedy_decode(Bad(), rows(2), max_len=3)


def test_greedy_decode_refuses_nan_logits() -> None:
    class NaNs:
        def init_state(self, images: torch.Tensor) -> torch.Tensor:
            return images

        def step(self, tokens: torch.Tensor, state: torch.Tensor) -> tuple:
            return torch.full((len(tokens), V), float("nan")), state

    with pytest.raises(ValueError, match=r"^the output of model.step holds NaN; every score"):
        greedy_decode(NaNs(), rows(2), max_len=3)


# ============================================================================ beam search
# ---------------------------------------------------------------- toy models and references
LogitsOf = Callable[[int, tuple[int, ...]], torch.Tensor]


class PrefixModel:
    """A toy step model: the next-token logits of image ``row`` after the generated tokens
    ``prefix`` (``<bos>`` left out) are ``logits_of(row, prefix)``.

    Its state is the row and every token fed so far, so each hypothesis is independent of
    the others and the model can depend on the whole prefix, not just the last token.
    """

    def __init__(self, logits_of: LogitsOf) -> None:
        self.logits_of = logits_of
        self.calls = 0

    def init_state(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = images.shape[0]
        return {"row": images[:, 0].long(), "fed": torch.zeros(batch, 0, dtype=torch.long)}

    def step(self, tokens: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        self.calls += 1
        fed = torch.cat([state["fed"], tokens[:, None]], dim=1)
        logits = torch.stack(
            [
                self.logits_of(row, tuple(seen[1:]))  # seen[0] is <bos>
                for row, seen in zip(state["row"].tolist(), fed.tolist())
            ]
        )
        return logits, {"row": state["row"], "fed": fed}


TOY_V, TOY_LEN = 5, 4  # tokens 0..4: <pad>, <bos>, <eos> and two words


def prefix_index(prefix: tuple[int, ...], vocab: int) -> int:
    """A distinct row number for every prefix: all shorter prefixes first, then base V."""
    shorter = sum(vocab**n for n in range(len(prefix)))
    return shorter + sum(token * vocab**i for i, token in enumerate(reversed(prefix)))


def random_table(
    seed: int, images: int = 3, vocab: int = TOY_V, max_len: int = TOY_LEN
) -> LogitsOf:
    """Fixed random logits for every (image, prefix up to max_len - 1 tokens)."""
    generator = torch.Generator().manual_seed(seed)
    prefixes = sum(vocab**n for n in range(max_len))
    table = 2.0 * torch.randn(images, prefixes, vocab, generator=generator, dtype=torch.float64)
    return lambda row, prefix: table[row, prefix_index(prefix, vocab)]


def sequence_log_prob(logits_of: LogitsOf, row: int, sequence: tuple[int, ...]) -> float:
    """log P(sequence) by the chain rule, one log-softmax per token."""
    return sum(
        float(torch.log_softmax(logits_of(row, sequence[:t]), dim=-1)[token])
        for t, token in enumerate(sequence)
    )


def every_answer(vocab: int, max_len: int, eos_id: int = EOS_ID) -> list[tuple[int, ...]]:
    """Every sequence a search may return: ending at its only <eos> (any length up to
    max_len), or cut at max_len without any <eos>. Shorter first, then by token ids."""
    answers = []
    for length in range(1, max_len + 1):
        for sequence in itertools.product(range(vocab), repeat=length):
            ended = sequence[-1] == eos_id and eos_id not in sequence[:-1]
            cut = length == max_len and eos_id not in sequence
            if ended or cut:
                answers.append(sequence)
    return answers


def brute_force(
    logits_of: LogitsOf, row: int, vocab: int, max_len: int, alpha: float
) -> tuple[tuple[int, ...], float, float]:
    """The best answer by exhaustive search: (tokens, log-probability, score), where the
    score is log P / length ** alpha with <eos> counted in the length."""
    best = None
    for sequence in every_answer(vocab, max_len):
        log_prob = sequence_log_prob(logits_of, row, sequence)
        score = log_prob / len(sequence) ** alpha
        if best is None or score > best[2]:
            best = (sequence, log_prob, score)
    assert best is not None
    return best


def unpadded(row: list[int], eos_id: int = EOS_ID) -> tuple[int, ...]:
    """A returned row without its padding: up to and including <eos>, or all of it."""
    return tuple(row[: row.index(eos_id) + 1]) if eos_id in row else tuple(row)


def tree(*branches: tuple[tuple[int, ...], dict[int, float]], vocab: int = 8) -> LogitsOf:
    """A hand-written model: next-token probabilities for the listed prefixes; any other
    prefix ends, ``<eos>`` with probability 1. Tokens not listed get probability 0."""
    probabilities = dict(branches)

    def logits_of(row: int, prefix: tuple[int, ...]) -> torch.Tensor:
        logits = torch.full((vocab,), -math.inf, dtype=torch.float64)
        for token, probability in probabilities.get(prefix, {EOS_ID: 1.0}).items():
            logits[token] = math.log(probability)
        return logits

    return logits_of


def per_row(*trees: LogitsOf) -> LogitsOf:
    """One hand-written model per image row."""
    return lambda row, prefix: trees[row](row, prefix)


A, B, C, D, E = 3, 4, 5, 6, 7  # word ids of the hand-written models (vocabulary of 8)


# ---------------------------------------------------------------- exact against brute force
@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_finds_the_brute_force_optimum(seed: int, alpha: float) -> None:
    """A beam as wide as the number of sequences is an exhaustive search."""
    logits_of = random_table(seed)
    result = beam_search(
        PrefixModel(logits_of),
        rows(3),
        max_len=TOY_LEN,
        beam_width=TOY_V**TOY_LEN,
        length_penalty=alpha,
        return_scores=True,
    )
    assert isinstance(result, BeamSearchResult)
    tokens, log_probs, scores = result
    assert tokens.dtype == torch.long and tokens.shape[0] == 3
    for row in range(3):
        sequence, log_prob, score = brute_force(logits_of, row, TOY_V, TOY_LEN, alpha)
        assert unpadded(tokens[row].tolist()) == sequence
        # after its end the row holds <pad> only
        assert set(tokens[row, len(sequence) :].tolist()) <= {PAD_ID}
        assert log_probs[row].item() == pytest.approx(log_prob, rel=1e-5)
        assert scores[row].item() == pytest.approx(score, rel=1e-5)
    # the longest answer sets the width, as in greedy_decode
    assert tokens.shape[1] == max(len(unpadded(row)) for row in tokens.tolist())


def test_toy_optima_are_varied() -> None:
    """The exhaustive tests above are not vacuous: the optima they check end at <eos> after
    one and after several tokens, or are cut at max_len."""
    kinds = set()
    for seed, alpha, row in itertools.product([0, 1, 2], [0.0, 0.7, 1.5], range(3)):
        sequence, _, _ = brute_force(random_table(seed), row, TOY_V, TOY_LEN, alpha)
        kinds.add("cut" if sequence[-1] != EOS_ID else min(len(sequence), 2))
    assert kinds == {1, 2, "cut"}


def test_beam_wider_than_the_vocabulary_is_exact_and_holds_no_duplicates() -> None:
    """Width 7 > V = 5 with max_len 2: wide enough to be exhaustive, if <bos> is expanded once."""
    for seed in range(3):
        logits_of = random_table(seed, max_len=2)
        model = PrefixModel(logits_of)
        tokens, log_probs, _ = beam_search(
            model, rows(3), max_len=2, beam_width=TOY_V + 2, return_scores=True
        )
        for row in range(3):
            sequence, log_prob, _ = brute_force(logits_of, row, TOY_V, 2, 0.0)
            assert unpadded(tokens[row].tolist()) == sequence
            assert log_probs[row].item() == pytest.approx(log_prob, rel=1e-5)


def test_copies_of_the_start_do_not_crowd_out_the_beam() -> None:
    """B <eos> (0.3) is the best answer: everything after A is at most 0.5 * 0.9 * 0.5. With
    all 10 copies of <bos> expanded, the 10 best first tokens would all be A, and B lost."""
    model = PrefixModel(
        tree(
            ((), {A: 0.5, B: 0.3, C: 0.2}),
            ((A,), {EOS_ID: 0.1, D: 0.9}),
            ((A, D), {D: 0.5, E: 0.5}),
        )
    )
    tokens, log_probs, _ = beam_search(model, rows(1), max_len=3, beam_width=10, return_scores=True)
    assert tokens.tolist() == [[B, EOS_ID]]
    assert log_probs.item() == pytest.approx(math.log(0.3))


# ---------------------------------------------------------------- beam of one is greedy
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_of_one_equals_greedy_on_the_toy(alpha: float) -> None:
    for seed in range(3):
        model = PrefixModel(random_table(seed))
        expected = greedy_decode(model, rows(3), max_len=TOY_LEN)
        found = beam_search(model, rows(3), TOY_LEN, beam_width=1, length_penalty=alpha)
        assert torch.equal(found, expected)
    # custom special ids: 4 plays <eos>, 3 <pad>, 0 <bos>
    model = PrefixModel(random_table(0))
    ids = {"bos_id": 0, "eos_id": 4, "pad_id": 3}
    expected = greedy_decode(model, rows(3), max_len=TOY_LEN, **ids)
    assert torch.equal(beam_search(model, rows(3), TOY_LEN, beam_width=1, **ids), expected)


def small_captioner(cell: str = "gru", dropout: float = 0.0) -> Captioner:
    torch.manual_seed(3)
    encoder = CanvasEncoder(16, channels=(4, 8))
    return Captioner(
        12, embed_dim=8, hidden_dim=16, cell=cell, dropout=dropout, image_encoder=encoder
    )


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_of_one_equals_greedy_on_a_captioner(cell: str) -> None:
    model = small_captioner(cell)
    images = torch.randn(4, 1, 16, 16)
    ended = 0
    for eos_id in range(1, 12):  # each token in turn plays <eos>: rows end early or not
        expected = greedy_decode(model, images, max_len=7, eos_id=eos_id)
        ended += int((expected == eos_id).sum())
        for alpha in [0.0, 1.0]:
            found = beam_search(model, images, 7, beam_width=1, length_penalty=alpha, eos_id=eos_id)
            assert torch.equal(found, expected), (eos_id, alpha)
    assert ended > 0


# ---------------------------------------------------------------- hand-computed cases
def test_beam_of_two_finds_what_greedy_misses() -> None:
    """Greedy takes A (0.5) then <eos> (0.4): 0.20. Beam 2 also keeps B (0.4), and
    B <eos> = 0.4 * 0.9 = 0.36 beats every other continuation."""
    model = PrefixModel(
        tree(
            ((), {A: 0.5, B: 0.4, EOS_ID: 0.1}),
            ((A,), {EOS_ID: 0.4, C: 0.3, D: 0.3}),
            ((B,), {EOS_ID: 0.9, C: 0.1}),
        )
    )
    assert greedy_decode(model, rows(1), max_len=3).tolist() == [[A, EOS_ID]]
    tokens, log_probs, scores = beam_search(
        model, rows(1), max_len=3, beam_width=2, return_scores=True
    )
    assert tokens.tolist() == [[B, EOS_ID]]
    assert log_probs.item() == pytest.approx(math.log(0.36))
    assert scores.item() == pytest.approx(math.log(0.36))  # alpha = 0: the raw sum


def test_a_finished_hypothesis_leaves_the_beam_and_the_others_carry_on() -> None:
    """Both images: <eos> first has 0.45 and is finished at step 1; A (0.55) carries on.
    Image 0: A B <eos> = 0.55 * 0.9 * 0.95 = 0.470 wins; image 1: A B <eos> = 0.2475, so
    the early <eos> wins, with its own log-probability (it was never extended: after it,
    the model would say C with certainty)."""

    def image(last_eos: float) -> LogitsOf:
        return tree(
            ((), {A: 0.55, EOS_ID: 0.45}),
            ((EOS_ID,), {C: 1.0}),
            ((A,), {B: 0.9, EOS_ID: 0.1}),
            ((A, B), {EOS_ID: last_eos, C: 1 - last_eos}),
        )

    model = PrefixModel(per_row(image(0.95), image(0.5)))
    tokens, log_probs, _ = beam_search(model, rows(2), max_len=3, beam_width=2, return_scores=True)
    assert tokens.tolist() == [[A, B, EOS_ID], [EOS_ID, PAD_ID, PAD_ID]]
    torch.testing.assert_close(
        log_probs, torch.tensor([math.log(0.55 * 0.9 * 0.95), math.log(0.45)])
    )


def no_eos_table(seed: int, max_len: int) -> LogitsOf:
    """A random toy that never says <eos> (its logit is -inf)."""
    logits_of = random_table(seed, max_len=max_len)

    def never_ends(row: int, prefix: tuple[int, ...]) -> torch.Tensor:
        logits = logits_of(row, prefix).clone()
        logits[EOS_ID] = -math.inf
        return logits

    return never_ends


def test_hypotheses_that_never_end_are_cut_at_max_len() -> None:
    logits_of = no_eos_table(0, max_len=4)
    tokens, log_probs, scores = beam_search(
        PrefixModel(logits_of), rows(3), 4, beam_width=3, length_penalty=1.0, return_scores=True
    )
    assert tokens.shape == (3, 4)
    assert not (tokens == EOS_ID).any()
    for row in range(3):
        log_prob = sequence_log_prob(logits_of, row, tuple(tokens[row].tolist()))
        assert log_probs[row].item() == pytest.approx(log_prob, rel=1e-5)
        assert scores[row].item() == pytest.approx(log_prob / 4, rel=1e-5)  # length 4, no <eos>


def test_beam_scores_never_increase_with_more_steps() -> None:
    """Without <eos>, the answer after n steps is the top of the beam after n steps; with
    alpha = 0 every step adds a log-probability <= 0, so the top can only fall."""
    logits_of = no_eos_table(1, max_len=6)
    tops = []
    for max_len in range(1, 7):
        _, log_probs, _ = beam_search(
            PrefixModel(logits_of), rows(3), max_len, beam_width=3, return_scores=True
        )
        tops.append(log_probs)
    for shorter, longer in zip(tops, tops[1:]):
        assert (longer <= shorter + 1e-6).all()
    assert (tops[-1] < tops[0]).all()


def test_an_exhaustive_beam_is_never_beaten_by_a_narrower_one() -> None:
    for seed, alpha in itertools.product(range(3), [0.0, 1.0]):
        model = PrefixModel(random_table(seed))
        best = {}
        for width in [1, 2, 3, 5, 10, TOY_V**TOY_LEN]:
            result = beam_search(
                model, rows(3), TOY_LEN, beam_width=width, length_penalty=alpha, return_scores=True
            )
            best[width] = result.scores
        for width, scores in best.items():
            assert (scores <= best[TOY_V**TOY_LEN] + 1e-6).all(), (seed, alpha, width)


def test_a_wider_beam_can_end_worse() -> None:
    """Beam search is a heuristic. Greedy: A C <eos> = 0.4 * 0.34 = 0.136. Beam 2 keeps A and
    B, then prefers B C (0.1785) and B D (0.1715) to A C (0.136), but both end badly (0.0357
    at best). Beam 3 also keeps C (0.25), whose <eos> is the best answer."""
    spread = {EOS_ID: 0.2, A: 0.2, B: 0.2, C: 0.2, D: 0.2}
    logits_of = tree(
        ((), {A: 0.40, B: 0.35, C: 0.25}),
        ((A,), {C: 0.34, D: 0.33, E: 0.33}),
        ((B,), {C: 0.51, D: 0.49}),
        ((C,), {EOS_ID: 1.0}),
        ((A, C), {EOS_ID: 1.0}),
        ((B, C), spread),
        ((B, D), spread),
    )
    log_prob = {}
    for width in [1, 2, 3]:
        result = beam_search(PrefixModel(logits_of), rows(1), 3, width, return_scores=True)
        log_prob[width] = result.log_probs.item()
    assert log_prob[1] == pytest.approx(math.log(0.4 * 0.34))
    assert log_prob[2] == pytest.approx(math.log(0.35 * 0.51 * 0.2))
    assert log_prob[3] == pytest.approx(math.log(0.25))
    assert log_prob[3] == pytest.approx(brute_force(logits_of, 0, 8, 3, 0.0)[1])


def test_early_stop_only_without_length_penalty() -> None:
    """<eos> first (0.6) beats A (0.4) on raw log-probability, and A's continuations can only
    be less likely: alpha = 0 stops after one step. Per token (alpha = 1), A B B <eos>
    (log(0.4 * 0.99 ** 3) / 4 = -0.24) beats <eos> (log 0.6 = -0.51): the search must go on."""
    logits_of = tree(
        ((), {EOS_ID: 0.6, A: 0.4}),
        ((A,), {B: 0.99, EOS_ID: 0.01}),
        ((A, B), {B: 0.99, EOS_ID: 0.01}),
        ((A, B, B), {EOS_ID: 0.99, B: 0.01}),
    )
    model = PrefixModel(logits_of)
    assert beam_search(model, rows(1), 6, beam_width=2).tolist() == [[EOS_ID]]
    assert model.calls == 1
    model = PrefixModel(logits_of)
    tokens, _, scores = beam_search(
        model, rows(1), 6, beam_width=2, length_penalty=1.0, return_scores=True
    )
    assert tokens.tolist() == [[A, B, B, EOS_ID]]
    assert scores.item() == pytest.approx(math.log(0.4 * 0.99**3) / 4)
    assert model.calls >= 4


def test_length_normalised_score() -> None:
    assert length_normalised_score(-6.0, 3, 0.0) == -6.0
    assert length_normalised_score(-6.0, 4, 0.5) == pytest.approx(-3.0)
    assert length_normalised_score(-6.0, 3, 1.0) == pytest.approx(-2.0)


# ---------------------------------------------------------------- a real captioner
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_beam_search_on_a_captioner_matches_teacher_forcing(alpha: float) -> None:
    """The returned log-probabilities are those the model's forward gives the returned
    sequences, and searching images together equals searching each alone."""
    model = small_captioner("lstm").eval()
    images = torch.randn(3, 1, 16, 16)
    eos_id = 5
    tokens, log_probs, scores = beam_search(
        model, images, 6, beam_width=4, length_penalty=alpha, eos_id=eos_id, return_scores=True
    )
    for row in range(3):
        sequence = unpadded(tokens[row].tolist(), eos_id)
        inputs = torch.tensor([[BOS_ID, *sequence[:-1]]])
        logits = model(images[row : row + 1], inputs)[0]
        expected = torch.log_softmax(logits, -1)[range(len(sequence)), list(sequence)].sum()
        assert log_probs[row].item() == pytest.approx(expected.item(), abs=1e-4)
        assert scores[row].item() == pytest.approx(
            expected.item() / len(sequence) ** alpha, abs=1e-4
        )
        alone = beam_search(
            model, images[row : row + 1], 6, 4, alpha, eos_id=eos_id, return_scores=True
        )
        assert unpadded(alone.tokens[0].tolist(), eos_id) == sequence
        assert alone.log_probs.item() == pytest.approx(log_probs[row].item(), abs=1e-5)


def test_beam_search_runs_in_eval_mode_and_restores_the_mode() -> None:
    model = small_captioner(dropout=0.5)
    images = torch.randn(4, 1, 16, 16)
    model.train()
    first = beam_search(model, images, max_len=6)
    second = beam_search(model, images, max_len=6)
    assert torch.equal(first, second)  # no dropout noise
    assert model.training
    model.eval()
    beam_search(model, images, max_len=6)
    assert not model.training


# ---------------------------------------------------------------- bad inputs
def test_beam_search_errors() -> None:
    model = PrefixModel(random_table(0))
    bad_arguments = [
        ({"model": nn.Linear(2, 2)}, "init_state"),
        ({"images": [[0.0]]}, "images must be a tensor"),
        ({"max_len": 0}, "max_len must be a positive int"),
        ({"max_len": 2.0}, "max_len must be a positive int"),
        ({"eos_id": 0, "pad_id": 0}, "eos_id and pad_id must differ"),
        ({"eos_id": 7}, "eos_id=7 is outside"),
        ({"return_scores": "yes"}, "return_scores must be True or False"),
    ]
    for width in [0, -2, 1.5, True, "3", None]:
        bad_arguments.append(({"beam_width": width}, "beam_width must be a positive int"))
    for alpha in [-0.5, math.nan, math.inf, "1", True, None]:
        bad_arguments.append(({"length_penalty": alpha}, "length_penalty must be a finite"))
    for change, message in bad_arguments:
        arguments = {"model": model, "images": rows(1), "max_len": 3} | change
        with pytest.raises(ValueError, match=message):
            beam_search(**arguments)


class Returns:
    """A step model whose step returns ``make(rows)`` as logits."""

    def __init__(self, make: Callable[[int], torch.Tensor]) -> None:
        self.make = make

    def init_state(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def step(self, tokens: torch.Tensor, state: torch.Tensor) -> tuple:
        return self.make(len(tokens)), state


def test_beam_search_checks_what_step_returns() -> None:
    with pytest.raises(ValueError, match=r"logits of shape \(6, V\)"):  # 2 images x 3 beams
        beam_search(Returns(lambda n: torch.zeros(n, 3, V)), rows(2), 3, beam_width=3)
    with pytest.raises(ValueError, match=r"^the output of model.step holds NaN"):
        beam_search(Returns(lambda n: torch.full((n, V), math.nan)), rows(2), 3)
    with pytest.raises(ValueError, match="float logits"):
        beam_search(Returns(lambda n: torch.zeros(n, V, dtype=torch.long)), rows(2), 3)
    with pytest.raises(ValueError, match="log_softmax of model.step's logits"):
        beam_search(Returns(lambda n: torch.full((n, V), -math.inf)), rows(2), 3)


# ---------------------------------------------------------------- the beam's alternatives
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_candidates_of_an_exhaustive_beam_are_every_answer_ranked(alpha: float) -> None:
    """A beam wide enough to hold every sequence, with a length penalty (so it runs to the
    end), lists every possible answer once, each with its chain-rule log-probability, best
    first; the first is beam_search's answer."""
    logits_of = random_table(0)
    model = PrefixModel(logits_of)
    for row in range(3):
        image = rows(3)[row : row + 1]
        candidates = beam_candidates(
            model, image, TOY_LEN, beam_width=TOY_V**TOY_LEN, length_penalty=max(alpha, 1e-9)
        )
        answers = every_answer(TOY_V, TOY_LEN)
        assert sorted(tuple(c.tokens) for c in candidates) == sorted(answers)
        for candidate in candidates:
            expected = sequence_log_prob(logits_of, row, tuple(candidate.tokens))
            assert candidate.log_prob == pytest.approx(expected, rel=1e-5)
        scores = [c.score for c in candidates]
        assert scores == sorted(scores, reverse=True)
        best = beam_search(
            model, image, TOY_LEN, beam_width=TOY_V**TOY_LEN, length_penalty=max(alpha, 1e-9)
        )
        assert unpadded(best[0].tolist()) == tuple(candidates[0].tokens)


def test_beam_candidates_of_a_small_beam_by_hand() -> None:
    """Width 2 on a hand-written tree: A D <eos> (0.5 * 0.9) and B <eos> (0.3) finish; A
    <eos> (0.05) never enters a beam of two."""
    model = PrefixModel(
        tree(
            ((), {A: 0.5, B: 0.3, C: 0.2}),
            ((A,), {EOS_ID: 0.1, D: 0.9}),
        )
    )
    candidates = beam_candidates(model, rows(1), max_len=3, beam_width=2, length_penalty=0.5)
    assert [tuple(c.tokens) for c in candidates] == [(A, D, EOS_ID), (B, EOS_ID)]
    assert candidates[0].log_prob == pytest.approx(math.log(0.45))
    assert candidates[1].score == pytest.approx(math.log(0.3) / 2**0.5)


def test_beam_candidates_takes_one_input() -> None:
    with pytest.raises(ValueError, match="one input \\(a batch of 1\\), got 3"):
        beam_candidates(PrefixModel(random_table(0)), rows(3), TOY_LEN)
