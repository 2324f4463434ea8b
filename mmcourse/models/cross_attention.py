"""Cross-attention fusion: the question looks over the image regions and reads what it needs."""

from __future__ import annotations

import math

import torch
from torch import nn

from mmcourse._validate import check_int, require
from mmcourse.models.fusion import Fusion


class CrossAttentionFusion(Fusion):
    """The question looks over the image regions and reads what it needs.

    With a query from the question and a key and a value for each region ``i``::

        q = W_q y,  k_i = W_k (v_i + p_i),  a = softmax_i(q . k_i / sqrt(d))
        v = sum_i a_i v_i,   z = (W_v v) * (W_y y)

    ``p_i`` is a learned position embedding of region ``i`` (without it a region's vector says
    what it shows but not where, and "on the left" could not be found); the final product
    combines what was read with the question, as Anderson et al.'s bottom-up top-down model
    does (CVPR 2018). :meth:`attention` returns the weights ``a`` ``(B, R)``.

    Args:
        n_regions: the number of regions ``R`` (for the position embedding); ``None``: no
            position embedding.
        attn_dim: size ``d`` of queries and keys.
    """

    input = "regions"

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        out_dim: int,
        n_regions: int | None = 64,
        attn_dim: int = 32,
    ) -> None:
        super().__init__(image_dim, text_dim, out_dim)
        check_int(attn_dim, "attn_dim")
        if n_regions is not None:
            check_int(n_regions, "n_regions")
        self.n_regions, self.attn_dim = n_regions, attn_dim
        if n_regions is not None:
            self.positions = nn.Parameter(torch.randn(n_regions, image_dim) * 0.1)
        else:
            self.register_parameter("positions", None)
        self.query = nn.Linear(text_dim, attn_dim)
        self.key = nn.Linear(image_dim, attn_dim, bias=False)
        self.value_proj = nn.Linear(image_dim, out_dim)
        self.text_proj = nn.Linear(text_dim, out_dim)

    def attention(
        self, regions: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, R)`` attention weights, each row summing to 1.

        ``mask`` ``(B, R)`` bool, ``True`` where a region may be looked at; regions marked
        ``False`` get weight exactly 0 (each row needs at least one ``True``).
        """
        self.check(regions, text)
        keys_in = regions
        if self.positions is not None:
            if regions.shape[1] != self.n_regions:
                raise ValueError(
                    f"expected {self.n_regions} regions (the position embedding's size), "
                    f"got {regions.shape[1]}"
                )
            keys_in = regions + self.positions
        scores = torch.einsum("brd,bd->br", self.key(keys_in), self.query(text))
        scores = scores / math.sqrt(self.attn_dim)
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                raise ValueError("mask must be a bool tensor (True = region may be attended)")
            if mask.shape != scores.shape:
                raise ValueError(
                    f"mask must have shape {tuple(scores.shape)} (B, R), got {tuple(mask.shape)}"
                )
            require(mask.any(dim=1).all(), "every row of mask needs at least one True region")
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=1)

    def forward(
        self, regions: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        weights = self.attention(regions, text, mask)
        read = torch.einsum("br,brd->bd", weights, regions)
        return self.value_proj(read) * self.text_proj(text)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_regions={self.n_regions}, attn_dim={self.attn_dim}"
