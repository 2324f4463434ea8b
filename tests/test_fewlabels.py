"""mmcourse.fewlabels against independent references: NT-Xent against a loop over the
2N views by hand, the linear probe against scikit-learn's LogisticRegression, the augmentation
against a shift measured from the pixels with scipy, uncertainty scores by hand, and the
subset's class counts counted."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch
from sklearn.linear_model import LogisticRegression

from mmcourse import fewlabels

pytestmark = pytest.mark.usefixtures("one_thread")


def test_nt_xent_equals_the_loss_written_out_view_by_view() -> None:
    generator = torch.Generator().manual_seed(0)
    first, second = torch.randn(4, 6, generator=generator), torch.randn(4, 6, generator=generator)
    temperature = 0.3
    views = [v / v.norm() for v in [*first, *second]]
    total = 0.0
    for i, anchor in enumerate(views):
        twin = (i + 4) % 8
        others = [j for j in range(8) if j != i]
        denominator = sum(math.exp(float(anchor @ views[j]) / temperature) for j in others)
        total += -math.log(math.exp(float(anchor @ views[twin]) / temperature) / denominator)
    loss = fewlabels.nt_xent(first, second, temperature)
    assert float(loss) == pytest.approx(total / 8, rel=1e-5)
    assert float(fewlabels.nt_xent(first, first.clone() * 3, 0.05)) < 0.1  # twins identical
    with pytest.raises(ValueError, match="at least two"):
        fewlabels.nt_xent(first[:1], second[:1])
    with pytest.raises(ValueError, match="second"):
        fewlabels.nt_xent(first, second[:3])


def test_augment_moves_the_ink_within_its_bounds_and_is_seeded() -> None:
    pixels = torch.zeros(64, 1, 28, 28)
    pixels[:, 0, 11:17, 11:17] = 1.0  # a square in the middle
    views = fewlabels.augment(pixels, torch.Generator().manual_seed(0))
    again = fewlabels.augment(pixels, torch.Generator().manual_seed(0))
    assert torch.equal(views, again) and views.shape == pixels.shape
    assert 0 <= float(views.min()) and float(views.max()) <= 1
    shifts, low, high = [], *fewlabels.simclr.SCALE_RANGE
    for view in views[:, 0].numpy():
        mass = view.sum() / 36  # the square's ink scales with the zoom squared
        if low**2 - 0.05 <= mass <= high**2 + 0.05:  # no ink erased
            cy, cx = scipy.ndimage.center_of_mass(view)
            shifts.append(max(abs(cy - 13.5), abs(cx - 13.5)))
    # the content moves by the zoom times the (rotated) shift: at most high * MAX_SHIFT * sqrt 2
    assert len(shifts) > 20
    assert max(shifts) <= high * fewlabels.simclr.MAX_SHIFT * math.sqrt(2) + 0.5
    assert np.std(shifts) > 0.3  # the views differ
    with pytest.raises(ValueError, match="one channel"):
        fewlabels.augment(torch.zeros(2, 3, 28, 28), torch.Generator())


def test_pretraining_lowers_the_loss_on_a_few_digits() -> None:
    from mmcourse.data import mnist

    digits, _ = mnist.load_digits("train")
    pixels = digits[:512, None].float() / 255
    model = fewlabels.SimCLR(channels=(8, 16, 16), projection_dim=16)
    losses = fewlabels.pretrain(model, pixels, epochs=3, normalize=(0.13, 0.31), batch_size=128)
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert not model.training
    assert model.features(torch.zeros(2, 1, 28, 28)).shape == (2, model.feature_dim)


def test_labelled_subset_is_stratified() -> None:
    labels = torch.arange(10).repeat_interleave(
        torch.tensor([100, 90, 80, 100, 100, 100, 100, 100, 100, 30])
    )
    subset = fewlabels.labelled_subset(labels, 0.1, seed=1)
    counts = torch.bincount(labels[subset], minlength=10).tolist()
    assert counts == [10, 9, 8, 10, 10, 10, 10, 10, 10, 3]
    assert len(set(subset.tolist())) == len(subset)
    assert torch.bincount(labels[fewlabels.labelled_subset(labels, 0.001)]).tolist() == [1] * 10
    assert not torch.equal(subset, fewlabels.labelled_subset(labels, 0.1, seed=2))
    with pytest.raises(ValueError, match="fraction"):
        fewlabels.labelled_subset(labels, 0.0)


@pytest.mark.parametrize("weight_decay", [1e-2, 1e-4])
def test_linear_probe_is_scikit_learns_logistic_regression(weight_decay: float) -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 5, generator=generator) * 2
    labels = torch.randint(0, 3, (300,), generator=generator)
    features = centres[labels] + torch.randn(300, 5, generator=generator)
    probe = fewlabels.fit_linear_probe(features, labels, weight_decay, num_classes=3)
    x = ((features - features.mean(0)) / features.std(0)).numpy()
    reference = LogisticRegression(C=1 / (2 * 300 * weight_decay), tol=1e-10, max_iter=10000)
    reference.fit(x, labels.numpy())
    ours = probe(features).softmax(dim=1).detach().numpy()
    np.testing.assert_allclose(ours, reference.predict_proba(x), atol=2e-4)


def test_train_classifier_spends_the_same_steps_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    before = [p.clone() for p in model.parameters()]
    images = torch.randn(10, 1, 2, 2)
    labels = (images.flatten(1).sum(1) > 0).long()
    trained = fewlabels.train_classifier(model, images, labels, steps=300, batch_size=4, lr=0.05)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert fewlabels.accuracy(trained, images, labels) == 1.0
    with pytest.raises(ValueError, match="same number"):
        fewlabels.train_classifier(model, images, labels[:5], steps=1)


def test_uncertainty_scores_by_hand_and_queries() -> None:
    p = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(fewlabels.uncertainty(p, "margin"), torch.tensor([0.5, 0.95, 0.0]))
    torch.testing.assert_close(
        fewlabels.uncertainty(p, "least_confident"), torch.tensor([0.3, 0.6, 0.0])
    )
    entropy = [-sum(v * math.log(v) for v in row if v > 0) for row in p.tolist()]
    torch.testing.assert_close(fewlabels.uncertainty(p, "entropy"), torch.tensor(entropy))
    candidates = torch.tensor([7, 3, 9])
    assert fewlabels.next_queries(p, candidates, 2).tolist() == [3, 7]
    drawn = fewlabels.next_queries(p, candidates, 3, "random", torch.Generator().manual_seed(0))
    assert sorted(drawn.tolist()) == [3, 7, 9]
    with pytest.raises(ValueError, match="cannot pick"):
        fewlabels.next_queries(p, candidates, 4)
    with pytest.raises(ValueError, match="generator"):
        fewlabels.next_queries(p, candidates, 1, "random")


def test_self_training_takes_confident_guesses_and_helps_on_separable_data() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0]])
    labels_all = torch.randint(0, 2, (400,), generator=generator)
    features = centres[labels_all] + torch.randn(400, 2, generator=generator)
    result = fewlabels.self_train(features[:4], labels_all[:4], features[4:], 0.9, rounds=2)
    assert len(result.taken) == 2 and len(result.taken[-1]) > 300
    agreement = (result.pseudo_labels[-1] == labels_all[4:][result.taken[-1]]).double().mean()
    assert agreement > 0.95
    none = fewlabels.self_train(features[:4], labels_all[:4], features[4:], 0.9, rounds=0)
    assert none.taken == []
    with pytest.raises(ValueError, match="threshold"):
        fewlabels.self_train(features[:4], labels_all[:4], features[4:], 1.0)


def test_consistency_loss_by_hand_and_no_gradient_through_the_guess() -> None:
    probe = fewlabels.LinearProbe(torch.zeros(2), torch.ones(2), 2)
    with torch.no_grad():
        probe.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        probe.linear.bias.zero_()
    weak = torch.tensor([[3.0, 0.0], [0.0, 0.2], [0.0, 4.0]], requires_grad=True)
    strong = torch.tensor([[1.0, 2.0], [5.0, 0.0], [0.0, 1.0]])
    loss, used = fewlabels.consistency_loss(probe, weak, strong, threshold=0.9)
    # weak guesses: class 0 with p = 1/(1+e^-3) = .953 (used); class 1 with p = .550 (not
    # used); class 1 with p = .982 (used). Strong cross-entropies: log(1 + e^(2-1)) for the
    # first (target 0, logits 1 and 2), log(1 + e^(0-1)) for the third (target 1).
    assert used.tolist() == [True, False, True]
    expected = (math.log(1 + math.e) + math.log(1 + math.exp(-1))) / 3  # divided by all U
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert weak.grad is None  # the guess is a target, not a path for gradients


def two_clusters(n: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])
    return centres[labels] + torch.randn(n, 2, generator=generator), labels


def test_consistency_training_starts_from_the_labelled_probe_and_uses_the_views() -> None:
    features, labels = two_clusters()
    labelled, unlabelled = slice(0, 6), slice(6, None)
    generator = torch.Generator().manual_seed(1)
    views = features[unlabelled] + 0.3 * torch.randn(4, 394, 2, generator=generator)
    args = (features[labelled], labels[labelled], features[unlabelled], views, 0.8)
    start = fewlabels.fit_linear_probe(features[labelled], labels[labelled], 1e-3)
    untouched = fewlabels.consistency_train(*args, rounds=0)
    torch.testing.assert_close(untouched.linear.weight, start.linear.weight)
    trained = fewlabels.consistency_train(*args, rounds=2)

    # the unlabelled examples' answers now agree with those of their views more often
    def agreement(probe: fewlabels.LinearProbe) -> float:
        with torch.no_grad():
            weak_guess = probe(features[unlabelled]).argmax(dim=1)
            view_guess = probe(views.flatten(0, 1)).argmax(dim=1).view(4, -1)
        return float((view_guess == weak_guess).double().mean())

    assert agreement(trained) >= agreement(start)
    accuracy = fewlabels.accuracy(trained, features[unlabelled], labels[unlabelled])
    assert accuracy >= fewlabels.accuracy(start, features[unlabelled], labels[unlabelled]) - 0.01
    assert accuracy > 0.95
    same = fewlabels.consistency_train(*args, rounds=1, seed=3)
    again = fewlabels.consistency_train(*args, rounds=1, seed=3)
    torch.testing.assert_close(same.linear.weight, again.linear.weight, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"threshold": 1.0}, "threshold must lie in"),
        ({"strong": torch.zeros(394, 2)}, "strong"),
        ({"unlabelled_weight": -1.0}, "unlabelled_weight"),
        ({"rounds": -1}, "rounds"),
    ],
    ids=["threshold", "2-d views", "negative weight", "negative rounds"],
)
def test_consistency_training_checks_its_arguments(change: dict, message: str) -> None:
    features, labels = two_clusters()
    args = {
        "labelled": features[:6],
        "labels": labels[:6],
        "weak": features[6:],
        "strong": features[6:][None].repeat(2, 1, 1),
        "threshold": 0.8,
    }
    with pytest.raises((ValueError, TypeError), match=message):
        fewlabels.consistency_train(**{**args, **change})


def test_the_committed_encoder_loads_and_its_log_shows_the_loss_falling() -> None:
    import json

    from mmcourse.casestudy.pretrained import WEIGHTS
    from mmcourse.fewlabels import pretrained

    model = pretrained.load_simclr()
    assert not model.training
    assert model.features(torch.zeros(3, 1, 28, 28)).shape == (3, model.feature_dim)
    log = json.loads(pretrained.LOG.read_text())
    assert pretrained.LOG.parent == WEIGHTS  # where chapter 14 reads it
    assert pretrained.FILE.stat().st_size < 2**20
    assert log["epochs"] == pretrained.EPOCHS == len(log["losses"])
    assert log["losses"][-1] < log["losses"][0] < math.log(2 * 256 - 1)
    assert log["file"] == pretrained.FILE.name and log["digits"] == 10_000
