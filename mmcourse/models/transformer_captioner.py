"""A small Transformer decoder that captions a grid of image regions.

Each block does three things, each wrapped as ``x = x + f(LayerNorm(x))`` (pre-norm, as
GPT-2 and minGPT do)::

    x = x + SelfAttention(x, causal)   # each word reads the words before it, never after
    x = x + CrossAttention(x, image)   # each word reads the image's regions (where to look)
    x = x + MLP(x)                     # then thinks about it, position by position

Training sees the whole caption at once (teacher forcing with a causal mask), so an epoch is a
handful of matrix products rather than a loop over words. Generation has no caption to read:
it writes one word at a time. Running the decoder over the whole prefix again at every step
would redo the work of every earlier word (``O(T^2)``). The step interface keeps a
**key-value cache** instead (``TransformerState.keys`` / ``values``): the keys and values each
block's self-attention made for the earlier words never change (a word only looks back), so a
step computes them for the newest word alone, appends them, and lets the newest word's query
read the whole cache. ``step(..., use_cache=False)`` runs the prefix again, as a reference.

``cross-attention`` weights of the last block are kept for drawing, averaged over heads.

One parameter here never learns: ``nn.MultiheadAttention``'s key bias ``b_k``. A query scores
each key as ``q . (W_k x + b_k)``, and ``q . b_k`` is the same for every key, so the softmax
cancels it and its gradient is zero. torch cannot drop that bias alone; it stays, unused.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import check_same_batch, require
from mmcourse.models.captioner import check_step_tokens
from mmcourse.models.grid import check_decoder_args
from mmcourse.models.text import check_ids
from mmcourse.vocab import PAD_ID

__all__ = ["DecoderBlock", "TransformerCaptioner", "TransformerState"]


def causal_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
    """``(T, T)`` bool, ``True`` above the diagonal: position ``t`` may not look at ``s > t``.
    A decoder reads at least one token: ``length`` 0 is refused."""
    if type(length) is not int or length < 1:
        raise ValueError(f"causal_mask needs a length of at least 1 token, got {length!r}")
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

    def memory_keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-attention's keys and values of the regions ``(B, R, d)``, each
        ``(B, heads, R, d / heads)``: they depend on the image alone, so decoding makes them
        once per image."""
        d_model = memory.shape[2]
        attention = self.cross_attention
        weight, bias = attention.in_proj_weight[d_model:], attention.in_proj_bias[d_model:]
        keys, values = F.linear(memory, weight, bias).chunk(2, dim=-1)
        return _split_heads(keys, attention.num_heads), _split_heads(values, attention.num_heads)

    def step(
        self,
        x: torch.Tensor,
        memory: tuple[torch.Tensor, torch.Tensor],
        keys: torch.Tensor,
        values: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One new word ``x`` ``(B, 1, d)``, the regions' cross-attention keys and values
        ``memory`` (:meth:`memory_keys_values`) and the cache of the words before it, ``keys``
        and ``values`` ``(B, heads, t, d / heads)``: returns the new word's output ``(B, 1, d)``,
        its cross-attention over the regions ``(B, R)`` (heads averaged) and the cache with its
        own key and value appended.

        The same sums as :meth:`forward`, written out for one query: the new word's query is
        scored against every cached key (all earlier words, and itself), so no mask is needed::

            q, k, v = split(in_proj(LayerNorm(x)))       # (B, heads, 1, d / heads) each
            K, V = [keys, k], [values, v]                # the cache, one column longer
            x = x + out_proj(softmax(q K^T / sqrt(d / heads)) V)

        The cross-attention reads the regions' keys and values the same way.
        """
        attention, d_model = self.self_attention, x.shape[2]
        projected = F.linear(self.norm_self(x), attention.in_proj_weight, attention.in_proj_bias)
        q, k, v = projected.chunk(3, dim=-1)
        keys = torch.cat([keys, _split_heads(k, attention.num_heads)], dim=2)
        values = torch.cat([values, _split_heads(v, attention.num_heads)], dim=2)
        x = x + self._attend(attention, q, keys, values)[0]
        attention = self.cross_attention
        weight = attention.in_proj_weight[:d_model]
        q = F.linear(self.norm_cross(x), weight, attention.in_proj_bias[:d_model])
        attended, weights = self._attend(attention, q, *memory)
        x = x + attended
        return x + self.mlp(self.norm_mlp(x)), weights, keys, values

    def _attend(
        self,
        attention: nn.MultiheadAttention,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One projected query ``q`` ``(B, 1, d)`` reads ``keys``/``values``
        ``(B, heads, t, d / heads)``: the output ``(B, 1, d)`` and the weights ``(B, t)``
        averaged over heads (as ``nn.MultiheadAttention`` returns them)."""
        q = _split_heads(q, attention.num_heads)
        scores = q @ keys.transpose(2, 3) / math.sqrt(q.shape[-1])  # (B, heads, 1, t)
        weights = F.dropout(scores.softmax(dim=-1), attention.dropout, self.training)
        mixed = (weights @ values).transpose(1, 2).flatten(2)  # (B, 1, d)
        return attention.out_proj(mixed), weights.mean(dim=1)[:, 0]


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(B, T, d)`` -> ``(B, heads, T, d / heads)``."""
    return x.unflatten(2, (heads, -1)).transpose(1, 2)


@dataclass
class TransformerState:
    """What the Transformer decoder keeps between steps (batch first).

    Attributes:
        memory: ``(B, R, d_model)``, the projected regions with their positions.
        prefix: ``(B, t)`` long, the tokens read so far (``<bos>`` first).
        attention: ``(B, R)``, last block's cross-attention of the newest word (heads averaged).
        keys, values: ``(B, layers, heads, t, d_model / heads)``, the key-value cache: what
            each block's self-attention made of the ``t`` tokens read so far.
        memory_keys, memory_values: ``(B, layers, heads, R, d_model / heads)``, each block's
            cross-attention keys and values of the regions, made once per image.
    """

    memory: torch.Tensor
    prefix: torch.Tensor
    attention: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    memory_keys: torch.Tensor
    memory_values: torch.Tensor


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
        require(not d_model % heads, f"d_model={d_model} must be a multiple of heads={heads}")
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
        if length == 0:
            raise ValueError(
                "the decoder needs at least one token per caption (<bos> first), got input_ids "
                f"of shape {tuple(input_ids.shape)}"
            )
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
        heads = self.blocks[0].self_attention.num_heads
        empty_cache = memory.new_zeros(batch, len(self.blocks), heads, 0, memory.shape[2] // heads)
        memory_keys, memory_values = zip(*(b.memory_keys_values(memory) for b in self.blocks))
        return TransformerState(
            memory=memory,
            prefix=torch.empty(batch, 0, dtype=torch.long, device=memory.device),
            attention=memory.new_zeros(batch, memory.shape[1]),
            keys=empty_cache,
            values=empty_cache,
            memory_keys=torch.stack(memory_keys, dim=1),
            memory_values=torch.stack(memory_values, dim=1),
        )

    def step(
        self, tokens: torch.Tensor, state: TransformerState, use_cache: bool = True
    ) -> tuple[torch.Tensor, TransformerState]:
        """Append ``tokens`` ``(B,)`` to the prefix and score the next token: logits ``(B, V)``.

        With ``use_cache`` only the new token runs through the blocks, reading the earlier
        tokens' keys and values from ``state``; without it the whole prefix runs again (the
        same logits up to float rounding, ``O(T)`` times the work; the cache is left empty).
        """
        check_step_tokens(tokens, state.memory.shape[0])
        prefix = torch.cat([state.prefix, tokens[:, None]], dim=1)
        if prefix.shape[1] > self.max_len:
            raise ValueError(
                f"the decoder reads at most max_len={self.max_len} tokens, got {prefix.shape[1]}"
            )
        if not use_cache:
            logits, weights = self.decode(prefix, state.memory, want_weights=True)
            return logits[:, -1], dataclasses.replace(
                state, prefix=prefix, attention=weights[:, -1]
            )
        if state.keys.shape[3] != state.prefix.shape[1]:
            raise ValueError(
                f"the state's key-value cache holds {state.keys.shape[3]} tokens but its prefix "
                f"{state.prefix.shape[1]}: continue a state with the same use_cache setting"
            )
        position = prefix.shape[1] - 1
        x = self.dropout(self.embedding(tokens[:, None]) + self.word_position[position])
        keys, values = [], []
        for index, block in enumerate(self.blocks):
            memory = (state.memory_keys[:, index], state.memory_values[:, index])
            x, weights, block_keys, block_values = block.step(
                x, memory, state.keys[:, index], state.values[:, index]
            )
            keys.append(block_keys)
            values.append(block_values)
        logits = self.output(self.norm(x))[:, 0]
        return logits, dataclasses.replace(
            state,
            prefix=prefix,
            attention=weights,
            keys=torch.stack(keys, dim=1),
            values=torch.stack(values, dim=1),
        )
