"""Chapter 13's committed robust reader: the file is the one its log describes, the epoch kept
is the one validation chose, and the reader is robust when attacked here, independently of
what the training script measured."""

from __future__ import annotations

import pytest
import torch

from mmcourse import robust
from mmcourse.casestudy.weights import read_sums
from mmcourse.data import mnist
from mmcourse.robust import pretrained


def test_the_log_describes_the_committed_file() -> None:
    log = robust.training_log()
    assert log["sha256"] == read_sums(pretrained.FILE.parent)[pretrained.FILE.name]
    assert log["channels"] == list(pretrained.CHANNELS) and log["epsilon"] == pretrained.EPSILON
    assert log["test"]["digits"] == 10_000 and log["train_digits"] + log["val_digits"] == 60_000


def test_the_kept_epoch_is_the_best_on_validation() -> None:
    epochs = robust.training_log()["epochs"]
    best = max(epochs, key=lambda row: row["val_pgd10"])
    assert robust.training_log()["chosen_epoch"] == best["epoch"]


def test_the_committed_reader_is_robust_when_attacked_here() -> None:
    digits, labels = mnist.load_subset("test")
    pixels = digits[:200, None].float() / 255
    reader = robust.load_robust_reader()
    assert not reader.training
    assert robust.attack_accuracy(reader, pixels, labels[:200], 0.0) > 0.97
    under_pgd = robust.attack_accuracy(reader, pixels[:100], labels[:100], 0.3, steps=10)
    under_noise = robust.attack_accuracy(reader, pixels[:100], labels[:100], 0.3, "noise")
    assert 0.7 < under_pgd < under_noise


def test_a_missing_log_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pretrained, "LOG", tmp_path / "nothing.json")
    with pytest.raises(FileNotFoundError, match="scripts/train_robust_weights.py"):
        robust.training_log()
    assert isinstance(robust.robust_reader()[1], torch.nn.Module)
