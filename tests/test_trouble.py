"""deploy.confidence, deploy.ood and deploy.onnx_runtime: a caption's confidence against a
log-probability computed by hand, agreement against torch's cosine similarity, the gate's
percentiles against scipy's percentileofscore and its false-flag rate on fresh draws; the
unusual canvases measured from their pixels (scipy.ndimage), not from how they were drawn;
ONNX Runtime's outputs against the eager model's."""

from __future__ import annotations

from pathlib import Path

import pytest
import scipy.ndimage
import scipy.stats
import torch
import torch.nn.functional as F
from test_deploy import VOCAB, V, canvases, normalized, tiny_captioner, tiny_dual

from mmcourse import deploy
from mmcourse.data.captions import make_mnist_captions
from mmcourse.data.captions.dataset import digit_pool
from mmcourse.data.captions.layout import SCALES
from mmcourse.decode import greedy_decode
from mmcourse.vocab import EOS_ID, PAD_ID

pytestmark = pytest.mark.usefixtures("one_thread")


class FixedScript:
    """A step model whose logits at step t are row t of ``table`` for every canvas, plus a
    per-canvas offset on one word, so that canvases write different captions."""

    def __init__(self, table: torch.Tensor, offsets: torch.Tensor) -> None:
        self.table, self.offsets = table, offsets

    def init_state(self, images: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(images), dtype=torch.long)

    def step(self, tokens: torch.Tensor, state: torch.Tensor):
        logits = self.table[state].clone()
        logits[:, EOS_ID] += self.offsets * (state >= 1)
        return logits, state + 1


def test_caption_confidence_is_the_mean_log_probability_by_hand() -> None:
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(6, V, generator=generator)
    table[:, EOS_ID] = -5.0
    offsets = torch.tensor([0.0, 50.0, 0.0])  # canvas 1 stops after two words
    model = FixedScript(table, offsets)
    images = torch.zeros(3, 1, 64, 64)
    ids, confidence = deploy.caption_with_confidence(model, images, max_len=6)
    assert torch.equal(ids, greedy_decode(model, images, max_len=6))
    for row in range(3):
        log_probs = []
        for t in range(6):
            logits = table[t].clone()
            if t >= 1:
                logits[EOS_ID] += offsets[row]
            probabilities = logits.double().exp() / logits.double().exp().sum()
            word = int(probabilities.argmax())
            log_probs.append(float(probabilities[word].log()))
            if word == EOS_ID:
                break
        assert float(confidence[row]) == pytest.approx(sum(log_probs) / len(log_probs), abs=1e-5)
    assert int((ids[1] != PAD_ID).sum()) == 2


def test_caption_confidence_runs_on_the_exported_captioner_too() -> None:
    model = tiny_captioner()
    images = normalized(canvases(6))
    eager_ids, eager = deploy.caption_with_confidence(model, images, max_len=8)
    exported = deploy.ExportedCaptioner(*deploy.export_captioner(model))
    ids, confidence = deploy.caption_with_confidence(exported, images, max_len=8)
    assert torch.equal(ids, eager_ids)
    torch.testing.assert_close(confidence, eager, atol=1e-5, rtol=0)
    assert (confidence <= 0).all()


def test_caption_agreement_is_the_cosine_of_the_two_embeddings() -> None:
    dual = tiny_dual()
    images = normalized(canvases(4))
    captions = ["a small seven on the left", "a large two", "seven", "the right and left"]
    agreement = deploy.caption_agreement(dual, VOCAB, images, captions)
    ids, _ = VOCAB.encode_batch(captions)
    with torch.no_grad():
        expected = F.cosine_similarity(dual.encode_image(images), dual.encode_text(ids), dim=1)
    torch.testing.assert_close(agreement, expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="one string per canvas"):
        deploy.caption_agreement(dual, VOCAB, images, captions[:2])


