"""The notebook comparison modes: platform detection, mode choice, tolerant number comparison."""

from __future__ import annotations

from pathlib import Path

import notebook_modes
import pytest

from mmcourse import portable

PORTABLE_ENV = dict(portable.SETTINGS)


@pytest.mark.parametrize(
    ("machine", "avx2", "system", "expected", "reason"),
    [
        ("x86_64", True, "Linux", True, "Linux on x86-64 with AVX2"),
        ("x86_64", False, "Linux", False, "no AVX2"),
        ("AMD64", True, "Windows", False, "not Linux"),  # Windows' name for x86-64
        ("arm64", None, "Darwin", False, "arm64, not x86-64"),  # Apple Silicon
        ("aarch64", None, "Linux", False, "aarch64, not x86-64"),  # ARM Linux
        ("", None, "Linux", False, "unknown, not x86-64"),
    ],
)
def test_bit_identical_platform(
    machine: str, avx2: bool | None, system: str, expected: bool, reason: str
) -> None:
    ok, why = portable.bit_identical_platform(machine, avx2, system)
    assert ok is expected
    assert reason in why


def test_this_machine_is_answered_without_arguments() -> None:
    ok, why = portable.bit_identical_platform()
    assert isinstance(ok, bool) and why


def test_strict_needs_platform_settings_and_versions() -> None:
    mode, why = notebook_modes.choose_mode(PORTABLE_ENV, (True, "Linux on x86-64 with AVX2"), [])
    assert mode == "strict" and "AVX2" in why


def test_tolerant_on_arm_says_why() -> None:
    mode, why = notebook_modes.choose_mode(
        PORTABLE_ENV, (False, "the processor is arm64, not x86-64"), []
    )
    assert mode == "tolerant"
    assert "arm64" in why and "bit for bit" in why


def test_tolerant_without_the_portable_settings() -> None:
    mode, why = notebook_modes.choose_mode({}, (True, "Linux on x86-64 with AVX2"), [])
    assert mode == "tolerant" and "portable" in why


def test_tolerant_when_versions_differ_names_them() -> None:
    differences = [f"pkg{i} installed 2, recorded 1" for i in range(6)]
    mode, why = notebook_modes.choose_mode(
        PORTABLE_ENV, (True, "Linux on x86-64 with AVX2"), differences
    )
    assert mode == "tolerant"
    assert "pkg0 installed 2, recorded 1" in why and why.endswith("...")


def test_tolerant_when_the_arithmetic_differs_and_asked_only_when_it_matters() -> None:
    asked = []

    def other_cpu() -> tuple[bool, str]:
        asked.append(True)
        return False, "this machine's arithmetic fingerprint 1234 differs from the stored one"

    mode, why = notebook_modes.choose_mode(
        PORTABLE_ENV, (True, "Linux on x86-64 with AVX2"), [], other_cpu
    )
    assert mode == "tolerant" and "fingerprint 1234 differs" in why
    # a machine already tolerant for another reason is not probed (it costs a training run)
    notebook_modes.choose_mode(PORTABLE_ENV, (False, "arm64"), [], other_cpu)
    notebook_modes.choose_mode({notebook_modes.MODE_VARIABLE: "strict"}, (True, ""), [], other_cpu)
    assert len(asked) == 1
    mode, why = notebook_modes.choose_mode(
        PORTABLE_ENV, (True, "Linux on x86-64 with AVX2"), [], lambda: (True, "equal (abcd)")
    )
    assert mode == "strict" and why.endswith("; equal (abcd)")


def test_a_forced_mode_wins_and_a_wrong_one_is_refused() -> None:
    env = {notebook_modes.MODE_VARIABLE: "tolerant", **PORTABLE_ENV}
    assert notebook_modes.choose_mode(env, (True, ""), [])[0] == "tolerant"
    env = {notebook_modes.MODE_VARIABLE: "strict"}
    assert notebook_modes.choose_mode(env, (False, "arm64"), [])[0] == "strict"
    with pytest.raises(ValueError, match="MMCOURSE_NOTEBOOK_MODE must be one of"):
        notebook_modes.choose_mode({notebook_modes.MODE_VARIABLE: "loose"}, (True, ""), [])


