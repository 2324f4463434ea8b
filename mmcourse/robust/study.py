"""Chapter 13's robustness study over several seeds, as reusable functions.

The chapter trains each model of its section 1 once (seed 0) and reads its corruption curves;
``experiments/robustness_seeds.py`` runs the very same recipe (:mod:`mmcourse.fusion_study`'s
backbone and heads) for several seeds, and trains the product fusion with and without
augmentation (:mod:`mmcourse.robust.augment`), storing everything in
``data/results/robustness_seeds.json`` (:data:`RESULTS`). The chapter reads it beside
its own single run.

- :func:`canvas_regions` -- the frozen backbone's regions of uint8 canvases;
- :func:`corruption_curves` -- each model's test accuracy at every corruption and severity;
- :func:`pretrain` -- the backbone, trained on augmented canvases or not;
- :func:`train_head` -- a product fusion trained with word dropout or not;
- :func:`held_out_sets` and :func:`held_out_scores` -- test, compositional and corrupted
  questions, and a model's accuracy on each.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from mmcourse._validate import check_int, require
from mmcourse.data import mnist
from mmcourse.data.captions import CANVAS_MEAN, CANVAS_STD, MNISTCaptions
from mmcourse.data.mnist import REPO_DATA
from mmcourse.data.questions import VQAExamples
from mmcourse.fusion_study import FUSIONS, build_vqa_model, pretrain_backbone
from mmcourse.metrics import accuracy
from mmcourse.models.vqa import CanvasBackbone, CanvasLookup, VQAModel
from mmcourse.results import load_results, save_results
from mmcourse.robust.augment import augment_canvases, word_dropout
from mmcourse.robust.corrupt import (
    IMAGE_CORRUPTIONS,
    SEVERITIES,
    TEXT_CORRUPTIONS,
    corrupt_images,
    corrupt_texts,
)
from mmcourse.train import Loop, fit, predict

__all__ = [
    "AUGMENTATIONS",
    "CORRUPTED_SEVERITY",
    "CURVE_MODELS",
    "RESULTS",
    "WORD_DROP",
    "canvas_regions",
    "corruption_curves",
    "held_out_scores",
    "held_out_sets",
    "load_study",
    "save_study",
    "pretrain",
    "train_head",
]

RESULTS = REPO_DATA / "results" / "robustness_seeds.json"
"""Where ``experiments/robustness_seeds.py`` stores the study and chapter 13 reads it."""
MADE_BY = "experiments/robustness_seeds.py"
WORD_DROP = 0.1
"""Word dropout's probability of each change (dropped, or ``<unk>``), fixed beforehand."""
AUGMENTATIONS = {"plain": (False, 0.0), "image": (True, 0.0), "text": (False, WORD_DROP),
                 "both": (True, WORD_DROP)}  # fmt: skip
"""``{name: (augmented backbone, word dropout of the head)}``: each variant of the study."""
CURVE_MODELS = ("image only", "question only", "concat", "product")
"""Section 1's models: the two controls and two fusions."""
CORRUPTED_SEVERITY = 3
"""The severity of the corrupted held-out sets (the middle of 1..5)."""


def canvas_regions(backbone: CanvasBackbone, canvases: torch.Tensor) -> torch.Tensor:
    """The frozen ``backbone``'s regions of uint8 ``canvases``, standardised as in training."""
    require(isinstance(backbone, CanvasBackbone), "backbone must be a CanvasBackbone", TypeError)
    return backbone.store_regions(mnist.to_float(canvases, mean=CANVAS_MEAN, std=CANVAS_STD))


def _accuracy(model: VQAModel, table: torch.Tensor, qa: VQAExamples, questions=None) -> float:
    questions = qa.questions if questions is None else questions
    return accuracy(predict(CanvasLookup(model, table), qa.canvas, questions), qa.answers)


def corruption_curves(
    models: Mapping[str, VQAModel], backbone: CanvasBackbone, canvases: torch.Tensor,
    qa: VQAExamples,
) -> dict[str, list[dict[str, float]]]:  # fmt: skip
    """``{kind: [{model: accuracy} for each severity 0..5]}`` on the questions ``qa`` about
    ``canvases``, for every image corruption (canvases corrupted with ``seed=severity``) and
    text corruption (questions corrupted likewise) -- chapter 13's section 1."""
    require(len(models) > 0, "models must name at least one model")
    clean = canvas_regions(backbone, canvases)

    def scores(table, questions):
        return {name: _accuracy(model, table, qa, questions) for name, model in models.items()}

    curves = {}
    for kind in IMAGE_CORRUPTIONS:
        curves[kind] = [
            scores(canvas_regions(backbone, corrupt_images(canvases, kind, s, seed=s))
                   if s else clean, qa.questions)
            for s in SEVERITIES
        ]  # fmt: skip
    for kind in TEXT_CORRUPTIONS:
        curves[kind] = []
        for s in SEVERITIES:
            ids, _ = qa.vocab.encode_batch(
                corrupt_texts(qa.texts, kind, s, seed=s), add_bos_eos=False
            )
            curves[kind].append(scores(clean, ids))
    return curves


