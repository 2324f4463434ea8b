"""Text encoders: from token ids ``(B, T)`` (right-padded with ``PAD_ID``) to vectors.

Every encoder here is *batch-first* and has

- ``forward(ids) -> (B, out_dim)``: one vector per text, padding ignored;
- ``forward_sequence(ids) -> (B, T, out_dim)``: one vector per token (where the model has one).

- :class:`BagOfWordsEncoder` -- the mean of word embeddings; word order is lost.
- :class:`RNNTextEncoder` -- an LSTM or GRU over packed sequences.
- :class:`TransformerTextEncoder` -- self-attention with sinusoidal positions and a padding mask.

Helpers: :func:`build_text_encoder` makes any of them by name (:data:`TEXT_ENCODERS`),
:class:`TextClassifier` puts a linear layer on top, and :func:`last_real_step` reads each
text's last real time step out of a padded ``(B, T, H)`` output.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmcourse._validate import check_int, check_probability, check_tensor, require
from mmcourse.vocab import PAD_ID


def check_ids(ids: torch.Tensor, vocab_size: int, name: str = "ids") -> None:
    """Raise a clear ``TypeError``/``ValueError`` unless ``ids`` is a LongTensor ``(B, T)`` of
    valid ids."""
    check_tensor(ids, name)
    require(ids.dim() == 2, f"{name} must have shape (B, T) (batch first), got {tuple(ids.shape)}")
    if ids.dtype != torch.long:
        raise ValueError(f"{name} must hold integer token ids (torch.long), got {ids.dtype}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"{name} holds ids outside 0..{vocab_size - 1} (vocabulary size {vocab_size}): "
            f"min {int(ids.min())}, max {int(ids.max())}"
        )


def _check_vocab_size(vocab_size: int, pad_id: int) -> None:
    check_int(vocab_size, "vocab_size")
    check_int(pad_id, "pad_id", minimum=0, maximum=vocab_size - 1)


def ids_to_lengths(ids: torch.Tensor, pad_id: int = PAD_ID) -> torch.Tensor:
    """``(B,)`` number of real tokens of each right-padded row (at least 1)."""
    return (ids != pad_id).sum(dim=1).clamp_min(1)


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal position signal of "Attention Is All You Need" to ``(B, T, D)``.

    PE[pos, 2i] = sin(pos / 10000^(2i/D)), PE[pos, 2i+1] = cos(pos / 10000^(2i/D)).
    """

    def __init__(self, d_model: int, max_len: int = 128) -> None:
        super().__init__()
        check_int(d_model, "d_model")
        check_int(max_len, "max_len")
        require(not d_model % 2, f"d_model must be even, got {d_model}")
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        frequency = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
        )
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.table.shape[1]:
            raise ValueError(f"expected (B, T, {self.table.shape[1]}), got {tuple(x.shape)}")
        if x.shape[1] > self.table.shape[0]:
            raise ValueError(
                f"sequence of {x.shape[1]} tokens is longer than max_len={self.table.shape[0]}"
            )
        return x + self.table[: x.shape[1]]


class BagOfWordsEncoder(nn.Module):
    """The mean of the embeddings of a text's (non-padding) words."""

    def __init__(self, vocab_size: int, dim: int = 64, pad_id: int = PAD_ID) -> None:
        super().__init__()
        _check_vocab_size(vocab_size, pad_id)
        check_int(dim, "dim")
        self.vocab_size, self.out_dim, self.pad_id = vocab_size, dim, pad_id
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=pad_id)

    def forward_sequence(self, ids: torch.Tensor) -> torch.Tensor:
        check_ids(ids, self.vocab_size)
        return self.embedding(ids)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_ids(ids, self.vocab_size)
        return self.forward_padded(ids)

    def forward_sequence_padded(self, ids: torch.Tensor) -> torch.Tensor:
        """``forward_sequence`` without the id check (for ``torch.export``)."""
        return self.embedding(ids)

    def forward_padded(self, ids: torch.Tensor) -> torch.Tensor:
        """``forward`` without the id check: the same vectors, with no Python decision on
        tensor values (what ``torch.export`` needs). ``ids`` must be valid and right-padded."""
        real = (ids != self.pad_id).unsqueeze(-1).float()
        return (self.embedding(ids) * real).sum(dim=1) / real.sum(dim=1).clamp_min(1.0)


