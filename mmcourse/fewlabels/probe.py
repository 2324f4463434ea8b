"""Using few labels: which ones (:func:`labelled_subset`), and three ways to learn from them --
a linear probe on frozen features (:func:`fit_linear_probe`), fine-tuning a pretrained
network, or training one from scratch (both :func:`train_classifier`, at the same budget)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import (
    Dims,
    check_float,
    check_indices,
    check_int,
    check_module,
    check_nonnegative,
    require,
)

__all__ = [
    "LinearProbe",
    "accuracy",
    "extract_features",
    "fit_linear_probe",
    "labelled_subset",
    "train_classifier",
]


def labelled_subset(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Sorted indices of a stratified random ``fraction`` of ``labels`` ``(N,)``: from each
    class, ``round(fraction * its count)`` examples (at least one), so that 1 % of a balanced
    set of 10,000 digits is 10 of each."""
    check_indices(labels, "labels", ("N",))
    require(0 < fraction <= 1, f"fraction must lie in (0, 1], got {fraction!r}")
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    chosen = []
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().squeeze(1)
        take = max(1, round(fraction * len(members)))
        chosen.append(members[torch.randperm(len(members), generator=generator)[:take]])
    return torch.cat(chosen).sort().values


@torch.no_grad()
def extract_features(
    encode: Callable[[torch.Tensor], torch.Tensor] | nn.Module,
    images: torch.Tensor,
    batch_size: int = 1000,
) -> torch.Tensor:
    """``encode`` applied to ``images`` in batches, gradients off (a module is run in eval
    mode and put back in its mode afterwards): ``(N, D)`` features."""
    require(callable(encode), "encode must be a function or module from images to features")
    check_int(batch_size, "batch_size")
    module = encode if isinstance(encode, nn.Module) else getattr(encode, "__self__", None)
    was_training = isinstance(module, nn.Module) and module.training
    if isinstance(module, nn.Module):
        module.eval()
    try:
        parts = [encode(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    finally:
        if was_training:
            module.train()
    features = torch.cat(parts)
    require(features.dim() == 2, f"encode must return (B, D) features, got {tuple(features.shape)}")
    return features


MAX_ITERATIONS = 150
"""L-BFGS iterations of :func:`fit_linear_probe` (float32): enough to agree with scikit-learn
to about 1e-3 in every probability on the tests' problems, and a few seconds on 9,000 digits."""


class LinearProbe(nn.Module):
    """Logistic regression on standardised features: ``linear((x - mean) / std)``."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(len(mean), num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.std)


def fit_linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    weight_decay: float = 1e-3,
    num_classes: int = 10,
    sample_weight: torch.Tensor | None = None,
) -> LinearProbe:
    """Multinomial logistic regression on frozen ``features`` ``(N, D)``: minimises the
    (weighted) mean cross-entropy plus ``weight_decay * ||W||^2`` (the bias is not
    penalised) with L-BFGS, full batch, for up to :data:`MAX_ITERATIONS` iterations. Features are standardised with their
    own mean and standard deviation first. The same model as scikit-learn's
    ``LogisticRegression(C=1 / (2 * N * weight_decay))``."""
    dims = Dims()
    dims.float(features, "features", "N D")
    dims.indices(labels, "labels", "N")
    check_nonnegative(weight_decay, "weight_decay")
    check_int(num_classes, "num_classes", minimum=2)
    require(int(labels.max()) < num_classes, f"labels must lie in 0..{num_classes - 1}")
    if sample_weight is None:
        sample_weight = torch.ones(dims["N"])
    check_float(sample_weight, "sample_weight", (dims["N"],))
    x = features.detach().float()
    probe = LinearProbe(x.mean(0), x.std(0).clamp_min(1e-6), num_classes)
    nn.init.zeros_(probe.linear.weight)
    nn.init.zeros_(probe.linear.bias)
    weights = sample_weight.float() / sample_weight.float().sum()
    optimizer = torch.optim.LBFGS(
        probe.linear.parameters(), lr=1, max_iter=MAX_ITERATIONS, tolerance_grad=1e-7,
        tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip

    standardised = (x - probe.mean) / probe.std  # once, not at every step (the same numbers)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        losses = F.cross_entropy(probe.linear(standardised), labels, reduction="none")
        loss = (losses * weights).sum() + weight_decay * probe.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe.eval()


@torch.no_grad()
def accuracy(
    model: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, labels: torch.Tensor
) -> float:
    """The share of ``inputs`` whose arg-max logit is the label (in batches of 1000)."""
    dims = Dims()
    dims.indices(labels, "labels", "N")
    require(len(inputs) == dims["N"], "inputs and labels must hold the same number of examples")
    predictions = torch.cat(
        [model(inputs[i : i + 1000]).argmax(dim=1) for i in range(0, len(inputs), 1000)]
    )
    return float((predictions == labels).double().mean())


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> nn.Module:
    """A copy of ``model`` trained with Adam on ``(images, labels)`` for exactly ``steps``
    mini-batches (drawn at random, with replacement across steps), whatever the number of
    labels: the same budget for every label count and every starting point, pretrained or
    from scratch. Returned in eval mode."""
    check_module(model, "model")
    dims = Dims()
    dims.indices(labels, "labels", "N")
    require(len(images) == dims["N"], "images and labels must hold the same number of examples")
    check_int(steps, "steps")
    check_int(batch_size, "batch_size")
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    trained = copy.deepcopy(model).train()
    optimizer = torch.optim.Adam(trained.parameters(), lr=lr)
    take = min(batch_size, dims["N"])
    for _ in range(steps):
        index = torch.randperm(dims["N"], generator=generator)[:take]
        loss = F.cross_entropy(trained(images[index]), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return trained.eval()
