"""Turning a step-by-step model into token sequences: greedy search and beam search.

Any model can be decoded here if it offers the **step interface** (:class:`StepModel`)::

    state = model.init_state(images)            # anything holding batch-first tensors
    logits, state = model.step(tokens, state)   # tokens (B,) long -> logits (B, V), new state

- ``init_state`` encodes the inputs once (e.g. the image) into the decoder's first state.
- ``step`` reads the previous token of every row and returns scores for the next one.
- A *state* is a tensor, ``None``, or a tuple / list / dict / dataclass of those, with the
  batch in dimension 0 of every tensor. :func:`select_state` can then keep, reorder or
  repeat rows with one index -- exactly what beam search does with its hypotheses.

:class:`mmcourse.models.captioner.Captioner` implements it.

Two searches
------------
- :func:`greedy_decode` takes the most likely token at every step. Fast, but it commits:
  a token that looks best now may lead only to unlikely continuations.
- :func:`beam_search` keeps the ``k`` most likely *partial* sequences (the beam) at every
  step and ranks whole sequences at the end, optionally with a length normalisation
  (:func:`length_normalised_score`). ``beam_width=1`` is greedy search; a beam as wide as
  the number of possible sequences is an exhaustive search. In between it is a heuristic:
  better than greedy on average, but not guaranteed to find the most likely sequence, and
  not even guaranteed to improve as the beam widens.
"""

from __future__ import annotations

import dataclasses
import math
from numbers import Real
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

from mmcourse._validate import check_no_nan, is_int, require
from mmcourse.modes import eval_mode
from mmcourse.vocab import BOS_ID, EOS_ID, PAD_ID


@runtime_checkable
class StepModel(Protocol):
    """What :func:`greedy_decode` and :func:`beam_search` need from a model."""

    def init_state(self, images: torch.Tensor) -> Any:
        """The decoder's first state for a batch of inputs (batch-first tensors)."""
        ...

    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """``tokens`` ``(B,)`` and ``state`` -> next-token logits ``(B, V)`` and the new state."""
        ...


