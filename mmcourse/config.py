"""One place for the habits every notebook relies on: seeds, device, profile and threads.

A notebook starts with::

    from mmcourse import config
    settings = config.setup(seed=0)

The *profile* decides how big each experiment is:

- ``fast`` -- the default on a CPU: the bundled MNIST subset, few epochs, every notebook in
  at most three minutes on two cores, and the same numbers as the committed notebooks.
- ``full`` -- the default when a CUDA GPU is present: full MNIST, more data and epochs.

Choose it with ``setup(profile=...)`` or the environment variable ``MMCOURSE_PROFILE``.
"""

from __future__ import annotations

import os
import random
import warnings
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from mmcourse import portable
from mmcourse._validate import require

PROFILES = ("fast", "full")
FAST_THREADS = 2
"""Thread count pinned in the ``fast`` profile: float sums depend on it, so it is fixed."""

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """What :func:`setup` chose; notebooks pass ``settings.device`` to their models."""

    seed: int
    profile: str
    device: torch.device
    threads: int

    def __str__(self) -> str:
        return (
            f"profile={self.profile} device={self.device.type} "
            f"threads={self.threads} seed={self.seed}"
        )


_current: Settings | None = None


def _check_profile(profile: str) -> str:
    require(profile in PROFILES, f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


def default_profile() -> str:
    """The profile used when none is given: ``MMCOURSE_PROFILE``, else ``full`` on CUDA, else ``fast``."""
    env = os.environ.get("MMCOURSE_PROFILE", "").strip().lower()
    if env:
        if env not in PROFILES:
            raise ValueError(
                f"MMCOURSE_PROFILE must be one of {PROFILES}, got {env!r}; "
                "unset it or set it to 'fast' or 'full'"
            )
        return env
    return "full" if torch.cuda.is_available() else "fast"


def get_device(prefer: str | None = None) -> torch.device:
    """The best device available: CUDA, then Apple's MPS, then the CPU.

    ``prefer`` (or the environment variable ``MMCOURSE_DEVICE``) forces one, e.g. ``"cpu"``.
    """
    choice = prefer if prefer is not None else os.environ.get("MMCOURSE_DEVICE") or None
    if choice is not None:
        choice = choice.strip().lower()
        if choice not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'mps', got {choice!r}")
        if choice == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but torch sees no CUDA GPU")
        if choice == "mps" and not _mps_available():
            raise ValueError("device 'mps' was asked for, but this machine has no MPS backend")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators (all devices)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- learners call the legacy API too
    torch.manual_seed(seed)


def setup(
    seed: int = 0,
    profile: str | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> Settings:
    """Make a notebook reproducible and pick its size; returns the :class:`Settings`.

    Args:
        seed: seeds Python, NumPy and torch.
        profile: ``"fast"`` or ``"full"``; default from :func:`default_profile`.
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``; default: CPU in ``fast`` (so every learner
            gets the committed numbers), the best available device in ``full``.
        threads: torch's intra-op thread count; default 2 in ``fast``, all cores in ``full``.
    """
    global _current
    profile = _check_profile(profile) if profile is not None else default_profile()
    if device is None and "MMCOURSE_DEVICE" not in os.environ and profile == "fast":
        chosen = torch.device("cpu")
    else:
        chosen = get_device(device)
    if threads is None:
        threads = FAST_THREADS if profile == "fast" else (os.cpu_count() or 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    torch.set_num_threads(threads)
    seed_everything(seed)
    if chosen.type == "cpu" and portable.enabled() and not portable.in_force():
        warnings.warn(
            "torch started before mmcourse, so the portable numerics settings "
            "(mmcourse/portable.py) are not in force: numbers may differ from the stored ones "
            "in the last digits. Restart the kernel and import mmcourse before torch, or start "
            "the course with `python3 course.py lab`.",
            stacklevel=2,
        )
    if chosen.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    _current = Settings(seed=seed, profile=profile, device=chosen, threads=threads)
    return _current


def current() -> Settings:
    """The settings of the last :func:`setup` call (running ``setup()`` with defaults if none)."""
    return _current if _current is not None else setup()


def pick(fast: T, full: T, profile: str | None = None) -> T:
    """Return ``fast`` or ``full`` according to the profile (given, or the current one).

    >>> pick(fast=2, full=20, profile="fast")
    2
    """
    chosen = _check_profile(profile) if profile is not None else current().profile
    return fast if chosen == "fast" else full
