"""The interactive explorers (mmcourse.explorers), without a browser: what each one computes is
checked against an independent reference (the stored dataset, a cosine and a softmax by hand,
beam_search), each control reaches the drawing, and each explorer degrades to a picture and a
sentence. (A real browser moves their controls in tests/test_browser.py.)"""

from __future__ import annotations

import base64

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from mmcourse import fusion_study, joint
from mmcourse.data import mnist, questions
from mmcourse.data.captions import ANSWERS, MNISTCaptions, digit_pool, make_mnist_captions
from mmcourse.decode import beam_search
from mmcourse.deploy.serve import prepare_canvases
from mmcourse.explorers._base import Explorer, figure_png
from mmcourse.explorers.caption_explorer import CaptionExplorer
from mmcourse.explorers.fusion_explorer import FusionExplorer
from mmcourse.explorers.retrieval_explorer import RetrievalExplorer
from mmcourse.explorers.shared_space_explorer import SharedSpaceExplorer, train_spaces
from mmcourse.models.attention_captioner import AttentionCaptioner
from mmcourse.models.dual import DualEncoder
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.vqa import CanvasBackbone
from mmcourse.retrieval.zero_shot import zero_shot_scores
from mmcourse.vocab import Vocabulary

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ the base
class Counting(Explorer):
    title, sentence = "Counting explorer", "counts."

    def __init__(self) -> None:
        self.drawn: list[dict] = []

    def controls(self) -> dict[str, widgets.ValueWidget]:
        return {"n": widgets.IntSlider(value=2, min=0, max=9)}

    def draw(self, n: int) -> Figure:
        self.drawn.append({"n": n})
        figure = Figure(figsize=(2, 2))
        figure.subplots().bar(range(n), range(n))
        return figure


def test_a_control_change_redraws_with_the_new_value() -> None:
    explorer = Counting()
    box = explorer.widget()
    assert explorer.drawn == [{"n": 2}]
    slider = box.children[0].children[0]
    slider.value = 5
    assert explorer.drawn == [{"n": 2}, {"n": 5}]


def test_the_bundle_holds_the_widget_a_picture_and_a_sentence() -> None:
    bundle = Counting()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
    assert bundle["text/plain"].startswith("Counting explorer: counts. It responds once")
    assert repr(Counting()) == bundle["text/plain"]


