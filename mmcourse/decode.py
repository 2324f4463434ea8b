"""Turning a step-by-step model into token sequences: greedy search (beam search follows).

Any model can be decoded here if it offers the **step interface** (:class:`StepModel`)::

    state = model.init_state(images)            # anything holding batch-first tensors
    logits, state = model.step(tokens, state)   # tokens (B,) long -> logits (B, V), new state

- ``init_state`` encodes the inputs once (e.g. the image) into the decoder's first state.
- ``step`` reads the previous token of every row and returns scores for the next one.
- A *state* is a tensor, ``None``, or a tuple / list / dict / dataclass of those, with the
  batch in dimension 0 of every tensor. :func:`select_state` can then keep, reorder or
  repeat rows with one index -- exactly what beam search does with its hypotheses.

:class:`mmcourse.models.captioner.Captioner` implements it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import torch

from mmcourse._validate import check_no_nan
from mmcourse.vocab import BOS_ID, EOS_ID, PAD_ID


@runtime_checkable
class StepModel(Protocol):
    """What :func:`greedy_decode` (and beam search) need from a model."""

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
        if state.dim() == 0:
            raise ValueError("a state tensor needs a batch dimension, got a scalar")
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
) -> torch.Tensor:
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
        padded with ``pad_id``. ``Vocabulary.decode_batch`` turns it into text.
    """
    _check_step_model(model)
    if not isinstance(images, torch.Tensor) or images.dim() < 1 or images.shape[0] < 1:
        raise ValueError("images must be a tensor holding a batch of at least one input")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    if eos_id == pad_id:
        raise ValueError(f"eos_id and pad_id must differ, both are {eos_id}")
    was_training = getattr(model, "training", None)
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        state = model.init_state(images)
        batch = images.shape[0]
        tokens = torch.full((batch,), bos_id, dtype=torch.long, device=images.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=images.device)
        generated = []
        for _ in range(max_len):
            logits, state = model.step(tokens, state)
            _check_logits(logits, batch, eos_id, bos_id)
            tokens = logits.argmax(dim=-1)
            generated.append(torch.where(finished, torch.full_like(tokens, pad_id), tokens))
            finished |= tokens == eos_id
            if bool(finished.all()):
                break
        return torch.stack(generated, dim=1)
    finally:
        if isinstance(model, torch.nn.Module) and was_training is not None:
            model.train(was_training)
