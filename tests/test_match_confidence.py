"""A search's confidence: Platt scaling against scikit-learn, its reliability against a hand
count, and the search service's batched scores against its one-query scores."""

from __future__ import annotations

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from test_deploy import VOCAB, canvases, tiny_dual

from mmcourse import deploy, robust

pytestmark = pytest.mark.usefixtures("one_thread")


def synthetic(n: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and outcomes drawn from a known logistic law, P(match) = sigmoid(8 s - 3)."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, generator=generator, dtype=torch.float64).float()
    p = torch.sigmoid(8 * scores.double() - 3)
    return scores, torch.rand(n, generator=generator, dtype=torch.float64) < p


def test_platt_scaling_equals_scikit_learns_unpenalised_logistic_regression() -> None:
    scores, matched = synthetic()
    platt = deploy.PlattScaling.fit(scores, matched)
    reference = LogisticRegression(C=float("inf"), tol=1e-12, max_iter=10_000)
    reference.fit(scores.double().numpy()[:, None], matched.numpy())
    assert platt.a == pytest.approx(float(reference.coef_[0, 0]), rel=1e-5)
    assert platt.b == pytest.approx(float(reference.intercept_[0]), rel=1e-5, abs=1e-6)
    probs = platt.probability(scores).numpy()
    assert probs == pytest.approx(reference.predict_proba(scores.double().numpy()[:, None])[:, 1])


def test_platt_scaling_recovers_the_law_the_outcomes_were_drawn_from() -> None:
    platt = deploy.PlattScaling.fit(*synthetic(n=20_000))
    assert platt.a == pytest.approx(8, abs=0.4) and platt.b == pytest.approx(-3, abs=0.2)


def test_calibrated_probabilities_have_a_small_ece_and_raw_scores_do_not() -> None:
    scores, matched = synthetic(n=4000, seed=1)
    platt = deploy.PlattScaling.fit(*synthetic(n=4000, seed=2))  # fitted on other draws
    calibrated = robust.expected_calibration_error(
        *deploy.binary_reliability(platt.probability(scores), matched)
    )
    raw = robust.expected_calibration_error(*deploy.binary_reliability(scores, matched))
    assert calibrated < 0.03 and raw > 3 * calibrated  # measured: .016 and .061


def test_binary_reliability_ece_by_hand() -> None:
    """Four queries with P(match) .9, .8, .3, .6, of which the first and the last matched."""
    p = torch.tensor([0.9, 0.8, 0.3, 0.6])
    matched = torch.tensor([True, False, False, True])
    probs, target = deploy.binary_reliability(p, matched)
    expected_probs = torch.tensor(
        [[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]], dtype=torch.float64
    )
    torch.testing.assert_close(probs, expected_probs, atol=1e-7, rtol=0)
    assert target.tolist() == [1, 0, 0, 1]
    # The more likely outcome and whether it happened: .9 yes, .8 no, .7 (no match) yes, .6 yes.
    # Two bins: all four in [.5, 1], mean confidence .75, share right .75 -> ECE 0.
    assert robust.expected_calibration_error(probs, target, n_bins=2) == pytest.approx(0.0)
    # Four bins: [.75, 1] holds .9, .8 (confidence .85, right .5); [.5, .75] holds .7, .6
    # (confidence .65, right 1): ECE = (2 * .35 + 2 * .35) / 4.
    assert robust.expected_calibration_error(probs, target, n_bins=4) == pytest.approx(0.35)


@pytest.mark.parametrize(
    ("scores", "matched", "message"),
    [
        (torch.rand(30), torch.ones(30), "matched must be a bool tensor"),
        (torch.rand(30), torch.ones(29, dtype=torch.bool), "one outcome per score"),
        (torch.rand(30), torch.ones(30, dtype=torch.bool), "both outcomes"),
        (torch.rand(10), torch.arange(10) % 2 == 0, "fewer than 20"),
        (torch.full((30,), float("nan")), torch.arange(30) % 2 == 0, "NaN"),
        (torch.rand(30, 2), torch.ones(30, 2, dtype=torch.bool), "scores must"),
    ],
    ids=["float outcomes", "lengths", "one outcome", "too few", "nan", "2-d"],
)
def test_platt_scaling_rejects_bad_input(scores, matched, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        deploy.PlattScaling.fit(scores, matched)


def test_binary_reliability_rejects_what_is_not_a_probability() -> None:
    with pytest.raises(ValueError, match=r"probability must lie in \[0, 1\]"):
        deploy.binary_reliability(torch.tensor([0.5, 1.5]), torch.tensor([True, False]))


# ------------------------------------------------------------------- the search service
@pytest.fixture(scope="module")
def search_service() -> deploy.SearchService:
    return deploy.SearchService(tiny_dual(), VOCAB, canvases(10), batch_size=4)


def test_batched_scores_equal_one_query_at_a_time(search_service) -> None:
    queries = ["a small seven on the left", "two", "a large two and a small seven"]
    batch = search_service.scores_batch(queries)  # padded to the longest query
    assert batch.shape == (3, 10)
    for row, query in zip(batch, queries):
        torch.testing.assert_close(row, search_service.scores(query), atol=1e-6, rtol=1e-5)
    index, cosine = search_service.best_matches(queries)
    assert index.tolist() == [search_service.search(q, k=1)[0] for q in queries]
    torch.testing.assert_close(cosine, batch.max(dim=1).values)


def test_batched_scores_check_every_query(search_service) -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        search_service.scores_batch([])
    with pytest.raises(ValueError, match="never saw"):
        search_service.scores_batch(["a small seven", "a purple seven"])