def test_draw_must_return_a_figure() -> None:
    with pytest.raises(TypeError, match="must return a matplotlib Figure, got NoneType"):
        figure_png(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ shared space
@pytest.fixture(scope="module")
def shared_space() -> SharedSpaceExplorer:
    digits, labels = mnist.load_digits("train")
    images = mnist.to_float(digits[:600])
    spaces = train_spaces(images, labels[:600], temperatures=(0.1, 1.0), epochs=1)
    test_digits, test_labels = mnist.load_digits("test")
    return SharedSpaceExplorer(
        spaces, mnist.to_float(test_digits[:200]), test_labels[:200], test_digits[:200], "test"
    )


def test_shared_space_titles_name_the_split_it_was_given(
    shared_space: SharedSpaceExplorer,
) -> None:
    figure = shared_space.draw(shared_space.temperatures[0], 3)
    titles = [axis.get_title() for axis in figure.axes]
    assert any("test accuracy" in t for t in titles) and any("test digit 3" in t for t in titles)
    assert shared_space.controls()["digit"].description == "test digit"
    with pytest.raises(ValueError, match=r"split must be one of \('validation', 'test'\)"):
        SharedSpaceExplorer(
            {1.0: joint.DigitWordSpace(dim=2)},
            torch.zeros(2, 28, 28), torch.zeros(2), torch.zeros(2), split="val",
        )  # fmt: skip


def test_shared_space_probabilities_are_a_softmax_of_cosines_by_hand(
    shared_space: SharedSpaceExplorer,
) -> None:
    for temperature in shared_space.temperatures:
        state = shared_space.state(temperature, 7)
        point = state["points"][7].numpy().astype(np.float64)
        words = state["words"].numpy().astype(np.float64)
        cosines = words @ point / (np.linalg.norm(words, axis=1) * np.linalg.norm(point))
        expected = np.exp(cosines / temperature) / np.exp(cosines / temperature).sum()
        np.testing.assert_allclose(state["probabilities"].numpy(), expected, rtol=1e-4)
        nearest = np.argmax(
            state["points"].numpy() @ words.T / np.linalg.norm(state["points"].numpy(), axis=1)[:, None]
            / np.linalg.norm(words, axis=1),
            axis=1,
        )  # fmt: skip
        assert state["accuracy"] == pytest.approx(
            float((nearest == shared_space.labels.numpy()).mean())
        )


def test_each_temperature_trains_its_own_space(shared_space: SharedSpaceExplorer) -> None:
    low, high = (shared_space.state(t, 0)["points"] for t in shared_space.temperatures)
    assert not torch.allclose(low, high)
    assert isinstance(shared_space.draw(1.0, 3), Figure)


def test_shared_space_errors(shared_space: SharedSpaceExplorer) -> None:
    with pytest.raises(ValueError, match="no space was trained at 0.3"):
        shared_space.state(0.3, 0)
    with pytest.raises(ValueError, match="digit"):
        shared_space.state(1.0, 200)
    with pytest.raises(ValueError, match="every temperature"):
        train_spaces(torch.zeros(4, 28, 28), torch.zeros(4, dtype=torch.long), temperatures=(0,))
    with pytest.raises(ValueError, match="2-D"):
        SharedSpaceExplorer(
            {1.0: joint.DigitWordSpace(dim=3)},
            torch.zeros(2, 28, 28),
            torch.zeros(2),
            torch.zeros(2),
        )


# ----------------------------------------------------------------------------- captions
@pytest.fixture(scope="module")
def captions() -> tuple[CaptionExplorer, MNISTCaptions]:
    data = make_mnist_captions("test", n=30)
    vocab = Vocabulary.build([c for captions in data.captions for c in captions])
    torch.manual_seed(0)
    model = AttentionCaptioner(
        len(vocab), CanvasEncoder(16, (8, 16, 16)), embed_dim=16, hidden_dim=24, attention_dim=16
    )
    pool, _ = digit_pool("test")
    start = int((data.n_digits == 2).nonzero()[0])
    return CaptionExplorer(model, vocab, data, pool, start=start), data


def test_an_unchanged_canvas_is_the_stored_one(captions) -> None:
    explorer, data = captions
    for index in range(len(data)):
        image, _ = explorer.canvas(index, "left", "as drawn", "as drawn", "as drawn")
        assert torch.equal(image, data.images[index])


def test_a_thicker_digit_changes_only_its_own_slot(captions) -> None:
    explorer, data = captions
    index = explorer.start
    slot = next(
        s for s, name in enumerate(("left", "middle", "right")) if data.layout.digits[index, s] >= 0
    )
    name = ("left", "middle", "right")[slot]
    thin, _ = explorer.canvas(index, name, "as drawn", "thin", "as drawn")
    thick, layout = explorer.canvas(index, name, "as drawn", "thick", "as drawn")
    assert int(layout.thickness[0, slot]) == 2
    assert thick.float().sum() > thin.float().sum()  # more ink
    columns = torch.arange(64)
    own = (columns - (slot * 64 // 3 + 32 // 3)).abs() < 12  # roughly the slot's band
    changed = (thick != thin).any(dim=0)
    assert changed.any() and not changed[~own].all()


def test_an_empty_slot_changes_nothing(captions) -> None:
    explorer, data = captions
    index = int((data.layout.digits[:, 2] < 0).nonzero()[0])
    image, _ = explorer.canvas(index, "right", "small", "thick", "left")
    assert torch.equal(image, data.images[index])
    assert not explorer.state(index, "right", "small", "thick", "left", 1)["changed"]


def test_the_best_candidate_is_what_beam_search_writes(captions) -> None:
    explorer, data = captions
    for width in (1, 3):
        state = explorer.state(explorer.start, "left", "as drawn", "as drawn", "as drawn", width)
        pixels = prepare_canvases(data.images[explorer.start][None])
        tokens = beam_search(explorer.model, pixels, 40, beam_width=width)[0].tolist()
        expected = explorer.vocab.decode(tokens)
        assert state["candidates"][0][0] == expected
        probabilities = [p for _, p in state["candidates"]]
        assert all(0 <= p <= 1 for p in probabilities)
        attention = state["attention"]
        assert attention.shape[0] == len(state["words"])
        assert torch.allclose(attention.sum(dim=1), torch.ones(len(attention)), atol=1e-5)
    assert isinstance(
        explorer.draw(explorer.start, "left", "large", "as drawn", "right", 2), Figure
    )


def test_caption_explorer_errors(captions) -> None:
    explorer, data = captions
    with pytest.raises(ValueError, match="thickness"):
        explorer.canvas(0, "left", "as drawn", "bold", "as drawn")
    with pytest.raises(ValueError, match="beam_width"):
        explorer.state(0, "left", "as drawn", "as drawn", "as drawn", 9)
    with pytest.raises(ValueError, match="pool"):
        CaptionExplorer(
            explorer.model, explorer.vocab, data, torch.zeros(3, 28, 28, dtype=torch.uint8)
        )


# ------------------------------------------------------------------------------- fusion
@pytest.fixture(scope="module")
def fusion() -> tuple[FusionExplorer, MNISTCaptions]:
    data = make_mnist_captions("test", n=12)
    qa = questions.make_vqa(data)
    torch.manual_seed(0)
    backbone = CanvasBackbone().eval()
    models = {
        name: fusion_study.build_vqa_model(
            fusion_study.FUSIONS[name](backbone), len(qa.vocab), backbone
        )
        for name in ("concat", "cross-attention")
    }
    regions = backbone.store_regions(data.float_images())
    return FusionExplorer(models, regions, data, qa.vocab, backbone.grid_size), data


def test_fusion_answers_are_the_models_softmax(fusion) -> None:
    explorer, data = fusion
    question = explorer.questions[0]
    for name, model in explorer.models.items():
        state = explorer.state(name, 3, question)
        ids = torch.tensor([explorer.vocab.encode(question, add_bos_eos=False)])
        with torch.no_grad():
            logits = model(explorer.regions[3:4], ids)[0].double().numpy()
        probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        best = np.argsort(-probabilities, kind="stable")[:5]
        assert [a for a, _ in state["answers"]] == [ANSWERS[i] for i in best]
        np.testing.assert_allclose([p for _, p in state["answers"]], probabilities[best], rtol=1e-4)
        truth = {q: a for _, q, a in data.qa[3]}.get(question)
        assert state["truth"] == truth
        if name == "cross-attention":
            assert state["attention"].shape == explorer.grid
            assert float(state["attention"].sum()) == pytest.approx(1.0, abs=1e-5)
        else:
            assert state["attention"] is None
        assert isinstance(explorer.draw(name, 3, question), Figure)


def test_fusion_explorer_errors(fusion) -> None:
    explorer, data = fusion
    with pytest.raises(ValueError, match="question"):
        explorer.state("concat", 0, "what colour is it ?")
    with pytest.raises(ValueError, match="grid"):
        FusionExplorer(explorer.models, explorer.regions, data, explorer.vocab, (3, 3))


# ---------------------------------------------------------------------------- retrieval
@pytest.fixture(scope="module")
def retrieval() -> RetrievalExplorer:
    data = make_mnist_captions("test", n=40)
    vocab = Vocabulary.build([c for captions in data.captions for c in captions])
    torch.manual_seed(0)
    model = DualEncoder(
        len(vocab), embed_dim=16, image_dim=8, image_channels=(4, 8, 8), text_dim=16
    )
    digits, labels = mnist.load_digits("test")
    return RetrievalExplorer(
        model.eval(), vocab, data.images, digits[:10], labels[:10], query="a seven"
    )


def test_retrieval_ranks_by_cosine_by_hand(retrieval: RetrievalExplorer) -> None:
    state = retrieval.state("a small two", 4, 3)
    model = retrieval.search.model
    with torch.no_grad():
        images = model.encode_image(prepare_canvases(retrieval.gallery)).double().numpy()
        text = model.encode_text(retrieval.search.query_ids("a small two"))[0].double().numpy()
    cosines = images @ text / (np.linalg.norm(images, axis=1) * np.linalg.norm(text))
    best = np.argsort(-cosines, kind="stable")[:4]
    assert [i for i, _ in state["found"]] == best.tolist()
    np.testing.assert_allclose([c for _, c in state["found"]], cosines[best], atol=1e-5)
    similarity = zero_shot_scores(model, retrieval.search.vocab, retrieval.digits[3:4])[0]
    logits = similarity.double().numpy() * float(model.logit_scale().detach())
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(state["probabilities"].numpy(), expected, rtol=1e-5)
    assert state["label"] == int(retrieval.labels[3])


def test_an_unknown_word_is_answered_with_the_reason(retrieval: RetrievalExplorer) -> None:
    state = retrieval.state("a purple seven", 3, 0)
    assert state["found"] == [] and "purple" in state["problem"]
    assert isinstance(retrieval.draw("a purple seven", 3, 0), Figure)
    with pytest.raises(ValueError, match="purple"):
        RetrievalExplorer(
            retrieval.search.model, retrieval.search.vocab, retrieval.gallery, retrieval.digits,
            retrieval.labels, query="a purple seven",
        )  # fmt: skip
