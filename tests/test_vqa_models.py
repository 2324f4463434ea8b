"""The VQA models (:mod:`mmcourse.models.vqa`): backbone, full model, lookup of stored regions."""

from __future__ import annotations

import pytest
import torch
from fusion_cases import DX, DY, B, D, R, all_fusions, small_backbone
from torch import nn

from mmcourse.models import fusion as fu
from mmcourse.models.cross_attention import CrossAttentionFusion
from mmcourse.models.film import FiLMFusion
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.introspect import find_unregistered_modules
from mmcourse.models.text import BagOfWordsEncoder
from mmcourse.models.vqa import CanvasBackbone, CanvasLookup, VQAModel


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
        CanvasBackbone(CanvasEncoder(out_dim=4, channels=(4, 4, 4)), image_size=(4, 4))


# ----------------------------------------------------------------------------- VQA model


def make_model(fusion: fu.Fusion, **kwargs) -> VQAModel:
    question_encoder = BagOfWordsEncoder(vocab_size=12, dim=DY)
    encoder = None if fusion.input == "pixels" else small_backbone()
    return VQAModel(question_encoder, fusion, n_answers=11, image_encoder=encoder, **kwargs)


@pytest.mark.parametrize("name", ["sum", "late", "film", "attention", "early"])
def test_vqa_model_answers_from_pixels_and_from_stored_regions(name: str) -> None:
    fusion = all_fusions()[name] if name != "film" else FiLMFusion(DX, DY, (4, 4), channels=D)
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
    assert find_unregistered_modules(model) == []


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
        VQAModel(encoder, nn.Linear(3, 3), 11, small_backbone())
    with pytest.raises(ValueError, match="pass image_encoder=None"):
        VQAModel(encoder, fu.EarlyFusion(DY, channels=(4,)), 11, small_backbone())
    with pytest.raises(ValueError, match="needs an image_encoder"):
        VQAModel(encoder, fu.SumFusion(9, DY, D), 11)
    with pytest.raises(ValueError, match="the question encoder gives 4-d vectors"):
        VQAModel(encoder, fu.SumFusion(9, DY + 1, D), 11, small_backbone())
    with pytest.raises(ValueError, match="gives 9-d vectors, the fusion expects image_dim=8"):
        VQAModel(encoder, fu.SumFusion(8, DY, D), 11, small_backbone())
    with pytest.raises(ValueError, match="gives 6-d regions"):
        VQAModel(encoder, CrossAttentionFusion(9, DY, D, R), 11, small_backbone())
    with pytest.raises(ValueError, match="n_answers=11 scores"):
        VQAModel(encoder, fu.LateFusion(9, DY, 10), 11, small_backbone())
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


def test_canvas_lookup_answers_like_the_full_model() -> None:
    model = make_model(CrossAttentionFusion(DX, DY, D, n_regions=R)).eval()
    images = torch.randn(7, 1, 16, 16)
    regions = model.image_encoder.store_regions(images, batch_size=3)
    assert regions.shape == (7, R, DX) and not regions.requires_grad
    canvas = torch.tensor([6, 0, 0, 3])
    questions = torch.randint(1, 12, (4, 5))
    expected = model(images[canvas], questions)
    torch.testing.assert_close(CanvasLookup(model, regions)(canvas, questions), expected)
    torch.testing.assert_close(CanvasLookup(model, images)(canvas, questions), expected)
    lookup = CanvasLookup(model, regions)
    assert {n for n, _ in lookup.named_parameters()} == {
        "model." + n for n, _ in model.named_parameters()
    }
    assert "table" not in lookup.state_dict()
    with pytest.raises(ValueError, match=r"canvas indices must lie in 0..6, got 0..7"):
        lookup(torch.tensor([0, 7]), questions[:2])
    with pytest.raises(ValueError, match="1-D tensor of canvas indices"):
        lookup(torch.tensor([[0]]), questions[:1])
    with pytest.raises(ValueError, match="must be a VQAModel"):
        CanvasLookup(nn.Linear(2, 2), regions)
    with pytest.raises(ValueError, match="must be a float tensor"):
        CanvasLookup(model, regions.long())
    with pytest.raises(ValueError, match=r"table must be a float tensor of shape \(B, R, 6\)"):
        CanvasLookup(model, regions[..., :2])
    with pytest.raises(ValueError, match="regions \\(N, R, D\\) or canvases"):
        CanvasLookup(model, torch.randn(7, 4))
    early = make_model(fu.EarlyFusion(DY, out_dim=D, channels=(4, 8))).eval()
    with pytest.raises(ValueError, match="give it canvases"):
        CanvasLookup(early, regions)
    torch.testing.assert_close(
        CanvasLookup(early, images)(canvas, questions), early(images[canvas], questions)
    )


def test_store_regions_keeps_the_mode_and_rejects_bad_batch_size() -> None:
    backbone = small_backbone().train()
    backbone.store_regions(torch.randn(2, 1, 16, 16))
    assert backbone.training
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        backbone.store_regions(torch.randn(2, 1, 16, 16), batch_size=0)
