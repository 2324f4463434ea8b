"""Tests for mmcourse.models.captioner: shapes, teacher-forcing alignment, overfitting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.decode import greedy_decode
from mmcourse.models.captioner import Captioner, CaptionerState, teacher_forcing_pairs
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.pooling import ImageVector
from mmcourse.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary

V = 12


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(cell: str = "gru", **kwargs: object) -> Captioner:
    encoder = CanvasEncoder(out_dim=16, channels=(4, 8))
    defaults = dict(embed_dim=8, hidden_dim=16, cell=cell, image_encoder=encoder)
    defaults.update(kwargs)
    return Captioner(V, **defaults)


def random_ids(batch: int, length: int) -> torch.Tensor:
    return torch.randint(4, V, (batch, length))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_logits_shape(cell: str, layers: int) -> None:
    model = tiny(cell, num_layers=layers)
    logits = model(torch.randn(3, 1, 16, 16), random_ids(3, 7))
    assert logits.shape == (3, 7, V)
    state = model.init_state(torch.randn(3, 1, 16, 16))
    assert state.hidden.shape == (3, layers, 16)
    assert (state.cell is None) == (cell == "gru")
    if cell == "lstm":
        assert state.cell.shape == (3, layers, 16)


def test_default_encoder_keeps_positions() -> None:
    model = Captioner(V, image_dim=8, image_channels=(4, 8, 8))
    assert isinstance(model.image_encoder, ImageVector)
    assert isinstance(model.image_encoder.encoder, CanvasEncoder)
    assert model.image_encoder.pooling == "flatten"
    assert model.init_hidden.in_features == 8 * 8 * 8  # 8x8 regions of 8 features
    assert model(torch.randn(2, 1, 64, 64), random_ids(2, 5)).shape == (2, 5, V)
    averaged = Captioner(V, image_dim=8, image_channels=(4, 8, 8), pooling="mean")
    assert averaged.init_hidden.in_features == 8


def test_teacher_forcing_pairs_shift_by_one() -> None:
    captions = torch.tensor([[BOS_ID, 5, 6, 7, EOS_ID], [BOS_ID, 8, EOS_ID, PAD_ID, PAD_ID]])
    inputs, targets = teacher_forcing_pairs(captions)
    assert inputs.tolist() == [[BOS_ID, 5, 6, 7], [BOS_ID, 8, EOS_ID, PAD_ID]]
    assert targets.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]]
    # the target at t is the input at t + 1
    assert torch.equal(inputs[:, 1:], targets[:, :-1])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("image_input", [True, False])
def test_forward_matches_stepwise_decoding(cell: str, image_input: bool) -> None:
    model = tiny(cell, num_layers=2, image_input=image_input).eval()
    images, ids = torch.randn(4, 1, 16, 16), random_ids(4, 6)
    torch.testing.assert_close(model(images, ids), model.forward_stepwise(images, ids))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("image_input", [True, False])
def test_logits_never_look_ahead(cell: str, image_input: bool) -> None:
    """Under teacher forcing, position t may only depend on inputs 0..t."""
    model = tiny(cell, image_input=image_input).eval()
    images, ids = torch.randn(2, 1, 16, 16), random_ids(2, 8)
    changed = ids.clone()
    changed[:, 5] = (ids[:, 5] - 4 + 1) % (V - 4) + 4  # a different real token at t = 5
    before, after = model(images, ids), model(images, changed)
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


@pytest.mark.parametrize("image_input", [True, False])
def test_the_image_conditions_the_first_word(image_input: bool) -> None:
    model = tiny(image_input=image_input).eval()
    ids = torch.full((2, 1), BOS_ID)
    images = torch.stack([torch.zeros(1, 16, 16), torch.ones(1, 16, 16) * 3])
    logits = model(images, ids)
    assert not torch.allclose(logits[0], logits[1])


def test_image_input_is_the_same_vector_at_every_step() -> None:
    model = tiny().eval()
    images = torch.randn(3, 1, 16, 16)
    state = model.init_state(images)
    expected = model.image_input(model.image_encoder(images))
    assert state.memory.shape == (3, 1, 8)
    torch.testing.assert_close(state.memory[:, 0], expected)
    assert model.rnn.input_size == 2 * 8
    _, after = model.step(torch.full((3,), BOS_ID), state)
    torch.testing.assert_close(after.memory, state.memory)
    plain = tiny(image_input=False)
    assert plain.init_state(images).memory is None and plain.rnn.input_size == 8


def test_state_tensors_are_batch_first() -> None:
    model = tiny("lstm", num_layers=2).eval()
    images = torch.randn(3, 1, 16, 16)
    state = model.init_state(images)
    logits, state = model.step(torch.full((3,), BOS_ID), state)
    assert logits.shape == (3, V)
    # row 1 alone gives the same result as row 1 inside the batch
    single = model.init_state(images[1:2])
    single_logits, single = model.step(torch.full((1,), BOS_ID), single)
    torch.testing.assert_close(single_logits[0], logits[1])
    torch.testing.assert_close(single.hidden[0], state.hidden[1])
    torch.testing.assert_close(single.cell[0], state.cell[1])


def test_tiny_captioner_overfits_four_captions_and_greedy_reproduces_them() -> None:
    torch.manual_seed(0)
    texts = [
        "a small seven on the left",
        "a large two in the middle",
        "there is a thin one",
        "a big thick eight leaning right on the right",
    ]
    vocab = Vocabulary.build(texts)
    captions, _ = vocab.encode_batch(texts)
    inputs, targets = teacher_forcing_pairs(captions)
    images = torch.randn(4, 1, 16, 16)
    model = Captioner(
        len(vocab),
        embed_dim=16,
        hidden_dim=32,
        image_encoder=CanvasEncoder(out_dim=16, channels=(4, 8)),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(200):
        logits = model(images, inputs)
        loss = F.cross_entropy(logits.reshape(-1, len(vocab)), targets.reshape(-1), ignore_index=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    generated = greedy_decode(model, images, max_len=captions.shape[1])
    assert vocab.decode_batch(generated) == texts
    assert model.training  # greedy_decode put the model back in training mode


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": "rnn"}, "cell must be"),
        ({"hidden_dim": 0}, "hidden_dim must be a positive int"),
        ({"num_layers": 0}, "num_layers must be a positive int"),
        ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
        ({"pad_id": V}, rf"pad_id must be an int in 0..{V - 1}, got {V}"),
        ({"image_encoder": nn.Identity()}, "out_dim"),
    ],
)
def test_constructor_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Captioner(V, **kwargs)


def test_constructor_type_errors() -> None:
    with pytest.raises(TypeError, match="embed_dim must be a positive int, got float 2.5"):
        Captioner(V, embed_dim=2.5)
    with pytest.raises(TypeError, match="vocab_size must be a positive int, got str '20'"):
        Captioner("20")


def test_vocab_size_error() -> None:
    with pytest.raises(ValueError, match="vocab_size must be a positive int"):
        Captioner(0)


def test_forward_errors() -> None:
    model = tiny()
    images = torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match="torch.long"):
        model(images, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(images, torch.zeros(2, 3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        model(images, torch.full((2, 3), V))
    with pytest.raises(ValueError, match="same number of examples"):
        model(images, random_ids(3, 4))
    with pytest.raises(ValueError, match="same number of examples"):
        model.forward_stepwise(images, random_ids(3, 4))
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(2, 16, 16), random_ids(2, 4))


def test_step_errors() -> None:
    model = tiny()
    state = model.init_state(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="1-D tensor"):
        model.step(torch.zeros(2, 1, dtype=torch.long), state)
    with pytest.raises(ValueError, match="tokens hold 3 rows but the state holds 2"):
        model.step(torch.zeros(3, dtype=torch.long), state)
    lstm = tiny("lstm")
    no_cell = CaptionerState(hidden=torch.zeros(2, 1, 16), memory=torch.zeros(2, 1, 8))
    with pytest.raises(ValueError, match="state.cell"):
        lstm.step(torch.zeros(2, dtype=torch.long), no_cell)
    with pytest.raises(ValueError, match="state.memory"):
        model.step(torch.zeros(2, dtype=torch.long), CaptionerState(hidden=torch.zeros(2, 1, 16)))


def test_teacher_forcing_pairs_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        teacher_forcing_pairs(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        teacher_forcing_pairs([[1, 2]])
    with pytest.raises(ValueError, match="at least 2 tokens"):
        teacher_forcing_pairs(torch.zeros(2, 1, dtype=torch.long))