def test_gate_percentiles_match_scipy_and_its_false_flag_rate_holds_on_fresh_draws() -> None:
    generator = torch.Generator().manual_seed(0)
    validation = {
        "a": torch.randn(2000, generator=generator).round(decimals=1),
        "b": torch.rand(2000, generator=generator),
    }
    gate = deploy.ConfidenceGate(validation, false_flag_rate=0.05)
    queries = torch.linspace(-3, 3, 13)
    expected = [
        scipy.stats.percentileofscore(validation["a"].numpy(), q, kind="mean") / 100
        for q in queries.numpy()
    ]
    torch.testing.assert_close(gate.percentile("a", queries), torch.tensor(expected).double())
    fresh = {
        "a": torch.randn(20000, generator=generator).round(decimals=1),
        "b": torch.rand(20000, generator=generator),
    }
    assert gate.flag_rate(fresh) == pytest.approx(0.05, abs=0.015)
    shifted = {"a": fresh["a"] - 3.0, "b": fresh["b"]}  # 3 sd lower: most fall below
    assert gate.flag_rate(shifted) > 0.7
    with pytest.raises(ValueError, match="must name exactly"):
        gate.flag({"a": queries})
    with pytest.raises(ValueError, match="false_flag_rate"):
        deploy.ConfidenceGate(validation, false_flag_rate=0.0)
    with pytest.raises(ValueError, match="one value per canvas"):
        deploy.ConfidenceGate({"a": validation["a"], "b": validation["b"][:100]})


@pytest.fixture(scope="module")
def small_split():
    data = make_mnist_captions("test", n=40, seed=3)
    pool, _ = digit_pool("test")
    return data, pool


def ink_boxes(canvas: torch.Tensor) -> list[tuple[int, int]]:
    """(height, width) of each connected piece of ink, measured by scipy."""
    labels, _ = scipy.ndimage.label(canvas.numpy() > 64)
    boxes = scipy.ndimage.find_objects(labels)
    return [(box[0].stop - box[0].start, box[1].stop - box[1].start) for box in boxes if box]


@pytest.mark.parametrize("kind", deploy.UNUSUAL_KINDS)
def test_unusual_canvases_keep_the_canvas_format(small_split, kind: str) -> None:
    data, pool = small_split
    made = deploy.unusual_canvases(data, kind, pool)
    assert made.dtype == torch.uint8 and made.shape == data.images.shape
    assert torch.equal(made, deploy.unusual_canvases(data, kind, pool))  # seeded


def test_unusual_canvases_measured_from_their_pixels(small_split) -> None:
    data, pool = small_split
    canvases_ = data.images
    assert deploy.unusual_canvases(data, "blank").sum() == 0
    noise = deploy.unusual_canvases(data, "noise").double()
    assert noise.mean() == pytest.approx(127.5, abs=2) and noise.std() == pytest.approx(73.9, abs=2)
    inverted = deploy.unusual_canvases(data, "inverted")
    assert (inverted.int() + canvases_.int() == 255).all()
    rotated = deploy.unusual_canvases(data, "rotated")
    for row, col in ((0, 5), (10, 60), (63, 0)):  # anticlockwise: new[r, c] = old[c, 63 - r]
        assert torch.equal(rotated[:, row, col], canvases_[:, col, 63 - row])
    tallest_usual = max(h for canvas in canvases_ for h, _ in ink_boxes(canvas))
    oversized = deploy.unusual_canvases(data, "oversized", pool)
    heights = [max(h for h, _ in ink_boxes(canvas)) for canvas in oversized]
    assert min(heights) > 0.9 * tallest_usual * SCALES[-1] and sum(heights) / len(heights) > (
        sum(max(h for h, _ in ink_boxes(c)) for c in canvases_) / len(canvases_) * 1.3
    )
    with pytest.raises(ValueError, match="pool_images"):
        deploy.unusual_canvases(data, "oversized")
    with pytest.raises(ValueError, match="kind"):
        deploy.unusual_canvases(data, "sideways")


def test_letters_stand_where_the_digits_stood(small_split) -> None:
    data, _ = small_split
    letters = deploy.unusual_canvases(data, "letters")
    for i in range(len(data)):
        for slot in range(3):
            x = data.centers[i, slot, 0]
            column = slice(int(x) - 6, int(x) + 7) if not x.isnan() else None
            if column is None:
                continue
            assert letters[i, :, column].amax() > 128, f"no ink in slot {slot} of canvas {i}"


def test_letter_glyphs_are_in_mnist_format() -> None:
    glyphs = deploy.letter_glyphs("AHKX")
    assert glyphs.shape == (4, 28, 28) and glyphs.dtype == torch.uint8
    for glyph in glyphs.numpy():
        cy, cx = scipy.ndimage.center_of_mass(glyph.astype(float))
        assert abs(cy - 14) < 1.5 and abs(cx - 14) < 1.5
        rows, cols = (glyph > 0).nonzero()
        assert max(int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) in (
            19,
            20,
            21,
        )
    with pytest.raises(ValueError, match="letters"):
        deploy.letter_glyphs("A1")


