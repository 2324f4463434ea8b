"""mmcourse.robust against independent references: scipy's filters and ranks, scikit-learn's
AUROC, a hand-computed ECE, closed forms for attacks on a linear model and for integrated
gradients of one, and a one-dimensional optimiser for the temperature."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.ndimage
import scipy.optimize
import scipy.stats
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

from mmcourse import robust
from mmcourse.modes import freeze, train_mode


def grey_canvases(n: int = 4, value: int = 128) -> torch.Tensor:
    return torch.full((n, 28, 28), value, dtype=torch.uint8)


def strokes(n: int = 3) -> torch.Tensor:
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    for i in range(n):
        images[i, 6 + i : 22, 10 + i : 14 + i] = 255
        images[i, 12, 4:24] = 200
    return images


# ------------------------------------------------------------------ corruptions of images
@pytest.mark.parametrize("kind", robust.IMAGE_CORRUPTIONS)
def test_severity_zero_is_the_clean_image_and_a_seed_repeats(kind) -> None:
    images = strokes()
    assert torch.equal(robust.corrupt_images(images, kind, 0), images)
    once = robust.corrupt_images(images, kind, 3, seed=1)
    assert torch.equal(once, robust.corrupt_images(images, kind, 3, seed=1))
    assert once.dtype == torch.uint8 and once.shape == images.shape
    assert not torch.equal(once, images)


def test_noise_has_the_stated_standard_deviation() -> None:
    images = grey_canvases(50)  # mid-grey: the clipping at 0 and 255 never bites at sigma 0.2
    noisy = robust.corrupt_images(images, "noise", 2, seed=0)
    change = (noisy.double() - images.double()) / 255
    # rounding to whole grey levels adds a uniform error of variance (1/255)^2 / 12
    expected = (0.2**2 + (1 / 255) ** 2 / 12) ** 0.5
    assert change.std().item() == pytest.approx(expected, rel=0.02)
    assert abs(change.mean().item()) < 0.005


def test_blur_matches_scipys_gaussian_filter() -> None:
    images = strokes()
    blurred = robust.corrupt_images(images, "blur", 2)  # sigma 1.0: both use a radius of 3
    for image, ours in zip(images, blurred):
        reference = scipy.ndimage.gaussian_filter(
            image.double().numpy() / 255, sigma=1.0, mode="mirror", truncate=3.0
        )
        np.testing.assert_allclose(ours.double().numpy(), np.round(reference * 255), atol=1)


def test_contrast_keeps_the_mean_and_scales_the_spread() -> None:
    images = strokes()
    factor = robust.corruption_strength("contrast", 4)
    faded = robust.corrupt_images(images, "contrast", 4).double()
    clean = images.double()
    np.testing.assert_allclose(faded.mean(dim=(1, 2)), clean.mean(dim=(1, 2)), atol=0.5)
    np.testing.assert_allclose(faded.std(dim=(1, 2)), factor * clean.std(dim=(1, 2)), rtol=0.02)


def test_occlusion_erases_one_square_of_the_stated_side() -> None:
    white = torch.full((20, 64, 64), 255, dtype=torch.uint8)
    for severity in (1, 5):
        side = int(robust.corruption_strength("occlusion", severity))
        erased = robust.corrupt_images(white, "occlusion", severity, seed=3) == 0
        assert erased.sum(dim=(1, 2)).tolist() == [side * side] * 20
        rows, cols = erased.any(dim=2), erased.any(dim=1)
        assert rows.sum(dim=1).tolist() == cols.sum(dim=1).tolist() == [side] * 20
    assert len({tuple(e.nonzero()[0].tolist()) for e in erased}) > 5  # at random places


def test_image_corruption_errors() -> None:
    with pytest.raises(ValueError, match="images must be a uint8 tensor"):
        robust.corrupt_images(torch.zeros(2, 28, 28), "blur", 1)
    with pytest.raises(ValueError, match="kind must be one of"):
        robust.corrupt_images(strokes(), "fog", 1)
    with pytest.raises(ValueError, match="severity must be an int in 0..5, got 6"):
        robust.corrupt_images(strokes(), "blur", 6)
    with pytest.raises(ValueError, match="does not fit"):
        robust.corrupt_images(torch.zeros(1, 8, 8, dtype=torch.uint8), "occlusion", 1)


# ------------------------------------------------------------------ corruptions of texts
TEXTS = ["a small seven left of a thick two", "one"] * 200


def test_each_text_corruption_hits_about_the_stated_share_of_words() -> None:
    words = sum(len(t.split()) for t in TEXTS)
    unknown = robust.corrupt_texts(TEXTS, "unknown", 3, seed=0)
    share = sum(t.split().count(robust.UNSEEN_WORD) for t in unknown) / words
    assert share == pytest.approx(0.3, abs=0.03)
    kept = sum(len(t.split()) for t in robust.corrupt_texts(TEXTS, "dropped", 3, seed=0))
    assert 1 - kept / words == pytest.approx(0.3, abs=0.04)  # one-word texts keep their word


def test_typos_keep_the_letters_and_drops_never_empty_a_text() -> None:
    for clean, typed in zip(TEXTS, robust.corrupt_texts(TEXTS, "typos", 5, seed=2)):
        for a, b in zip(clean.split(), typed.split()):
            assert a == b or sorted(a) == sorted(b) or b == a + a[-1]  # 'll' swapped: 'lll'
    assert all(robust.corrupt_texts(["seven"] * 50, "dropped", 5, seed=0))
    assert robust.corrupt_texts(TEXTS, "typos", 0) == TEXTS


def test_text_corruption_errors() -> None:
    with pytest.raises(TypeError, match="texts must be a list of strings"):
        robust.corrupt_texts("a seven", "typos", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind must be one of"):
        robust.corrupt_texts(["a seven"], "blur", 1)


# ------------------------------------------------------------------ calibration
def test_ece_by_hand() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.75, 0.25], [0.3, 0.7], [0.55, 0.45], [0.58, 0.42]])
    target = torch.tensor([0, 1, 1, 1, 0])
    # 5 bins of width 0.2 (no confidence on an edge): 0.55 (wrong) and 0.58 (right) in
    # (0.4, 0.6]; 0.7 (right) and 0.75 (wrong) in (0.6, 0.8]; 0.9 (right) in (0.8, 1].
    # Accuracies 1/2, 1/2, 1; mean confidences 0.565, 0.725, 0.9.
    expected = (2 / 5) * abs(0.5 - 0.565) + (2 / 5) * abs(0.5 - 0.725) + (1 / 5) * abs(1 - 0.9)
    assert robust.expected_calibration_error(probs, target, n_bins=5) == pytest.approx(expected)
    bins = robust.reliability_bins(probs, target, n_bins=5)
    assert bins.count.tolist() == [0, 0, 2, 2, 1]


def test_fit_temperature_recovers_an_overconfident_models_temperature() -> None:
    generator = torch.Generator().manual_seed(0)
    true_logits = 2 * torch.randn(20_000, 10, generator=generator)
    labels = torch.multinomial(true_logits.softmax(dim=1), 1, generator=generator)[:, 0]
    fitted = robust.fit_temperature(3 * true_logits, labels)  # three times too confident
    assert fitted == pytest.approx(3.0, rel=0.03)
    z = (3 * true_logits).double()
    reference = scipy.optimize.minimize_scalar(
        lambda t: F.cross_entropy(z / t, labels).item(), bounds=(0.1, 10), method="bounded",
        options={"xatol": 1e-8},
    )  # fmt: skip
    assert fitted == pytest.approx(reference.x, rel=1e-4)
    probs_before, probs_after = (3 * true_logits).softmax(1), (3 * true_logits / fitted).softmax(1)
    ece = robust.expected_calibration_error
    assert ece(probs_after, labels) < 0.02 < ece(probs_before, labels)


def test_auroc_and_ranks_match_scikit_learn_and_scipy_with_ties() -> None:
    generator = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 20, (300,), generator=generator).double()  # many ties
    positive = torch.rand(300, generator=generator) < scores / 25
    assert robust.auroc(scores, positive) == pytest.approx(
        roc_auc_score(positive.numpy(), scores.numpy()), abs=1e-12
    )
    np.testing.assert_allclose(robust.average_ranks(scores), scipy.stats.rankdata(scores))


def test_calibration_errors() -> None:
    with pytest.raises(ValueError, match="apply softmax"):
        robust.expected_calibration_error(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target .* with N = 4 as in probs"):
        robust.reliability_bins(torch.full((4, 2), 0.5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        robust.auroc(torch.rand(5), torch.ones(5, dtype=torch.bool))
    with pytest.raises(TypeError, match="positive must be a bool tensor"):
        robust.auroc(torch.rand(5), torch.ones(5))


def test_plot_reliability_draws_the_bins_and_names_the_ece() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]])
    bins = robust.reliability_bins(probs, torch.tensor([0, 1, 1, 1]), n_bins=5)
    fig = robust.plot_reliability(bins, title="toy")
    assert fig.axes[0].get_title() == f"toy: ECE {bins.ece:.3f}"
    assert len(fig.axes[0].patches) == 2 * int((bins.count > 0).sum())
    plt.close(fig)


# ------------------------------------------------------------------ attacks
def linear_model() -> nn.Linear:
    model = nn.Linear(6, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 0.0, 3.0, -1.0], [0.0] * 6]))
        model.bias.zero_()
    return model


def test_fgsm_and_pgd_on_a_linear_model_reach_the_closed_form_corner() -> None:
    """For two classes, d loss / dx = p_other (w_other - w_true): its sign is sign(w_other -
    w_true) whatever the point, so the worst corner of the ball lowers the margin by
    epsilon * ||w_true - w_other||_1."""
    model, epsilon, unbounded = linear_model(), 0.1, (-1e9, 1e9)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    target = torch.zeros(8, dtype=torch.long)
    w = model.weight[0] - model.weight[1]
    corner = x - epsilon * w.sign()
    torch.testing.assert_close(robust.fgsm(model, x, target, epsilon, bounds=unbounded), corner)
    attacked = robust.pgd(model, x, target, epsilon, steps=10, bounds=unbounded)
    margin = lambda points: (model(points) @ torch.tensor([1.0, -1.0])).detach()
    torch.testing.assert_close(margin(attacked), margin(x) - epsilon * w.abs().sum())


def test_pgd_stays_in_the_ball_and_the_pixel_range() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    images = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 2, 0, 1])
    attacked = robust.pgd(model, images, target, 0.05, steps=7)
    assert (attacked - images).abs().max() <= 0.05 + 1e-6
    assert attacked.min() >= 0 and attacked.max() <= 1
    noised = robust.random_sign_noise(torch.full((2, 8), 0.5), 0.1, seed=0)
    assert torch.allclose((noised - 0.5).abs(), torch.tensor(0.1))


def test_attacks_are_stronger_than_the_noise_control_and_grow_with_epsilon() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 2, (400,), generator=generator)
    images = 0.5 + 0.1 * (2 * target[:, None] - 1) + 0.1 * torch.randn(400, 6, generator=generator)
    model = nn.Linear(6, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0] * 6, [1.0] * 6]))
        model.bias.copy_(torch.tensor([3.0, -3.0]))  # logit gap 2 * sum(x - 0.5)
    accuracy = lambda attack, eps: robust.attack_accuracy(model, images, target, eps, attack)
    assert accuracy("pgd", 0.0) == accuracy("noise", 0.0) > 0.9
    curve = [accuracy("pgd", eps) for eps in (0.05, 0.1, 0.2)]
    assert curve == sorted(curve, reverse=True) and curve[-1] < 0.05
    assert accuracy("noise", 0.2) > 0.8 > 0.05 > accuracy("fgsm", 0.2)


def test_an_attack_leaves_modes_and_batch_norm_statistics_alone() -> None:
    model = nn.Sequential(freeze(nn.BatchNorm1d(6)), nn.Linear(6, 2))
    train_mode(model)
    before = model[0].running_mean.clone()
    robust.pgd(model, torch.rand(4, 6), torch.zeros(4, dtype=torch.long), 0.1, steps=3)
    assert [m.training for m in model] == [False, True] and model.training
    assert torch.equal(model[0].running_mean, before)
    assert all(p.grad is None for p in model.parameters())


def test_attack_errors_name_the_arguments() -> None:
    model = linear_model()
    with pytest.raises(ValueError, match=r"target .* with B = 3 as in images"):
        robust.fgsm(model, torch.rand(3, 6), torch.zeros(2, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="epsilon must be a finite number >= 0"):
        robust.pgd(model, torch.rand(3, 6), torch.zeros(3, dtype=torch.long), -0.1)
    with pytest.raises(ValueError, match="attack must be one of"):
        robust.attack_accuracy(model, torch.rand(3, 6), torch.zeros(3, dtype=torch.long), 0.1, "cw")
    with pytest.raises(ValueError, match="images must be a non-empty float tensor"):
        robust.fgsm(
            model, torch.zeros(3, 6, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), 0.1
        )


def test_fast_adversarial_on_a_linear_model_follows_the_closed_form_step() -> None:
    """On the two-class linear model the loss gradient's sign is sign(w_other - w_true) at
    every point, so from the random start r the example is x + clip(r - 1.25 epsilon *
    sign(w_true - w_other), -epsilon, epsilon): the start drawn by hand from the same seed."""
    model, epsilon, unbounded = linear_model(), 0.1, (-1e9, 1e9)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    target = torch.zeros(8, dtype=torch.long)
    w = model.weight[0] - model.weight[1]
    start = (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1) * epsilon
    for factor in (1.25, 0.1):
        expected = x + (start - factor * epsilon * w.sign()).clamp(-epsilon, epsilon)
        got = robust.fast_adversarial(model, x, target, epsilon, torch.Generator().manual_seed(1),
                                      step_factor=factor, bounds=unbounded)  # fmt: skip
        torch.testing.assert_close(got, expected)
    corner = x - epsilon * w.sign()  # 1.25 epsilon from the start reaches it only sometimes
    reached = (got - corner).abs() < 1e-6
    assert reached.any() and not reached.all()


def test_fast_adversarial_keeps_the_mode_and_is_reproducible() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    images = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 2, 0, 1])
    one = robust.fast_adversarial(model, images, target, 0.2, torch.Generator().manual_seed(3))
    two = robust.fast_adversarial(model, images, target, 0.2, torch.Generator().manual_seed(3))
    assert torch.equal(one, two) and model.training
    assert (one - images).abs().max() <= 0.2 + 1e-6 and one.min() >= 0 and one.max() <= 1
    with pytest.raises(ValueError, match="generator must be a torch.Generator"):
        robust.fast_adversarial(model, images, target, 0.2, 3)  # type: ignore[arg-type]


def test_robust_accuracy_counts_an_image_only_if_every_restart_fails() -> None:
    """By hand: run PGD from each restart's seed and keep the images no restart fooled."""
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 2, (60,), generator=generator)
    images = 0.5 + 0.05 * (2 * target[:, None] - 1) + 0.05 * torch.randn(60, 6, generator=generator)
    model = nn.Linear(6, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0] * 6, [1.0] * 6]))
        model.bias.copy_(torch.tensor([3.0, -3.0]))
    epsilon, steps = 0.04, 3
    alive = torch.ones(60, dtype=torch.bool)
    for restart in range(3):
        for first in (0, 25, 50):  # batches of 25
            x, y = images[first : first + 25], target[first : first + 25]
            attacked = robust.pgd(model, x, y, epsilon, steps=steps, seed=restart * 60 + first)
            alive[first : first + 25] &= model(attacked).argmax(dim=1) == y
    got = robust.robust_accuracy(model, images, target, epsilon, steps, restarts=3, batch_size=25)
    assert got == int(alive.sum()) / 60
    one = robust.robust_accuracy(model, images, target, epsilon, steps, restarts=1, batch_size=25)
    assert one == robust.attack_accuracy(model, images, target, epsilon, steps=steps, batch_size=25)
    assert got <= one and 0 < got < 1
    assert robust.robust_accuracy(model, images, target, 0.0, steps) == robust.attack_accuracy(
        model, images, target, 0.0
    )
    with pytest.raises(ValueError, match="restarts"):
        robust.robust_accuracy(model, images, target, epsilon, restarts=0)


