"""Captioners: from an image to a sentence, one token at a time.

:class:`Captioner` is a small "Show and Tell" model (Vinyals et al., CVPR 2015): a CNN turns
the canvas into one vector, that vector becomes the first hidden state of a GRU or LSTM, and
the recurrent decoder writes the caption word by word.

Two ways to run the decoder
---------------------------
*Training* uses **teacher forcing**: the decoder reads the reference caption shifted right
and predicts it shifted left (:func:`teacher_forcing_pairs`)::

    caption   <bos> a  small seven on the left <eos>
    inputs    <bos> a  small seven on the left          (caption[:-1])
    targets         a  small seven on the left <eos>    (caption[1:])

so :meth:`Captioner.forward` sees all positions at once and returns logits ``(B, T, V)``.

*Generation* has no reference to read, so it runs the **step interface** that
:mod:`mmcourse.decode` (greedy search, beam search) drives::

    state = model.init_state(images)          # a batch-first CaptionerState
    logits, state = model.step(tokens, state) # tokens (B,) -> logits (B, V)

Every tensor in the state has the batch in dimension 0, so a search can keep, drop or
duplicate hypotheses with one index (:func:`mmcourse.decode.select_state`).

The image vector keeps each digit's position by default: the encoder's 8x8 grid of region
vectors is flattened, not averaged (:class:`~mmcourse.models.pooling.ImageVector`).

An attention decoder ("Show, Attend and Tell", Xu et al., ICML 2015) fits the same mould: its
``init_state`` keeps the grid of region vectors in ``CaptionerState.memory`` (from
``image_encoder.encoder.forward_grid``), its ``step`` attends over them, and its ``forward``
can simply be :meth:`Captioner.forward_stepwise`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmcourse._validate import check_int, check_probability, check_same_batch, require
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.pooling import ImageVector
from mmcourse.models.text import check_ids
from mmcourse.vocab import PAD_ID


def teacher_forcing_pairs(captions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split padded captions ``(B, T)`` (``<bos> ... <eos> <pad>...``) into decoder inputs
    ``captions[:, :-1]`` and targets ``captions[:, 1:]``, both ``(B, T - 1)``.

    The target at position ``t`` is the token that follows input ``t``; a loss that ignores
    ``<pad>`` targets (:func:`mmcourse.losses.sequence_loss`) then scores every real word and
    the final ``<eos>``.
    """
    if not isinstance(captions, torch.Tensor) or captions.dim() != 2:
        shape = tuple(captions.shape) if isinstance(captions, torch.Tensor) else None
        raise ValueError(f"captions must be a (B, T) tensor of token ids, got {shape}")
    if captions.shape[1] < 2:
        raise ValueError(
            f"captions need at least 2 tokens (<bos> and one more), got T={captions.shape[1]}"
        )
    return captions[:, :-1], captions[:, 1:]


