"""Saving and loading the case study's weights: every bad file gets a clear message."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from mmcourse.casestudy.weights import WeightsError, load_weights, read_sums, save_weights


def model(width: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 2))


def test_round_trip_and_a_sha256_that_sha256sum_would_write(tmp_path) -> None:
    original = model()
    digest = save_weights(original, tmp_path / "m.pt")
    assert digest == hashlib.sha256((tmp_path / "m.pt").read_bytes()).hexdigest()
    assert (tmp_path / "SHA256SUMS").read_text() == f"{digest}  m.pt\n"
    copy = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    load_weights(copy, tmp_path / "m.pt")
    x = torch.randn(5, 3)
    torch.testing.assert_close(copy(x), original(x))
    assert not copy.training


def test_two_files_share_one_sums_file(tmp_path) -> None:
    save_weights(model(), tmp_path / "b.pt")
    save_weights(model(), tmp_path / "a.pt")
    assert list(read_sums(tmp_path)) == ["a.pt", "b.pt"]


def test_missing_file_says_how_to_make_it(tmp_path) -> None:
    with pytest.raises(WeightsError, match="no weights file.*run the trainer"):
        load_weights(model(), tmp_path / "none.pt", retrain_hint="run the trainer")


def test_corrupted_file_is_refused_before_torch_reads_it(tmp_path) -> None:
    save_weights(model(), tmp_path / "m.pt")
    data = bytearray((tmp_path / "m.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "m.pt").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupted or was changed"):
        load_weights(model(), tmp_path / "m.pt")


def test_file_without_a_recorded_sum_is_refused(tmp_path) -> None:
    torch.save(model().state_dict(), tmp_path / "m.pt")
    with pytest.raises(WeightsError, match="has no SHA-256"):
        load_weights(model(), tmp_path / "m.pt")


def test_weights_of_another_model_are_named(tmp_path) -> None:
    save_weights(model(width=4), tmp_path / "m.pt")
    with pytest.raises(WeightsError, match="different model.*of another shape"):
        load_weights(model(width=5), tmp_path / "m.pt")
    save_weights(nn.Linear(3, 2), tmp_path / "lin.pt")
    with pytest.raises(WeightsError, match="missing"):
        load_weights(model(), tmp_path / "lin.pt")


def test_a_file_that_is_not_a_state_dict(tmp_path) -> None:
    (tmp_path / "m.pt").write_text("not a checkpoint")
    (tmp_path / "SHA256SUMS").write_text(
        hashlib.sha256(b"not a checkpoint").hexdigest() + "  m.pt\n"
    )
    with pytest.raises(WeightsError, match="not a readable weights file"):
        load_weights(model(), tmp_path / "m.pt")


def test_pickled_code_is_never_run(tmp_path) -> None:
    """weights_only=True: a file holding an arbitrary object is refused, not executed."""
    torch.save({"weight": torch.zeros(2), "extra": nn.Linear(1, 1)}, tmp_path / "m.pt")
    digest = hashlib.sha256((tmp_path / "m.pt").read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  m.pt\n")
    with pytest.raises(WeightsError, match="not a readable weights file|state dict"):
        load_weights(model(), tmp_path / "m.pt")
