"""The chapter 06 self-checks accept right answers and explain wrong ones."""

from __future__ import annotations

import torch
from torch import nn

from mmcourse.checks import ch06
from mmcourse.models.fusion import Fusion, ProductFusion


class ConcatProduct(Fusion):
    def __init__(self, image_dim: int, text_dim: int, dim: int) -> None:
        super().__init__(image_dim, text_dim, 3 * dim)
        self.image_proj = nn.Linear(image_dim, dim)
        self.text_proj = nn.Linear(text_dim, dim)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x, y = self.image_proj(image), self.text_proj(text)
        return torch.cat([x, y, x * y], dim=1)


class SwappedBlocks(ConcatProduct):
    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x, y = self.image_proj(image), self.text_proj(text)
        return torch.cat([y, x, x * y], dim=1)


class SumInsteadOfProduct(ConcatProduct):
    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x, y = self.image_proj(image), self.text_proj(text)
        return torch.cat([x, y, x + y], dim=1)


class TwoBlocks(ConcatProduct):
    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.image_proj(image), self.text_proj(text)], dim=1)


class UnusedLayer(ConcatProduct):
    def __init__(self, image_dim: int, text_dim: int, dim: int) -> None:
        super().__init__(image_dim, text_dim, dim)
        self.spare = nn.Linear(3, 3)


def test_concat_product_fusion() -> None:
    result = ch06.check_concat_product_fusion(ConcatProduct(6, 4, 5))
    assert result and str(result).startswith("Correct")
    assert "first block should be the projected image" in str(
        ch06.check_concat_product_fusion(SwappedBlocks(6, 4, 5))
    )
    assert "product of the first two" in str(
        ch06.check_concat_product_fusion(SumInsteadOfProduct(6, 4, 5))
    )
    assert "no gradient: ['spare.weight', 'spare.bias']" in str(
        ch06.check_concat_product_fusion(UnusedLayer(6, 4, 5))
    )
    assert "should be 3 * D" in str(ch06.check_concat_product_fusion(ProductFusion(6, 4, 5)))
    two_blocks = ch06.check_concat_product_fusion(TwoBlocks(6, 4, 5))
    assert "only two blocks" in str(two_blocks) and str(two_blocks).startswith("Not yet")
    assert "int attributes" in str(ch06.check_concat_product_fusion(nn.Linear(2, 2)))
    assert str(ch06.check_concat_product_fusion(None)).startswith("Not yet")


class ListHeads(Fusion):
    def __init__(self, image_dim: int, text_dim: int, dim: int, registered: bool) -> None:
        super().__init__(image_dim, text_dim, dim)
        heads = [ProductFusion(image_dim, text_dim, dim) for _ in range(3)]
        self.heads = nn.ModuleList(heads) if registered else heads

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(image, text) for head in self.heads]).mean(0)


class HiddenDeeper(nn.Module):
    """Hides a layer one level down, inside a registered module's plain dict."""

    def __init__(self) -> None:
        super().__init__()
        self.head = ProductFusion(8, 4, 3)
        self.head.extra = {"scale": nn.Linear(3, 3)}

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.head.extra["scale"](self.head(image, text))


def test_registered() -> None:
    good = ch06.check_registered(ListHeads(8, 4, 3, registered=True), image_dim=8, text_dim=4)
    assert good and f"all {3 * ((8 + 1) * 3 + (4 + 1) * 3)} parameters" in str(good)
    bad = ch06.check_registered(ListHeads(8, 4, 3, registered=False), image_dim=8, text_dim=4)
    assert not bad and "heads still hide layers" in str(bad)
    deeper = ch06.check_registered(HiddenDeeper(), image_dim=8, text_dim=4)
    assert not deeper and "head.extra" in str(deeper)
    wrong_size = ch06.check_registered(ListHeads(8, 4, 3, registered=True))
    assert not wrong_size and "failed" in str(wrong_size)
    assert "no parameters" in str(ch06.check_registered(nn.ReLU()))
    assert str(ch06.check_registered(None)).startswith("Not yet")


def test_the_checks_leave_the_learners_gradients_alone() -> None:
    """Both checks push a batch through the learner's model to see which parameters learn;
    they must not leave gradients behind (a learner's next optimizer step would use them)."""
    fusion, heads = ConcatProduct(6, 4, 5), ListHeads(8, 4, 3, registered=True)
    assert ch06.check_concat_product_fusion(fusion)
    assert ch06.check_registered(heads, image_dim=8, text_dim=4)
    for model in (fusion, heads):
        assert all(p.grad is None for p in model.parameters())
    frozen = ConcatProduct(6, 4, 5)
    frozen.text_proj.requires_grad_(False)  # a frozen layer is reported, not skipped
    assert "no gradient: ['text_proj.weight', 'text_proj.bias']" in str(
        ch06.check_concat_product_fusion(frozen)
    )
