"""mmcourse.config: profile, device, seeds, threads."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mmcourse import config


def test_setup_fast_pins_cpu_and_two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMCOURSE_DEVICE", raising=False)
    before = torch.get_num_threads()
    try:
        settings = config.setup(seed=3, profile="fast")
        assert settings.profile == "fast"
        assert settings.device == torch.device("cpu")
        assert settings.threads == config.FAST_THREADS == torch.get_num_threads()
        assert str(settings) == "profile=fast device=cpu threads=2 seed=3"
        assert config.current() is settings
    finally:
        torch.set_num_threads(before)


def test_setup_seeds_python_numpy_and_torch() -> None:
    config.setup(seed=7, profile="fast")
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    config.setup(seed=7, profile="fast")
    second = (random.random(), np.random.rand(), torch.rand(1).item())
    assert first == second
    config.setup(seed=8, profile="fast")
    assert torch.rand(1).item() != first[2]


def test_profile_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMCOURSE_PROFILE", "full")
    assert config.default_profile() == "full"
    monkeypatch.setenv("MMCOURSE_PROFILE", "FAST")
    assert config.default_profile() == "fast"
    monkeypatch.setenv("MMCOURSE_PROFILE", "turbo")
    with pytest.raises(ValueError, match="MMCOURSE_PROFILE must be one of"):
        config.default_profile()


def test_default_profile_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMCOURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.default_profile() == "fast"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.default_profile() == "full"


def test_pick_follows_profile() -> None:
    assert config.pick(fast=1, full=2, profile="fast") == 1
    assert config.pick(fast=1, full=2, profile="full") == 2
    config.setup(seed=0, profile="fast")
    assert config.pick(fast="a", full="b") == "a"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "medium"}, "profile must be one of"),
        ({"threads": 0}, "threads must be a positive int"),
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"device": "tpu"}, "device must be 'cpu', 'cuda' or 'mps'"),
    ],
)
def test_setup_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config.setup(**kwargs)


def test_get_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMCOURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(config, "_mps_available", lambda: False)
    assert config.get_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
        config.get_device("cuda")
    with pytest.raises(ValueError, match="no MPS backend"):
        config.get_device("mps")
    monkeypatch.setenv("MMCOURSE_DEVICE", "cpu")
    assert config.get_device() == torch.device("cpu")
    monkeypatch.setattr(config, "_mps_available", lambda: True)
    monkeypatch.delenv("MMCOURSE_DEVICE")
    assert config.get_device() == torch.device("mps")
