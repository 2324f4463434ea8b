"""A small Transformer decoder that captions a grid of image regions.

Each block does three things, each wrapped as ``x = x + f(LayerNorm(x))`` (pre-norm, as
GPT-2 and minGPT do)::

    x = x + SelfAttention(x, causal)   # each word reads the words before it, never after
    x = x + CrossAttention(x, image)   # each word reads the image's regions (where to look)
    x = x + MLP(x)                     # then thinks about it, position by position

Training sees the whole caption at once (teacher forcing with a causal mask), so an epoch is a
handful of matrix products rather than a loop over words. Generation has no caption to read,
so the step interface keeps the words written so far (``TransformerState.prefix``) and runs
the decoder over that prefix again at every step: ``O(T^2)`` work, which for a 30-word caption
is nothing (a key-value cache would avoid it; see minGPT and nanoGPT for one).

``cross-attention`` weights of the last block are kept for drawing, averaged over heads.
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

__all__ = ["DecoderBlock", "TransformerCaptioner", "TransformerState"]


def causal_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
    """``(T, T)`` bool, ``True`` above the diagonal: position ``t`` may not look at ``s > t``."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


class DecoderBlock(nn.Module):
    """Masked self-attention, cross-attention to the image, and an MLP, each pre-normed and
    added back to its input.

    ``forward(x (B, T, d), memory (B, R, d), want_weights) -> (x, cross_weights (B, T, R) or
    None)``.
    """

    def __init__(self, d_model: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(d_model)
        self.self_attention = nn.MultiheadAttention(
            d_model, heads, dropout=dropout, batch_first=True
        )
        self.norm_cross = nn.LayerNorm(d_model)
        self.cross_attention = nn.MultiheadAttention(
            d_model, heads, dropout=dropout, batch_first=True
        )
        self.norm_mlp = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model), nn.Dropout(dropout)
        )

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, want_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.norm_self(x)
        mask = causal_mask(x.shape[1], x.device)
        x = x + self.self_attention(h, h, h, attn_mask=mask, need_weights=False)[0]
        h = self.norm_cross(x)
        attended, weights = self.cross_attention(h, memory, memory, need_weights=want_weights)
        x = x + attended
        return x + self.mlp(self.norm_mlp(x)), weights


@dataclass
class TransformerState:
    """What the Transformer decoder keeps between steps (batch first).

    Attributes:
        memory: ``(B, R, d_model)``, the projected regions with their positions.
        prefix: ``(B, t)`` long, the tokens read so far (``<bos>`` first).
        attention: ``(B, R)``, last block's cross-attention of the newest word (heads averaged).
    """

    memory: torch.Tensor
    prefix: torch.Tensor
    attention: torch.Tensor


class TransformerCaptioner(nn.Module):
    """A Transformer decoder with cross-attention to the image's regions.

    Args:
        vocab_size: tokens ``V``.
        image_encoder: gives ``forward_grid(images) -> (B, R, D)`` (see
            :class:`~mmcourse.models.attention_captioner.AttentionCaptioner`).
        d_model: width of every token and region vector inside the decoder.
        heads: attention heads (``d_model`` must divide by it).
        layers: decoder blocks.
        hidden: width of each block's MLP.
        max_len: longest input the position embedding covers.
        dropout: in attention, MLPs and on embeddings.
        pad_id: the padding token.

    Shapes: ``forward(images, input_ids (B, T)) -> logits (B, T, V)``.
    """

    def __init__(
        self,
        vocab_size: int,
        image_encoder: nn.Module,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        hidden: int = 128,
        max_len: int = 48,
        dropout: float = 0.0,
        pad_id: int = PAD_ID,
    ) -> None:
        super().__init__()
        regions, region_dim = check_decoder_args(
            image_encoder,
            vocab_size,
            dropout,
            pad_id,
            d_model=d_model,
            heads=heads,
            layers=layers,
            hidden=hidden,
            max_len=max_len,
        )
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be a multiple of heads={heads}")
        self.vocab_size, self.pad_id, self.max_len = vocab_size, pad_id, max_len
        self.image_encoder = image_encoder
        self.project = nn.Linear(region_dim, d_model)
        self.region_position = nn.Parameter(torch.randn(regions, d_model) * 0.02)
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.word_position = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            DecoderBlock(d_model, heads, hidden, dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, vocab_size)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> memory ``(B, R, d_model)``: projected regions plus their positions."""
        regions = self.image_encoder.forward_grid(images)
        if regions.dim() != 3 or regions.shape[1] != self.region_position.shape[0]:
            raise ValueError(
                f"the image encoder gave regions {tuple(regions.shape)}, expected "
                f"(B, {self.region_position.shape[0]}, D)"
            )
        return self.project(regions) + self.region_position

    def decode(
        self, input_ids: torch.Tensor, memory: torch.Tensor, want_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens ``(B, T)`` and memory -> logits ``(B, T, V)`` and, if wanted, the last
        block's cross-attention ``(B, T, R)``."""
        length = input_ids.shape[1]
        if length > self.max_len:
            raise ValueError(
                f"the decoder reads at most max_len={self.max_len} tokens, got {length}"
            )
        x = self.dropout(self.embedding(input_ids) + self.word_position[:length])
        weights = None
        for index, block in enumerate(self.blocks):
            last = index == len(self.blocks) - 1
            x, block_weights = block(x, memory, want_weights and last)
            weights = block_weights if last else weights
        return self.output(self.norm(x)), weights

    # ------------------------------------------------------------------ teacher forcing
    def _checked_memory(self, images: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        check_ids(input_ids, self.vocab_size, "input_ids")
        memory = self.encode(images)
        check_same_batch(memory, input_ids, "images", "input_ids")
        return memory

    def forward_with_attention(
        self, images: torch.Tensor, input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: logits ``(B, T, V)`` and the cross-attention ``(B, T, R)``."""
        logits, weights = self.decode(input_ids, self._checked_memory(images, input_ids), True)
        return logits, weights

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: images and decoder inputs ``(B, T)`` -> logits ``(B, T, V)``."""
        return self.decode(input_ids, self._checked_memory(images, input_ids))[0]

    # ------------------------------------------------------------------ the step interface
    def init_state(self, images: torch.Tensor) -> TransformerState:
        """Encode the images once; nothing has been read yet."""
        memory = self.encode(images)
        batch = memory.shape[0]
        return TransformerState(
            memory=memory,
            prefix=torch.empty(batch, 0, dtype=torch.long, device=memory.device),
            attention=memory.new_zeros(batch, memory.shape[1]),
        )

    def step(
        self, tokens: torch.Tensor, state: TransformerState
    ) -> tuple[torch.Tensor, TransformerState]:
        """Append ``tokens`` ``(B,)`` to the prefix and score the next token: logits ``(B, V)``."""
        check_step_tokens(tokens, state.memory.shape[0])
        prefix = torch.cat([state.prefix, tokens[:, None]], dim=1)
        logits, weights = self.decode(prefix, state.memory, want_weights=True)
        return logits[:, -1], TransformerState(state.memory, prefix, weights[:, -1])
