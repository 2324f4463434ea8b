"""The beam width is chosen on validation only, and the held-out splits are scored once."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mmcourse.caption_metrics import caption_report_for
from mmcourse.casestudy import evaluation, recipe

SIZES = {"train": 40, "val": 10, "test": 10, "compositional": 8}  # val and test: same size


@pytest.fixture(scope="module")
def data() -> recipe.CaseStudyData:
    return recipe.build_data(SIZES)


@pytest.fixture
def fake_captions(monkeypatch, data):
    """Width 3 writes the truth of whatever split it is given; other widths write the truth of
    the first few canvases only, and "a seven" elsewhere. Records every call."""
    calls = []

    def write_captions(model, inputs, vocab, beam_width=1, **_):
        # the split whose canvases these are (by content: val and test have the same size)
        (split,) = [s for s in data.splits if torch.equal(data.images(s), inputs)]
        truth = [c[0] for c in data.splits[split].captions]
        calls.append((split, beam_width))
        right = len(truth) if beam_width == 3 else model.right
        return truth[:right] + ["a seven"] * (len(truth) - right)

    monkeypatch.setattr(recipe, "write_captions", write_captions)
    return calls


class Fake(nn.Module):
    def __init__(self, right: int) -> None:
        super().__init__()
        self.right = right


def test_the_best_validation_width_wins(data, fake_captions) -> None:
    width, exact = evaluation.choose_beam_width(Fake(right=4), data, (1, 3, 5))
    assert width == 3 and exact[3] == 1.0
    assert exact[1] == exact[5] == pytest.approx(
        caption_report_for([c[0] for c in data.splits["val"].captions[:4]] + ["a seven"] * 6,
                           data.splits["val"])["exact"]
    )  # fmt: skip
    assert {split for split, _ in fake_captions} == {"val"}  # the choice never sees test


def test_a_tie_goes_to_the_smaller_width(data, fake_captions) -> None:
    width, exact = evaluation.choose_beam_width(Fake(right=4), data, (5, 2))
    assert exact[5] == exact[2] and width == 2


def test_evaluate_captioners_scores_each_split_once_with_the_chosen_width(
    data, fake_captions
) -> None:
    results = evaluation.evaluate_captioners({"m": Fake(right=0)}, data, (1, 3))
    assert results["m"]["beam_width"] == 3
    assert results["m"]["test"]["exact"] == 1.0 and results["m"]["compositional"]["exact"] == 1.0
    assert [c for c in fake_captions if c[0] != "val"] == [("test", 3), ("compositional", 3)]
    json.dumps(results)  # plain numbers, storable


def test_errors(data, tmp_path) -> None:
    with pytest.raises(ValueError, match="widths is empty"):
        evaluation.choose_beam_width(Fake(0), data, ())
    with pytest.raises(ValueError, match="beam width"):
        evaluation.choose_beam_width(Fake(0), data, (0,))
    with pytest.raises(ValueError, match="held-out splits"):
        evaluation.evaluate_captioners({"m": Fake(0)}, data, (1,), splits=("val",))
    with pytest.raises(FileNotFoundError, match="experiments/decoders.py"):
        evaluation.load_decoder_comparison(tmp_path / "none.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a result stored by experiments/decoders.py"):
        evaluation.load_decoder_comparison(tmp_path / "other.json")
