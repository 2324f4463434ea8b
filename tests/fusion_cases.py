"""Small fusion modules and inputs shared by the tests of the fusion and VQA model modules."""

from __future__ import annotations

import torch

from mmcourse.models import fusion as fu
from mmcourse.models.cross_attention import CrossAttentionFusion
from mmcourse.models.film import FiLMFusion
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.vqa import CanvasBackbone

B, DX, DY, D, R = 5, 6, 4, 7, 16  # batch, image dim, text dim, fused dim, regions (4x4 grid)


def vector_fusions() -> dict[str, fu.Fusion]:
    return {
        "concat": fu.ConcatFusion(DX, DY),
        "sum": fu.SumFusion(DX, DY, D),
        "product": fu.ProductFusion(DX, DY, D),
        "bilinear": fu.BilinearFusion(DX, DY, D),
        "tensor": fu.BilinearFusion(DX, DY, D, append_ones=True),
        "low_rank": fu.LowRankBilinearFusion(DX, DY, D, rank=3),
        "gated": fu.GatedFusion(DX, DY, D),
        "late": fu.LateFusion(DX, DY, D, hidden=8),
        "image_only": fu.ImageOnly(DX, DY),
        "text_only": fu.TextOnly(DX, DY),
    }


def region_fusions() -> dict[str, fu.Fusion]:
    return {
        "film": FiLMFusion(DX, DY, grid_size=(4, 4), channels=D, blocks=2),
        "attention": CrossAttentionFusion(DX, DY, D, n_regions=R, attn_dim=5),
        "attention_no_positions": CrossAttentionFusion(DX, DY, D, n_regions=None),
    }


def all_fusions() -> dict[str, fu.Fusion]:
    return {
        **vector_fusions(),
        **region_fusions(),
        "early": fu.EarlyFusion(DY, out_dim=D, channels=(4, 8), question_channels=3),
    }


def inputs_for(module: fu.Fusion) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    text = torch.randn(B, DY)
    if module.input == "regions":
        return torch.randn(B, R, DX), text
    if module.input == "pixels":
        return torch.randn(B, 1, 16, 16), text
    return torch.randn(B, DX), text


def expected_out_dim(name: str) -> int:
    return {"concat": DX + DY, "image_only": DX, "text_only": DY}.get(name, D)


def small_backbone() -> CanvasBackbone:
    return CanvasBackbone(
        CanvasEncoder(out_dim=DX, channels=(4, 8)), out_dim=9, image_size=(16, 16)
    )
