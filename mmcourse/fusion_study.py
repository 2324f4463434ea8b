"""Chapter 06's comparison of fusion operators, as one reusable experiment.

The chapter runs it once (seed 0) in the notebook; ``experiments/fusion_seeds.py`` runs
the very same functions for several seeds and stores the accuracies in
``data/results/fusion_seeds.json`` (:data:`RESULTS`), which the chapter reads to tell real differences
from seed noise. Keeping the recipe here, not in the notebook, is what makes the stored
numbers and the notebook's numbers come from one piece of code.

The recipe: a :class:`~mmcourse.models.vqa.CanvasBackbone` pretrained to name what stands in
each slot, then frozen, its regions stored once per canvas; for each fusion, a fresh question
encoder, fusion and classifier trained with Adam on the training questions, scored on the
validation and test questions.

>>> sorted(FUSIONS)[:3]
['FiLM', 'bilinear', 'concat']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from mmcourse._validate import check_int, require
from mmcourse.data import mnist, questions
from mmcourse.data.captions import (
    ANSWERS,
    CANVAS_MEAN,
    CANVAS_STD,
    MNISTCaptions,
    make_mnist_captions,
)
from mmcourse.data.mnist import REPO_DATA
from mmcourse.losses import slot_attribute_loss
from mmcourse.metrics import accuracy
from mmcourse.models.cross_attention import CrossAttentionFusion
from mmcourse.models.film import FiLMFusion
from mmcourse.models.fusion import (
    BilinearFusion,
    ConcatFusion,
    Fusion,
    GatedFusion,
    ImageOnly,
    LateFusion,
    LowRankBilinearFusion,
    ProductFusion,
    SumFusion,
    TextOnly,
)
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.text import BagOfWordsEncoder
from mmcourse.models.vqa import CanvasBackbone, CanvasLookup, SlotAttributeHead, VQAModel
from mmcourse.results import load_results, save_results
from mmcourse.train import Loop, fit, predict

__all__ = [
    "DIM",
    "FUSIONS",
    "RESULTS",
    "TEXT_DIM",
    "VQAData",
    "build_vqa_model",
    "load_seed_study",
    "make_splits",
    "pretrain_backbone",
    "run_fusion",
    "real_difference",
    "save_seed_study",
    "seed_summary",
    "train_and_predict",
]

RESULTS = REPO_DATA / "results" / "fusion_seeds.json"
"""Where ``experiments/fusion_seeds.py`` stores the study and the chapter reads it."""

TEXT_DIM = 32
"""Size of the bag-of-words question vector."""
DIM = 64
"""Width of the fused vector of the fusions that choose it."""

FUSIONS: dict[str, Callable[[CanvasBackbone], Fusion]] = {
    "image only": lambda bb: ImageOnly(bb.out_dim, TEXT_DIM),
    "question only": lambda bb: TextOnly(bb.out_dim, TEXT_DIM),
    "late": lambda bb: LateFusion(bb.out_dim, TEXT_DIM, len(ANSWERS)),
    "concat": lambda bb: ConcatFusion(bb.out_dim, TEXT_DIM),
    "sum": lambda bb: SumFusion(bb.out_dim, TEXT_DIM, DIM),
    "product": lambda bb: ProductFusion(bb.out_dim, TEXT_DIM, DIM),
    "bilinear": lambda bb: BilinearFusion(bb.out_dim, TEXT_DIM, DIM, append_ones=True),
    "low-rank bilinear": lambda bb: LowRankBilinearFusion(bb.out_dim, TEXT_DIM, DIM, rank=64),
    "gated": lambda bb: GatedFusion(bb.out_dim, TEXT_DIM, DIM),
    "FiLM": lambda bb: FiLMFusion(bb.region_dim, TEXT_DIM, bb.grid_size, channels=32),
    "cross-attention": lambda bb: CrossAttentionFusion(bb.region_dim, TEXT_DIM, DIM, bb.n_regions),
}
"""Each fusion of the chapter, built from the backbone whose features it reads."""


def make_splits(n_train: int, n_val: int, n_test: int) -> dict[str, MNISTCaptions]:
    """The first ``n_train``, ``n_val`` and ``n_test`` canvases of MNIST-Captions' ``train``,
    ``val`` and ``test`` splits.

    Each split draws its digits from its own part of MNIST (``train`` from MNIST's training
    set, ``val`` and ``test`` from two disjoint halves of its test set), so no validation or
    test digit was seen by a backbone trained on the training canvases. (Splitting one pool
    of training canvases instead would leave most validation digits seen in training: a
    digit appears on several canvases.) The validation canvases are for choosing; the test
    canvases are scored once.
    """
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in sizes.items():
        check_int(n, f"n_{split}")
    return {split: make_mnist_captions(split, n=n) for split, n in sizes.items()}


def pretrain_backbone(
    train_data: MNISTCaptions,
    epochs: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    augment: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
) -> tuple[CanvasBackbone, SlotAttributeHead]:
    """A :class:`CanvasBackbone` (an 8 x 8 grid of 64-d regions, one 64-d vector per canvas)
    trained with a :class:`SlotAttributeHead` to name the digit, size, thickness and slant in
    each slot of ``train_data``'s canvases (Adam, batches of 64); returns both, frozen.

    ``augment(canvases, seed)``, if given, replaces each batch's uint8 canvases by views that
    keep every slot's attributes (e.g. :func:`mmcourse.robust.augment_canvases`), with a seed
    drawn for the batch from ``seed``: data augmentation of the image encoder."""
    check_int(epochs, "epochs")
    torch.manual_seed(seed)
    backbone = CanvasBackbone(CanvasEncoder(out_dim=64, channels=(16, 32, 64)), out_dim=64)
    pretraining = torch.nn.Sequential(backbone, SlotAttributeHead(backbone.out_dim))
    targets = questions.slot_targets(train_data)
    if augment is None:
        inputs, loop = train_data.float_images(), Loop(seed=seed)
    else:
        draws = torch.Generator().manual_seed(seed)

        def forward(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
            index, batch_targets = batch
            batch_seed = int(torch.randint(2**31 - 1, (), generator=draws))
            views = augment(train_data.images[index.cpu()], batch_seed)
            pixels = mnist.to_float(views, mean=CANVAS_MEAN, std=CANVAS_STD)
            return model(pixels.to(batch_targets.device)), batch_targets

        inputs, loop = torch.arange(len(train_data)), Loop(seed=seed, forward=forward)
    fit(
        pretraining if device is None else pretraining.to(device),
        (inputs, targets),
        loss_fn=slot_attribute_loss,
        optimizer=torch.optim.Adam(pretraining.parameters(), lr=3e-3),
        epochs=epochs,
        batch_size=64,
        loop=loop,
    )
    pretraining.requires_grad_(False).eval()
    return backbone, pretraining[1]


@dataclass
class VQAData:
    """Questions and stored backbone regions of the three splits the study uses."""

    qa: dict[str, questions.VQAExamples]
    regions: dict[str, torch.Tensor]

    @classmethod
    def build(cls, splits: Mapping[str, MNISTCaptions], backbone: CanvasBackbone) -> VQAData:
        """Questions of ``splits`` (``"train"`` first: its vocabulary serves all) and the
        frozen ``backbone``'s regions of their canvases."""
        require("train" in splits, f"splits must include 'train', got {sorted(splits)}")
        train_qa = questions.make_vqa(splits["train"])
        qa = {
            name: train_qa if name == "train" else questions.make_vqa(data, vocab=train_qa.vocab)
            for name, data in splits.items()
        }
        backbone.requires_grad_(False)
        regions = {
            name: backbone.store_regions(data.float_images()) for name, data in splits.items()
        }
        return cls(qa, regions)


