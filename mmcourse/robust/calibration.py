"""Does a model's confidence mean what it says? Reliability, calibration error, temperature
scaling, and the area under the ROC curve for telling two kinds of input apart.

- :func:`reliability_bins` -- predictions grouped by confidence: in each bin, the mean
  confidence beside the accuracy (a calibrated model has them equal);
- :func:`expected_calibration_error` -- ECE = sum over bins of (n_b / N) |acc_b - conf_b|
  (Naeini et al., 2015; Guo et al., 2017);
- :func:`fit_temperature` -- the one number T that divides the logits so that the validation
  negative log-likelihood is smallest (temperature scaling, Guo et al., 2017): the argmax, and
  so the accuracy, does not change;
- :func:`auroc` -- the probability that a random positive scores above a random negative
  (ties count one half): 0.5 is chance, 1.0 perfect separation;
- :func:`plot_reliability` -- the reliability diagram.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mmcourse._validate import (
    Dims,
    check_index_range,
    check_int,
    check_no_nan,
    check_tensor,
    require,
)

__all__ = [
    "Reliability",
    "auroc",
    "average_ranks",
    "expected_calibration_error",
    "fit_temperature",
    "plot_reliability",
    "reliability_bins",
]


@dataclass(frozen=True)
class Reliability:
    """Predictions grouped into ``n_bins`` equal-width confidence bins ``(k/n, (k+1)/n]``.

    ``confidence[k]`` and ``accuracy[k]`` are the bin's means (NaN where ``count[k]`` is 0)."""

    edges: torch.Tensor  # (n_bins + 1,)
    confidence: torch.Tensor  # (n_bins,)
    accuracy: torch.Tensor  # (n_bins,)
    count: torch.Tensor  # (n_bins,)

    @property
    def ece(self) -> float:
        """The expected calibration error: the bins' gaps weighted by their share of points."""
        used = self.count > 0
        gaps = (self.accuracy[used] - self.confidence[used]).abs()
        return float((gaps * self.count[used]).sum() / self.count.sum())


def _check_probabilities(probs: object, target: object) -> None:
    dims = Dims()
    dims.float(probs, "probs", "N K")
    dims.indices(target, "target", "N")
    check_no_nan(probs, "probs")  # type: ignore[arg-type]
    check_index_range(target, "target", dims["K"])  # type: ignore[arg-type]
    require(dims["N"] > 0, "probs holds no predictions")
    sums = probs.sum(dim=1)  # type: ignore[union-attr]
    require(
        bool((probs >= 0).all()) and torch.allclose(sums, torch.ones_like(sums), atol=1e-4),  # type: ignore[operator]
        "probs must be probabilities (rows >= 0 summing to 1): apply softmax to logits first",
    )


def reliability_bins(probs: torch.Tensor, target: torch.Tensor, n_bins: int = 15) -> Reliability:
    """Bin the top-class confidence of ``probs`` ``(N, K)`` against whether it is ``target``
    ``(N,)``.

    >>> probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> bins = reliability_bins(probs, torch.tensor([0, 1, 1, 0]), n_bins=2)
    >>> bins.count.tolist(), bins.accuracy.tolist()
    ([0, 4], [nan, 0.75])
    """
    _check_probabilities(probs, target)
    check_int(n_bins, "n_bins")
    confidence, predicted = probs.detach().double().max(dim=1)
    correct = (predicted == target).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    which = (torch.bucketize(confidence, edges, right=False) - 1).clamp(0, n_bins - 1)
    count = torch.bincount(which, minlength=n_bins)
    per_bin = count.clamp_min(1).double()
    mean_conf = torch.bincount(which, confidence, minlength=n_bins) / per_bin
    mean_acc = torch.bincount(which, correct, minlength=n_bins) / per_bin
    empty = count == 0
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    return Reliability(edges, mean_conf.where(~empty, nan), mean_acc.where(~empty, nan), count)


