"""How sure a search is that its best canvas matches the query -- and when no canvas does.

A search service always returns *some* canvas, even when the gallery holds nothing like the
query. Its raw score, the cosine similarity of query and canvas in the dual encoder's space,
says more or less, but it is not a probability: a cosine of 0.6 means nothing by itself.

- :class:`PlattScaling` turns a score into one: ``P(match) = sigmoid(a * score + b)``, with
  ``a`` and ``b`` fitted on validation queries whose answer is known (Platt, 1999). Fitting
  maximises the likelihood of the observed matches, by Newton's method in float64: two
  parameters, a convex loss, a handful of steps and no learning rate.
- :func:`binary_reliability` puts those probabilities in the form that
  :mod:`mmcourse.robust.calibration`'s reliability diagram and ECE read.
"""

from __future__ import annotations

import torch

from mmcourse._validate import check_float, check_int, check_no_nan, require

__all__ = ["PlattScaling", "binary_reliability"]


def _check_scores_and_outcomes(
    scores: object, matched: object
) -> tuple[torch.Tensor, torch.Tensor]:
    check_no_nan(check_float(scores, "scores", ("N",)), "scores")  # type: ignore[arg-type]
    require(
        isinstance(matched, torch.Tensor) and matched.dtype == torch.bool,
        "matched must be a bool tensor: True where the query's answer was right",
    )
    require(
        matched.shape == scores.shape,  # type: ignore[union-attr]
        f"matched must hold one outcome per score: {tuple(scores.shape)}, "  # type: ignore[union-attr]
        f"got {tuple(matched.shape)}",  # type: ignore[union-attr]
    )
    return scores.detach().double(), matched.double()  # type: ignore[union-attr]


class PlattScaling:
    """``P(match) = sigmoid(a * score + b)``, fitted on scores whose outcome is known.

    >>> scores = torch.linspace(0, 1, 20)
    >>> matched = scores > 0.5
    >>> matched[8], matched[11] = True, False  # one surprise on each side
    >>> platt = PlattScaling.fit(scores, matched)
    >>> platt
    PlattScaling(a=14.13, b=-7.063)
    >>> platt.probability(torch.tensor([0.5, 0.9])).round(decimals=3).tolist()
    [0.5, 0.996]

    Args (of :meth:`fit`):
        scores: ``(N,)`` a score per validation query, higher = more likely a match.
        matched: ``(N,)`` bool, whether that query's answer was right.
        max_steps: Newton steps at most (it stops when a step moves less than 1e-10).
    """

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = float(a), float(b)

    def __repr__(self) -> str:
        return f"PlattScaling(a={self.a:.4g}, b={self.b:.4g})"

    @classmethod
    def fit(cls, scores: torch.Tensor, matched: torch.Tensor, max_steps: int = 100) -> PlattScaling:
        x, y = _check_scores_and_outcomes(scores, matched)
        check_int(max_steps, "max_steps")
        require(len(x) >= 20, "fitting on fewer than 20 validation queries is noise")
        require(
            0 < int(y.sum()) < len(y),
            "matched must hold both outcomes (some right answers and some wrong ones)",
        )
        design = torch.stack([x, torch.ones_like(x)], dim=1)  # (N, 2): score, 1
        weights = torch.zeros(2, dtype=torch.float64)  # a, b
        for _ in range(max_steps):
            p = torch.sigmoid(design @ weights)
            gradient = design.T @ (p - y) / len(y)  # of the mean binary cross-entropy
            hessian = (design.T * (p * (1 - p))) @ design / len(y)
            hessian += 1e-9 * torch.eye(2, dtype=torch.float64)  # keeps it invertible
            step = torch.linalg.solve(hessian, gradient)
            weights -= step.clamp(-10.0, 10.0)
            if float(step.abs().max()) < 1e-10:
                break
        return cls(float(weights[0]), float(weights[1]))

    def probability(self, scores: torch.Tensor) -> torch.Tensor:
        """``(N,)`` the calibrated probability that each score's answer is right."""
        check_no_nan(check_float(scores, "scores", ("N",)), "scores")
        return torch.sigmoid(self.a * scores.detach().double() + self.b)


def binary_reliability(
    probability: torch.Tensor, matched: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(probs (N, 2), target (N,))``: ``[1 - p, p]`` and 1 where matched, the form that
    :func:`mmcourse.robust.calibration.reliability_bins` and ``expected_calibration_error``
    take (they bin the more likely outcome's probability against how often it happened)."""
    p, y = _check_scores_and_outcomes(probability, matched)
    require(bool(((p >= 0) & (p <= 1)).all()), "probability must lie in [0, 1]")
    return torch.stack([1 - p, p], dim=1), y.long()
