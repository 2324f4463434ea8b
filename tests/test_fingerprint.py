"""The arithmetic fingerprint: what the record holds, that it is repeatable and that it sees a
change of kernels (a simulated other CPU), and the verdict it gives."""

from __future__ import annotations

import os

import pytest

from mmcourse import fingerprint, portable


def test_the_record_names_a_fingerprint_its_steps_and_processor() -> None:
    record = fingerprint.recorded()
    assert len(str(record["fingerprint"])) == 16 and int(str(record["fingerprint"]), 16) >= 0
    assert record["steps"] == fingerprint.STEPS and record["processor"]


@pytest.mark.slow
@pytest.mark.skipif(
    not portable.bit_identical_platform()[0], reason="needs Linux on an x86-64 CPU with AVX2"
)
def test_the_fingerprint_repeats_and_changes_with_the_kernels() -> None:
    env = dict(os.environ)
    portable.apply(env, force=True)
    first = fingerprint.measure(env, steps=2)
    assert fingerprint.measure(env, steps=2) == first  # same machine, same bits
    other = {**env, "ATEN_CPU_CAPABILITY": "default"}  # what a CPU without AVX2 would run
    assert fingerprint.measure(other, steps=2) != first
    assert fingerprint.measure(env, steps=3) != first  # one more step, other weights


def test_the_verdict_compares_with_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    record = fingerprint.recorded()
    monkeypatch.setattr(fingerprint, "measure", lambda environ, steps: record["fingerprint"])
    same, why = fingerprint.same_as_stored({})
    assert same and "equals the stored one" in why
    monkeypatch.setattr(fingerprint, "measure", lambda environ, steps: "0" * 16)
    same, why = fingerprint.same_as_stored({})
    assert not same and "0000000000000000 differs" in why and str(record["processor"]) in why


def test_steps_are_checked() -> None:
    with pytest.raises(ValueError, match="steps"):
        fingerprint.measure({}, steps=0)
