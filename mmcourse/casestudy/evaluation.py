"""Choosing a decoding setting on validation, then scoring the test splits once.

The case study's rule: every choice (here the beam width) is made on the *validation*
canvases; the test and compositional splits are captioned once, with the chosen setting.
:func:`choose_beam_width` is that choice for one captioner; :func:`evaluate_captioners`
runs it for several and scores each on the held-out splits, returning plain numbers that
``experiments/decoders.py`` stores in ``data/results/casestudy_decoders.json`` for
chapter 10.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import nn

from mmcourse._validate import check_int, require
from mmcourse.caption_metrics import caption_report_for
from mmcourse.casestudy import recipe
from mmcourse.results import load_results

__all__ = [
    "BEAM_WIDTHS",
    "RESULTS_FILE",
    "choose_beam_width",
    "evaluate_captioners",
    "load_decoder_comparison",
]

BEAM_WIDTHS = (1, 2, 3, 5)
"""The beam widths tried on validation (1 is greedy decoding)."""
RESULTS_FILE = Path(__file__).resolve().parents[2] / "data" / "results" / "casestudy_decoders.json"
"""Where ``experiments/decoders.py`` stores :func:`evaluate_captioners` of the committed
decoders."""


def choose_beam_width(
    model: nn.Module, data: recipe.CaseStudyData, widths: Sequence[int] = BEAM_WIDTHS
) -> tuple[int, dict[int, float]]:
    """The width with the best exact match on ``data``'s validation canvases (the smallest on
    a tie), and the exact match of every width tried."""
    require(widths, "widths is empty: give at least one beam width")
    for width in widths:
        check_int(width, "beam width")
    images, truth = data.images("val"), data.splits["val"]
    exact = {}
    for width in widths:
        texts = recipe.write_captions(model, images, data.vocab, beam_width=width)
        exact[width] = caption_report_for(texts, truth)["exact"]
    return max(widths, key=lambda w: (exact[w], -w)), exact


def evaluate_captioners(
    models: Mapping[str, nn.Module],
    data: recipe.CaseStudyData,
    widths: Sequence[int] = BEAM_WIDTHS,
    splits: Sequence[str] = ("test", "compositional"),
) -> dict[str, dict[str, object]]:
    """For each named captioner: the validation exact match of every width, the chosen
    width, and the full :func:`~mmcourse.caption_metrics.caption_report_for` of each of
    ``splits`` captioned once with it."""
    unknown = set(splits) - set(data.splits) | ({"val"} & set(splits))
    if unknown:
        raise ValueError(
            f"cannot score {sorted(unknown)}: the held-out splits are test and compositional"
        )
    results: dict[str, dict[str, object]] = {}
    for name, model in models.items():
        width, exact = choose_beam_width(model, data, widths)
        reports = {}
        for split in splits:
            texts = recipe.write_captions(model, data.images(split), data.vocab, beam_width=width)
            reports[split] = caption_report_for(texts, data.splits[split])
        results[name] = {
            "validation_exact_by_width": {str(w): x for w, x in exact.items()},
            "beam_width": width,
            **reports,
        }
    return results


def load_decoder_comparison(
    path: str | Path = RESULTS_FILE,
) -> tuple[dict[str, object], dict[str, dict]]:
    """``(settings, results per decoder)`` as ``experiments/decoders.py`` stored them."""
    return load_results(path, made_by="experiments/decoders.py")