def pretrain(train_data: MNISTCaptions, epochs: int, seed: int, augmented: bool) -> CanvasBackbone:
    """Chapter 13's backbone (:func:`mmcourse.fusion_study.pretrain_backbone` with ``seed``),
    trained on augmented views (half of each batch's canvases, :func:`augment_canvases` with
    ``p = 0.5``) when ``augmented``; frozen."""
    require(isinstance(augmented, bool), "augmented must be True or False", TypeError)
    augment = (lambda canvases, s: augment_canvases(canvases, s, p=0.5)) if augmented else None
    backbone, _ = pretrain_backbone(train_data, epochs, seed=seed, augment=augment)
    return backbone


def train_head(
    backbone: CanvasBackbone, train_qa: VQAExamples, regions: torch.Tensor, word_drop: float,
    epochs: int, seed: int,
) -> VQAModel:  # fmt: skip
    """A product fusion trained as in chapter 06 (Adam, 5e-3, batches of 256; initial
    weights and batch order from ``seed``) on ``train_qa``, reading the stored ``regions``,
    each batch's questions passed through :func:`word_dropout` with ``word_drop`` (a fresh
    draw every batch). ``word_drop = 0`` is chapter 13's plain training, through the same
    code."""
    check_int(epochs, "epochs")
    torch.manual_seed(seed)
    model = build_vqa_model(FUSIONS["product"](backbone), len(train_qa.vocab), backbone)
    draws = torch.Generator().manual_seed(seed)

    def forward(lookup, batch):
        canvas, questions, answers = batch
        if word_drop:
            questions = word_dropout(questions, word_drop, draws)
        return lookup(canvas, questions), answers

    trainable = [w for w in model.parameters() if w.requires_grad]
    fit(CanvasLookup(model, regions), (train_qa.canvas, train_qa.questions, train_qa.answers),
        loss_fn=F.cross_entropy, optimizer=torch.optim.Adam(trainable, lr=5e-3), epochs=epochs,
        batch_size=256, loop=Loop(seed=seed, forward=forward))  # fmt: skip
    return model


def held_out_sets(
    backbone: CanvasBackbone, splits: Mapping[str, MNISTCaptions], qa: Mapping[str, VQAExamples],
) -> dict[str, tuple[torch.Tensor, VQAExamples, torch.Tensor]]:  # fmt: skip
    """``{name: (regions, qa, question ids)}``: ``"val"``, ``"test"``, ``"compositional"``,
    and the test questions under each corruption at :data:`CORRUPTED_SEVERITY` (image
    corruptions as ``"noise"``, ...; text corruptions as ``"typos"``, ...)."""
    missing = {"val", "test", "compositional"} - set(splits) | {
        "val",
        "test",
        "compositional",
    } - set(qa)
    require(not missing, f"splits and qa need {sorted(missing)}")
    sets = {name: (canvas_regions(backbone, splits[name].images), qa[name], qa[name].questions)
            for name in ("val", "test", "compositional")}  # fmt: skip
    test_regions, test_qa = sets["test"][:2]
    s = CORRUPTED_SEVERITY
    for kind in IMAGE_CORRUPTIONS:
        corrupted = corrupt_images(splits["test"].images, kind, s, seed=s)
        sets[kind] = (canvas_regions(backbone, corrupted), test_qa, test_qa.questions)
    for kind in TEXT_CORRUPTIONS:
        ids, _ = test_qa.vocab.encode_batch(
            corrupt_texts(test_qa.texts, kind, s, seed=s), add_bos_eos=False
        )
        sets[kind] = (test_regions, test_qa, ids)
    return sets


def held_out_scores(model: VQAModel, sets: Mapping) -> dict[str, float]:
    """``model``'s accuracy on each of :func:`held_out_sets`' sets."""
    return {name: _accuracy(model, table, qa, ids) for name, (table, qa, ids) in sets.items()}


def save_study(path: str | Path, settings: Mapping, curves: Mapping, augmentation: Mapping) -> Path:
    """Store the study: ``curves[seed][kind][severity][model]`` and
    ``augmentation[variant][seed][set]``, accuracies rounded to 6 digits."""

    def rounded(value):
        if isinstance(value, Mapping):
            return {str(k): rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return round(float(value), 6)

    return save_results(
        path, settings, {"curves": rounded(curves), "augmentation": rounded(augmentation)}
    )


def load_study(path: str | Path = RESULTS) -> tuple[dict, dict, dict]:
    """``(settings, curves, augmentation)`` of a stored study; seeds come back as ints."""
    settings, stored = load_results(path, made_by=MADE_BY)
    require(
        set(stored) == {"curves", "augmentation"},
        f"{path} holds {sorted(stored)}, not a robustness study",
    )
    curves = {int(seed): by_kind for seed, by_kind in stored["curves"].items()}
    augmentation = {variant: {int(seed): scores for seed, scores in runs.items()}
                    for variant, runs in stored["augmentation"].items()}  # fmt: skip
    return settings, curves, augmentation