def check_step_tokens(tokens: object, batch: int) -> None:
    """Raise a clear ``ValueError`` unless ``tokens`` is what a decoder's ``step`` reads: a 1-D
    tensor ``(B,)`` of token ids with one row per row of the state (``batch``)."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 1:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else None
        raise ValueError(f"tokens must be a 1-D tensor (B,) of token ids, got {shape}")
    if tokens.shape[0] != batch:
        raise ValueError(f"tokens hold {tokens.shape[0]} rows but the state holds {batch}")


@dataclass
class CaptionerState:
    """What a recurrent caption decoder carries from one step to the next.

    All tensors are batch first, so ``state.hidden[i]`` belongs to the ``i``-th caption.

    Attributes:
        hidden: ``(B, num_layers, hidden_dim)``, the GRU/LSTM hidden state.
        cell: ``(B, num_layers, hidden_dim)``, the LSTM cell state (``None`` for a GRU).
        memory: what the decoder reads from the image at *every* step, ``(B, R, D)``:
            :class:`Captioner` keeps one projected image vector (``R = 1``) when
            ``image_input`` is on, else ``None`` (the image then only sets the first
            state); an attention decoder keeps all ``R`` region vectors and attends over them.
    """

    hidden: torch.Tensor
    cell: torch.Tensor | None = None
    memory: torch.Tensor | None = None


class Captioner(nn.Module):
    """Show and Tell: the image vector initialises a GRU/LSTM language model.

    With ``image_input=True`` (the default) the decoder also reads a projection of the image
    vector next to each word embedding, so it need not carry everything it saw through
    thirty steps of its state; with ``image_input=False`` it is Show and Tell's pure
    "the image only starts the sentence" decoder.

    Args:
        vocab_size: number of tokens ``V`` (logits have this many columns).
        embed_dim: word-embedding size.
        hidden_dim: size of the recurrent state.
        cell: ``"gru"`` or ``"lstm"``.
        num_layers: stacked recurrent layers.
        image_encoder: any module mapping images ``(B, C, H, W)`` to ``(B, out_dim)`` with an
            ``out_dim`` attribute; default a :class:`CanvasEncoder` (``image_dim`` features per
            region, conv widths ``image_channels``) pooled by
            :class:`~mmcourse.models.pooling.ImageVector` with ``pooling``.
        pooling: ``"flatten"`` keeps where each digit stands (captions name positions),
            ``"mean"`` averages it away; used only for the default image encoder.
        image_input: also feed the projected image vector (``embed_dim`` wide) into every
            step, next to the word embedding.
        dropout: dropout on word embeddings and on the decoder's outputs.
        pad_id: the padding token (its embedding stays zero).

    Shapes: ``forward(images (B, 1, 64, 64), input_ids (B, T)) -> logits (B, T, V)``.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_dim: int = 128,
        cell: str = "gru",
        num_layers: int = 1,
        image_encoder: nn.Module | None = None,
        image_dim: int = 32,
        image_channels: tuple[int, ...] = (16, 32, 64),
        pooling: str = "flatten",
        image_input: bool = True,
        dropout: float = 0.0,
        pad_id: int = PAD_ID,
    ) -> None:
        super().__init__()
        rnns = {"gru": nn.GRU, "lstm": nn.LSTM}
        require(cell in rnns, f"cell must be 'gru' or 'lstm', got {cell!r}")
        for name, value in [
            ("vocab_size", vocab_size),
            ("embed_dim", embed_dim),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
        ]:
            check_int(value, name)
        check_probability(dropout, "dropout")
        check_int(pad_id, "pad_id", minimum=0, maximum=vocab_size - 1)
        if image_encoder is None:
            image_encoder = ImageVector(CanvasEncoder(image_dim, image_channels), pooling)
        if not isinstance(getattr(image_encoder, "out_dim", None), int):
            raise ValueError("image_encoder must have an int attribute out_dim")
        self.vocab_size, self.pad_id, self.cell = vocab_size, pad_id, cell
        self.hidden_dim, self.num_layers = hidden_dim, num_layers
        self.image_encoder = image_encoder
        self.init_hidden = nn.Linear(image_encoder.out_dim, num_layers * hidden_dim)
        self.init_cell = (
            nn.Linear(image_encoder.out_dim, num_layers * hidden_dim) if cell == "lstm" else None
        )
        self.image_input = nn.Linear(image_encoder.out_dim, embed_dim) if image_input else None
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = rnns[cell](
            embed_dim * (2 if image_input else 1),
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_dim, vocab_size)

    # ------------------------------------------------------------------ the step interface
    def init_state(self, images: torch.Tensor) -> CaptionerState:
        """Encode ``images`` ``(B, C, H, W)`` into the decoder's first state:
        ``hidden = tanh(W_h v)`` (and ``cell = tanh(W_c v)`` for an LSTM), ``v`` the image
        vector ``(B, out_dim)``; with ``image_input``, ``memory = W_x v`` ``(B, 1, embed_dim)``."""
        vector = self.image_encoder(images)
        batch = vector.shape[0]

        def start(layer: nn.Linear) -> torch.Tensor:
            return torch.tanh(layer(vector)).view(batch, self.num_layers, self.hidden_dim)

        cell = start(self.init_cell) if self.init_cell is not None else None
        memory = self.image_input(vector)[:, None] if self.image_input is not None else None
        return CaptionerState(hidden=start(self.init_hidden), cell=cell, memory=memory)

    def step(
        self, tokens: torch.Tensor, state: CaptionerState
    ) -> tuple[torch.Tensor, CaptionerState]:
        """One decoding step: the previous tokens ``(B,)`` and the state -> logits ``(B, V)``
        for the next token, and the new state."""
        check_step_tokens(tokens, state.hidden.shape[0])
        logits, state = self._decode(tokens[:, None], state)
        return logits[:, 0], state

    # ------------------------------------------------------------------ teacher forcing
    def forward(self, images: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: images ``(B, C, H, W)`` and decoder inputs ``(B, T)``
        (``caption[:, :-1]``, see :func:`teacher_forcing_pairs`) -> logits ``(B, T, V)``;
        ``logits[:, t]`` scores the token that follows ``input_ids[:, t]``."""
        check_ids(input_ids, self.vocab_size, "input_ids")
        check_same_batch(images, input_ids, "images", "input_ids")
        logits, _ = self._decode(input_ids, self.init_state(images))
        return logits

    def forward_stepwise(self, images: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing through :meth:`step`, one position at a time: the same logits as
        :meth:`forward`, slower. Decoders whose step cannot run over a whole sequence at once
        (attention) use this as their ``forward``."""
        check_ids(input_ids, self.vocab_size, "input_ids")
        state = self.init_state(images)
        check_same_batch(state.hidden, input_ids, "images", "input_ids")
        steps = []
        for t in range(input_ids.shape[1]):
            logits, state = self.step(input_ids[:, t], state)
            steps.append(logits)
        return torch.stack(steps, dim=1)

    def _decode(
        self, ids: torch.Tensor, state: CaptionerState
    ) -> tuple[torch.Tensor, CaptionerState]:
        """Run the recurrent decoder over ``ids`` ``(B, T)`` from ``state``."""
        embedded = self.dropout(self.embedding(ids))  # (B, T, E)
        if self.image_input is not None:
            if state.memory is None:
                raise ValueError("a captioner with image_input needs state.memory, got None")
            image = state.memory.expand(-1, ids.shape[1], -1)  # the same vector at every step
            embedded = torch.cat([embedded, image], dim=-1)
        hidden = state.hidden.transpose(0, 1).contiguous()  # (layers, B, H), as nn.RNN wants
        if self.cell == "lstm":
            require(state.cell is not None, "an LSTM captioner needs state.cell, got None")
            outputs, (hidden, cell) = self.rnn(
                embedded, (hidden, state.cell.transpose(0, 1).contiguous())
            )
            new_cell = cell.transpose(0, 1)
        else:
            outputs, hidden = self.rnn(embedded, hidden)
            new_cell = None
        logits = self.output(self.dropout(outputs))
        new_state = CaptionerState(hidden.transpose(0, 1), new_cell, state.memory)
        return logits, new_state