def test_version_differences_reads_pins(tmp_path: Path) -> None:
    import torch

    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        "# a comment\n"
        f"torch=={torch.__version__.split('+')[0]}\n"
        "pytest==0.0.1  # pinned wrongly on purpose\n"
        "surely-not-installed-package==1.0\n"
    )
    found = notebook_modes.version_differences(constraints)
    assert len(found) == 1 and found[0].startswith("pytest installed ")
    assert found[0].endswith("recorded 0.0.1")
    with pytest.raises(FileNotFoundError, match="no constraints file"):
        notebook_modes.version_differences(tmp_path / "missing.txt")


def test_recorded_versions_are_installed_here() -> None:
    """The set-up installs constraints.txt: a difference here means the set-up is stale."""
    root = Path(__file__).resolve().parents[1]
    differences = notebook_modes.version_differences(root / "constraints.txt")
    if differences:
        pytest.skip("installed versions differ from constraints.txt: " + "; ".join(differences))


def test_skeleton_hides_numbers_and_column_widths() -> None:
    assert notebook_modes.skeleton("acc 0.3875  loss 1.2e-3") == "acc # loss #"
    assert notebook_modes.skeleton("epoch 10:  0.5") == notebook_modes.skeleton("epoch 10: 0.55")
    assert notebook_modes.skeleton("15 of the 16 nearest") == "# of the # nearest"


@pytest.mark.parametrize(
    ("stored", "fresh", "ok"),
    [
        ("val_accuracy 0.3875", "val_accuracy 0.3870", True),
        ("val_accuracy 0.6065", "val_accuracy 0.4155", True),  # 0.191 <= 0.1 + 0.152
        ("val_accuracy 0.8145", "val_accuracy 0.4875", False),  # 0.327 > 0.1 + 0.204
        ("loss 2.000", "loss 2.590", True),  # within 0.1 + 25 % of 2
        ("loss 2.000", "loss 2.610", False),
        ("15 of the 16 nearest", "12 of the 16 nearest", True),  # 3 <= 0.1 + 3.75
        ("3 of 16", "5 of 16", False),  # 2 > 0.1 + 0.75
        ("-0.0", "0.0", True),
        ("nan", "nan", True),  # words, not numbers: compared by the skeleton
    ],
)
def test_numbers_close(stored: str, fresh: str, ok: bool) -> None:
    # checked by hand: |f - s| <= 0.1 + 0.25 * |s|
    assert (notebook_modes.numbers_close(stored, fresh) is None) is ok


def test_numbers_close_explains_a_failure() -> None:
    problem = notebook_modes.numbers_close("a 1 b 0.5", "a 1 b 0.9")
    assert problem is not None and "number 2: stored 0.5, got 0.9" in problem
    assert "allowed 0.1 + 0.25 x |stored| = 0.225" in problem
    assert "numbers" in notebook_modes.numbers_close("1 2", "1")


def test_numbers_close_checks_its_tolerances() -> None:
    with pytest.raises(ValueError, match="rtol must be a non-negative number"):
        notebook_modes.numbers_close("1", "1", rtol=-0.1)
    with pytest.raises(ValueError, match="atol must be a non-negative number"):
        notebook_modes.numbers_close("1", "1", atol=float("nan"))


def test_nbval_private_surface_is_the_one_tolerant_mode_wraps() -> None:
    """Tolerant mode replaces nbval's private IPyNbCell.compare_outputs (conftest.py); an
    nbval upgrade that renames or re-signs what it relies on must fail here, loudly."""
    assert notebook_modes.nbval_surface_problems() == []


def test_a_changed_nbval_surface_is_named(monkeypatch) -> None:
    from nbval import plugin

    monkeypatch.setattr(plugin.IPyNbCell, "sanitize", lambda self, text, extra: text)
    assert notebook_modes.nbval_surface_problems() == [
        "nbval.plugin.IPyNbCell.sanitize(self, s) is now (self, text, extra)"
    ]
