"""Cross-attention fusion (:mod:`mmcourse.models.cross_attention`): weights by hand, masks."""

from __future__ import annotations

import pytest
import torch
from fusion_cases import DX, DY, B, D, R

from mmcourse.models.cross_attention import CrossAttentionFusion


def test_cross_attention_weights_by_hand() -> None:
    fusion = CrossAttentionFusion(DX, DY, D, n_regions=R, attn_dim=5)
    regions, text = torch.randn(B, R, DX), torch.randn(B, DY)
    weights = fusion.attention(regions, text)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(B))
    keys = (regions + fusion.positions) @ fusion.key.weight.T  # (B, R, 5)
    query = text @ fusion.query.weight.T + fusion.query.bias  # (B, 5)
    scores = (keys * query[:, None, :]).sum(-1) / 5**0.5
    expected = scores.exp() / scores.exp().sum(dim=1, keepdim=True)
    torch.testing.assert_close(weights, expected)
    read = (expected[:, :, None] * regions).sum(dim=1)
    out = (read @ fusion.value_proj.weight.T + fusion.value_proj.bias) * (
        text @ fusion.text_proj.weight.T + fusion.text_proj.bias
    )
    torch.testing.assert_close(fusion(regions, text), out)


def test_cross_attention_mask() -> None:
    fusion = CrossAttentionFusion(DX, DY, D, n_regions=R)
    regions, text = torch.randn(B, R, DX), torch.randn(B, DY)
    mask = torch.rand(B, R) > 0.5
    mask[:, 0] = True
    weights = fusion.attention(regions, text, mask)
    assert (weights[~mask] == 0).all()
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(B))
    # masked regions cannot change the output
    changed = regions.clone()
    changed[~mask] = 100.0
    torch.testing.assert_close(fusion(changed, text, mask), fusion(regions, text, mask))
    # the kept regions share the weight in the same proportions as without a mask
    full = fusion.attention(regions, text)
    renormalised = full * mask / (full * mask).sum(dim=1, keepdim=True)
    torch.testing.assert_close(weights, renormalised)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        fusion.attention(regions, text, mask.float())
    with pytest.raises(ValueError, match=r"mask must have shape \(5, 16\)"):
        fusion.attention(regions, text, mask[:, :3])
    empty = mask.clone()
    empty[1] = False
    with pytest.raises(ValueError, match="at least one True"):
        fusion.attention(regions, text, empty)
