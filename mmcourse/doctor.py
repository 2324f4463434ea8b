"""An environment self-check for learners: is everything the course needs here and working?"""

from __future__ import annotations

import importlib
import platform
from dataclasses import dataclass

import torch

from mmcourse import config, portable
from mmcourse.data import mnist

REQUIRED = (
    "torch", "torchvision", "matplotlib", "seaborn", "ipywidgets", "tqdm", "numpy", "sklearn",
    "sacrebleu",
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    item: str
    ok: bool
    detail: str


def package_versions(names: tuple[str, ...] = REQUIRED) -> list[Finding]:
    """One finding per package: importable, and which version."""
    found = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            found.append(Finding(name, False, f"cannot import: {error}"))
        else:
            found.append(Finding(name, True, getattr(module, "__version__", "unknown version")))
    return found


def data_findings() -> list[Finding]:
    """Is the bundled subset intact, and is full MNIST available (optional)?"""
    findings = []
    try:
        images, _ = mnist.load_subset("train")
        test_images, _ = mnist.load_subset("test")
        detail = f"{len(images):,} training and {len(test_images):,} test digits, checksums OK"
        findings.append(Finding("bundled MNIST subset", True, detail))
    except (FileNotFoundError, ValueError) as error:
        findings.append(Finding("bundled MNIST subset", False, str(error)))
    try:
        root = mnist.find_mnist_root()
        findings.append(Finding("full MNIST (optional)", True, f"found in {root}"))
    except (FileNotFoundError, ValueError) as error:
        hint = (
            "not found; the fast profile does not need it"
            if isinstance(error, FileNotFoundError)
            else str(error)
        )
        findings.append(Finding("full MNIST (optional)", True, hint))
    return findings


def compute_finding(device: torch.device) -> Finding:
    """A tiny matrix product on ``device``, checked against the CPU."""
    a = torch.arange(6.0).reshape(2, 3)
    expected = a @ a.T
    try:
        got = (a.to(device) @ a.to(device).T).cpu()
    except RuntimeError as error:  # a broken driver, for example
        return Finding(f"compute on {device.type}", False, str(error))
    ok = torch.allclose(got, expected)
    return Finding(f"compute on {device.type}", ok, "matrix product correct" if ok else "WRONG")


def numerics_finding() -> Finding:
    """Will this machine print the stored notebooks' numbers exactly? (Never a failure: where
    it cannot, the numbers differ in the last digits and everything else is the same.)"""
    platform_ok, why = portable.bit_identical_platform()
    if not platform_ok:
        return Finding("same numbers as stored", True, f"close, not identical: {why}")
    if not portable.in_force():
        return Finding(
            "same numbers as stored",
            True,
            "close, not identical: the portable settings are off (import mmcourse before torch)",
        )
    return Finding("same numbers as stored", True, f"yes: {why}, portable settings in force")


def check_environment() -> list[Finding]:
    """Everything: Python, packages, device, data."""
    settings = config.current()
    findings = [Finding("python", True, platform.python_version())]
    findings += package_versions()
    findings.append(Finding("settings", True, str(settings)))
    findings.append(Finding("best device here", True, str(config.get_device())))
    findings.append(compute_finding(settings.device))
    findings.append(numerics_finding())
    findings += data_findings()
    return findings


def report(findings: list[Finding]) -> str:
    """The findings as an aligned text table."""
    width = max(len(f.item) for f in findings)
    lines = [f"{'ok ' if f.ok else 'NO '} {f.item:<{width}}  {f.detail}" for f in findings]
    return "\n".join(lines)