def select_state(state: Any, index: torch.Tensor) -> Any:
    """Pick rows ``index`` (a 1-D LongTensor) of every tensor in ``state`` along dimension 0.

    ``state`` may be a tensor, ``None``, or a tuple / list / dict / dataclass nesting them.
    ``index`` may repeat or reorder rows, e.g. ``arange(B).repeat_interleave(k)`` makes ``k``
    copies of each row for a beam of width ``k``.
    """
    if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype != torch.long:
        raise ValueError("index must be a 1-D LongTensor of row numbers")
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        require(state.dim() != 0, "a state tensor needs a batch dimension, got a scalar")
        return state.index_select(0, index.to(state.device))
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        changes = {
            f.name: select_state(getattr(state, f.name), index) for f in dataclasses.fields(state)
        }
        return dataclasses.replace(state, **changes)
    if isinstance(state, dict):
        return {key: select_state(value, index) for key, value in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(select_state(value, index) for value in state)
    raise ValueError(
        f"a decoder state must hold tensors (in tuples, lists, dicts or dataclasses), "
        f"got {type(state).__name__}"
    )


def _check_step_model(model: object) -> None:
    if not (
        callable(getattr(model, "init_state", None)) and callable(getattr(model, "step", None))
    ):
        raise ValueError(
            f"model must offer init_state(images) and step(tokens, state) (see "
            f"mmcourse.decode.StepModel), got {type(model).__name__}"
        )


def _check_decode_args(
    model: object, images: object, max_len: object, eos_id: int, pad_id: int
) -> None:
    """The checks :func:`greedy_decode` and :func:`beam_search` share."""
    _check_step_model(model)
    if not isinstance(images, torch.Tensor) or images.dim() < 1 or images.shape[0] < 1:
        raise ValueError("images must be a tensor holding a batch of at least one input")
    require(is_int(max_len) and max_len >= 1, f"max_len must be a positive int, got {max_len!r}")
    require(eos_id != pad_id, f"eos_id and pad_id must differ, both are {eos_id}")


def _check_logits(logits: object, batch: int, eos_id: int, bos_id: int) -> int:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != batch:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model.step must return logits of shape ({batch}, V), got {shape}")
    check_no_nan(logits, "the output of model.step")  # argmax would pick a NaN's token
    vocab = logits.shape[1]
    for name, value in [("bos_id", bos_id), ("eos_id", eos_id)]:
        if not 0 <= value < vocab:
            raise ValueError(f"{name}={value} is outside the model's vocabulary 0..{vocab - 1}")
    return vocab


@torch.no_grad()
def greedy_decode(
    model: StepModel,
    images: torch.Tensor,
    max_len: int,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
    return_log_probs: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Generate one sequence per image by always taking the most likely next token.

    Starting from ``bos_id``, each step feeds every row's previous token to ``model.step``
    and appends the arg-max. A row is finished once it emits ``eos_id``; after that it holds
    ``pad_id``. Decoding stops when every row has finished or after ``max_len`` tokens.
    An ``nn.Module`` is run in eval mode (dropout off) and put back in its mode afterwards.

    Args:
        model: offers ``init_state`` and ``step`` (:class:`StepModel`).
        images: the inputs ``init_state`` takes, batch first: ``(B, C, H, W)``.
        max_len: most tokens generated per row, ``<eos>`` included (at least 1).
        bos_id, eos_id, pad_id: the special tokens (defaults from :mod:`mmcourse.vocab`).

    Returns:
        LongTensor ``(B, L)`` with ``L <= max_len``: the generated tokens without the
        leading ``<bos>``, each row ending with ``<eos>`` (unless cut at ``max_len``) and
        padded with ``pad_id``. ``Vocabulary.decode_batch`` turns it into text. With
        ``return_log_probs=True``, also float ``(B, L)``: the log-probability the model gave
        each token it chose (meaningless where the row holds ``pad_id``), so that a caption's
        confidence needs no second pass (:func:`mmcourse.deploy.caption_with_confidence`).
    """
    _check_decode_args(model, images, max_len, eos_id, pad_id)
    require(
        isinstance(return_log_probs, bool),
        f"return_log_probs must be True or False, got {return_log_probs!r}",
    )
    with eval_mode(model):
        state = model.init_state(images)
        batch = images.shape[0]
        tokens = torch.full((batch,), bos_id, dtype=torch.long, device=images.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=images.device)
        generated, chosen_log_probs = [], []
        for _ in range(max_len):
            logits, state = model.step(tokens, state)
            _check_logits(logits, batch, eos_id, bos_id)
            tokens = logits.argmax(dim=-1)
            generated.append(torch.where(finished, torch.full_like(tokens, pad_id), tokens))
            if return_log_probs:
                log_probs = logits.float().log_softmax(dim=-1)
                chosen_log_probs.append(log_probs.gather(1, tokens[:, None])[:, 0])
            finished |= tokens == eos_id
            if bool(finished.all()):
                break
        ids = torch.stack(generated, dim=1)
        return (ids, torch.stack(chosen_log_probs, dim=1)) if return_log_probs else ids


# ---------------------------------------------------------------------------- beam search
class BeamSearchResult(NamedTuple):
    """What :func:`beam_search` returns with ``return_scores=True``; unpacks like a tuple:
    ``tokens, log_probs, scores = beam_search(..., return_scores=True)``.

    Attributes:
        tokens: LongTensor ``(B, L)``, the best sequence of every image, in the format of
            :func:`greedy_decode`.
        log_probs: ``(B,)``, the sum of the log-probabilities of each returned sequence's
            tokens (its ``<eos>`` included): the log of its probability under the model.
        scores: ``(B,)``, the length-normalised score each one won with
            (:func:`length_normalised_score`; equal to ``log_probs`` when
            ``length_penalty=0``).
    """

    tokens: torch.Tensor
    log_probs: torch.Tensor
    scores: torch.Tensor


@dataclasses.dataclass(frozen=True)
class _Hypothesis:
    """A candidate answer: its generated tokens (no ``<bos>``), log-probability and score."""

    tokens: list[int]
    log_prob: float
    score: float


def length_normalised_score(log_prob: float, length: int, length_penalty: float) -> float:
    """The score :func:`beam_search` ranks whole sequences by: ``log_prob / length ** alpha``.

    Every token multiplies a sequence's probability by a number below 1, so its
    log-probability only falls as it grows, and ranking by it favours short sequences.
    Dividing by ``length ** alpha`` (``alpha = length_penalty``; ``length`` counts the
    generated tokens, ``<eos>`` included) removes part of that bias (``0 < alpha < 1``) or
    all of it (``alpha = 1``: the mean log-probability per token); ``alpha = 0`` ranks by the
    raw log-probability. (GNMT, Wu et al. 2016, divides by ``((5 + length) / 6) ** alpha``
    instead, which treats very short sequences more gently; the idea is the same.)

    >>> length_normalised_score(-6.0, 3, 0.0)  # raw log-probability
    -6.0
    >>> length_normalised_score(-6.0, 3, 1.0)  # per token
    -2.0
    """
    return log_prob / length**length_penalty


def _check_beam_args(beam_width: object, length_penalty: object, return_scores: object) -> None:
    if not is_int(beam_width) or beam_width < 1:
        raise ValueError(f"beam_width must be a positive int, got {beam_width!r}")
    if (
        isinstance(length_penalty, bool)
        or not isinstance(length_penalty, Real)
        or not math.isfinite(length_penalty)
        or length_penalty < 0
    ):
        raise ValueError(f"length_penalty must be a finite number >= 0, got {length_penalty!r}")
    if not isinstance(return_scores, bool):
        raise ValueError(f"return_scores must be True or False, got {return_scores!r}")


def _step_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the next token, ``(rows, V)``, from ``model.step``'s logits."""
    if not logits.is_floating_point():
        raise ValueError(f"model.step must return float logits, got dtype {logits.dtype}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # sums of many half-precision numbers lose too many digits
    log_probs = torch.log_softmax(logits, dim=-1)
    return check_no_nan(log_probs, "log_softmax of model.step's logits (a row all -inf?)")


def _best_continuations(
    beam_log_probs: torch.Tensor, step_log_probs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` most likely one-token continuations of each image's beam.

    Args:
        beam_log_probs: ``(B, k)``, log-probability of every hypothesis, ``-inf`` for an
            empty slot (so none of its continuations is ever picked).
        step_log_probs: ``(B, k, V)``, log-probability of every next token after each one.

    Returns:
        Three ``(B, k)`` tensors, best first: the continuations' log-probabilities, the
        beam slot each one extends and the token it adds. Ties go to the lower slot, then
        the lower token id (a stable sort), so ``k = 1`` picks what ``argmax`` picks.
    """
    batch, width, vocab = step_log_probs.shape
    totals = (beam_log_probs[:, :, None] + step_log_probs).view(batch, width * vocab)
    order = totals.sort(dim=1, descending=True, stable=True).indices[:, :width]
    return totals.gather(1, order), order // vocab, order % vocab


def _collect(
    found: list[list[_Hypothesis]],
    prefixes: torch.Tensor,
    log_probs: torch.Tensor,
    chosen: torch.Tensor,
    length_penalty: float,
) -> None:
    """Append the hypotheses marked in ``chosen`` ``(B, k)`` to each image's list ``found``,
    in beam order (best first). ``prefixes`` holds their tokens, row ``image * k + slot``."""
    width = chosen.shape[1]
    for image, slot in chosen.nonzero().tolist():
        tokens = prefixes[image * width + slot].tolist()
        log_prob = float(log_probs[image, slot])
        score = length_normalised_score(log_prob, len(tokens), length_penalty)
        found[image].append(_Hypothesis(tokens, log_prob, score))


def _empty_beaten_beams(
    beam_log_probs: torch.Tensor, found: list[list[_Hypothesis]]
) -> torch.Tensor:
    """Early stopping, valid only for ``length_penalty = 0``: log-probabilities only fall as
    tokens are added, so once an image's best finished hypothesis scores at least as high as
    its best live one, no live one can ever win; its beam is emptied (set to ``-inf``)."""
    best_found = torch.tensor(
        [max((h.log_prob for h in hypotheses), default=-math.inf) for hypotheses in found],
        dtype=beam_log_probs.dtype,
        device=beam_log_probs.device,
    )
    beaten = beam_log_probs.max(dim=1).values <= best_found
    return beam_log_probs.masked_fill(beaten[:, None], -math.inf)


def _run_beams(
    model: StepModel,
    images: torch.Tensor,
    max_len: int,
    width: int,
    length_penalty: float,
    bos_id: int,
    eos_id: int,
) -> list[list[_Hypothesis]]:
    """Search every image's beam at once; return each image's candidates in the order they
    were found: the finished hypotheses step by step, then those cut at ``max_len``.

    The ``B`` beams of ``k`` hypotheses are one batch of ``B * k`` rows: row ``i * k + j`` is
    slot ``j`` of image ``i``. An empty slot has log-probability ``-inf``; its row still runs
    through the model (the result is ignored), which keeps the batch a fixed size.
    """
    batch, device = images.shape[0], images.device
    rows = batch * width
    copies = torch.arange(batch, device=device).repeat_interleave(width)  # 0,0,..,1,1,..
    state = select_state(model.init_state(images), copies)
    first_row_of_image = torch.arange(batch, device=device)[:, None] * width  # (B, 1)
    # The k copies of the start are identical: expanding them all would fill the beam with
    # k copies of the same continuations. Only slot 0 is live; the others start empty.
    beam_log_probs = torch.full((batch, width), -math.inf, device=device)
    beam_log_probs[:, 0] = 0.0
    prefixes = torch.zeros(rows, 0, dtype=torch.long, device=device)  # generated tokens
    tokens = torch.full((rows,), bos_id, dtype=torch.long, device=device)
    found: list[list[_Hypothesis]] = [[] for _ in range(batch)]
    for _ in range(max_len):
        logits, state = model.step(tokens, state)
        _check_logits(logits, rows, eos_id, bos_id)
        step_log_probs = _step_log_probs(logits).view(batch, width, -1)
        beam_log_probs, slots, new_tokens = _best_continuations(beam_log_probs, step_log_probs)
        parent_rows = (first_row_of_image + slots).flatten()  # the row each winner extends
        state = select_state(state, parent_rows)
        tokens = new_tokens.flatten()
        prefixes = torch.cat([prefixes[parent_rows], tokens[:, None]], dim=1)
        # A hypothesis that ends with <eos> is finished: it leaves the beam for good and
        # its slot is refilled from the other hypotheses' continuations (with k = 1 none is
        # left, so the search stops there: exactly greedy decoding).
        ended = (new_tokens == eos_id) & (beam_log_probs > -math.inf)
        _collect(found, prefixes, beam_log_probs, ended, length_penalty)
        beam_log_probs = beam_log_probs.masked_fill(ended, -math.inf)
        if length_penalty == 0:
            beam_log_probs = _empty_beaten_beams(beam_log_probs, found)
        if bool((beam_log_probs == -math.inf).all()):
            break
    # Hypotheses still live after max_len tokens never ended: they compete as they are.
    _collect(found, prefixes, beam_log_probs, beam_log_probs > -math.inf, length_penalty)
    return found


def _pad_rows(sequences: list[list[int]], pad_id: int, device: torch.device) -> torch.Tensor:
    """Stack token lists into a LongTensor ``(B, longest)``, padding with ``pad_id``."""
    out = torch.full(
        (len(sequences), max(map(len, sequences))), pad_id, dtype=torch.long, device=device
    )
    for row, sequence in enumerate(sequences):
        out[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return out


@torch.no_grad()
def beam_search(
    model: StepModel,
    images: torch.Tensor,
    max_len: int,
    beam_width: int = 3,
    length_penalty: float = 0.0,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
    return_scores: bool = False,
) -> torch.Tensor | BeamSearchResult:
    """Generate the most likely sequence per image that a beam of ``beam_width`` finds.

    **The beam.** Greedy search keeps one partial sequence (a *hypothesis*) and extends it
    with its most likely token. Beam search keeps the ``k = beam_width`` most likely
    hypotheses: at every step it scores all ``k * V`` one-token continuations by their
    log-probability (the sum of the log-probabilities of their tokens) and keeps the best
    ``k``. A token that looks second-best now can thus win later. It starts from ``<bos>``
    alone (one hypothesis, not ``k`` copies of it), so a beam wider than the vocabulary
    holds no duplicates.

    **<eos>.** A kept continuation that ends with ``eos_id`` is *finished*: it moves to a list
    of candidates, is never extended, and frees its place; the other hypotheses carry on.
    Since finished ones leave the beam, it may shrink (``beam_width=1`` is exactly
    :func:`greedy_decode`). Hypotheses still unfinished after ``max_len`` tokens are also
    candidates, as they are (cut, no ``<eos>``, length ``max_len``).

    **Ranking.** Among all candidates the winner has the highest
    :func:`length_normalised_score`, ``log_prob / length ** length_penalty`` (``length``
    counts ``<eos>``). Raw log-probabilities (``length_penalty=0``) favour short sequences,
    since every token lowers them; ``length_penalty=1`` ranks by the mean log-probability
    per token. Equal scores go to the candidate found first (shorter, then higher in the
    beam). Within one step all continuations have the same length, so the beam itself is
    always ranked by raw log-probability.

    **Stopping.** The search ends after ``max_len`` steps, or once every beam is empty. With
    ``length_penalty=0`` it also stops an image's beam once its best finished candidate
    scores at least as high as its best live hypothesis: log-probabilities only fall, so no
    live one could win. With ``length_penalty > 0`` a longer sequence's score can rise
    (the division grows), so no such shortcut is safe and the beam runs on.

    An ``nn.Module`` is run in eval mode (dropout off) and put back in its mode afterwards.

    Args:
        model: offers ``init_state`` and ``step`` (:class:`StepModel`); its state is
            reordered with :func:`select_state`, all images' beams in one ``B * k`` batch.
        images: the inputs ``init_state`` takes, batch first: ``(B, C, H, W)``.
        max_len: most tokens generated per row, ``<eos>`` included (at least 1).
        beam_width: hypotheses kept per image, ``k`` (a positive int).
        length_penalty: ``alpha >= 0`` of the length normalisation; 0 ranks by raw
            log-probability.
        bos_id, eos_id, pad_id: the special tokens (defaults from :mod:`mmcourse.vocab`).
        return_scores: also return each sequence's log-probability and score.

    Returns:
        LongTensor ``(B, L)``, ``L <= max_len``, in the format of :func:`greedy_decode`: the
        generated tokens without ``<bos>``, each row ending with ``<eos>`` (unless cut at
        ``max_len``) and padded with ``pad_id``. With ``return_scores=True``, a
        :class:`BeamSearchResult` ``(tokens, log_probs, scores)``.

    Beam search is a heuristic: only a beam wide enough to hold every hypothesis is sure to
    find the best-scoring sequence, and a wider beam can even end worse than a narrower one.
    """
    _check_decode_args(model, images, max_len, eos_id, pad_id)
    _check_beam_args(beam_width, length_penalty, return_scores)
    with eval_mode(model):
        found = _run_beams(model, images, max_len, beam_width, length_penalty, bos_id, eos_id)
    # max returns the first of equal scores, i.e. the candidate found first.
    best = [max(candidates, key=lambda hypothesis: hypothesis.score) for candidates in found]
    tokens = _pad_rows([hypothesis.tokens for hypothesis in best], pad_id, images.device)
    if not return_scores:
        return tokens
    log_probs = torch.tensor([hypothesis.log_prob for hypothesis in best], device=images.device)
    scores = torch.tensor([hypothesis.score for hypothesis in best], device=images.device)
    return BeamSearchResult(tokens, log_probs, scores)


class Candidate(NamedTuple):
    """One finished (or cut) sequence of a beam, as :func:`beam_candidates` lists them."""

    tokens: list[int]
    log_prob: float
    score: float


@torch.no_grad()
def beam_candidates(
    model: StepModel,
    image: torch.Tensor,
    max_len: int,
    beam_width: int = 3,
    length_penalty: float = 0.0,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
) -> list[Candidate]:
    """Every candidate :func:`beam_search` weighs for one input, best first: the sequences
    that ended with ``<eos>`` while the beam ran (and those cut at ``max_len``), each with its
    log-probability and length-normalised score. The first is what :func:`beam_search`
    returns; the others are the beam's alternatives. ``image`` is a batch of one,
    ``(1, C, H, W)``; tokens exclude ``<bos>`` and include ``<eos>``.

    With ``length_penalty=0`` the search stops as soon as no live hypothesis can win, so
    fewer alternatives may be listed than with a penalty, which runs the beam to the end.
    """
    _check_decode_args(model, image, max_len, eos_id, PAD_ID)
    _check_beam_args(beam_width, length_penalty, False)
    if image.shape[0] != 1:
        raise ValueError(f"beam_candidates takes one input (a batch of 1), got {image.shape[0]}")
    with eval_mode(model):
        found = _run_beams(model, image, max_len, beam_width, length_penalty, bos_id, eos_id)[0]
    # sorted is stable: equal scores keep the order they were found in, as beam_search does
    ranked = sorted(found, key=lambda hypothesis: hypothesis.score, reverse=True)
    return [Candidate(h.tokens, h.log_prob, h.score) for h in ranked]
