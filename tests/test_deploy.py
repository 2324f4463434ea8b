"""Tests for mmcourse.deploy: export, checks, timing, int8 quantisation and the services."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mmcourse import deploy
from mmcourse.data.captions import CANVAS_MEAN, CANVAS_STD
from mmcourse.decode import beam_search, greedy_decode
from mmcourse.models.attention_captioner import AttentionCaptioner
from mmcourse.models.captioner import Captioner, CaptionerState
from mmcourse.models.dual import DualEncoder, new_dual_encoder
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.transformer_captioner import TransformerCaptioner
from mmcourse.vocab import Vocabulary

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = ["a", "small", "large", "seven", "two", "on", "the", "left", "right", "and"]
VOCAB = Vocabulary.build([" ".join(WORDS)])  # 4 specials + 10 words
V = len(VOCAB)
INT8_TOLERANCE = 0.05
"""Largest difference allowed between int8 and float outputs, relative to the largest float
output. Per-row int8 rounds each weight by at most half a step of ``max|w_row| / 127``; on the
test captioner the first state moves by about 1% of its range (weight-only) or 1.5%
(``dynamic``, which also rounds each input row, and suffers more from inputs with outliers)."""


def tiny_captioner(cell: str = "gru", seed: int = 0) -> Captioner:
    """A random captioner of 64x64 canvases whose greedy captions differ from canvas to
    canvas and run several words long: larger weights from the image to the first state and
    from the state to the logits let the image, not the biases, pick the words."""
    torch.manual_seed(seed)
    model = Captioner(
        V, embed_dim=8, hidden_dim=16, cell=cell, image_dim=8, image_channels=(4, 8, 8)
    )
    with torch.no_grad():
        model.init_hidden.weight.mul_(10.0)
        if model.init_cell is not None:
            model.init_cell.weight.mul_(10.0)
        model.output.weight.mul_(4.0)
        model.output.bias.zero_()
    return model.eval()


def tiny_dual(seed: int = 0) -> DualEncoder:
    torch.manual_seed(seed)
    return DualEncoder(V, embed_dim=16, image_dim=8, image_channels=(4, 8, 8), text_dim=16).eval()


def canvases(batch: int, seed: int = 1) -> torch.Tensor:
    """uint8 canvases ``(B, 64, 64)``: a few bright blobs on a dark background."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(batch, 64, 64, dtype=torch.uint8)
    for i in range(batch):
        x, y = torch.randint(4, 52, (2,), generator=generator).tolist()
        images[i, y : y + 10, x : x + 8] = 255
    return images


def normalized(images: torch.Tensor) -> torch.Tensor:
    return (images.float()[:, None] / 255.0 - CANVAS_MEAN) / CANVAS_STD


