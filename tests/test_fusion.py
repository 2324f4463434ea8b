"""The fusion modules (:mod:`mmcourse.models.fusion`, and the interface every fusion shares),
checked against formulas written out by hand (einsum, explicit loops, autograd)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fusion_cases import (
    DX,
    DY,
    B,
    D,
    R,
    all_fusions,
    expected_out_dim,
    inputs_for,
    region_fusions,
    vector_fusions,
)
from torch import nn

from mmcourse.models import fusion as fu
from mmcourse.models.cross_attention import CrossAttentionFusion
from mmcourse.models.film import FiLMBlock, FiLMFusion
from mmcourse.models.introspect import find_unregistered_modules


@pytest.mark.parametrize("name", sorted(all_fusions()))
def test_output_shape(name: str) -> None:
    module = all_fusions()[name]
    out = module(*inputs_for(module))
    assert out.shape == (B, expected_out_dim(name)) == (B, module.out_dim)


@pytest.mark.parametrize("name", sorted(all_fusions()))
def test_every_parameter_gets_a_gradient(name: str) -> None:
    module = all_fusions()[name]
    module.train()
    image, text = inputs_for(module)
    image.requires_grad_(module.input != "pixels")
    text.requires_grad_(True)
    out = module(image, text)
    (out * torch.randn_like(out)).sum().backward()
    for pname, p in module.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name}.{pname} got an all-zero gradient"
    if name != "image_only":
        assert text.grad.abs().sum() > 0
    assert find_unregistered_modules(module) == []


@pytest.mark.parametrize("name", sorted(vector_fusions()))
def test_vector_fusions_reject_bad_inputs(name: str) -> None:
    module = vector_fusions()[name]
    image, text = torch.randn(B, DX), torch.randn(B, DY)
    with pytest.raises(ValueError, match=r"image must be a float tensor of shape \(B, 6\)"):
        module(torch.randn(B, DX + 1), text)
    with pytest.raises(ValueError, match=r"text must be a float tensor of shape \(B, 4\)"):
        module(image, torch.randn(B, 2, DY))
    with pytest.raises(ValueError, match="same number of examples"):
        module(image, text[:3])
    with pytest.raises(ValueError, match="float tensor"):
        module(torch.ones(B, DX, dtype=torch.long), text)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        module(image.tolist(), text)


@pytest.mark.parametrize("name", sorted(region_fusions()))
def test_region_fusions_reject_bad_inputs(name: str) -> None:
    module = region_fusions()[name]
    with pytest.raises(ValueError, match=r"regions must be a float tensor of shape \(B, R, 6\)"):
        module(torch.randn(B, DX), torch.randn(B, DY))
    with pytest.raises(ValueError, match="same number of examples"):
        module(torch.randn(B, R, DX), torch.randn(B + 1, DY))


def test_region_count_must_match_the_grid() -> None:
    with pytest.raises(ValueError, match="expected 4x4 = 16 regions, got 9"):
        region_fusions()["film"](torch.randn(B, 9, DX), torch.randn(B, DY))
    with pytest.raises(ValueError, match="expected 16 regions"):
        region_fusions()["attention"](torch.randn(B, 9, DX), torch.randn(B, DY))
    # without a position embedding any number of regions works
    out = region_fusions()["attention_no_positions"](torch.randn(B, 9, DX), torch.randn(B, DY))
    assert out.shape == (B, D)


def test_constructors_reject_bad_sizes() -> None:
    with pytest.raises(ValueError, match="image_dim must be a positive int"):
        fu.SumFusion(0, DY, D)
    with pytest.raises(ValueError, match="out_dim must be a positive int"):
        fu.ProductFusion(DX, DY, -1)
    with pytest.raises(ValueError, match="rank must be a positive int"):
        fu.LowRankBilinearFusion(DX, DY, D, rank=0)
    with pytest.raises(ValueError, match="activation must be one of"):
        fu.LowRankBilinearFusion(DX, DY, D, activation="gelu")
    with pytest.raises(ValueError, match="grid_size must be"):
        FiLMFusion(DX, DY, grid_size=(4,))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        FiLMBlock(4, DY, kernel_size=2)
    with pytest.raises(ValueError, match="hidden must be a positive int"):
        fu.LateFusion(DX, DY, D, hidden=0)
    with pytest.raises(ValueError, match="n_regions must be a positive int"):
        CrossAttentionFusion(DX, DY, D, n_regions=0)


def test_constructors_reject_sizes_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="image_dim must be a positive int, got float 6.0"):
        fu.SumFusion(6.0, DY, D)
    with pytest.raises(TypeError, match="kernel_size must be a positive int, got NoneType"):
        FiLMBlock(4, DY, kernel_size=None)
    with pytest.raises(TypeError, match="attn_dim must be a positive int, got str '8'"):
        CrossAttentionFusion(DX, DY, D, attn_dim="8")


# ----------------------------------------------------------------------------- formulas


def test_concat_is_torch_cat() -> None:
    x, y = torch.randn(B, DX), torch.randn(B, DY)
    assert torch.equal(fu.ConcatFusion(DX, DY)(x, y)[:, :DX], x)
    assert torch.equal(fu.ConcatFusion(DX, DY)(x, y)[:, DX:], y)


def test_sum_fusion_is_a_linear_layer_on_the_concatenation() -> None:
    fusion = fu.SumFusion(DX, DY, D)
    x, y = torch.randn(B, DX), torch.randn(B, DY)
    joint = nn.Linear(DX + DY, D)
    with torch.no_grad():
        joint.weight.copy_(torch.cat([fusion.image_proj.weight, fusion.text_proj.weight], dim=1))
        joint.bias.copy_(fusion.image_proj.bias)
    torch.testing.assert_close(fusion(x, y), joint(torch.cat([x, y], dim=1)))
    # and by the formula Z = W_x x + W_y y + b, written with plain matrix products
    w_x, w_y, b = fusion.image_proj.weight, fusion.text_proj.weight, fusion.image_proj.bias
    torch.testing.assert_close(fusion(x, y), x @ w_x.T + y @ w_y.T + b)


def test_product_fusion_formula() -> None:
    fusion = fu.ProductFusion(DX, DY, D)
    x, y = torch.randn(B, DX), torch.randn(B, DY)
    px = x @ fusion.image_proj.weight.T + fusion.image_proj.bias
    py = y @ fusion.text_proj.weight.T + fusion.text_proj.bias
    torch.testing.assert_close(fusion(x, y), px * py)


def test_bilinear_matches_einsum() -> None:
    fusion = fu.BilinearFusion(DX, DY, D)
    x, y = torch.randn(B, DX), torch.randn(B, DY)
    w, b = fusion.weight, fusion.bias  # (D, DX, DY), (D,)
    torch.testing.assert_close(fusion(x, y), torch.einsum("bi,kij,bj->bk", x, w, y) + b)
    # one output by a double loop
    k = 2
    by_loop = sum(x[0, i] * w[k, i, j] * y[0, j] for i in range(DX) for j in range(DY)) + b[k]
    torch.testing.assert_close(fusion(x, y)[0, k], by_loop)


def test_bilinear_matches_nn_bilinear() -> None:
    fusion = fu.BilinearFusion(DX, DY, D)
    reference = nn.Bilinear(DX, DY, D)
    with torch.no_grad():
        reference.weight.copy_(fusion.weight)
        reference.bias.copy_(fusion.bias)
    x, y = torch.randn(B, DX), torch.randn(B, DY)
    torch.testing.assert_close(fusion(x, y), reference(x, y))


def test_tensor_fusion_appends_ones() -> None:
    fusion = fu.BilinearFusion(DX, DY, D, append_ones=True)
    x, y = torch.randn(B, DX), torch.randn(B, DY)
    x1 = torch.cat([x, torch.ones(B, 1)], dim=1)
    y1 = torch.cat([y, torch.ones(B, 1)], dim=1)
    outer = (x1[:, :, None] * y1[:, None, :]).flatten(1)  # TFN's outer product, (B, 7 * 5)
    w = fusion.weight.flatten(1)  # (D, 7 * 5)
    torch.testing.assert_close(fusion(x, y), outer @ w.T + fusion.bias)
    # the outer product holds x, y and 1: the bilinear form includes a linear part
    assert torch.equal(outer.view(B, DX + 1, DY + 1)[:, :DX, DY], x)
    assert torch.equal(outer.view(B, DX + 1, DY + 1)[:, DX, :DY], y)
    assert sum(p.numel() for p in fusion.parameters()) == (DX + 1) * (DY + 1) * D + D


def test_low_rank_with_full_rank_reproduces_any_bilinear_form() -> None:
    torch.manual_seed(3)
    w = torch.randn(D, DX, DY)  # an arbitrary bilinear form z_k = x^T W_k y
    fusion = fu.LowRankBilinearFusion(DX, DY, D, rank=DX * DY, activation="none", bias=False)
    with torch.no_grad():
        # latent unit j = (a, b) reads x_a and y_b; P maps it to W[k, a, b]
        a_of = torch.arange(DX * DY) // DY
        b_of = torch.arange(DX * DY) % DY
        fusion.image_proj.weight.copy_(F.one_hot(a_of, DX).float())
        fusion.text_proj.weight.copy_(F.one_hot(b_of, DY).float())
        fusion.out_proj.weight.copy_(w[:, a_of, b_of])
    x, y = torch.randn(B, DX), torch.randn(B, DY)
    torch.testing.assert_close(fusion(x, y), torch.einsum("bi,kij,bj->bk", x, w, y))


def test_low_rank_formula_and_parameter_count() -> None:
    rank = 3
    fusion = fu.LowRankBilinearFusion(DX, DY, D, rank=rank, activation="tanh")
    x, y = torch.randn(B, DX), torch.randn(B, DY)
    u = torch.tanh(x @ fusion.image_proj.weight.T + fusion.image_proj.bias)
    v = torch.tanh(y @ fusion.text_proj.weight.T + fusion.text_proj.bias)
    expected = (u * v) @ fusion.out_proj.weight.T + fusion.out_proj.bias
    torch.testing.assert_close(fusion(x, y), expected)
    params = sum(p.numel() for p in fusion.parameters())
    assert params == (DX + DY + D) * rank + 2 * rank + D
    # without activation the equivalent bilinear weights have rank <= `rank`
    linear = fu.LowRankBilinearFusion(DX, DY, D, rank=rank, activation="none", bias=False)
    u_w, v_w, p_w = linear.image_proj.weight, linear.text_proj.weight, linear.out_proj.weight
    w_equiv = torch.einsum("kj,ja,jb->kab", p_w, u_w, v_w)
    assert int(torch.linalg.matrix_rank(w_equiv[0].detach())) <= rank
    torch.testing.assert_close(linear(x, y), torch.einsum("bi,kij,bj->bk", x, w_equiv, y))


def test_gated_fusion_is_a_convex_combination() -> None:
    fusion = fu.GatedFusion(DX, DY, D)
    x, y = torch.randn(B, DX) * 3, torch.randn(B, DY) * 3
    h_x = torch.tanh(x @ fusion.image_proj.weight.T + fusion.image_proj.bias)
    h_y = torch.tanh(y @ fusion.text_proj.weight.T + fusion.text_proj.bias)
    g = fusion.gate(x, y)
    assert ((g > 0) & (g < 1)).all()
    z = fusion(x, y)
    torch.testing.assert_close(z, g * h_x + (1 - g) * h_y)
    low, high = torch.minimum(h_x, h_y), torch.maximum(h_x, h_y)
    assert ((z >= low - 1e-6) & (z <= high + 1e-6)).all()
    # a gate saturated at 1 passes the image side through
    with torch.no_grad():
        fusion.gate_proj.bias.fill_(50.0)
        fusion.gate_proj.weight.zero_()
    torch.testing.assert_close(fusion(x, y), h_x)


def test_late_fusion_adds_two_unimodal_scores() -> None:
    fusion = fu.LateFusion(DX, DY, D, hidden=8)
    x1, x2 = torch.randn(2, B, DX)
    y1, y2 = torch.randn(2, B, DY)
    # no interaction: how much changing the image moves the scores never depends on the text
    torch.testing.assert_close(fusion(x1, y1) - fusion(x2, y1), fusion(x1, y2) - fusion(x2, y2))
    torch.testing.assert_close(fusion(x1, y1), fusion.image_head(x1) + fusion.text_head(y1))


def test_early_fusion_paints_the_question_into_the_input() -> None:
    fusion = fu.EarlyFusion(DY, out_dim=D, channels=(4, 8), question_channels=3).eval()
    images, text = torch.randn(B, 1, 16, 16), torch.randn(B, DY)
    assert fusion.encoder.in_channels == 1 + 2 + 3
    first_conv = fusion.encoder.blocks[0][0]
    seen = {}

    def keep_input(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen["x"] = args[0]

    hook = first_conv.register_forward_hook(keep_input)
    fusion(images, text)
    hook.remove()
    x = seen["x"]
    assert torch.equal(x[:, 0], images[:, 0])
    painted = text @ fusion.to_channels.weight.T + fusion.to_channels.bias  # (B, 3)
    torch.testing.assert_close(x[:, 3:], painted[:, :, None, None].expand(-1, -1, 16, 16))
    with pytest.raises(ValueError, match=r"images must be a float tensor of shape \(B, 1, H, W\)"):
        fusion(torch.randn(B, 16, 16), text)


def test_vector_fusions_outputs_differ_between_questions() -> None:
    """Every fusion except the image-only baseline lets the question change the output."""
    for name, module in vector_fusions().items():
        x = torch.randn(B, DX)
        out1, out2 = module(x, torch.randn(B, DY)), module(x, torch.randn(B, DY))
        assert torch.allclose(out1, out2) == (name == "image_only"), name
