"""Fusion modules, the VQA model and the unregistered-layer finder, checked against formulas
written out by hand (einsum, explicit loops, autograd)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.data.vqa import ATTRIBUTE_CLASSES
from mmcourse.models import fusion as fu
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.text import BagOfWordsEncoder

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
        "film": fu.FiLMFusion(DX, DY, grid_size=(4, 4), channels=D, blocks=2),
        "attention": fu.CrossAttentionFusion(DX, DY, D, n_regions=R, attn_dim=5),
        "attention_no_positions": fu.CrossAttentionFusion(DX, DY, D, n_regions=None),
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
    assert fu.find_unregistered_modules(module) == []


@pytest.mark.parametrize("name", sorted(vector_fusions()))
def test_vector_fusions_reject_bad_inputs(name: str) -> None:
    module = vector_fusions()[name]
    image, text = torch.randn(B, DX), torch.randn(B, DY)
    with pytest.raises(ValueError, match=r"image must have shape \(B, 6\)"):
        module(torch.randn(B, DX + 1), text)
    with pytest.raises(ValueError, match=r"text must have shape \(B, 4\)"):
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
    with pytest.raises(ValueError, match=r"regions must have shape \(B, R, 6\)"):
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
        fu.FiLMFusion(DX, DY, grid_size=(4,))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        fu.FiLMBlock(4, DY, kernel_size=2)
    with pytest.raises(ValueError, match="hidden must be a positive int"):
        fu.LateFusion(DX, DY, D, hidden=0)
    with pytest.raises(ValueError, match="n_regions must be a positive int"):
        fu.CrossAttentionFusion(DX, DY, D, n_regions=0)


def test_constructors_reject_sizes_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="image_dim must be a positive int, got float 6.0"):
        fu.SumFusion(6.0, DY, D)
    with pytest.raises(TypeError, match="kernel_size must be a positive int, got NoneType"):
        fu.FiLMBlock(4, DY, kernel_size=None)
    with pytest.raises(TypeError, match="attn_dim must be a positive int, got str '8'"):
        fu.CrossAttentionFusion(DX, DY, D, attn_dim="8")


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


def test_film_matches_the_hand_formula() -> None:
    channels, cond_dim = 3, 4
    film = fu.FiLM(cond_dim, channels)
    with torch.no_grad():
        film.to_scale_shift.weight.normal_()
        film.to_scale_shift.bias.normal_()
    maps, cond = torch.randn(2, channels, 5, 6), torch.randn(2, cond_dim)
    out = film(maps, cond)
    w, b = film.to_scale_shift.weight, film.to_scale_shift.bias
    for n in range(2):
        for c in range(channels):
            gamma = w[c] @ cond[n] + b[c]
            beta = w[channels + c] @ cond[n] + b[channels + c]
            torch.testing.assert_close(out[n, c], gamma * maps[n, c] + beta)


def test_film_starts_as_identity_and_rejects_bad_maps() -> None:
    film = fu.FiLM(4, 3)
    with torch.no_grad():
        film.to_scale_shift.weight.zero_()
    maps = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(film(maps, torch.randn(2, 4)), maps)
    with pytest.raises(ValueError, match=r"maps must have shape \(B, 3, H, W\)"):
        film(torch.randn(2, 4, 5, 5), torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"cond must have shape \(B, 4\)"):
        film(maps, torch.randn(2, 5))
    with pytest.raises(ValueError, match="same number of examples"):
        film(maps, torch.randn(3, 4))


def test_film_fusion_depends_on_the_question_through_film_only() -> None:
    fusion = fu.FiLMFusion(DX, DY, grid_size=(4, 4), channels=D).eval()
    regions = torch.randn(B, R, DX)
    text = torch.randn(B, DY)
    with torch.no_grad():
        for block in fusion.blocks:
            block.film.to_scale_shift.weight.zero_()  # gamma = 1, beta = 0 for every question
    torch.testing.assert_close(fusion(regions, text), fusion(regions, torch.randn(B, DY)))


def test_coordinate_maps() -> None:
    coords = fu.coordinate_maps(2, 3, 5)
    assert coords.shape == (2, 2, 3, 5)
    torch.testing.assert_close(coords[0, 0, 1], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    torch.testing.assert_close(coords[1, 1, :, 2], torch.tensor([-1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="height must be a positive int"):
        fu.coordinate_maps(1, 0, 3)


def test_cross_attention_weights_by_hand() -> None:
    fusion = fu.CrossAttentionFusion(DX, DY, D, n_regions=R, attn_dim=5)
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
    fusion = fu.CrossAttentionFusion(DX, DY, D, n_regions=R)
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
    with pytest.raises(ValueError, match=r"images must have shape \(B, 1, H, W\)"):
        fusion(torch.randn(B, 16, 16), text)


# ----------------------------------------------------------------------------- backbone


def small_backbone() -> fu.CanvasBackbone:
    return fu.CanvasBackbone(
        CanvasEncoder(out_dim=DX, channels=(4, 8)), out_dim=9, image_size=(16, 16)
    )


def test_backbone_vector_keeps_positions() -> None:
    backbone = small_backbone().eval()
    assert backbone.grid_size == (4, 4) and backbone.n_regions == R
    images = torch.randn(B, 1, 16, 16)
    regions = backbone.forward_grid(images)
    assert regions.shape == (B, R, DX)
    linear = backbone.to_vector[1]
    torch.testing.assert_close(backbone(images), regions.flatten(1) @ linear.weight.T + linear.bias)
    # swapping two regions changes the vector (a mean would not notice)
    swapped = regions[:, torch.tensor([1, 0, *range(2, R)])]
    assert not torch.allclose(backbone.vector(swapped), backbone.vector(regions))
    with pytest.raises(ValueError, match=r"expected images of size \(16, 16\)"):
        backbone(torch.randn(B, 1, 20, 20))
    with pytest.raises(ValueError, match="expected 16 regions"):
        backbone.vector(regions[:, :4])
    with pytest.raises(ValueError, match="too small"):
        fu.CanvasBackbone(CanvasEncoder(out_dim=4, channels=(4, 4, 4)), image_size=(4, 4))


def test_slot_attribute_loss_is_the_sum_of_four_cross_entropies() -> None:
    head = fu.SlotAttributeHead(9)
    logits = head(torch.randn(B, 9))
    assert logits.shape == (B, 3, sum(ATTRIBUTE_CLASSES))
    targets = torch.stack([torch.randint(0, c, (B, 3)) for c in ATTRIBUTE_CLASSES], dim=-1)
    by_hand = 0.0
    start = 0
    for i, c in enumerate(ATTRIBUTE_CLASSES):
        part = logits[..., start : start + c]
        log_p = part.log_softmax(-1).gather(-1, targets[..., i : i + 1]).squeeze(-1)
        by_hand = by_hand - log_p.mean()
        start += c
    torch.testing.assert_close(fu.slot_attribute_loss(logits, targets), by_hand)
    perfect = torch.cat(
        [F.one_hot(targets[..., i], c).float() for i, c in enumerate(ATTRIBUTE_CLASSES)], -1
    )
    torch.testing.assert_close(fu.slot_attribute_accuracy(perfect, targets), torch.ones(4))
    with pytest.raises(ValueError, match="targets must have shape"):
        fu.slot_attribute_loss(logits, targets[..., :3])
    with pytest.raises(ValueError, match="logits must have shape"):
        fu.slot_attribute_loss(logits[..., :5], targets)
    with_nan = logits.clone()
    with_nan[0, 1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"^logits holds NaN; every score must be a number$"):
        fu.slot_attribute_accuracy(with_nan, targets)
    with pytest.raises(ValueError, match=r"^logits holds NaN; every score must be a number$"):
        fu.slot_attribute_loss(with_nan, targets)


# ----------------------------------------------------------------------------- VQA model


def make_model(fusion: fu.Fusion, **kwargs) -> fu.VQAModel:
    question_encoder = BagOfWordsEncoder(vocab_size=12, dim=DY)
    encoder = None if fusion.input == "pixels" else small_backbone()
    return fu.VQAModel(question_encoder, fusion, n_answers=11, image_encoder=encoder, **kwargs)


@pytest.mark.parametrize("name", ["sum", "late", "film", "attention", "early"])
def test_vqa_model_answers_from_pixels_and_from_stored_regions(name: str) -> None:
    fusion = all_fusions()[name] if name != "film" else fu.FiLMFusion(DX, DY, (4, 4), channels=D)
    if name == "sum":
        fusion = fu.SumFusion(9, DY, D)
    if name == "late":
        fusion = fu.LateFusion(9, DY, 11)
    model = make_model(fusion).eval()
    images = torch.randn(B, 1, 16, 16)
    questions = torch.randint(1, 12, (B, 6))
    logits = model(images, questions)
    assert logits.shape == (B, 11)
    if name != "early":
        regions = model.image_encoder.forward_grid(images)
        torch.testing.assert_close(model(regions, questions), logits)
        assert all(not p.requires_grad for p in model.image_encoder.parameters())
    else:
        with pytest.raises(ValueError, match="needs the raw canvases"):
            model(torch.randn(B, R, DX), questions)
    assert fu.find_unregistered_modules(model) == []


def test_frozen_image_encoder_keeps_its_statistics() -> None:
    model = make_model(fu.SumFusion(9, DY, D))
    before = {k: v.clone() for k, v in model.image_encoder.state_dict().items()}
    model.train()
    assert not model.image_encoder.training and model.fusion.training
    loss = model(torch.randn(B, 1, 16, 16) * 3, torch.randint(1, 12, (B, 6))).sum()
    loss.backward()
    for key, value in model.image_encoder.state_dict().items():
        assert torch.equal(value, before[key]), key
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not any(n.startswith("image_encoder") for n in trainable)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_vqa_model_rejects_mismatched_parts() -> None:
    encoder = BagOfWordsEncoder(12, DY)
    with pytest.raises(ValueError, match="fusion must be a Fusion"):
        fu.VQAModel(encoder, nn.Linear(3, 3), 11, small_backbone())
    with pytest.raises(ValueError, match="pass image_encoder=None"):
        fu.VQAModel(encoder, fu.EarlyFusion(DY, channels=(4,)), 11, small_backbone())
    with pytest.raises(ValueError, match="needs an image_encoder"):
        fu.VQAModel(encoder, fu.SumFusion(9, DY, D), 11)
    with pytest.raises(ValueError, match="the question encoder gives 4-d vectors"):
        fu.VQAModel(encoder, fu.SumFusion(9, DY + 1, D), 11, small_backbone())
    with pytest.raises(ValueError, match="gives 9-d vectors, the fusion expects image_dim=8"):
        fu.VQAModel(encoder, fu.SumFusion(8, DY, D), 11, small_backbone())
    with pytest.raises(ValueError, match="gives 6-d regions"):
        fu.VQAModel(encoder, fu.CrossAttentionFusion(9, DY, D, R), 11, small_backbone())
    with pytest.raises(ValueError, match="n_answers=11 scores"):
        fu.VQAModel(encoder, fu.LateFusion(9, DY, 10), 11, small_backbone())
    with pytest.raises(ValueError, match="hidden must be an int >= 0, got -1"):
        make_model(fu.SumFusion(9, DY, D), hidden=-1)
    with pytest.raises(TypeError, match="hidden must be an int >= 0, got float 8.0"):
        make_model(fu.SumFusion(9, DY, D), hidden=8.0)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1.0"):
        make_model(fu.SumFusion(9, DY, D), dropout=1.0)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got -0.5"):
        make_model(fu.SumFusion(9, DY, D), dropout=-0.5)
    model = make_model(fu.SumFusion(9, DY, D))
    with pytest.raises(ValueError, match="canvases .* or regions"):
        model(torch.randn(B, 16), torch.randint(1, 12, (B, 6)))


def test_linear_classifier_when_hidden_is_zero() -> None:
    model = make_model(fu.ProductFusion(9, DY, D), hidden=0)
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == D


# ----------------------------------------------------------------------------- registration


class ListHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.heads = [nn.Linear(3, 3), nn.Linear(3, 3)]  # the bug
        self.out = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(sum(head(x) for head in self.heads))


def test_find_unregistered_modules_catches_a_plain_list() -> None:
    model = ListHeads()
    assert fu.find_unregistered_modules(model) == ["heads"]
    # the hidden layers are missing from parameters() and state_dict() ...
    assert sum(p.numel() for p in model.parameters()) == 4
    assert not any(k.startswith("heads") for k in model.state_dict())
    # ... so an optimizer never changes them, although they do receive gradients
    before = model.heads[0].weight.clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    assert model.heads[0].weight.grad is not None
    assert torch.equal(model.heads[0].weight, before)
    # nn.ModuleList registers them
    model.heads = nn.ModuleList(model.heads)
    assert fu.find_unregistered_modules(model) == []
    assert sum(p.numel() for p in model.parameters()) == 4 + 2 * 12


def test_find_unregistered_modules_other_containers() -> None:
    outer = nn.Sequential(nn.Linear(2, 2))
    inner = outer[0]
    inner.by_name = {"a": nn.Linear(2, 2)}
    inner.pair = (nn.Parameter(torch.zeros(2)), 3)
    inner.nested = [[nn.ReLU()]]
    inner.scale = torch.ones(2, requires_grad=True)
    inner.constant = torch.ones(2)  # a plain tensor without grad is fine
    inner.names = ["a", "b"]
    assert fu.find_unregistered_modules(outer) == [
        "0.by_name",
        "0.pair",
        "0.nested",
        "0.scale",
    ]
    with pytest.raises(ValueError, match="model must be an nn.Module"):
        fu.find_unregistered_modules([nn.Linear(2, 2)])


def test_vector_fusions_outputs_differ_between_questions() -> None:
    """Every fusion except the image-only baseline lets the question change the output."""
    for name, module in vector_fusions().items():
        x = torch.randn(B, DX)
        out1, out2 = module(x, torch.randn(B, DY)), module(x, torch.randn(B, DY))
        assert torch.allclose(out1, out2) == (name == "image_only"), name


def test_canvas_lookup_answers_like_the_full_model() -> None:
    model = make_model(fu.CrossAttentionFusion(DX, DY, D, n_regions=R)).eval()
    images = torch.randn(7, 1, 16, 16)
    regions = model.image_encoder.store_regions(images, batch_size=3)
    assert regions.shape == (7, R, DX) and not regions.requires_grad
    canvas = torch.tensor([6, 0, 0, 3])
    questions = torch.randint(1, 12, (4, 5))
    expected = model(images[canvas], questions)
    torch.testing.assert_close(fu.CanvasLookup(model, regions)(canvas, questions), expected)
    torch.testing.assert_close(fu.CanvasLookup(model, images)(canvas, questions), expected)
    lookup = fu.CanvasLookup(model, regions)
    assert {n for n, _ in lookup.named_parameters()} == {
        "model." + n for n, _ in model.named_parameters()
    }
    assert "table" not in lookup.state_dict()
    with pytest.raises(ValueError, match=r"canvas indices must lie in 0..6, got 0..7"):
        lookup(torch.tensor([0, 7]), questions[:2])
    with pytest.raises(ValueError, match="1-D tensor of canvas indices"):
        lookup(torch.tensor([[0]]), questions[:1])
    with pytest.raises(ValueError, match="must be a VQAModel"):
        fu.CanvasLookup(nn.Linear(2, 2), regions)
    with pytest.raises(ValueError, match="must be a float tensor"):
        fu.CanvasLookup(model, regions.long())
    with pytest.raises(ValueError, match=r"table must have shape \(B, R, 6\)"):
        fu.CanvasLookup(model, regions[..., :2])
    with pytest.raises(ValueError, match="regions \\(N, R, D\\) or canvases"):
        fu.CanvasLookup(model, torch.randn(7, 4))
    early = make_model(fu.EarlyFusion(DY, out_dim=D, channels=(4, 8))).eval()
    with pytest.raises(ValueError, match="give it canvases"):
        fu.CanvasLookup(early, regions)
    torch.testing.assert_close(
        fu.CanvasLookup(early, images)(canvas, questions), early(images[canvas], questions)
    )


def test_store_regions_keeps_the_mode_and_rejects_bad_batch_size() -> None:
    backbone = small_backbone().train()
    backbone.store_regions(torch.randn(2, 1, 16, 16))
    assert backbone.training
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        backbone.store_regions(torch.randn(2, 1, 16, 16), batch_size=0)


def test_plot_fusion_stages() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = fu.plot_fusion_stages()
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == ["early fusion", "intermediate fusion", "late fusion"]
    for axis, boxes in zip(figure.axes, fu._STAGES.values()):
        labels = [t.get_text() for t in axis.texts if t.get_text()]
        assert labels == [box[0] for box in boxes]
        arrows = [t for t in axis.texts if not t.get_text()]
        assert len(arrows) == len(fu._EDGES[axis.get_title()])
        assert all(box[3] in ("data", "model", "fuse") for box in boxes)
        # every box but the inputs has an arrow coming in; only "answer" has none going out
        edges = fu._EDGES[axis.get_title()]
        targets = {b for _, b in edges}
        sources = {a for a, _ in edges}
        assert targets == set(range(2, len(boxes)))
        assert sources == set(range(len(boxes) - 1))
    plt.close(figure)
