"""The case study's captioning recipe, on a few canvases (the real run is in the benchmarks)."""

from __future__ import annotations

import pytest
import torch

from mmcourse.caption_metrics import caption_report_for
from mmcourse.casestudy import pretrained, recipe
from mmcourse.data.questions import slot_targets
from mmcourse.metrics import slot_attribute_accuracy
from mmcourse.models.grid import StoredGrid, swap_encoder
from mmcourse.models.introspect import count_parameters
from mmcourse.vocab import UNK_ID


@pytest.fixture(scope="module")
def data():
    return recipe.build_data(
        sizes={"train": 96, "val": 32, "test": 16, "compositional": 16}, profile="fast"
    )


def test_build_data_gives_four_splits_and_one_vocabulary(data) -> None:
    assert [len(data.splits[s]) for s in ("train", "val", "test", "compositional")] == [
        96,
        32,
        16,
        16,
    ]
    assert data.captions["val"].shape[:2] == (32, 4)
    assert data.images("test").shape == (16, 1, 64, 64)
    # Every caption of the test split is spelled with training words only.
    assert UNK_ID not in data.captions["test"].unique().tolist()
    with pytest.raises(ValueError, match="unknown splits"):
        recipe.build_data(sizes={"training": 10})


@pytest.mark.parametrize("kind", recipe.DECODERS)
def test_the_three_decoders_read_a_stored_grid_or_the_encoder(kind, data) -> None:
    encoder = recipe.new_encoder().eval()
    regions = recipe.store_regions(encoder, data.images("test"))
    assert regions.shape == (16, 64, recipe.REGION_DIM)
    model = recipe.make_decoder(kind, len(data.vocab), StoredGrid(64, recipe.REGION_DIM)).eval()
    from_regions = recipe.write_captions(model, regions, data.vocab)
    swap_encoder(model, encoder.encoder)
    assert recipe.write_captions(model, data.images("test"), data.vocab) == from_regions


def test_decoder_sizes_are_what_the_docstring_says() -> None:
    """Counted by hand: Show and Tell's two first layers read 64 x 64 = 4,096 features."""
    grid = StoredGrid(64, 64)
    sizes = {k: count_parameters(recipe.make_decoder(k, 35, grid)) for k in recipe.DECODERS}
    flat = 64 * 64
    first_layers = (flat + 1) * 128 + (flat + 1) * 64  # init_hidden and image_input
    gru = 3 * (128 * 128 + 128 * 128 + 2 * 128)  # input 64 + 64 = 128 wide
    assert sizes["show_and_tell"] == first_layers + 35 * 64 + gru + (128 + 1) * 35
    # Show, Attend and Tell: region positions, the LSTM's first state read from the mean
    # region, additive attention (its score has no bias: the softmax over regions cancels it),
    # the gate, and an LSTM that reads a word (64) and the attended region (64)
    d, h, regions = 64, 128, 64
    attention = d * h + d + d * d + d + d  # key (d -> d), query (h -> d), score (d -> 1)
    lstm = 4 * h * (2 * d) + 4 * h * h + 2 * 4 * h
    assert sizes["attention"] == (
        regions * d + 2 * (d * h + h) + attention + (h + 1) + 35 * d + lstm + (h + d + 1) * 35
    )
    # the Transformer: positions of regions and of each word of the longest caption, the regions' projection, then two
    # blocks of pre-norm self-attention, cross-attention and a 2x-wide MLP, a last norm, output
    multi_head = 3 * (d * d + d) + (d * d + d)  # in_proj (q, k, v) and out_proj
    block = 3 * 2 * d + 2 * multi_head + (d * 2 * d + 2 * d) + (2 * d * d + d)
    assert sizes["transformer"] == (
        regions * d
        + (recipe.MAX_CAPTION_LEN + 1) * d
        + (d * d + d)
        + 35 * d
        + 2 * block
        + 2 * d
        + (d + 1) * 35
    )


def test_beam_of_one_writes_the_greedy_captions(data) -> None:
    model = recipe.make_decoder("attention", len(data.vocab), StoredGrid(64, 64)).eval()
    regions = torch.randn(4, 64, 64, generator=torch.Generator().manual_seed(0))
    greedy = recipe.write_captions(model, regions, data.vocab)
    assert recipe.write_captions(model, regions, data.vocab, beam_width=2) is not None
    beam_one = recipe.write_captions(model, regions, data.vocab, beam_width=1)
    assert beam_one == greedy


