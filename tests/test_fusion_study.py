"""mmcourse.fusion_study: splits, seeds, the summary statistics and the stored results."""

import statistics

import pytest
import torch

from mmcourse import fusion_study
from mmcourse.data.captions import digit_pool


@pytest.fixture(scope="module")
def tiny_study():
    splits = fusion_study.make_splits(n_train=96, n_val=32, n_test=32)
    backbone, _ = fusion_study.pretrain_backbone(splits["train"], epochs=1)
    return splits, backbone, fusion_study.VQAData.build(splits, backbone)


def test_no_validation_or_test_digit_is_a_training_digit():
    """Compared by their pixels: every digit drawn on a training canvas against every digit
    drawn on a validation or test canvas (a digit appears on several canvases of a split)."""
    splits = fusion_study.make_splits(n_train=300, n_val=100, n_test=100)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [300, 100, 100]

    def digits_of(split: str) -> set[bytes]:
        pool, _ = digit_pool(split)
        source = splits[split].source
        return {pool[i].numpy().tobytes() for i in source[source >= 0].tolist()}

    train = digits_of("train")
    assert train.isdisjoint(digits_of("val")) and train.isdisjoint(digits_of("test"))
    again = fusion_study.make_splits(n_train=300, n_val=100, n_test=100)
    assert torch.equal(again["val"].images, splits["val"].images)


def test_run_fusion_is_reproducible_per_seed_and_scores_every_split(tiny_study):
    _, backbone, data = tiny_study
    first = fusion_study.run_fusion("product", data, backbone, epochs=1, seed=0)
    assert set(first) == {"val", "test"} and all(0 <= v <= 1 for v in first.values())
    assert fusion_study.run_fusion("product", data, backbone, epochs=1, seed=0) == first
    model_a = fusion_study.build_vqa_model(fusion_study.FUSIONS["product"](backbone), 40, backbone)
    torch.manual_seed(1)
    model_b = fusion_study.build_vqa_model(fusion_study.FUSIONS["product"](backbone), 40, backbone)
    assert not torch.equal(model_a.fusion.image_proj.weight, model_b.fusion.image_proj.weight)


def test_the_backbone_is_frozen_and_shared(tiny_study):
    _, backbone, data = tiny_study
    assert not any(p.requires_grad for p in backbone.parameters())
    assert data.regions["train"].shape[1:] == (backbone.n_regions, backbone.region_dim)


def test_every_fusion_builds_from_the_backbone(tiny_study):
    _, backbone, _ = tiny_study
    for name, make in fusion_study.FUSIONS.items():
        assert isinstance(make(backbone), torch.nn.Module), name


def test_unknown_fusion_and_bad_epochs_get_clear_errors(tiny_study):
    _, backbone, data = tiny_study
    with pytest.raises(ValueError, match="unknown fusion 'sparkle'"):
        fusion_study.run_fusion("sparkle", data, backbone, epochs=1, seed=0)
    with pytest.raises((TypeError, ValueError), match="epochs"):
        fusion_study.run_fusion("product", data, backbone, epochs=0, seed=0)


def test_seed_summary_is_the_mean_and_sample_std():
    results = {"a": {0: {"test": 0.8}, 1: {"test": 0.9}, 2: {"test": 0.7}}}
    mean, std, n = fusion_study.seed_summary(results, "test")["a"]
    assert n == 3
    assert mean == pytest.approx(statistics.mean([0.8, 0.9, 0.7]))
    assert std == pytest.approx(statistics.stdev([0.8, 0.9, 0.7]))
    with pytest.raises(ValueError, match="at least 2"):
        fusion_study.seed_summary({"a": {0: {"test": 0.8}}}, "test")


def test_real_difference_follows_the_two_standard_errors_rule():
    a, b = [0.80, 0.82, 0.84], [0.76, 0.78, 0.80]
    # by hand: both sample variances are 0.0004, so the standard error is sqrt(2 * 0.0004 / 3)
    error = (2 * 0.0004 / 3) ** 0.5
    assert (0.04 > 2 * error) == fusion_study.real_difference(a, b)
    assert fusion_study.real_difference(a, b, factor=0.04 / error + 0.01) is False
    with pytest.raises(ValueError, match="at least two seeds"):
        fusion_study.real_difference([0.8], [0.7, 0.6])


def test_results_survive_a_round_trip_and_a_missing_file_says_how_to_make_it(tmp_path):
    results = {"concat": {0: {"val": 0.81234567, "test": 0.8}, 1: {"val": 0.8, "test": 0.79}}}
    path = fusion_study.save_seed_study(tmp_path / "r.json", results, {"seeds": [0, 1]})
    settings, loaded = fusion_study.load_seed_study(path)
    assert settings == {"seeds": [0, 1]}
    assert (
        loaded["concat"][0]["val"] == round(0.81234567, 6) and loaded["concat"][1]["test"] == 0.79
    )
    with pytest.raises(FileNotFoundError, match="experiments/fusion_seeds.py"):
        fusion_study.load_seed_study(tmp_path / "missing.json")


def test_one_reader_for_every_stored_result(tmp_path):
    """results.load_results reads what save_results wrote, names the script of a missing
    file, and refuses a file of another shape; both stored studies of data/results/ read."""
    from mmcourse.casestudy import evaluation
    from mmcourse.results import load_results, save_results

    path = save_results(tmp_path / "r.json", {"seeds": [0]}, {"a": {"0": 1.5}})
    assert load_results(path, made_by="x.py") == ({"seeds": [0]}, {"a": {"0": 1.5}})
    with pytest.raises(FileNotFoundError, match="run python experiments/x.py"):
        load_results(tmp_path / "none.json", made_by="experiments/x.py")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="is not a result stored by x.py .*list"):
        load_results(tmp_path / "list.json", made_by="x.py")
    _, seeds = fusion_study.load_seed_study()
    _, decoders = evaluation.load_decoder_comparison()
    assert all(isinstance(seed, int) for runs in seeds.values() for seed in runs)
    assert {"test", "beam_width"} <= set(next(iter(decoders.values())))
