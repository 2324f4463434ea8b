"""Active learning: choose which unlabelled examples a person labels next (Settles, 2009).

:func:`uncertainty` scores how unsure a model is of each example; :func:`next_queries` picks
the ``k`` to ask about, by that score or at random (the control every active-learning claim
needs)."""

from __future__ import annotations

import torch

from mmcourse._validate import check_choice, check_float, check_int, check_no_nan, require

__all__ = ["STRATEGIES", "next_queries", "uncertainty"]

STRATEGIES = ("margin", "entropy", "least_confident", "random")
"""The ways :func:`next_queries` picks examples."""


def uncertainty(probabilities: torch.Tensor, kind: str = "margin") -> torch.Tensor:
    """``(N,)`` how unsure a model is of each row of ``probabilities`` ``(N, K)`` (higher =
    less sure): ``"margin"``, one minus the gap between the two most likely classes;
    ``"entropy"``, the entropy in nats; ``"least_confident"``, one minus the top
    probability."""
    check_no_nan(check_float(probabilities, "probabilities", ("N", "K")), "probabilities")
    check_choice(kind, "kind", STRATEGIES[:3])
    require(probabilities.shape[1] >= 2, "uncertainty needs at least two classes")
    if kind == "margin":
        top = probabilities.topk(2, dim=1).values
        return 1 - (top[:, 0] - top[:, 1])
    if kind == "entropy":
        p = probabilities.clamp_min(1e-12)
        return -(probabilities * p.log()).sum(dim=1)
    return 1 - probabilities.amax(dim=1)


def next_queries(
    probabilities: torch.Tensor,
    candidates: torch.Tensor,
    k: int,
    strategy: str = "margin",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The ``k`` of ``candidates`` (indices of unlabelled examples, ``(C,)``) to label next:
    the ``k`` the model is least sure of by ``strategy`` (ties broken by the lower index),
    or ``k`` drawn at random with ``generator`` for ``"random"``. ``probabilities`` ``(C, K)``
    is the model's prediction for each candidate."""
    check_choice(strategy, "strategy", STRATEGIES)
    check_int(k, "k")
    require(
        isinstance(candidates, torch.Tensor) and candidates.dim() == 1,
        "candidates must be a 1-D tensor of indices",
    )
    require(k <= len(candidates), f"cannot pick k={k} of {len(candidates)} candidates")
    if strategy == "random":
        require(generator is not None, "random queries need a seeded generator")
        return candidates[torch.randperm(len(candidates), generator=generator)[:k]]
    check_float(probabilities, "probabilities", (len(candidates), "K"))
    scores = uncertainty(probabilities, strategy).double()
    order = torch.argsort(-scores, stable=True)
    return candidates[order[:k]]
