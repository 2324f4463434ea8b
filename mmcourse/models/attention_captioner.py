"""Show, Attend and Tell: a recurrent captioner that looks at a different region for each word.

Show and Tell (:class:`~mmcourse.models.captioner.Captioner`) squeezes the whole canvas into
one vector before the first word. Xu et al. (ICML 2015) keep the encoder's grid of ``R``
region vectors ``a_1 .. a_R`` and, before every word, let the decoder choose where to look::

    e_r   = w^T tanh(W_a a_r + W_h h_{t-1})      # additive (Bahdanau) score of region r
    alpha = softmax(e)                           # (R,) where to look, sums to 1
    z_t   = beta_t * sum_r alpha_r a_r           # the context; beta_t = sigmoid(f_beta(h_{t-1}))
    h_t   = LSTM([embed(y_{t-1}), z_t], h_{t-1}) # the recurrent step
    p(y_t) = softmax(W_o [h_t, z_t])

``beta`` is the paper's gate: the decoder can shut the image out for words such as "and" or
"on the", which the grammar alone predicts. ``alpha`` is what the case study draws over the
canvas, word by word.

The regions also get a learned **position embedding** (one vector per region, added to it): a
convolution looks the same everywhere, so without it "the seven" and "on the left" would have
to be read from the CNN's border effects alone.

Step interface (as :mod:`mmcourse.decode` needs): ``init_state(images)`` then
``step(tokens, state)``; :meth:`AttentionCaptioner.forward` runs the same steps under teacher
forcing, and :meth:`~AttentionCaptioner.forward_with_attention` also returns every ``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmcourse._validate import check_same_batch
from mmcourse.models.captioner import check_step_tokens
from mmcourse.models.grid import check_decoder_args
from mmcourse.models.text import check_ids
from mmcourse.vocab import PAD_ID

__all__ = ["AdditiveAttention", "AttentionCaptioner", "AttentionState"]


@dataclass
class AttentionState:
    """What the attention decoder carries from one word to the next (all batch first).

    Attributes:
        hidden, cell: ``(B, hidden_dim)``, the LSTM's state.
        regions: ``(B, R, D)``, the region vectors with their positions (read at every step).
        keys: ``(B, R, attention_dim)``, ``W_a a_r``: the regions' half of every attention
            score, computed once per image instead of once per word.
        attention: ``(B, R)``, the weights ``alpha`` of the last step (zeros before the first).
    """

    hidden: torch.Tensor
    cell: torch.Tensor
    regions: torch.Tensor
    keys: torch.Tensor
    attention: torch.Tensor


class AdditiveAttention(nn.Module):
    """Bahdanau's additive attention: ``alpha = softmax_r(w^T tanh(keys_r + W_h h))``.

    ``project_keys(regions (B, R, D)) -> (B, R, A)`` is done once per image;
    ``forward(keys (B, R, A), hidden (B, H)) -> alpha (B, R)`` once per word.

    The score ``w`` has no bias: a constant added to every region's score is cancelled by the
    softmax over regions, so such a bias would get a zero gradient and never learn.
    """

    def __init__(self, region_dim: int, hidden_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(region_dim, attention_dim)
        self.query = nn.Linear(hidden_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def project_keys(self, regions: torch.Tensor) -> torch.Tensor:
        """``(B, R, D) -> (B, R, A)``."""
        return self.key(regions)

    def forward(self, keys: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, R, A)`` keys and ``(B, H)`` decoder state -> weights ``(B, R)`` summing to 1."""
        scores = self.score(torch.tanh(keys + self.query(hidden)[:, None])).squeeze(-1)
        return scores.softmax(dim=-1)