def test_train_decoder_keeps_the_epoch_best_on_validation(data) -> None:
    encoder = recipe.new_encoder().eval()
    regions = {s: recipe.store_regions(encoder, data.images(s)) for s in ("train", "val")}
    model = recipe.make_decoder("transformer", len(data.vocab), StoredGrid(64, 64))
    history = recipe.train_decoder(
        model,
        (regions["train"], data.captions["train"]),
        epochs=3,
        val=(regions["val"], data.splits["val"]),
        vocab=data.vocab,
    )
    exact = history["val_exact"]
    assert len(exact) == 3 and history.best_epoch == 1 + exact.index(max(exact))
    # The model holds the chosen epoch's weights: scoring it again gives that epoch's number.
    again = caption_report_for(
        recipe.write_captions(model, regions["val"], data.vocab), data.splits["val"]
    )
    assert again["exact"] == max(exact)
    assert again["bleu4"] == history["val_bleu4"][history.best_epoch - 1]
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_train_decoder_goes_on_from_its_checkpoint(data, tmp_path, monkeypatch) -> None:
    """Stopped after epoch 2 (so its checkpoint holds epoch 1), then started again: the
    weights, the records and the best epoch of a run never stopped (dropout, the one-cycle
    schedule and the best epoch's weights are all put back)."""
    encoder = recipe.new_encoder().eval()
    regions = {s: recipe.store_regions(encoder, data.images(s)) for s in ("train", "val")}

    def run(checkpoint):
        model = recipe.make_decoder("attention", len(data.vocab), StoredGrid(64, 64))
        history = recipe.train_decoder(
            model, (regions["train"], data.captions["train"]), epochs=3,
            val=(regions["val"], data.splits["val"]), vocab=data.vocab, checkpoint=checkpoint,
        )  # fmt: skip
        return model, history

    whole, whole_history = run(tmp_path / "whole.pt")
    scored = recipe.BestOnValidation.on_epoch_end

    def stop_after_two(self, state, record):
        scored(self, state, record)
        if state.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(recipe.BestOnValidation, "on_epoch_end", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut.pt")
    monkeypatch.undo()
    model, history = run(tmp_path / "cut.pt")
    for name, value in whole.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert history.records == whole_history.records
    assert history.best_epoch == whole_history.best_epoch


def test_bad_arguments_are_named(data) -> None:
    with pytest.raises(ValueError, match="decoder"):
        recipe.make_decoder("lstm", 20, StoredGrid(64, 64))
    model = recipe.make_decoder("attention", len(data.vocab), StoredGrid(64, 64))
    with pytest.raises(ValueError, match="val inputs"):
        recipe.train_decoder(
            model,
            (torch.zeros(4, 64, 64), data.captions["train"][:4]),
            epochs=1,
            val=(torch.zeros(3, 64, 64), data.splits["val"]),
            vocab=data.vocab,
        )
    with pytest.raises(ValueError, match="epochs"):
        recipe.pretrain_encoder(data.splits["train"], epochs=0)


@pytest.mark.parametrize("kind", ["attention", "transformer"])
def test_caption_with_attention_follows_greedy_decoding(kind, data) -> None:
    encoder = recipe.new_encoder().eval()
    model = recipe.make_decoder(kind, len(data.vocab), encoder.encoder).eval()
    image = data.images("test")[:1]
    words, weights = recipe.caption_with_attention(model, image, data.vocab, max_len=8)
    greedy = recipe.greedy_decode(model, image, 8)[0].tolist()
    assert words == [data.vocab.itos[i] for i in greedy if i != 0]
    assert weights.shape == (len(words), 64)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(len(words)))
    with pytest.raises(ValueError, match="one canvas"):
        recipe.caption_with_attention(model, data.images("test")[:2], data.vocab)
    show_and_tell = recipe.make_decoder("show_and_tell", len(data.vocab), encoder.encoder)
    with pytest.raises(ValueError, match="no attention"):
        recipe.caption_with_attention(show_and_tell, image, data.vocab)
    # fed the same words, the decoder looks where it looked while writing them
    tokens = [data.vocab[word] for word in words]
    torch.testing.assert_close(recipe.attention_for(model, image, tokens), weights)
    with pytest.raises(ValueError, match="no attention"):
        recipe.attention_for(show_and_tell, image, tokens)
    with pytest.raises(ValueError, match="non-empty"):
        recipe.attention_for(model, image, [])


def test_a_slot_head_fitted_on_the_frozen_encoder_reads_the_slots(data) -> None:
    encoder = pretrained.load_encoder()
    before = {name: p.clone() for name, p in encoder.state_dict().items()}
    train = data.splits["train"]
    head = recipe.fit_slot_head(encoder, train, epochs=5)
    assert not head.training and not any(p.requires_grad for p in head.parameters())
    assert all(torch.equal(p, before[name]) for name, p in encoder.state_dict().items())
    with torch.no_grad():
        logits = head(encoder.vector(recipe.store_regions(encoder, train.float_images())))
    targets = slot_targets(train)
    accuracy = slot_attribute_accuracy(logits, targets, occupied_only=True)
    # the most frequent value of each attribute among the occupied slots: a head that learned
    # nothing from the encoder's vector reaches at most this
    occupied = targets[targets[..., 0] > 0]
    majority = torch.tensor([occupied[:, i].bincount().max() / len(occupied) for i in range(4)])
    assert (accuracy > majority + 0.2).all(), (accuracy, majority)