# ------------------------------------------------------------------ attributions
def test_integrated_gradients_of_a_linear_model_is_input_times_weight() -> None:
    model = linear_model()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 0, 1])
    attributions = robust.integrated_gradients(model, x, target, steps=3)
    torch.testing.assert_close(attributions, x * model.weight[target].detach())


def test_integrated_gradients_add_up_to_the_change_of_the_score() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    x, target = torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1])
    attributions = robust.integrated_gradients(model, x, target, steps=64)
    rows = torch.arange(5)
    change = (model(x)[rows, target] - model(torch.zeros_like(x))[rows, target]).detach()
    torch.testing.assert_close(attributions.sum(dim=1), change, atol=2e-3, rtol=1e-2)


def test_randomized_copy_changes_every_layer_and_leaves_the_rest_alone() -> None:
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    original = [p.clone() for p in model.parameters()]
    state = torch.random.get_rng_state()
    copy = robust.randomized_copy(model, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), original))
    assert all(not torch.equal(p, q) for p, q in zip(copy.parameters(), original))
    again = robust.randomized_copy(model, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(copy.parameters(), again.parameters()))
    with pytest.raises(ValueError, match="no layer with reset_parameters"):
        robust.randomized_copy(nn.ReLU())


def test_rank_correlation_is_spearmans_of_the_absolute_values() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 9, generator=generator), torch.randn(7, 9, generator=generator)
    b = a + 0.8 * b
    reference = scipy.stats.spearmanr(a.abs().flatten(), b.abs().flatten()).statistic
    assert robust.rank_correlation(a, b) == pytest.approx(reference, abs=1e-12)
    signed = scipy.stats.spearmanr(a.flatten(), b.flatten()).statistic
    assert robust.rank_correlation(a, b, absolute=False) == pytest.approx(signed, abs=1e-12)
    with pytest.raises(ValueError, match="a and b must have one shape"):
        robust.rank_correlation(a, b[:3])
