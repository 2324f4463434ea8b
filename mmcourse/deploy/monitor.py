"""A deployed model that notices trouble: confidence scores, and a monitor of live inputs.

- :func:`max_softmax_confidence` -- the largest class probability of each prediction (Hendrycks
  and Gimpel, 2017): low on inputs unlike the training data, often;
- :func:`mean_log_probability` -- a caption's length-normalised log-probability (the mean over
  its words), the confidence of a generated sentence;
- :func:`ks_statistic` -- the two-sample Kolmogorov-Smirnov statistic: the largest gap between
  two empirical distribution functions;
- :class:`DriftMonitor` -- compares each window of live scores with scores from the training
  distribution and raises an alert when the KS statistic passes a threshold, calibrated so that
  windows from the training distribution itself raise a chosen share of false alarms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmcourse._validate import Dims, check_float, check_int, check_no_nan, require

__all__ = ["DriftMonitor", "ks_statistic", "max_softmax_confidence", "mean_log_probability"]


def max_softmax_confidence(logits: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the largest softmax probability of each row of ``logits`` ``(N, K)``.

    >>> max_softmax_confidence(torch.tensor([[0.0, 0.0], [2.0, 0.0]])).round(decimals=3)
    tensor([0.5000, 0.8810])
    """
    check_no_nan(check_float(logits, "logits", ("N", "K")), "logits")
    return logits.detach().softmax(dim=1).amax(dim=1)


def mean_log_probability(token_log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the mean log-probability of each sentence's first ``lengths[i]`` tokens, from
    ``token_log_probs`` ``(N, T)`` (the log-probability the decoder gave each token it wrote;
    positions after a sentence's end are ignored).

    >>> mean_log_probability(torch.tensor([[-1.0, -3.0, -9.0]]), torch.tensor([2]))
    tensor([-2.])
    """
    dims = Dims()
    dims.float(token_log_probs, "token_log_probs", "N T")
    dims.indices(lengths, "lengths", "N")
    require(
        bool((lengths >= 1).all() and (lengths <= dims["T"]).all()),
        f"lengths must lie in 1..{dims['T']} (the columns of token_log_probs)",
    )
    steps = torch.arange(dims["T"])
    inside = steps[None] < lengths[:, None]
    total = (token_log_probs.detach() * inside).sum(dim=1)
    return total / lengths.to(total.dtype)


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """The two-sample Kolmogorov-Smirnov statistic of the 1-D samples ``a`` and ``b``: the
    largest vertical gap between their empirical distribution functions (0 = alike, 1 = no
    overlap), as ``scipy.stats.ks_2samp`` computes it.

    >>> ks_statistic(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0]))
    1.0
    """
    for name, x in (("a", a), ("b", b)):
        check_no_nan(check_float(x, name, ("N",)), name)
        require(len(x) > 0, f"{name} holds no values")
    both = torch.cat([a, b]).detach().double().sort().values
    cdf_a = torch.searchsorted(a.detach().double().sort().values, both, right=True).double() / len(
        a
    )
    cdf_b = torch.searchsorted(b.detach().double().sort().values, both, right=True).double() / len(
        b
    )
    return float((cdf_a - cdf_b).abs().max())


@dataclass
class Alert:
    """What :meth:`DriftMonitor.check` found for one window."""

    statistic: float
    threshold: float

    @property
    def raised(self) -> bool:
        return self.statistic > self.threshold


class DriftMonitor:
    """Watches a score of live inputs (a confidence, a pixel statistic, an embedding norm).

    ``reference`` holds the score on inputs from the training distribution (validation data),
    split at random in two halves: live windows are compared with the first, and the threshold
    is the ``1 - false_alarm_rate`` quantile of the KS statistic between the first half and
    ``draws`` windows of ``window`` scores drawn from the second. Those windows are independent
    of the half they are compared with, as live windows are, so a live window from the training
    distribution raises an alert with about that probability.
    """

    def __init__(
        self,
        reference: torch.Tensor,
        window: int = 100,
        false_alarm_rate: float = 0.01,
        draws: int = 500,
        seed: int = 0,
    ) -> None:
        check_no_nan(check_float(reference, "reference", ("N",)), "reference")
        self.window = check_int(window, "window", minimum=2)
        check_int(draws, "draws")
        require(
            0 < false_alarm_rate < 1,
            f"false_alarm_rate must lie in (0, 1), got {false_alarm_rate!r}",
        )
        require(
            len(reference) >= 2 * window,
            f"reference needs at least {2 * window} scores, got {len(reference)}",
        )
        generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
        shuffled = reference.detach().double()[torch.randperm(len(reference), generator=generator)]
        self.reference, pool = shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :]
        null = []
        for _ in range(draws):
            drawn = pool[torch.randperm(len(pool), generator=generator)[:window]]
            null.append(ks_statistic(self.reference, drawn))
        self.threshold = float(torch.quantile(torch.tensor(null), 1 - false_alarm_rate))

    def check(self, scores: torch.Tensor) -> Alert:
        """The KS statistic of one window of live ``scores`` against the reference, and
        whether it raises an alert."""
        check_float(scores, "scores", (self.window,))
        return Alert(ks_statistic(self.reference, scores.double()), self.threshold)
