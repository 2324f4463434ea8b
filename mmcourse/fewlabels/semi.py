"""Semi-supervised learning on frozen features, two ways:

- :func:`self_train`: self-training with pseudo-labels (Scudder, 1965; Lee, 2013): a model
  trained on the few labels labels the rest itself, keeps the guesses it is confident of, and
  is trained again on both;
- :func:`consistency_train`: consistency regularisation with FixMatch's loss (Sohn et al.,
  2020): the model's confident guess on a digit as it is becomes the target for a strongly
  augmented view of the same digit, so its answers must not change when the digit is moved,
  turned or partly erased."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mmcourse._validate import Dims, check_int, check_nonnegative, require
from mmcourse.fewlabels.probe import LinearProbe, fit_linear_probe

__all__ = ["SelfTraining", "consistency_loss", "consistency_train", "self_train"]


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


def consistency_loss(
    probe: LinearProbe, weak: torch.Tensor, strong: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's unlabelled loss on features: ``(loss, used)``.

    The probe's guess on each ``weak`` feature ``(U, D)`` (no gradient flows through it) is
    the target for the matching ``strong`` feature ``(U, D)`` where its top probability
    reaches ``threshold``: ``loss = (1/U) * sum_u 1[max p(weak_u) >= threshold] *
    CE(probe(strong_u), argmax p(weak_u))`` -- divided by every unlabelled example, as FixMatch
    does, so that few confident guesses weigh little. ``used`` ``(U,)`` marks the guesses
    that counted."""
    with torch.no_grad():
        confidence, guess = probe(weak).softmax(dim=1).max(dim=1)
    used = confidence >= threshold
    losses = F.cross_entropy(probe(strong), guess, reduction="none")
    return (losses * used).sum() / len(weak), used


def consistency_train(
    labelled: torch.Tensor,
    labels: torch.Tensor,
    weak: torch.Tensor,
    strong: torch.Tensor,
    threshold: float,
    unlabelled_weight: float = 1.0,
    rounds: int = 3,
    seed: int = 0,
) -> LinearProbe:
    """A linear probe trained with FixMatch's consistency regularisation on frozen features.

    Round 0 fits the probe on the ``labelled`` features ``(L, D)`` alone
    (:func:`fit_linear_probe`, weight decay 1e-3). Each of the ``rounds`` that follow takes
    the current probe's guesses on ``weak`` ``(U, D)`` (the unlabelled examples as they are),
    draws for each example one of its ``V`` augmented views from ``strong`` ``(V, U, D)``
    (``seed``), and fits the probe again, to convergence with L-BFGS, on ``CE(labelled) +
    unlabelled_weight * consistency_loss`` with those guesses held fixed -- the loss of
    :func:`consistency_loss`, each confident view weighing ``unlabelled_weight / U`` against
    the labelled examples' ``1 / L`` (:func:`fit_linear_probe` scales the weights to sum to
    one, so a larger ``unlabelled_weight`` also weakens the data against the weight decay a
    little). Holding the targets for a round (FixMatch renews them every step) lets a convex
    fit replace a learning rate."""
    dims = Dims()
    dims.float(labelled, "labelled", "L D")
    dims.indices(labels, "labels", "L")
    dims.float(weak, "weak", "U D")
    dims.float(strong, "strong", "V U D")
    require(0 < threshold < 1, f"threshold must lie in (0, 1), got {threshold!r}")
    check_nonnegative(unlabelled_weight, "unlabelled_weight")
    check_int(rounds, "rounds", minimum=0)
    check_int(seed, "seed", minimum=0)
    probe = fit_linear_probe(labelled, labels)
    generator = torch.Generator().manual_seed(seed)
    examples = torch.arange(dims["U"])
    n_labelled, n_unlabelled = dims["L"], dims["U"]
    for _ in range(rounds):
        view = torch.randint(0, dims["V"], (n_unlabelled,), generator=generator)
        confidence, guess = _predict(probe, weak)
        used = (confidence >= threshold).nonzero().squeeze(1)
        features = torch.cat([labelled, strong[view, examples][used]])
        targets = torch.cat([labels, guess[used]])
        weights = torch.cat(
            [
                torch.full((n_labelled,), 1 / n_labelled),
                torch.full((len(used),), unlabelled_weight / n_unlabelled),
            ]
        )
        probe = fit_linear_probe(features, targets, sample_weight=weights)
    return probe