def expected_calibration_error(
    probs: torch.Tensor, target: torch.Tensor, n_bins: int = 15
) -> float:
    """ECE of ``probs`` ``(N, K)`` for ``target`` ``(N,)`` over ``n_bins`` equal-width bins."""
    return reliability_bins(probs, target, n_bins).ece


def fit_temperature(logits: torch.Tensor, target: torch.Tensor, max_steps: int = 200) -> float:
    """The temperature ``T > 0`` minimising the mean cross-entropy of ``logits / T`` on
    ``target`` (fit it on validation data, then divide every later logit by it).

    Newton's method on ``log T`` in float64: the loss is smooth in ``log T``, a few steps
    converge, and no learning rate is involved.
    """
    dims = Dims()
    z = dims.float(logits, "logits", "N K").detach().double()
    check_index_range(dims.indices(target, "target", "N"), "target", dims["K"])
    check_int(max_steps, "max_steps")
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    for _ in range(max_steps):
        loss = F.cross_entropy(z / log_t.exp(), target)
        (grad,) = torch.autograd.grad(loss, log_t, create_graph=True)
        (curvature,) = torch.autograd.grad(grad, log_t)
        step = (grad / curvature if curvature > 0 else grad.sign() * 0.5).detach()
        with torch.no_grad():
            log_t -= step.clamp(-1.0, 1.0)
        if abs(float(step)) < 1e-10:
            break
    return float(log_t.detach().exp())


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve for telling ``positive`` ``(N,)`` (bool) from the rest by
    ``scores`` ``(N,)`` (higher = more positive), computed as the Mann-Whitney statistic.

    >>> auroc(torch.tensor([0.9, 0.8, 0.3, 0.1]), torch.tensor([True, False, True, False]))
    0.75
    """
    dims = Dims()
    dims.float(scores, "scores", "N")
    require(
        isinstance(positive, torch.Tensor) and positive.dtype == torch.bool,
        "positive must be a bool tensor (N,): True for the class that should score higher",
        TypeError,
    )
    require(
        positive.shape == scores.shape,
        f"positive must have the shape of scores {tuple(scores.shape)}",
    )
    check_no_nan(scores, "scores")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    require(n_pos > 0 and n_neg > 0, "auroc needs at least one positive and one negative")
    ranks = average_ranks(scores.detach().double())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..N of the 1-D ``x``, tied values sharing the mean of their ranks (as
    ``scipy.stats.rankdata``), in float64.

    >>> average_ranks(torch.tensor([0.5, 0.1, 0.5])).tolist()
    [2.5, 1.0, 2.5]
    """
    check_tensor(x, "x", "(N,)")
    require(x.dim() == 1, f"x must be 1-D, got shape {tuple(x.shape)}")
    _, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # the highest rank of each distinct value
    return (last - (counts.double() - 1) / 2)[inverse]


def plot_reliability(bins: Reliability, ax: Axes | None = None, title: str = "") -> Figure:
    """Bars of accuracy per confidence bin against the diagonal a calibrated model would
    follow; the gap to it is shaded, and the ECE is in the title."""
    require(isinstance(bins, Reliability), "bins must come from reliability_bins", TypeError)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4), layout="constrained")
    else:
        fig = ax.figure
    left, width = bins.edges[:-1].numpy(), 1.0 / len(bins.count)
    used = (bins.count > 0).numpy()
    accuracy, confidence = bins.accuracy.numpy(), bins.confidence.numpy()
    ax.bar(left[used], accuracy[used], width=width, align="edge", color="C0", label="accuracy")
    ax.bar(
        left[used], (confidence - accuracy)[used], bottom=accuracy[used], width=width,
        align="edge", color="C3", alpha=0.3, label="gap to confidence",
    )  # fmt: skip
    ax.plot([0, 1], [0, 1], color="black", lw=1, ls="--", label="calibrated")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    ax.set_title(f"{title}{': ' if title else ''}ECE {bins.ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    return fig  # type: ignore[return-value]
