"""Portable numerics: the settings that make the fast profile's numbers the same on every x86-64 CPU.

Why this module exists. PyTorch's CPU libraries pick their kernels by the instructions the CPU
offers, and a different kernel adds floating-point numbers in a different order:

- ATen, torch's own kernels (element-wise maths, reductions, softmax, ``grid_sample``), has
  builds for SSE, AVX2 and AVX-512 and takes the best one the CPU has;
- oneDNN, which runs convolutions, generates code for the widest vector unit it finds;
- MKL, which runs matrix products (and torch.linalg), chooses by instruction set *and* by vendor
  (Intel or AMD).

A few epochs of training amplify those last-bit differences into different accuracies, so the
numbers stored in the notebooks would only come back on a CPU like the one that stored them.
:data:`SETTINGS` pins each library to one code path that every x86-64 CPU with AVX2 (Intel
since 2013, AMD since 2015) has, and MKL to the path it promises gives the same results on Intel
and AMD. Together with the thread count that :func:`mmcourse.config.setup` pins, the fast
profile's numbers are then identical on any such CPU (``scripts/check_portable_numerics.py``
demonstrates it). On other CPUs (Apple Silicon, ARM Linux) training cannot be bit-identical;
the test suite then compares training results within tolerances instead (see ``tests/``).

NumPy's OpenBLAS picks kernels by CPU too; the course does its floating-point maths in torch
(PCA included), so no stored number goes through it and it is left alone.

The settings are environment variables that each library reads once, when it starts, so they
must be in place before ``import torch``. ``course.py`` puts them in the
environment of everything it starts; ``import mmcourse`` also sets them, unless already set, when
torch is not yet imported -- so a notebook that imports the course before torch gets them however
its kernel was started. Set ``MMCOURSE_PORTABLE=0`` to leave the libraries' own choices alone
(faster on big CPUs, numbers differ in the last digits).

This module uses the standard library only: ``course.py`` imports it before any environment
exists.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, MutableMapping

SETTINGS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own kernels: the AVX2 build, never AVX-512
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # convolutions: AVX2 code at most
    "MKL_CBWR": "COMPATIBLE",  # matrix products: MKL's vendor-neutral reproducible path
}
"""Environment variable -> value; each pins one library's choice of kernels."""

SWITCH = "MMCOURSE_PORTABLE"
"""Set it to ``0`` to turn the settings off."""


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the portable settings are wanted (``MMCOURSE_PORTABLE`` is not ``0``/``false``/``no``)."""
    environ = os.environ if environ is None else environ
    return environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def apply(environ: MutableMapping[str, str], force: bool = False) -> dict[str, str]:
    """Put :data:`SETTINGS` into ``environ``; returns what was set.

    With ``force=False`` a variable that is already set is left alone (a learner's own choice
    wins); ``force=True`` overwrites, as the test command does, because stored outputs are only
    comparable under exactly these settings. Nothing is set when :func:`enabled` is false.
    """
    if not isinstance(force, bool):
        raise TypeError(f"force must be a bool, got {type(force).__name__}")
    if not enabled(environ):
        return {}
    changed = {}
    for name, value in SETTINGS.items():
        if force or name not in environ:
            if environ.get(name) != value:
                changed[name] = value
            environ[name] = value
    return changed


def apply_before_torch() -> bool:
    """Set the defaults in this process if torch has not started yet.

    Returns True when the settings are in force for this process's libraries, False when torch
    was imported first without them (it has read its environment already).
    """
    if "torch" not in sys.modules:
        apply(os.environ)
    return in_force()


def in_force(environ: Mapping[str, str] | None = None) -> bool:
    """Whether every setting of :data:`SETTINGS` has its portable value in ``environ``."""
    environ = os.environ if environ is None else environ
    return all(environ.get(name) == value for name, value in SETTINGS.items())


def is_x86_64(machine: str | None = None) -> bool:
    """Whether the processor is 64-bit x86 (``x86_64`` on Linux/macOS, ``AMD64`` on Windows)."""
    machine = platform.machine() if machine is None else machine
    return machine.lower() in ("x86_64", "amd64", "x64")


def has_avx2() -> bool:
    """Whether this CPU offers AVX2 and FMA (asked of torch, which reads the CPU's own flags)."""
    if not is_x86_64():
        return False
    import torch  # only needed here: this module must import without torch

    return bool(torch.cpu._is_avx2_supported())


def bit_identical_platform(
    machine: str | None = None, avx2: bool | None = None, system: str | None = None
) -> tuple[bool, str]:
    """Can this machine reproduce the stored numbers bit for bit? Returns ``(yes, why)``.

    Yes on Linux on x86-64 with AVX2 (any vendor, with or without AVX-512) under
    :data:`SETTINGS`: the platform the stored notebooks come from, whose torch wheels are built
    alike. Windows' torch is compiled by another compiler, which may order float operations
    differently, and macOS has no x86-64 torch builds of the recorded version: not promised.
    ``machine``, ``avx2`` and ``system`` default to this machine's; pass them to ask about another.
    """
    machine = platform.machine() if machine is None else machine
    system = platform.system() if system is None else system
    if not is_x86_64(machine):
        return False, f"the processor is {machine or 'unknown'}, not x86-64"
    if system != "Linux":
        return (
            False,
            f"the system is {system or 'unknown'}, not Linux (torch is built differently there)",
        )
    if avx2 is None:
        avx2 = has_avx2()
    if not avx2:
        return False, "this x86-64 processor has no AVX2"
    return True, "Linux on x86-64 with AVX2"