class RNNTextEncoder(nn.Module):
    """An LSTM or GRU text encoder, batch first, over packed sequences.

    Packing (``pack_padded_sequence``) makes the RNN stop at each text's last real token, so
    the final hidden state never reads padding. ``forward`` returns that final state
    (forward and backward directions concatenated when ``bidirectional``).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_dim: int = 64,
        cell: str = "lstm",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pad_id: int = PAD_ID,
    ) -> None:
        super().__init__()
        rnns = {"lstm": nn.LSTM, "gru": nn.GRU}
        require(cell in rnns, f"cell must be 'lstm' or 'gru', got {cell!r}")
        _check_vocab_size(vocab_size, pad_id)
        check_int(embed_dim, "embed_dim")
        check_int(hidden_dim, "hidden_dim")
        check_int(num_layers, "num_layers")
        check_probability(dropout, "dropout")
        self.vocab_size, self.pad_id, self.cell = vocab_size, pad_id, cell
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = rnns[cell](
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.out_dim = hidden_dim * (2 if bidirectional else 1)

    def _run(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_ids(ids, self.vocab_size)
        lengths = ids_to_lengths(ids, self.pad_id)
        packed = pack_padded_sequence(
            self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, state = self.rnn(packed)
        hidden = state[0] if self.cell == "lstm" else state
        return outputs, hidden

    def forward_sequence(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T, out_dim)``; positions after a text's end are zeros."""
        outputs, _ = self._run(ids)
        padded, _ = pad_packed_sequence(outputs, batch_first=True, total_length=ids.shape[1])
        return padded

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, hidden = self._run(ids)  # (layers * directions, B, H)
        if self.rnn.bidirectional:
            return torch.cat([hidden[-2], hidden[-1]], dim=-1)
        return hidden[-1]

    def forward_sequence_padded(self, ids: torch.Tensor) -> torch.Tensor:
        """``forward_sequence`` without the id check and without packing, for ``torch.export``
        (no Python decision on tensor values). ``ids`` must be valid and right-padded.

        The RNN runs over the whole padded batch: a forward direction's state at a real
        token has not read the padding after it. A backward direction must start at each
        text's *last* token, so it runs a second time on a copy with the padding moved to
        the front (it then reads the padding last) and its states are shifted back. That
        trick holds for one layer; a stacked bidirectional RNN gets a ``ValueError`` (its
        second layer would mix the two copies)."""
        if self.rnn.bidirectional and self.rnn.num_layers > 1:
            raise ValueError(
                "forward_sequence_padded handles a bidirectional RNN of one layer only, got "
                f"{self.rnn.num_layers} layers; use forward_sequence (packed) instead"
            )
        steps = torch.arange(ids.shape[1], device=ids.device)
        lengths = ids_to_lengths(ids, self.pad_id)
        inside = (steps[None] < lengths[:, None]).unsqueeze(-1)  # (B, T, 1)
        outputs, _ = self.rnn(self.embedding(ids))
        if self.rnn.bidirectional:
            hidden = self.rnn.hidden_size
            shift = (ids.shape[1] - lengths)[:, None]  # (B, 1): padding moved to the front
            source = steps[None] - shift
            front = ids.gather(1, source.clamp_min(0)).masked_fill(source < 0, self.pad_id)
            backward, _ = self.rnn(self.embedding(front))
            back_at = (steps[None] + shift).clamp_max(ids.shape[1] - 1)
            backward = backward[..., hidden:].gather(
                1, back_at.unsqueeze(-1).expand(-1, -1, hidden)
            )
            outputs = torch.cat([outputs[..., :hidden], backward], dim=-1)
        return outputs * inside

    def forward_padded(self, ids: torch.Tensor) -> torch.Tensor:
        """``forward`` computed by :meth:`forward_sequence_padded`, for ``torch.export``: the
        forward direction read at each text's last real token (and the backward one at its
        first)."""
        states = self.forward_sequence_padded(ids)
        last = _gather_last(states, ids_to_lengths(ids, self.pad_id))
        if not self.rnn.bidirectional:
            return last
        hidden = self.rnn.hidden_size
        return torch.cat([last[:, :hidden], states[:, 0, hidden:]], dim=-1)