def test_slot_head_captions_say_what_the_logits_say(data) -> None:
    val = data.splits["val"]
    targets = slot_targets(val)  # classes shifted by one, 0 = empty
    sizes = (11, 3, 4, 4)  # digit, size, thickness, slant: each with its "empty" class
    perfect = torch.cat(
        [torch.nn.functional.one_hot(targets[..., i], n).float() for i, n in enumerate(sizes)], -1
    )
    texts = recipe.slot_head_captions(perfect, val)
    assert caption_report_for(texts, val)["exact"] == 1.0
    # Now the head's thickness part says "empty" first and "thick" second for every slot:
    # occupancy comes from the digit part alone, and an occupied slot's word is the best
    # non-empty one.
    thick = perfect.clone()
    thick[..., 11 + 3 : 11 + 3 + 4] = torch.tensor([5.0, 0.0, 0.0, 1.0])
    report = caption_report_for(recipe.slot_head_captions(thick, val), val)
    is_thick = val.layout.thickness[val.layout.digits >= 0] == 2
    assert report["thickness"] == pytest.approx(is_thick.float().mean().item())
    assert report["digit"] == 1.0 and report["count"] == 1.0
    # The head calls the right slot empty everywhere: canvases with a digit there lose it, or,
    # with nothing else, keep one digit in the slot it finds least empty (a tie: the left).
    no_right = perfect.clone()
    no_right[:, 2, :11] = torch.nn.functional.one_hot(torch.tensor(0), 11).float()
    texts = recipe.slot_head_captions(no_right, val)
    layout = val.layout.digits
    only_right = (layout[:, 2] >= 0) & (layout[:, :2] < 0).all(dim=1)
    right_and_more = (layout[:, 2] >= 0) & ~only_right
    report = caption_report_for(texts, val)
    assert report["count"] == pytest.approx(1 - right_and_more.float().mean().item())
    assert report["exact"] == pytest.approx((layout[:, 2] < 0).float().mean().item())


def test_digitnet_encoder_sees_the_pixel_contrasts_digitnet_saw(data) -> None:
    from mmcourse.data import captions as C
    from mmcourse.data import mnist
    from mmcourse.models.image import DigitNet

    torch.manual_seed(5)
    digitnet = DigitNet(channels=(16, 32, 64))
    encoder = recipe.digitnet_encoder(digitnet)
    canvases = data.splits["val"].float_images()[:4]  # standardised as canvases are
    pixels = canvases * C.CANVAS_STD + C.CANVAS_MEAN
    as_mnist = (pixels - mnist.MEAN) / mnist.STD  # standardised as DigitNet's digits were
    weight = digitnet.blocks[0][0].weight
    theirs = torch.nn.functional.conv2d(as_mnist, weight, padding=1)
    mine = encoder.encoder.blocks[0][0](canvases)
    # Away from the border the two differ only by a constant per channel: the means' offset
    # times the sum of the kernel's weights, which batch norm removes.
    offset = (C.CANVAS_MEAN - mnist.MEAN) / mnist.STD * weight.sum(dim=(1, 2, 3))
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    assert torch.allclose(mine[inner] + offset[None, :, None, None], theirs[inner], atol=1e-4)
    # In eval mode the batch norm takes the offset away: the first block answers as DigitNet's.
    digitnet.eval(), encoder.eval()
    with torch.no_grad():
        theirs_block = digitnet.blocks[0][1](theirs)
        mine_block = encoder.encoder.blocks[0][1](encoder.encoder.blocks[0][0](canvases))
    assert torch.allclose(mine_block[inner], theirs_block[inner], atol=1e-4)
    later = encoder.encoder.blocks[2][0].weight
    assert torch.equal(later, digitnet.blocks[2][0].weight)
    with pytest.raises(ValueError, match="must have the encoder's shapes"):
        recipe.digitnet_encoder(DigitNet(channels=(8, 16, 32)))
    with pytest.raises(TypeError, match="must be a DigitNet"):
        recipe.digitnet_encoder(encoder)


def test_pretraining_trains_the_encoder_it_is_given(data) -> None:
    from mmcourse.models.image import DigitNet

    torch.manual_seed(3)
    start = recipe.digitnet_encoder(DigitNet(channels=(16, 32, 64)))
    before = {k: v.clone() for k, v in start.state_dict().items()}
    encoder, _, history = recipe.pretrain_encoder(data.splits["train"], 1, start=start)
    assert encoder is start and not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())
    moved = [k for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert "encoder.blocks.0.0.weight" in moved and len(history["train_loss"]) == 1
    with pytest.raises(TypeError, match="start must be a CanvasBackbone"):
        recipe.pretrain_encoder(data.splits["train"], 1, start=DigitNet())
