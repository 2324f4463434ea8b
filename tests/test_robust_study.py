"""mmcourse.robust.study: chapter 13's seed study. Plain training through the augmentation
code equals chapter 06's training; the controls of the corruption curves do not move; the
stored study is complete and reads back."""

import pytest
import torch

from mmcourse import fusion_study
from mmcourse.data.captions import make_mnist_captions
from mmcourse.data.questions import make_vqa
from mmcourse.robust import IMAGE_CORRUPTIONS, SEVERITIES, TEXT_CORRUPTIONS, study


@pytest.fixture(scope="module")
def tiny():
    splits = fusion_study.make_splits(n_train=64, n_val=24, n_test=24)
    splits["compositional"] = make_mnist_captions("compositional", n=24)
    backbone, _ = fusion_study.pretrain_backbone(splits["train"], epochs=1)
    train_qa = make_vqa(splits["train"])
    qa = {name: make_vqa(d, vocab=train_qa.vocab) for name, d in splits.items() if name != "train"}
    qa["train"] = train_qa
    return splits, backbone, qa


def test_canvas_regions_are_the_regions_the_study_trains_on(tiny):
    splits, backbone, _ = tiny
    expected = backbone.store_regions(splits["test"].float_images())
    assert torch.equal(study.canvas_regions(backbone, splits["test"].images), expected)


def test_plain_training_through_the_augmentation_code_is_chapter_06s(tiny):
    splits, backbone, qa = tiny
    data = fusion_study.VQAData({k: qa[k] for k in ("train", "test")},
                                {k: study.canvas_regions(backbone, splits[k].images)
                                 for k in ("train", "test")})  # fmt: skip
    torch.manual_seed(2)
    reference = fusion_study.build_vqa_model(
        fusion_study.FUSIONS["product"](backbone), len(qa["train"].vocab), backbone
    )
    fusion_study.train_and_predict(reference, data, epochs=1, seed=2)
    plain = study.train_head(backbone, qa["train"], data.regions["train"], 0.0, 1, seed=2)
    for ours, theirs in zip(plain.parameters(), reference.parameters()):
        assert torch.equal(ours, theirs)
    dropped = study.train_head(backbone, qa["train"], data.regions["train"], 0.1, 1, seed=2)
    assert not torch.equal(dropped.fusion.image_proj.weight, plain.fusion.image_proj.weight)


def test_pretraining_on_augmented_canvases_differs_only_when_asked(tiny):
    splits, backbone, _ = tiny
    plain = study.pretrain(splits["train"], 1, seed=0, augmented=False)
    augmented = study.pretrain(splits["train"], 1, seed=0, augmented=True)
    pixels = splits["test"].float_images()
    assert torch.equal(plain.store_regions(pixels), backbone.store_regions(pixels))
    assert not torch.equal(augmented.store_regions(pixels), backbone.store_regions(pixels))
    assert not any(w.requires_grad for w in augmented.parameters())
    with pytest.raises(TypeError, match="True or False"):
        study.pretrain(splits["train"], 1, seed=0, augmented="yes")


def test_the_controls_of_the_corruption_curves_do_not_move(tiny):
    """The question-only model never sees the canvas, the image-only model never the
    question: their accuracy must be the same at every severity of the other modality."""
    splits, backbone, qa = tiny
    data = fusion_study.VQAData({k: qa[k] for k in ("train", "test")},
                                {k: study.canvas_regions(backbone, splits[k].images)
                                 for k in ("train", "test")})  # fmt: skip
    models = {}
    for name in study.CURVE_MODELS:
        torch.manual_seed(0)
        models[name] = fusion_study.build_vqa_model(
            fusion_study.FUSIONS[name](backbone), len(qa["train"].vocab), backbone
        )
        fusion_study.train_and_predict(models[name], data, epochs=1)
    curves = study.corruption_curves(models, backbone, splits["test"].images, qa["test"])
    assert set(curves) == {*IMAGE_CORRUPTIONS, *TEXT_CORRUPTIONS}
    for kind, rows in curves.items():
        assert len(rows) == len(SEVERITIES) and rows[0] == curves["noise"][0]
        control = "question only" if kind in IMAGE_CORRUPTIONS else "image only"
        assert len({row[control] for row in rows}) == 1, kind


def test_held_out_sets_corrupt_only_their_own_modality(tiny):
    splits, backbone, qa = tiny
    sets = study.held_out_sets(backbone, splits, qa)
    assert set(sets) == {"val", "test", "compositional", *IMAGE_CORRUPTIONS, *TEXT_CORRUPTIONS}
    test_regions, _, test_ids = sets["test"]
    for kind in IMAGE_CORRUPTIONS:
        assert torch.equal(sets[kind][2], test_ids) and not torch.equal(sets[kind][0], test_regions)
    for kind in TEXT_CORRUPTIONS:
        assert torch.equal(sets[kind][0], test_regions) and not torch.equal(sets[kind][2], test_ids)
    with pytest.raises(ValueError, match="compositional"):
        study.held_out_sets(backbone, {k: splits[k] for k in ("val", "test")}, qa)


def test_the_stored_study_is_complete(tmp_path):
    settings, curves, augmentation = study.load_study()
    assert len(settings["seeds"]) >= 3 and sorted(curves) == settings["seeds"]
    for by_kind in curves.values():
        assert set(by_kind) == {*IMAGE_CORRUPTIONS, *TEXT_CORRUPTIONS}
        for rows in by_kind.values():
            assert len(rows) == len(SEVERITIES)
            assert all(set(row) == set(study.CURVE_MODELS) for row in rows)
            assert all(0 <= v <= 1 for row in rows for v in row.values())
    assert set(augmentation) == set(study.AUGMENTATIONS)
    assert all(sorted(runs) == settings["seeds"] for runs in augmentation.values())
    path = study.save_study(tmp_path / "s.json", settings, curves, augmentation)
    assert study.load_study(path) == (settings, curves, augmentation)
    with pytest.raises(FileNotFoundError, match="experiments/robustness_seeds.py"):
        study.load_study(tmp_path / "missing.json")