class TransformerTextEncoder(nn.Module):
    """A small Transformer encoder: embeddings x sqrt(d) + positions, self-attention layers
    that ignore padding (``src_key_padding_mask``), then mean pooling over real tokens.

    The embeddings start from N(0, 1/d), so words and positions enter with the same size.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        max_len: int = 128,
        pad_id: int = PAD_ID,
    ) -> None:
        super().__init__()
        _check_vocab_size(vocab_size, pad_id)
        check_int(d_model, "d_model")
        check_int(nhead, "nhead")
        check_int(num_layers, "num_layers")
        check_int(dim_feedforward, "dim_feedforward")
        check_probability(dropout, "dropout")
        check_int(max_len, "max_len")
        require(not d_model % nhead, f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        self.vocab_size, self.pad_id, self.out_dim = vocab_size, pad_id, d_model
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        # nn.Embedding starts from N(0, 1): times sqrt(d_model) the word vectors would be
        # ~sqrt(d_model) times larger than the positions (values in [-1, 1]) and drown them,
        # leaving the model nearly blind to word order. Start from N(0, 1/d_model) instead,
        # so that after the scaling words and positions have the same size.
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.positions = PositionalEncoding(d_model, max_len)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward_sequence(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T, d_model)``: one contextual vector per token."""
        check_ids(ids, self.vocab_size)
        return self.forward_sequence_padded(ids)

    def forward_sequence_padded(self, ids: torch.Tensor) -> torch.Tensor:
        """``forward_sequence`` without the id check (for ``torch.export``)."""
        x = self.positions(self.embedding(ids) * math.sqrt(self.out_dim))
        mask = ids == self.pad_id
        # A row of padding only would leave attention nothing to look at (NaN); let its first
        # position attend to itself. Pooling in forward still ignores it (a zero vector).
        mask[:, 0] &= ~mask.all(dim=1)
        return self.encoder(x, src_key_padding_mask=mask)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_ids(ids, self.vocab_size)
        return self.forward_padded(ids)

    def forward_padded(self, ids: torch.Tensor) -> torch.Tensor:
        """``forward`` without the id check: the same vectors, with no Python decision on
        tensor values (what ``torch.export`` needs). ``ids`` must be valid and right-padded."""
        vectors = self.forward_sequence_padded(ids)
        real = (ids != self.pad_id).unsqueeze(-1).float()
        return (vectors * real).sum(dim=1) / real.sum(dim=1).clamp_min(1.0)


TEXT_ENCODERS = ("bow", "lstm", "gru", "transformer")
"""The names :func:`build_text_encoder` understands."""


def build_text_encoder(kind: str, vocab_size: int, dim: int = 64, **kwargs: object) -> nn.Module:
    """A text encoder by name, with ``out_dim == dim``.

    ``kind`` is one of :data:`TEXT_ENCODERS`: ``"bow"`` (:class:`BagOfWordsEncoder`),
    ``"lstm"``/``"gru"`` (:class:`RNNTextEncoder` with ``embed_dim = hidden_dim = dim``) or
    ``"transformer"`` (:class:`TransformerTextEncoder` with ``d_model = dim``). Extra keyword
    arguments go to the encoder's constructor.
    """
    require(kind in TEXT_ENCODERS, f"kind must be one of {TEXT_ENCODERS}, got {kind!r}")
    check_int(vocab_size, "vocab_size")
    check_int(dim, "dim")
    if kind == "bow":
        return BagOfWordsEncoder(vocab_size, dim, **kwargs)
    if kind in ("lstm", "gru"):
        return RNNTextEncoder(vocab_size, dim, dim, cell=kind, **kwargs)
    return TransformerTextEncoder(vocab_size, d_model=dim, **kwargs)


class TextClassifier(nn.Module):
    """A text encoder followed by one linear layer: ids ``(B, T)`` -> logits ``(B, classes)``."""

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        if not isinstance(getattr(encoder, "out_dim", None), int):
            raise ValueError("encoder must have an int attribute out_dim (its output size)")
        check_int(num_classes, "num_classes")
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids))


def last_real_step(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, H)``: row ``b`` of ``outputs`` ``(B, T, H)`` at time step ``lengths[b] - 1``.

    The fix for the classic bug ``outputs[:, -1]``, which reads the output at a *padding*
    position for every text shorter than the batch's longest.
    """
    if not isinstance(outputs, torch.Tensor) or outputs.dim() != 3:
        raise ValueError(f"outputs must be a (B, T, H) tensor, got {_shape_of(outputs)}")
    if not isinstance(lengths, torch.Tensor) or lengths.shape != outputs.shape[:1]:
        raise ValueError(f"lengths must have shape ({outputs.shape[0]},), got {_shape_of(lengths)}")
    if lengths.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"lengths must be integers, got {lengths.dtype}")
    if len(lengths) and (lengths.min() < 1 or lengths.max() > outputs.shape[1]):
        raise ValueError(
            f"lengths must lie in 1..{outputs.shape[1]} (the T of outputs), got "
            f"{int(lengths.min())}..{int(lengths.max())}"
        )
    return _gather_last(outputs, lengths)


def _gather_last(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """:func:`last_real_step` without its checks (``torch.export`` traces this)."""
    index = (lengths.long() - 1).to(outputs.device)[:, None, None]
    return outputs.gather(1, index.expand(-1, 1, outputs.shape[2])).squeeze(1)


def _shape_of(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}"
    return type(value).__name__