def state_tuple(model: Captioner, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    state = model.init_state(images)
    return tuple(
        getattr(state, f) for f in ("hidden", "cell", "memory") if getattr(state, f) is not None
    )


@pytest.fixture(scope="module")
def captioner() -> Captioner:
    return tiny_captioner()


@pytest.fixture(scope="module")
def exported(captioner: Captioner) -> tuple[object, object]:
    return deploy.export_captioner(captioner)


# ------------------------------------------------------------------------------- export
@pytest.mark.parametrize("batch", [1, 5])
def test_exported_encoder_and_step_equal_the_original(captioner, exported, batch) -> None:
    encoder, step = (program.module() for program in exported)  # one program, any batch size
    images = torch.randn(batch, 1, 64, 64)
    with torch.no_grad():
        state = state_tuple(captioner, images)
        got = encoder(images)
        assert len(got) == len(state) == 2  # hidden and memory (a GRU keeps no cell)
        for a, b in zip(got, state):
            assert torch.allclose(a, b, atol=1e-6)
        tokens = torch.randint(0, V, (batch,))
        random_state = tuple(torch.randn_like(t) for t in state)
        logits, new_state = step(tokens, random_state)
        ref_logits, ref_state = captioner.step(
            tokens, CaptionerState(hidden=random_state[0], memory=random_state[1])
        )
    assert logits.shape == (batch, V)
    assert torch.allclose(logits, ref_logits, atol=1e-6)
    assert torch.allclose(new_state[0], ref_state.hidden, atol=1e-6)
    assert torch.equal(new_state[1], random_state[1])  # the image memory passes through


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_exported_greedy_captions_equal_greedy_decode(cell: str) -> None:
    model = tiny_captioner(cell)
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    encoder, step = deploy.export_captioner(model)
    # exporting neither switches the model to training mode nor updates batch norm's stats
    assert not any(layer.training for layer in model.modules())
    assert all(torch.equal(b, buffers[name]) for name, b in model.named_buffers())
    images = normalized(canvases(6))
    expected = greedy_decode(model, images, max_len=12)
    got = deploy.greedy_caption_exported(encoder, step, images, max_len=12)
    assert torch.equal(got, expected)
    # the test means something: captions of several words that differ between canvases
    assert got.shape[1] >= 3
    assert len({tuple(row) for row in got.tolist()}) > 1


def test_an_attention_captioner_exports_too() -> None:
    """Show, Attend and Tell's state (hidden, cell, regions, keys, attention) is flattened the
    same way; its exported greedy captions equal greedy_decode's."""
    torch.manual_seed(0)
    model = AttentionCaptioner(
        12, CanvasEncoder(16, (4, 8, 8)), embed_dim=8, hidden_dim=16, attention_dim=8
    ).eval()
    encoder, step = deploy.export_captioner(model)
    images = normalized(canvases(5))
    expected = greedy_decode(model, images, max_len=10)
    assert torch.equal(deploy.greedy_caption_exported(encoder, step, images, 10), expected)


def test_beam_search_runs_on_the_exported_programs(captioner, exported) -> None:
    """The exported pieces offer decode's step interface, so beam search needs no rewrite."""
    images = normalized(canvases(4))
    expected = beam_search(captioner, images, max_len=10, beam_width=3)
    got = beam_search(deploy.ExportedCaptioner(*exported), images, max_len=10, beam_width=3)
    assert torch.equal(got, expected)


def test_save_and_load_round_trip(captioner, exported, tmp_path) -> None:
    encoder, step = exported
    path = deploy.save_exported(encoder, tmp_path / "sub" / "encoder.pt2")
    assert path.is_file()
    loaded = deploy.load_exported(path)
    images = torch.randn(3, 1, 64, 64)
    match, diff = deploy.outputs_match(encoder.module(), loaded.module(), images, atol=0, rtol=0)
    assert match and diff == 0.0
    deploy.save_exported(step, tmp_path / "step.pt2")
    got = deploy.greedy_caption_exported(
        loaded, deploy.load_exported(tmp_path / "step.pt2"), images, 8
    )
    assert torch.equal(got, greedy_decode(captioner, images, 8))
    with pytest.raises(FileNotFoundError, match="save_exported"):
        deploy.load_exported(tmp_path / "missing.pt2")


def test_a_damaged_or_wrong_file_gets_a_message_not_a_zip_error(exported, tmp_path) -> None:
    good = deploy.save_exported(exported[0], tmp_path / "encoder.pt2").read_bytes()
    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="damaged.*save_exported"):
        deploy.load_exported(truncated)
    renamed = tmp_path / "weights.pt2"
    torch.save(nn.Linear(2, 2).state_dict(), renamed)
    with pytest.raises(ValueError, match="torch.save checkpoint, not an exported program"):
        deploy.load_exported(renamed)
    with pytest.raises(TypeError, match="ExportedProgram"):
        deploy.save_exported(nn.Linear(2, 2), tmp_path / "x.pt2")


def test_export_module_leaves_the_batch_free_even_from_a_batch_of_one() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3)).train()
    program = deploy.export_module(model, torch.randn(1, 4))
    assert all(layer.training for layer in model.modules())  # traced in eval mode, put back
    for batch in (1, 7):
        x = torch.randn(batch, 4)
        assert torch.allclose(program.module()(x), model.eval()(x), atol=1e-6)
    fixed = deploy.export_module(model, torch.randn(2, 4), dynamic_batch=False)
    with pytest.raises(Exception):  # noqa: B017 - torch's own shape guard
        fixed.module()(torch.randn(3, 4))