class AttentionCaptioner(nn.Module):
    """Show, Attend and Tell on a grid of image regions.

    Args:
        vocab_size: tokens ``V``.
        image_encoder: gives ``forward_grid(images) -> (B, R, D)`` with an ``out_dim`` (``D``)
            and ``grid_size()``: a :class:`~mmcourse.models.image.CanvasEncoder`, the case
            study's pretrained backbone, or a :class:`~mmcourse.models.grid.StoredGrid`.
        embed_dim: word-embedding size.
        hidden_dim: the LSTM's state size.
        attention_dim: size ``A`` of the additive attention's hidden layer.
        dropout: on word embeddings and before the output layer.
        pad_id: the padding token.

    Shapes: ``forward(images, input_ids (B, T)) -> logits (B, T, V)``.
    """

    def __init__(
        self,
        vocab_size: int,
        image_encoder: nn.Module,
        embed_dim: int = 64,
        hidden_dim: int = 128,
        attention_dim: int = 64,
        dropout: float = 0.0,
        pad_id: int = PAD_ID,
    ) -> None:
        super().__init__()
        regions, region_dim = check_decoder_args(
            image_encoder,
            vocab_size,
            dropout,
            pad_id,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            attention_dim=attention_dim,
        )
        self.vocab_size, self.pad_id = vocab_size, pad_id
        self.image_encoder = image_encoder
        self.position = nn.Parameter(torch.zeros(regions, region_dim))
        nn.init.normal_(self.position, std=0.02)
        self.init_hidden = nn.Linear(region_dim, hidden_dim)
        self.init_cell = nn.Linear(region_dim, hidden_dim)
        self.attention = AdditiveAttention(region_dim, hidden_dim, attention_dim)
        self.gate = nn.Linear(hidden_dim, 1)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.lstm = nn.LSTMCell(embed_dim + region_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_dim + region_dim, vocab_size)

    # ------------------------------------------------------------------ the step interface
    def init_state(self, images: torch.Tensor) -> AttentionState:
        """Encode the images once: regions (plus positions), their attention keys, and the
        first LSTM state from the mean region."""
        regions = self.image_encoder.forward_grid(images)
        if regions.dim() != 3 or regions.shape[1:] != self.position.shape:
            raise ValueError(
                f"the image encoder gave regions {tuple(regions.shape)}, expected "
                f"(B, {self.position.shape[0]}, {self.position.shape[1]})"
            )
        regions = regions + self.position
        mean = regions.mean(dim=1)
        return AttentionState(
            hidden=torch.tanh(self.init_hidden(mean)),
            cell=torch.tanh(self.init_cell(mean)),
            regions=regions,
            keys=self.attention.project_keys(regions),
            attention=regions.new_zeros(regions.shape[:2]),
        )

    def step(
        self, tokens: torch.Tensor, state: AttentionState
    ) -> tuple[torch.Tensor, AttentionState]:
        """One word: previous tokens ``(B,)`` -> logits ``(B, V)`` and the new state (whose
        ``attention`` holds where this step looked)."""
        check_step_tokens(tokens, state.hidden.shape[0])
        state, context = self._advance(self.dropout(self.embedding(tokens)), state)
        return self._logits(state.hidden, context), state

    def _advance(
        self, words: torch.Tensor, state: AttentionState
    ) -> tuple[AttentionState, torch.Tensor]:
        """Attend, then run the LSTM one step on the embedded words ``(B, E)``; returns the new
        state and the gated context ``z_t`` ``(B, D)``."""
        alpha = self.attention(state.keys, state.hidden)  # (B, R)
        context = (alpha[:, :, None] * state.regions).sum(dim=1)  # (B, D)
        context = torch.sigmoid(self.gate(state.hidden)) * context
        hidden, cell = self.lstm(torch.cat([words, context], dim=-1), (state.hidden, state.cell))
        return AttentionState(hidden, cell, state.regions, state.keys, alpha), context

    def _logits(self, hidden: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``p(y_t)``'s logits from ``[h_t, z_t]`` (any leading dimensions)."""
        return self.output(self.dropout(torch.cat([hidden, context], dim=-1)))

    # ------------------------------------------------------------------ teacher forcing
    def forward_with_attention(
        self, images: torch.Tensor, input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: logits ``(B, T, V)`` and the attention ``(B, T, R)`` of each step."""
        check_ids(input_ids, self.vocab_size, "input_ids")
        state = self.init_state(images)
        check_same_batch(state.hidden, input_ids, "images", "input_ids")
        words = self.dropout(self.embedding(input_ids))  # (B, T, E), all positions at once
        hiddens, contexts, weights = [], [], []
        for t in range(input_ids.shape[1]):  # only the recurrence needs a loop
            state, context = self._advance(words[:, t], state)
            hiddens.append(state.hidden)
            contexts.append(context)
            weights.append(state.attention)
        logits = self._logits(torch.stack(hiddens, dim=1), torch.stack(contexts, dim=1))
        return logits, torch.stack(weights, dim=1)

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: images and decoder inputs ``(B, T)`` -> logits ``(B, T, V)``."""
        return self.forward_with_attention(images, input_ids)[0]
