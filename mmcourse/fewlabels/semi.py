"""Semi-supervised learning by self-training with pseudo-labels (Lee, 2013; Scudder, 1965):
a model trained on the few labels labels the rest itself, keeps the guesses it is confident
of, and is trained again on both."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mmcourse._validate import Dims, check_int, require
from mmcourse.fewlabels.probe import LinearProbe, fit_linear_probe

__all__ = ["SelfTraining", "self_train"]


@dataclass
class SelfTraining:
    """What :func:`self_train` returns: the last probe, and per round how many unlabelled
    examples were taken with a pseudo-label and which labels they were given."""

    probe: LinearProbe
    taken: list[torch.Tensor] = field(default_factory=list)
    pseudo_labels: list[torch.Tensor] = field(default_factory=list)


@torch.no_grad()
def _predict(probe: LinearProbe, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    probabilities = probe(features).softmax(dim=1)
    confidence, guess = probabilities.max(dim=1)
    return confidence, guess


def self_train(
    labelled: torch.Tensor,
    labels: torch.Tensor,
    unlabelled: torch.Tensor,
    threshold: float,
    rounds: int = 3,
    weight_decay: float = 1e-3,
) -> SelfTraining:
    """Self-training of a linear probe (:func:`fit_linear_probe`) on features.

    Round 0 fits the probe on the ``labelled`` features ``(L, D)`` and their ``labels``. Each
    of the ``rounds`` that follow labels every ``unlabelled`` feature ``(U, D)`` with the
    current probe, keeps those whose top probability is at least ``threshold`` (choose it on
    validation data), and fits a new probe on the labelled and the kept examples together,
    each kept one weighted as much as a labelled one. Guesses are made afresh each round, so
    a wrong early guess can be corrected later."""
    dims = Dims()
    dims.float(labelled, "labelled", "L D")
    dims.indices(labels, "labels", "L")
    dims.float(unlabelled, "unlabelled", "U D")
    require(0 < threshold < 1, f"threshold must lie in (0, 1), got {threshold!r}")
    check_int(rounds, "rounds", minimum=0)
    probe = fit_linear_probe(labelled, labels, weight_decay)
    result = SelfTraining(probe)
    for _ in range(rounds):
        confidence, guess = _predict(probe, unlabelled)
        taken = (confidence >= threshold).nonzero().squeeze(1)
        features = torch.cat([labelled, unlabelled[taken]])
        targets = torch.cat([labels, guess[taken]])
        probe = fit_linear_probe(features, targets, weight_decay)
        result.taken.append(taken)
        result.pseudo_labels.append(guess[taken])
    result.probe = probe
    return result