def test_onnx_runtime_matches_the_eager_image_tower_at_any_batch(tmp_path) -> None:
    dual = tiny_dual()
    program = deploy.export_image_tower(dual)
    path = deploy.save_onnx(program, tmp_path / "tower.onnx")
    runner = deploy.OnnxProgram(path)
    for batch in (1, 5):
        images = normalized(canvases(batch))
        with torch.no_grad():
            expected = dual.encode_image(images)
        torch.testing.assert_close(runner(images), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="takes 1 tensors"):
        runner(images, images)
    with pytest.raises(ValueError, match=r"\.onnx"):
        deploy.save_onnx(program, tmp_path / "tower.pt2")


def test_onnx_captioner_writes_the_eager_captions(tmp_path) -> None:
    model = tiny_captioner("lstm")
    encoder, step = deploy.export_captioner(model)
    onnx_model = deploy.OnnxCaptioner(
        deploy.OnnxProgram(deploy.save_onnx(encoder, tmp_path / "encoder.onnx")),
        deploy.OnnxProgram(deploy.save_onnx(step, tmp_path / "step.onnx")),
    )
    images = normalized(canvases(8))
    eager = greedy_decode(model, images, max_len=8)
    assert torch.equal(greedy_decode(onnx_model, images, max_len=8), eager)
    assert eager.shape[1] > 2 and len({tuple(row.tolist()) for row in eager}) > 1


def test_save_onnx_takes_a_module_with_examples(tmp_path) -> None:
    layer = torch.nn.Linear(3, 2).eval()
    x = torch.randn(4, 3)
    path = deploy.save_onnx(layer, tmp_path / "layer.onnx", (x,))
    torch.testing.assert_close(deploy.OnnxProgram(path)(x), layer(x).detach())
    with pytest.raises(ValueError, match="eval mode"):
        deploy.save_onnx(torch.nn.Linear(3, 2), tmp_path / "x.onnx", (x,))


def test_saved_onnx_files_hold_no_file_paths_of_this_machine(tmp_path) -> None:
    """The exporter notes each node's Python stack trace, paths and all: the same model then
    gives a file of another size on a learner's machine. save_onnx drops those notes."""
    import onnx

    model = tiny_captioner("lstm")
    _, step = deploy.export_captioner(model)
    path = deploy.save_onnx(step, tmp_path / "step.onnx")
    raw = path.read_bytes()
    for folder in (Path(torch.__file__).parent.parent, Path(__file__).parent):
        assert str(folder).encode() not in raw
    keys = {p.key for node in onnx.load(str(path)).graph.node for p in node.metadata_props}
    assert keys and not any("stack_trace" in key for key in keys)


def test_compressed_size_shrinks_with_sparsity() -> None:
    import io
    import zlib

    model = tiny_dual()
    sizes = [deploy.compressed_size_bytes(deploy.prune_weights(model, a)) for a in (0, 0.5, 0.9)]
    assert sizes[0] > sizes[1] > sizes[2]
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert deploy.compressed_size_bytes(model) == len(zlib.compress(buffer.getvalue(), 6))


def test_caption_service_reports_the_confidence_of_its_captions() -> None:
    model = tiny_captioner()
    service = deploy.CaptionService.from_model(model, VOCAB, max_len=8)
    pixels = canvases(5)
    captions, confidence = service.describe_with_confidence(pixels)
    assert captions == service.describe_batch(pixels)
    _, expected = deploy.caption_with_confidence(model, normalized(pixels), max_len=8)
    torch.testing.assert_close(confidence, expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="shape"):
        service.describe_with_confidence(pixels[:, :32])


def test_greedy_decode_keeps_the_chosen_words_log_probabilities_on_request() -> None:
    model = tiny_captioner()
    images = normalized(canvases(4))
    ids, log_probs = greedy_decode(model, images, max_len=6, return_log_probs=True)
    assert torch.equal(ids, greedy_decode(model, images, max_len=6))
    assert log_probs.shape == ids.shape and (log_probs <= 0).all()
    with pytest.raises(ValueError, match="return_log_probs"):
        greedy_decode(model, images, max_len=6, return_log_probs="yes")
