"""deploy.monitor against scipy's two-sample KS statistic, a hand-computed mean log-probability,
and the false-alarm rate it promises, measured on fresh windows from the reference
distribution."""

from __future__ import annotations

import pytest
import scipy.stats
import torch

from mmcourse.deploy import monitor


def test_ks_statistic_matches_scipy_with_ties() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 15, (200,), generator=generator).double()
    b = torch.randint(3, 20, (70,), generator=generator).double()
    expected = scipy.stats.ks_2samp(a.numpy(), b.numpy()).statistic
    assert monitor.ks_statistic(a, b) == pytest.approx(expected, abs=1e-12)


def test_max_softmax_confidence_and_mean_log_probability() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    assert monitor.max_softmax_confidence(logits).item() == pytest.approx(
        torch.e**3 / (torch.e + torch.e**2 + torch.e**3)
    )
    log_probs = torch.tensor([[-0.5, -1.5, -4.0], [-2.0, -2.0, -2.0]])
    means = monitor.mean_log_probability(log_probs, torch.tensor([2, 3]))
    torch.testing.assert_close(means, torch.tensor([-1.0, -2.0]))
    with pytest.raises(ValueError, match=r"lengths must lie in 1..3"):
        monitor.mean_log_probability(log_probs, torch.tensor([0, 3]))


def test_the_monitor_keeps_its_false_alarm_rate_and_sees_a_shift() -> None:
    generator = torch.Generator().manual_seed(1)
    reference = torch.randn(4_000, generator=generator)
    watch = monitor.DriftMonitor(reference, window=100, false_alarm_rate=0.05, seed=0)
    calm = [watch.check(torch.randn(100, generator=generator)).raised for _ in range(400)]
    assert 0.02 <= sum(calm) / len(calm) <= 0.09  # 0.05 promised; 400 windows
    drift = [watch.check(torch.randn(100, generator=generator) + 0.5).raised for _ in range(100)]
    assert sum(drift) / len(drift) > 0.9


def test_monitor_errors() -> None:
    with pytest.raises(ValueError, match="reference needs at least 200 scores"):
        monitor.DriftMonitor(torch.randn(150), window=100)
    watch = monitor.DriftMonitor(torch.randn(400), window=50)
    with pytest.raises(ValueError, match=r"scores must be a float tensor of shape \(50,\)"):
        watch.check(torch.randn(40))
