"""Tests for mmcourse.models.dual: shapes, unit norms, temperature, independence of towers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.losses import clip_loss
from mmcourse.models.dual import DualEncoder
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.pooling import ImageVector
from mmcourse.models.text import BagOfWordsEncoder

V = 20


pytestmark = pytest.mark.usefixtures("one_thread")


def small(**kwargs: object) -> DualEncoder:
    defaults = dict(embed_dim=16, image_dim=4, image_channels=(4, 4, 4), text_dim=16)
    defaults.update(kwargs)
    return DualEncoder(V, **defaults)


def ids(batch: int, length: int = 7) -> torch.Tensor:
    out = torch.randint(4, V, (batch, length))
    out[0, length - 2 :] = 0  # one padded caption
    return out


@pytest.mark.parametrize("text", ["bow", "gru", "lstm", "transformer"])
def test_shapes_and_unit_norms(text: str) -> None:
    model = small(text_encoder=text).eval()
    image_emb, text_emb, scale = model(torch.randn(5, 1, 64, 64), ids(5))
    assert image_emb.shape == text_emb.shape == (5, 16)
    assert scale.shape == ()
    ones = torch.ones(5)
    torch.testing.assert_close(image_emb.norm(dim=1), ones)
    torch.testing.assert_close(text_emb.norm(dim=1), ones)


def test_default_towers() -> None:
    model = small()
    assert isinstance(model.image_encoder, ImageVector)
    assert model.image_encoder.pooling == "flatten"
    assert model.image_projection.in_features == 64 * 4  # 8x8 regions of 4 features
    assert model.image_projection.bias is None and model.text_projection.bias is None
    assert model.text_encoder.out_dim == 16


def test_embeddings_are_normalised_projections() -> None:
    """encode_* == normalize(W @ tower(x)), computed here by hand."""
    model = small().eval()
    images, caption_ids = torch.randn(3, 1, 64, 64), ids(3)
    raw_image = model.image_encoder(images) @ model.image_projection.weight.T
    raw_text = model.text_encoder(caption_ids) @ model.text_projection.weight.T
    torch.testing.assert_close(
        model.encode_image(images), raw_image / raw_image.norm(dim=1, keepdim=True)
    )
    torch.testing.assert_close(
        model.encode_text(caption_ids), raw_text / raw_text.norm(dim=1, keepdim=True)
    )
    # similarity is the cosine of the raw vectors
    expected = F.cosine_similarity(raw_image[:, None], raw_text[None], dim=-1)
    torch.testing.assert_close(
        DualEncoder.similarity(model.encode_image(images), model.encode_text(caption_ids)),
        expected,
    )


def test_towers_are_independent() -> None:
    model = small().eval()
    images, a, b = torch.randn(4, 1, 64, 64), ids(4), ids(4)
    image_a, _, _ = model(images, a)
    image_b, _, _ = model(images, b)
    torch.testing.assert_close(image_a, image_b)


def test_temperature_starts_at_clip_value_and_gets_a_gradient() -> None:
    model = small()
    assert model.logit_scale().item() == pytest.approx(1 / 0.07)
    assert model.logit_scale.temperature == pytest.approx(0.07)
    images, caption_ids = torch.randn(6, 1, 64, 64), ids(6)
    image_emb, text_emb, scale = model(images, caption_ids)
    loss = clip_loss(image_emb, text_emb, scale)
    loss.backward()
    grad = model.logit_scale.log_scale.grad
    assert grad is not None and grad.abs() > 0
    # the same derivative by finite differences of the loss in log_scale
    u, v = image_emb.detach(), text_emb.detach()
    log_scale = model.logit_scale.log_scale.detach().double()
    h = 1e-4

    def loss_at(s: torch.Tensor) -> torch.Tensor:
        logits = s.exp() * u.double() @ v.double().T
        target = torch.arange(6)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    numeric = (loss_at(log_scale + h) - loss_at(log_scale - h)) / (2 * h)
    assert grad.item() == pytest.approx(numeric.item(), rel=1e-3, abs=1e-6)


def test_fixed_temperature_gets_no_gradient() -> None:
    model = small(learn_temperature=False, init_temperature=0.5)
    assert model.logit_scale().item() == pytest.approx(2.0)
    image_emb, text_emb, scale = model(torch.randn(4, 1, 64, 64), ids(4))
    clip_loss(image_emb, text_emb, scale).backward()
    assert model.logit_scale.log_scale.grad is None
    assert model.image_projection.weight.grad is not None


def test_custom_towers() -> None:
    image_tower = ImageVector(CanvasEncoder(3, (4,)), "mean", image_size=(16, 16))
    model = DualEncoder(
        V, embed_dim=8, image_encoder=image_tower, text_encoder=BagOfWordsEncoder(V, 5)
    )
    image_emb, text_emb, _ = model(torch.randn(2, 1, 16, 16), ids(2))
    assert image_emb.shape == text_emb.shape == (2, 8)


def test_a_tiny_dual_encoder_learns_to_match_pairs() -> None:
    torch.manual_seed(0)
    model = small(text_encoder="bow")
    images = torch.randn(8, 1, 64, 64)
    captions = torch.arange(4, 12)[:, None].repeat(1, 3)  # 8 different captions
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = clip_loss(*model(images, captions))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    similarity = DualEncoder.similarity(model.encode_image(images), model.encode_text(captions))
    assert torch.equal(similarity.argmax(dim=0), torch.arange(8))  # text -> image recall@1 = 1
    assert loss.item() < 0.5 * torch.log(torch.tensor(8.0)).item()  # well below chance


def test_errors() -> None:
    with pytest.raises(ValueError, match="embed_dim must be a positive int"):
        small(embed_dim=0)
    with pytest.raises(ValueError, match="text_encoder must be a module or one of"):
        small(text_encoder="cnn")
    with pytest.raises(
        ValueError, match="image_encoder must have a positive int attribute out_dim"
    ):
        small(image_encoder=nn.Identity())
    with pytest.raises(ValueError, match="text_encoder must be an nn.Module"):
        small(text_encoder=3)
    with pytest.raises(ValueError, match="init_temperature"):
        small(init_temperature=0.0)
    with pytest.raises(TypeError, match="embed_dim must be a positive int, got float 8.0"):
        small(embed_dim=8.0)
    with pytest.raises(ValueError, match="text_dim must be a positive int, got -4"):
        small(text_dim=-4)
    with pytest.raises(ValueError, match="image_dim must be a positive int, got 0"):
        small(image_dim=0)
    model = small()
    # an error names both arguments and the size they must share
    with pytest.raises(ValueError, match=r"ids must .* shape \(B, T\) with B = 3 as in images"):
        model(torch.randn(3, 1, 64, 64), ids(2))
    with pytest.raises(ValueError, match=r"image_emb must be a float tensor of shape \(N, E\)"):
        DualEncoder.similarity(torch.randn(3), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"text_emb .* \(M, E\) with E = 4 as in image_emb"):
        DualEncoder.similarity(torch.randn(3, 4), torch.randn(3, 5))
