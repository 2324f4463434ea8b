"""The portable numerics settings: what they set, when, and that they remove the CPU's say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mmcourse import portable

ROOT = Path(__file__).resolve().parents[1]


def test_apply_sets_defaults_and_keeps_a_learners_choice() -> None:
    env = {"ATEN_CPU_CAPABILITY": "avx512"}
    changed = portable.apply(env)
    assert env["ATEN_CPU_CAPABILITY"] == "avx512"  # the learner's own setting wins
    assert env["MKL_CBWR"] == "COMPATIBLE" and env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert "ATEN_CPU_CAPABILITY" not in changed
    assert not portable.in_force(env)


def test_apply_force_overwrites() -> None:
    env = {"ATEN_CPU_CAPABILITY": "avx512"}
    portable.apply(env, force=True)
    assert portable.in_force(env)


def test_switch_turns_everything_off() -> None:
    env = {portable.SWITCH: "0"}
    assert portable.apply(env, force=True) == {}
    assert set(env) == {portable.SWITCH}
    assert portable.enabled({portable.SWITCH: "yes"}) and portable.enabled({})


def test_apply_checks_force() -> None:
    with pytest.raises(TypeError, match="force must be a bool"):
        portable.apply({}, force="yes")  # type: ignore[arg-type]


def test_import_applies_the_settings_before_torch() -> None:
    """A fresh interpreter that imports mmcourse first gets the settings, and torch obeys."""
    code = (
        "import os, mmcourse, torch;"
        "print(os.environ['MKL_CBWR'], torch.backends.cpu.get_cpu_capability())"
    )
    env = {"PATH": "", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "COMPATIBLE"
    if portable.bit_identical_platform()[0]:
        assert out[1] == "AVX2"


def test_setup_warns_when_torch_started_first() -> None:
    code = "import warnings, torch, mmcourse.config as c;warnings.simplefilter('error');c.setup()"
    env = {"PATH": "", "PYTHONPATH": str(ROOT), "MMCOURSE_PROFILE": "fast"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "torch started before mmcourse" in done.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    not portable.bit_identical_platform()[0], reason="needs an x86-64 CPU with AVX2"
)
def test_settings_remove_the_dependence_on_the_instruction_set() -> None:
    """Without the settings a short training run differs between simulated CPUs; with them it
    is identical (scripts/check_portable_numerics.py, fewer steps)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_portable_numerics.py"), "--steps", "8"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "with the settings:    1 result from 3 hosts" in done.stdout
