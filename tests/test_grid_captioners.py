"""The case study's attention captioners: Show, Attend and Tell and a Transformer decoder."""

from __future__ import annotations

import pytest
import torch

from mmcourse.decode import greedy_decode
from mmcourse.models.attention_captioner import AdditiveAttention, AttentionCaptioner
from mmcourse.models.captioner import Captioner
from mmcourse.models.grid import StoredGrid, swap_encoder
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.pooling import ImageVector
from mmcourse.models.transformer_captioner import TransformerCaptioner, causal_mask

V = 12


def make(kind: str, encoder=None):
    torch.manual_seed(0)
    encoder = encoder if encoder is not None else CanvasEncoder(16, (4, 8, 8))
    if kind == "attention":
        return AttentionCaptioner(V, encoder, embed_dim=8, hidden_dim=16, attention_dim=8)
    return TransformerCaptioner(V, encoder, d_model=16, heads=2, layers=2, hidden=32)


KINDS = ["attention", "transformer"]


@pytest.fixture
def images():
    return torch.randn(3, 1, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def ids():
    return torch.randint(3, V, (3, 7), generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("kind", KINDS)
def test_teacher_forcing_equals_the_step_by_step_decoder(kind, images, ids) -> None:
    model = make(kind).eval()
    with torch.no_grad():
        logits = model(images, ids)
        state = model.init_state(images)
        steps = []
        for t in range(ids.shape[1]):
            step_logits, state = model.step(ids[:, t], state)
            steps.append(step_logits)
    assert logits.shape == (3, 7, V)
    torch.testing.assert_close(logits, torch.stack(steps, dim=1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_a_word_never_sees_the_words_after_it(kind, images, ids) -> None:
    model = make(kind).eval()
    changed = ids.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % V
    with torch.no_grad():
        a, b = model(images, ids), model(images, changed)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


@pytest.mark.parametrize("kind", KINDS)
def test_attention_weights_are_a_distribution_over_the_64_regions(kind, images, ids) -> None:
    model = make(kind).eval()
    with torch.no_grad():
        _, weights = model.forward_with_attention(images, ids)
    assert weights.shape == (3, 7, 64)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 7))


def test_additive_attention_by_hand() -> None:
    torch.manual_seed(0)
    attention = AdditiveAttention(region_dim=3, hidden_dim=2, attention_dim=4)
    regions, hidden = torch.randn(1, 5, 3), torch.randn(1, 2)
    W_a, b_a = attention.key.weight, attention.key.bias
    W_h, b_h = attention.query.weight, attention.query.bias
    w = attention.score.weight[0]
    assert attention.score.bias is None  # the softmax over regions would cancel it
    scores = [w @ torch.tanh(W_a @ regions[0, r] + b_a + W_h @ hidden[0] + b_h) for r in range(5)]
    expected = torch.softmax(torch.stack(scores), dim=0)
    got = attention(attention.project_keys(regions), hidden)[0]
    torch.testing.assert_close(got, expected)


def test_causal_mask_blocks_the_future_only() -> None:
    mask = causal_mask(3)
    assert mask.tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    with pytest.raises(ValueError, match="at least 1 token"):
        causal_mask(0)


def test_a_transformer_refuses_zero_tokens(images) -> None:
    model = make("transformer").eval()
    with pytest.raises(ValueError, match="at least one token"):
        model(images, torch.empty(3, 0, dtype=torch.long))


def test_additive_attention_has_no_parameter_that_cannot_learn(images, ids) -> None:
    """Every parameter of Show, Attend and Tell gets a gradient from the caption loss (a bias
    the softmax cancels gets one of float rounding only, a million times below the rest)."""
    model = make("attention").train()
    model(images, ids).logsumexp(-1).sum().backward()
    sizes = {name: float(p.grad.abs().max()) for name, p in model.named_parameters()}
    largest = max(sizes.values())
    assert [name for name, size in sizes.items() if size < 1e-6 * largest] == []


def test_the_key_value_cache_gives_the_logits_of_running_the_prefix_again(images, ids) -> None:
    model = make("transformer").eval()
    with torch.no_grad():
        cached, uncached = model.init_state(images), model.init_state(images)
        for t in range(ids.shape[1]):
            a, cached = model.step(ids[:, t], cached)
            b, uncached = model.step(ids[:, t], uncached, use_cache=False)
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(cached.attention, uncached.attention)
    heads, head_dim = 2, 8
    assert cached.keys.shape == cached.values.shape == (3, 2, heads, ids.shape[1], head_dim)
    assert uncached.keys.shape[3] == 0
    with pytest.raises(ValueError, match="same use_cache"):
        model.step(ids[:, 0], uncached)


@pytest.mark.parametrize("kind", [*KINDS, "show_and_tell"])
def test_stored_regions_then_the_real_encoder_give_the_same_captions(kind, images) -> None:
    """Train on stored regions, then swap the CNN in: the captions must not change."""
    torch.manual_seed(0)
    encoder = CanvasEncoder(16, (4, 8, 8)).eval()
    with torch.no_grad():
        regions = encoder.forward_grid(images)
    stored = StoredGrid(64, 16)
    if kind == "show_and_tell":
        model = Captioner(V, embed_dim=8, hidden_dim=16, image_encoder=ImageVector(stored))
    else:
        model = make(kind, stored)
    model.eval()
    from_regions = greedy_decode(model, regions, max_len=6)
    swap_encoder(model, encoder)
    assert greedy_decode(model, images, max_len=6).tolist() == from_regions.tolist()


def test_swap_encoder_refuses_a_grid_of_another_shape() -> None:
    model = make("attention", StoredGrid(64, 16))
    with pytest.raises(ValueError, match="grid of"):
        swap_encoder(model, CanvasEncoder(32, (4, 8, 8)))


def test_stored_grid_checks_what_it_is_given() -> None:
    grid = StoredGrid(64, 16)
    assert grid.grid_size() == (8, 8)
    with pytest.raises(ValueError, match="regions"):
        grid.forward_grid(torch.zeros(2, 63, 16))
    with pytest.raises(ValueError, match="does not hold"):
        StoredGrid(64, 16, grid=(4, 8))


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_decoding_runs_on_the_step_interface(kind, images) -> None:
    out = greedy_decode(make(kind), images, max_len=5)
    assert out.shape[0] == 3 and out.shape[1] <= 5


def test_clear_errors_for_bad_inputs(images) -> None:
    with pytest.raises(ValueError, match="forward_grid"):
        AttentionCaptioner(V, torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="multiple of heads"):
        TransformerCaptioner(V, CanvasEncoder(16, (4, 8, 8)), d_model=10, heads=4)
    model = make("transformer")
    with pytest.raises(ValueError, match="max_len"):
        model(images, torch.zeros(3, 60, dtype=torch.long))
    with pytest.raises(ValueError, match="same number"):
        model(images, torch.zeros(2, 4, dtype=torch.long))
    for kind in KINDS:
        model = make(kind)
        state = model.init_state(images)
        with pytest.raises(ValueError, match="1-D"):
            model.step(torch.zeros(3, 1, dtype=torch.long), state)
        with pytest.raises(ValueError, match="tokens hold 2 rows but the state holds 3"):
            model.step(torch.zeros(2, dtype=torch.long), state)


@pytest.mark.parametrize("kind", KINDS)
def test_constructor_arguments_are_named_when_wrong(kind) -> None:
    cls = AttentionCaptioner if kind == "attention" else TransformerCaptioner
    encoder = CanvasEncoder(16, (4, 8, 8))
    with pytest.raises(ValueError, match="dropout"):
        cls(V, encoder, dropout=1.5)
    with pytest.raises(ValueError, match="pad_id"):
        cls(V, encoder, pad_id=V)
    with pytest.raises((TypeError, ValueError), match="vocab_size"):
        cls(0, encoder)