def build_vqa_model(fusion: Fusion, vocab_size: int, backbone: CanvasBackbone) -> VQAModel:
    """A fresh bag-of-words question encoder and classifier around ``fusion``, reading the
    (frozen) ``backbone``'s features."""
    question_encoder = BagOfWordsEncoder(vocab_size, dim=TEXT_DIM)
    return VQAModel(question_encoder, fusion, len(ANSWERS), image_encoder=backbone)


def train_and_predict(
    model: VQAModel,
    data: VQAData,
    epochs: int,
    seed: int = 0,
    batch_size: int = 256,
    lr: float = 5e-3,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Train ``model``'s trainable parts on the training questions (Adam, batch order from
    ``seed``) and return its answer logits on every other split of ``data``."""
    check_int(epochs, "epochs")
    trainable = [p for p in model.parameters() if p.requires_grad]
    train_qa = data.qa["train"]
    lookup = CanvasLookup(model, data.regions["train"])
    fit(
        lookup if device is None else lookup.to(device),
        (train_qa.canvas, train_qa.questions, train_qa.answers),
        loss_fn=F.cross_entropy,
        optimizer=torch.optim.Adam(trainable, lr=lr),
        epochs=epochs,
        batch_size=batch_size,
        loop=Loop(seed=seed),
    )
    return {
        name: predict(
            CanvasLookup(model, data.regions[name]), qa.canvas, qa.questions, device=device
        )
        for name, qa in data.qa.items()
        if name != "train"
    }


def run_fusion(
    name: str, data: VQAData, backbone: CanvasBackbone, epochs: int, seed: int, device=None
) -> dict[str, float]:
    """Accuracy of fusion ``name`` on every evaluated split, for one seed (initial weights
    from ``torch.manual_seed(seed)``, batch order from ``seed``)."""
    require(name in FUSIONS, f"unknown fusion {name!r}; choose from {sorted(FUSIONS)}")
    torch.manual_seed(seed)
    model = build_vqa_model(FUSIONS[name](backbone), len(data.qa["train"].vocab), backbone)
    logits = train_and_predict(model, data, epochs, seed=seed, device=device)
    return {split: accuracy(out, data.qa[split].answers) for split, out in logits.items()}


def seed_summary(results: Mapping[str, Mapping[str, Mapping[str, float]]], split: str) -> dict:
    """``{fusion: (mean, std, n)}`` of ``split``'s accuracy over the seeds in ``results``
    (``results[fusion][seed][split]``); std is the sample standard deviation."""
    summary = {}
    for name, by_seed in results.items():
        values = torch.tensor([scores[split] for scores in by_seed.values()], dtype=torch.float64)
        require(len(values) >= 2, f"{name!r} has {len(values)} seed(s); a spread needs at least 2")
        summary[name] = (values.mean().item(), values.std().item(), len(values))
    return summary


def real_difference(a: Sequence[float], b: Sequence[float], factor: float = 2.0) -> bool:
    """Is the difference of the means of ``a`` and ``b`` more than ``factor`` standard errors
    of that difference, ``sqrt(s_a^2 / n_a + s_b^2 / n_b)``? A rough rule, not a test: with
    three seeds, a "no" means "not shown", never "equal".

    >>> real_difference([0.80, 0.81, 0.82], [0.70, 0.71, 0.72])
    True
    >>> real_difference([0.80, 0.83, 0.81], [0.81, 0.82, 0.80])
    False
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each side needs at least two seeds to estimate its spread")
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    error = math.sqrt(ta.var().item() / len(ta) + tb.var().item() / len(tb))
    return abs(ta.mean().item() - tb.mean().item()) > factor * error


def save_seed_study(path: str | Path, results: Mapping, settings: Mapping) -> Path:
    """Store a seed study (:func:`mmcourse.results.save_results`), accuracies rounded to 6
    digits."""
    rounded = {
        name: {
            str(seed): {k: round(v, 6) for k, v in scores.items()} for seed, scores in runs.items()
        }
        for name, runs in results.items()
    }
    return save_results(path, settings, rounded)


def load_seed_study(path: str | Path = RESULTS) -> tuple[dict, dict]:
    """``(settings, results)`` of a stored seed study; seeds come back as ints."""
    settings, stored = load_results(path, made_by="experiments/fusion_seeds.py")
    results = {
        name: {int(seed): scores for seed, scores in runs.items()} for name, runs in stored.items()
    }
    return settings, results
