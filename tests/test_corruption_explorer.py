"""Chapter 13's severity explorer, without a browser: what it shows is recomputed by hand
(corrupt, read regions, answer, count), each control reaches the drawing, and bad input gets a
clear error. (A real browser moves its slider in tests/test_browser.py.)"""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from mmcourse import fusion_study
from mmcourse.data.captions import make_mnist_captions
from mmcourse.data.questions import make_vqa
from mmcourse.explorers.corruption_explorer import KINDS, CorruptionExplorer
from mmcourse.models.vqa import CanvasBackbone
from mmcourse.robust import corrupt_images, corrupt_texts


@pytest.fixture(scope="module")
def explorer() -> CorruptionExplorer:
    data = make_mnist_captions("test", n=12)
    qa = make_vqa(data)
    torch.manual_seed(0)
    backbone = CanvasBackbone().eval().requires_grad_(False)
    models = {name: fusion_study.build_vqa_model(fusion_study.FUSIONS[name](backbone),
                                                 len(qa.vocab), backbone).eval()
              for name in ("question only", "product")}  # fmt: skip
    curves = {kind: [{name: 0.5 - 0.05 * s for name in models} for s in range(6)] for kind in KINDS}
    return CorruptionExplorer(models, backbone, data, qa, curves, start=2)


def _by_hand(explorer, image, texts, rows) -> dict[str, int]:
    standard = (image.float() / 255 - 0.0362) / 0.1713  # the canvases' mean and spread, by hand
    regions = explorer.backbone.store_regions(standard[:, None])
    ids, _ = explorer.qa.vocab.encode_batch(texts, add_bos_eos=False)
    with torch.no_grad():
        return {name: int((model(regions.expand(len(texts), -1, -1), ids).argmax(1)
                           == explorer.qa.answers[rows]).sum())
                for name, model in explorer.models.items()}  # fmt: skip


def test_an_image_corruption_damages_the_canvas_and_not_the_questions(explorer) -> None:
    rows = (explorer.qa.canvas == 2).nonzero()[:, 0]
    texts = [explorer.qa.texts[i] for i in rows.tolist()]
    state = explorer.state("blur", 4, 2)
    expected = corrupt_images(explorer.data.images[2:3], "blur", 4, seed=4)
    assert torch.equal(state["image"], expected[0]) and state["questions"] == texts
    assert state["right"] == _by_hand(explorer, expected, texts, rows)
    assert torch.equal(explorer.state("noise", 0, 2)["image"], explorer.data.images[2])


def test_a_text_corruption_damages_the_questions_and_not_the_canvas(explorer) -> None:
    rows = (explorer.qa.canvas == 5).nonzero()[:, 0]
    texts = corrupt_texts([explorer.qa.texts[i] for i in rows.tolist()], "dropped", 5, seed=5)
    state = explorer.state("dropped", 5, 5)
    assert torch.equal(state["image"], explorer.data.images[5]) and state["questions"] == texts
    assert state["right"] == _by_hand(explorer, explorer.data.images[5:6], texts, rows)


def test_every_control_reaches_the_drawing(explorer) -> None:
    assert set(explorer.controls()) == {"kind", "severity", "canvas"}
    assert explorer.start_values() == {"kind": "noise", "severity": 2, "canvas": 2}
    for kind in ("contrast", "unknown"):
        figure = explorer.draw(kind, 3, 4)
        assert isinstance(figure, Figure)
        image_axis, _, curve_axis = figure.axes
        assert image_axis.get_title().startswith(f"{kind}, severity 3")
        assert curve_axis.lines[-1].get_xdata()[0] == 3  # the severity marked on the curves
    assert explorer.response_seconds(explorer.start_values()) < 5


def test_bad_input_gets_clear_errors(explorer) -> None:
    with pytest.raises(ValueError, match="kind"):
        explorer.state("rain", 1, 0)
    with pytest.raises(ValueError, match="severity"):
        explorer.state("noise", 6, 0)
    with pytest.raises(ValueError, match="canvas"):
        explorer.state("noise", 1, 12)
    args = (explorer.models, explorer.backbone, explorer.data, explorer.qa)
    with pytest.raises(ValueError, match="lacks the corruptions"):
        CorruptionExplorer(*args, {"noise": explorer.curves["noise"]})
    with pytest.raises(ValueError, match="one row per severity"):
        CorruptionExplorer(*args, {**explorer.curves, "blur": explorer.curves["blur"][:3]})
    with pytest.raises(ValueError, match="asks about canvases that data does not hold"):
        CorruptionExplorer(*args[:2], make_mnist_captions("test", n=3), args[3], explorer.curves)