def test_export_module_checks_its_inputs_and_explains_a_failure() -> None:
    with pytest.raises(TypeError, match="module"):
        deploy.export_module(lambda x: x, torch.zeros(2, 3))
    with pytest.raises(TypeError, match="example_inputs"):
        deploy.export_module(nn.Identity(), [])
    with pytest.raises(ValueError, match="same batch size"):
        deploy.export_module(nn.Bilinear(2, 2, 2), (torch.zeros(2, 2), torch.zeros(3, 2)))

    class ValueDependent(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x  # a Python branch on a tensor's value

    with pytest.raises(RuntimeError, match="could not trace ValueDependent"):
        deploy.export_module(ValueDependent(), torch.randn(2, 3))


def test_image_tower_exports_and_matches_encode_image() -> None:
    model = tiny_dual()
    program = deploy.export_image_tower(model)
    images = normalized(canvases(4))
    match, diff = deploy.outputs_match(model.encode_image, program.module(), images, atol=1e-6)
    assert match, diff


@pytest.mark.parametrize("tower", ["bigru_mean", "gru", "lstm", "bow", "transformer"])
def test_text_tower_exports_and_matches_encode_text(tower: str, tmp_path) -> None:
    """The exported text tower (no packing, no id check inside) gives encode_text's
    embeddings, for texts of different lengths, also after a save and load."""
    torch.manual_seed(0)
    model = new_dual_encoder(V, text_encoder=tower, embed_dim=8, text_dim=8).eval()
    exported = deploy.export_text_tower(model, length=12)
    ids, _ = VOCAB.encode_batch(["a seven", "a small two on the left and a large seven", "two"])
    match, diff = deploy.outputs_match(model.encode_text, exported, ids, atol=1e-6)
    assert match, diff
    reloaded = deploy.load_exported(deploy.save_exported(exported.program, tmp_path / "t.pt2"))
    again = deploy.ExportedTextTower(reloaded, V, 12)
    assert torch.allclose(again(ids[:1]), model.encode_text(ids[:1]), atol=1e-6)


def test_exported_text_tower_checks_its_ids() -> None:
    exported = deploy.export_text_tower(tiny_dual(), length=4)
    with pytest.raises(ValueError, match="longer than the exported length 4"):
        exported(torch.ones(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="outside 0..13"):
        exported(torch.tensor([[1, 99, 2]]))
    with pytest.raises(ValueError, match="torch.long"):
        exported(torch.ones(1, 3))
    with pytest.raises(ValueError, match="at least one text"):
        exported(torch.ones(0, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="DualEncoder whose text_encoder"):
        deploy.export_text_tower(tiny_captioner())


# ------------------------------------------------------------------------------- checks
def test_outputs_match_reports_the_largest_difference() -> None:
    x = torch.zeros(3)
    assert deploy.outputs_match(lambda x: x, lambda x: x + 0.5, x, atol=1.0) == (True, 0.5)
    assert deploy.outputs_match(lambda x: x, lambda x: x + 0.5, x, atol=0.1) == (False, 0.5)
    assert deploy.outputs_match(lambda x: (x, x), lambda x: x, x) == (False, math.inf)
    assert deploy.outputs_match(lambda x: x, lambda x: x[:2], x) == (False, math.inf)
    nan = torch.tensor([float("nan"), 1.0])
    assert deploy.outputs_match(lambda x: x, lambda x: x.clone(), nan) == (True, 0.0)
    assert deploy.outputs_match(lambda x: x, lambda x: x.nan_to_num(), nan) == (False, math.inf)
    with pytest.raises(ValueError, match="atol"):
        deploy.outputs_match(lambda x: x, lambda x: x, x, atol=-1.0)


def test_latency_and_throughput_are_positive_and_finite() -> None:
    model = nn.Linear(16, 4).eval()
    latency = deploy.measure_latency(model, torch.randn(1, 16), repeats=5, warmup=1)
    assert set(latency) == {"median_ms", "mean_ms", "min_ms", "max_ms", "repeats"}
    for key in ("median_ms", "mean_ms", "min_ms", "max_ms"):
        assert math.isfinite(latency[key]) and latency[key] > 0
    assert latency["min_ms"] <= latency["median_ms"] <= latency["max_ms"]
    rate = deploy.measure_throughput(model, torch.randn(32, 16), repeats=3, warmup=0)
    assert math.isfinite(rate) and rate > 0
    with pytest.raises(ValueError, match="repeats"):
        deploy.measure_latency(model, torch.randn(1, 16), repeats=0)
    with pytest.raises(TypeError, match="example"):
        deploy.measure_latency(model, "x")


def test_model_size_counts_serialised_bytes(exported) -> None:
    small, large = nn.Linear(10, 10), nn.Linear(100, 100)
    assert 400 < deploy.model_size_bytes(small) < deploy.model_size_bytes(large)
    assert deploy.model_size_bytes(large) > 100 * 100 * 4  # float32 weights
    assert deploy.model_size_bytes(exported[0]) > 0  # an exported program: graph + weights


def test_compiled_refuses_a_model_in_training_mode() -> None:
    with pytest.raises(ValueError, match="eval"):
        deploy.compiled(nn.Linear(2, 2).train(), torch.zeros(1, 2))


@pytest.mark.slow
def test_compiled_model_matches_and_reports_compile_time() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
    x = torch.randn(4, 8)
    fast, seconds = deploy.compiled(model, x)
    assert seconds > 0
    assert deploy.outputs_match(model, fast, x, atol=1e-5)[0]


# ------------------------------------------------------------------------------- int8
@pytest.mark.parametrize("mode", deploy.QUANT_MODES)
def test_quantize_int8_stores_linear_weights_as_int8(captioner, mode: str) -> None:
    quantized = deploy.quantize_int8(captioner, mode)
    assert quantized is not captioner
    names = deploy.int8_layers(quantized)
    assert names == ["init_hidden", "image_input", "output"]  # every nn.Linear, nothing else
    from torchao.quantization import Int8Tensor  # imported here: quantize_int8 imported it

    weight = quantized.output.weight
    assert isinstance(weight, Int8Tensor)
    assert weight.qdata.dtype == torch.int8 and weight.qdata.shape == (V, 16)
    assert weight.scale.numel() == V  # one scale per output row
    # convolutions and the GRU stay float; the original model is untouched
    assert quantized.rnn.weight_hh_l0.dtype == torch.float32
    conv = quantized.image_encoder.encoder.blocks[0][0]
    assert type(conv.weight) is nn.Parameter and conv.weight.dtype == torch.float32
    assert deploy.int8_layers(captioner) == []
    assert type(captioner.output.weight) is nn.Parameter
    # outputs within INT8_TOLERANCE of the float model's largest output
    images = normalized(canvases(4))
    for fn in (lambda m: m.init_state(images).hidden, lambda m: m(images, torch.ones(4, 5).long())):
        with torch.no_grad():
            reference, got = fn(captioner), fn(quantized)
        assert (got - reference).abs().max() <= INT8_TOLERANCE * reference.abs().max()
    # and a smaller file: the linear layers hold most of this captioner's weights
    assert deploy.model_size_bytes(quantized) < 0.6 * deploy.model_size_bytes(captioner)


def test_quantize_int8_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="no nn.Linear"):
        deploy.quantize_int8(nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match="mode"):
        deploy.quantize_int8(nn.Linear(2, 2), "int4")
    with pytest.raises(TypeError, match="module"):
        deploy.quantize_int8("model")


# ------------------------------------------------------------------------------- captions
@pytest.fixture(scope="module")
def caption_service(captioner, exported) -> deploy.CaptionService:
    return deploy.CaptionService(*exported, VOCAB, max_len=12)


def test_caption_service_describes_what_greedy_decode_says(captioner, caption_service) -> None:
    images = canvases(3)
    expected = VOCAB.decode_batch(greedy_decode(captioner, normalized(images), max_len=12))
    assert caption_service.describe_batch(images) == expected
    assert caption_service.describe(images[0]) == expected[0]
    assert caption_service.describe(images[1][None]) == expected[1]  # (1, 64, 64)
    assert caption_service.describe(images[2].numpy()) == expected[2]  # a NumPy array
    assert caption_service.describe(images[0].float() / 255) == expected[0]  # floats in [0, 1]
    assert isinstance(expected[0], str) and expected[0]


def test_caption_service_saves_and_loads(caption_service, tmp_path) -> None:
    caption_service.save(tmp_path / "service")
    loaded = deploy.CaptionService.load(tmp_path / "service")
    images = canvases(2)
    assert loaded.describe_batch(images) == caption_service.describe_batch(images)
    assert loaded.max_len == 12 and loaded.vocab.itos == VOCAB.itos


def test_caption_service_from_model_checks_the_vocabulary(captioner) -> None:
    with pytest.raises(ValueError, match="vocabulary holds"):
        deploy.CaptionService.from_model(captioner, Vocabulary.build(["a b"]))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (torch.zeros(32, 32, dtype=torch.uint8), r"shape \(64, 64\)"),
        (torch.zeros(2, 64, 64, dtype=torch.uint8), "describe_batch"),
        (torch.zeros(64, 64, dtype=torch.long), "uint8 pixels"),
        (torch.zeros(64, 64, dtype=torch.bool), "uint8 pixels"),
        (torch.full((64, 64), float("nan")), "NaN"),
        (torch.full((64, 64), float("inf")), "NaN or inf"),
        (torch.full((64, 64), 255.0), r"raw pixels in \[0, 1\]"),
        (torch.full((64, 64), -0.2), "normalised"),
    ],
    ids=["small", "batch", "long", "bool", "nan", "inf", "0-255 floats", "normalised"],
)
def test_caption_service_rejects_bad_images(caption_service, image, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        caption_service.describe(image)


def test_caption_service_rejects_what_is_not_an_image(caption_service) -> None:
    with pytest.raises(TypeError, match="torch.Tensor or a NumPy array"):
        caption_service.describe([[0] * 64] * 64)
    with pytest.raises(ValueError, match="B >= 1"):
        caption_service.describe_batch(torch.zeros(0, 64, 64, dtype=torch.uint8))


# ------------------------------------------------------------------------------- search
@pytest.fixture(scope="module")
def gallery() -> torch.Tensor:
    return canvases(10)


@pytest.fixture(scope="module")
def search_service(gallery) -> deploy.SearchService:
    return deploy.SearchService(tiny_dual(), VOCAB, gallery, batch_size=4)


def test_search_returns_the_most_similar_canvases(gallery, search_service) -> None:
    model = tiny_dual()
    with torch.no_grad():
        text = model.encode_text(torch.tensor([VOCAB.encode("a small seven on the left")]))
        scores = (model.encode_image(normalized(gallery)) @ text[0]).tolist()
    expected = sorted(range(len(gallery)), key=lambda i: -scores[i])[:3]
    assert search_service.search("a small seven on the left", k=3) == expected
    assert search_service.search("A small SEVEN on the left", k=3) == expected  # lower-cased
    assert len(search_service.search("two", k=10)) == 10 == len(search_service)


def test_search_embeds_the_gallery_once(gallery) -> None:
    model = tiny_dual()
    service = deploy.SearchService(model, VOCAB, gallery)
    before = service.search("a large two", k=4)

    def fail(images: torch.Tensor) -> torch.Tensor:
        raise AssertionError("a query must not embed the gallery again")

    service.model.encode_image = fail
    with torch.no_grad():
        model.text_projection.weight.zero_()  # the service holds its own copy
    assert service.search("a large two", k=4) == before


@pytest.mark.parametrize(
    ("query", "k", "error", "message"),
    [
        ("", 3, ValueError, "empty"),
        ("   ", 3, ValueError, "empty"),
        ("a purple seven", 3, ValueError, r"never saw the word\(s\) \['purple'\]"),
        ("a small seven", 0, ValueError, r"k must be an int in 1..10"),
        ("a small seven", 11, ValueError, r"k must be an int in 1..10"),
        ("a small seven", 2.0, TypeError, "k must be"),
        (["a", "seven"], 3, TypeError, "query must be a str"),
    ],
    ids=["empty", "blank", "unknown word", "k=0", "k too large", "float k", "list"],
)
def test_search_rejects_bad_queries(search_service, query, k, error, message: str) -> None:
    with pytest.raises(error, match=message):
        search_service.search(query, k)


def test_unknown_words_can_read_as_unk(gallery) -> None:
    service = deploy.SearchService(tiny_dual(), VOCAB, gallery, unknown="unk")
    assert service.query_ids("a purple seven").tolist() == [VOCAB.encode("a <unk> seven")]
    assert len(service.search("a purple seven", k=2)) == 2
    with pytest.raises(ValueError, match="no known word"):
        service.search("purple zebra", k=2)


def test_search_service_checks_its_gallery_and_model() -> None:
    with pytest.raises(ValueError, match="gallery must have shape"):
        deploy.SearchService(tiny_dual(), VOCAB, torch.zeros(3, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="gallery holds NaN"):
        deploy.SearchService(tiny_dual(), VOCAB, torch.full((2, 64, 64), float("nan")))
    with pytest.raises(ValueError, match="encode_image and encode_text"):
        deploy.SearchService(nn.Linear(2, 2), VOCAB, canvases(2))
    with pytest.raises(ValueError, match="vocabulary holds"):
        deploy.SearchService(tiny_dual(), Vocabulary.build(["a b"]), canvases(2))
    with pytest.raises(ValueError, match="unknown"):
        deploy.SearchService(tiny_dual(), VOCAB, canvases(2), unknown="skip")


def test_prepare_canvases_normalises_like_float_images() -> None:
    images = canvases(2)
    assert torch.allclose(deploy.prepare_canvases(images), normalized(images))
    raw = deploy.prepare_canvases(images[:, None].numpy(), normalize=False)
    assert raw.shape == (2, 1, 64, 64) and raw.max() == 1.0 and raw.min() == 0.0
    assert np.isclose(
        float(deploy.prepare_canvases(images.float() / 255).mean()),
        float(normalized(images).mean()),
    )


def test_a_captioner_whose_state_grows_is_refused_before_export() -> None:
    torch.manual_seed(0)
    model = TransformerCaptioner(12, CanvasEncoder(16, (4, 8, 16)), d_model=16, heads=2, layers=1)
    with pytest.raises(ValueError, match=r"state field 'prefix' grows from \(2, 0\) to \(2, 1\)"):
        deploy.export_captioner(model)
