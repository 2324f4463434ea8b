"""``fit`` data-parallel and resumable (mmcourse.parallel, mmcourse.checkpoints.save_run):
two gloo processes under torchrun train the weights one process trains on the same global
batches; a run stopped mid-way goes on from its checkpoint to the weights of a run never
stopped; the case study's command does both under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from mmcourse.callbacks import Callback, EarlyStopping, OneCycle
from mmcourse.distributed import launch
from mmcourse.parallel import Ranks
from mmcourse.train import Loop, fit
from tests.ddp_fit_worker import make_case, train

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1", PYTHONPATH=str(ROOT))
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


# ----------------------------------------------------------------------------- ranks


def test_each_rank_takes_its_own_equal_part_of_a_batch() -> None:
    parts = [Ranks(rank, 4).rows(12) for rank in range(4)]
    assert [(p.start, p.stop) for p in parts] == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert Ranks().rows(7) == slice(0, 7)  # one process: the whole batch


def test_batches_that_do_not_split_evenly_are_refused_before_training() -> None:
    with pytest.raises(ValueError, match="divisible by 3"):
        Ranks(0, 3).rows(16)
    with pytest.raises(ValueError, match=r"the last of 7\) do not split evenly over 2"):
        Ranks(0, 2).check_batches(71, 16)
    Ranks(0, 2).check_batches(72, 16)  # 4 x 16 + 8


def test_fit_warns_when_torchrun_started_processes_that_never_joined(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    model = nn.Linear(3, 2)
    with pytest.warns(UserWarning, match=r"has not joined .*distributed.start\(\) first"):
        fit(model, (torch.randn(8, 3), torch.zeros(8, dtype=torch.long)), epochs=1,
            loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(model.parameters(), lr=0.1))  # fmt: skip


# ----------------------------------------------------------------------------- resuming


class Interrupt(Callback):
    """Stops the program (an exception) at the end of one epoch, as a kill would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state, record) -> None:
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


def resumable_run(checkpoint: Path, *extra: Callback):
    """Dropout (the global generator), batch norm, a one-cycle schedule and early stopping's
    best weights: everything a resumed run must put back."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(12, 2))  # fmt: skip
    x, y = torch.randn(100, 6), (torch.randn(100) > 0).long()
    stopper = EarlyStopping("val_loss", patience=10)
    history = fit(
        model, (x, y), loss_fn=nn.CrossEntropyLoss(), epochs=5, batch_size=16,
        optimizer=torch.optim.AdamW(model.parameters(), lr=0.01), val_data=(x[:30], y[:30]),
        callbacks=[OneCycle(max_lr=0.05), stopper, *extra], loop=Loop(seed=1, checkpoint=checkpoint),
    )  # fmt: skip
    return model, history


def test_a_run_stopped_after_an_epoch_goes_on_to_the_same_weights(tmp_path, capsys) -> None:
    whole, whole_history = resumable_run(tmp_path / "whole.pt")
    with pytest.raises(KeyboardInterrupt):
        resumable_run(tmp_path / "cut.pt", Interrupt(epoch=3))  # saved after epoch 2 only
    model, history = resumable_run(tmp_path / "cut.pt")
    assert "going on from" in capsys.readouterr().out
    for name, value in whole.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert history.records == whole_history.records
    assert history.best_epoch == whole_history.best_epoch is not None


def test_a_checkpoint_of_another_run_is_refused(tmp_path) -> None:
    resumable_run(tmp_path / "run.pt")
    model = nn.Linear(6, 2)
    with pytest.raises(ValueError, match="saved by a run with 5 epochs, this one has 2"):
        fit(model, (torch.randn(100, 6), torch.zeros(100, dtype=torch.long)), epochs=2,
            loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            batch_size=16, loop=Loop(checkpoint=tmp_path / "run.pt"))  # fmt: skip


def test_a_checkpoint_must_be_a_path_and_the_order_seeded() -> None:
    with pytest.raises(TypeError, match="checkpoint must be a str or Path, got int"):
        Loop(checkpoint=3)
    with pytest.raises(ValueError, match=r"seeded: give Loop\(seed=...\)"):
        Loop(seed=None, checkpoint="run.pt")


# ----------------------------------------------------------------------------- two processes


def test_two_processes_train_the_weights_one_process_trains(tmp_path) -> None:
    """Same seeded global batches, each rank half of each, gradients averaged by DDP: the
    weights and the recorded losses of one process on the whole batches, up to rounding."""
    out = tmp_path / "two.pt"
    run = subprocess.run([*TORCHRUN, str(ROOT / "tests" / "ddp_fit_worker.py"), str(out)],
                         capture_output=True, text=True, timeout=300, env=ENV, cwd=ROOT)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    two = torch.load(out, weights_only=True)
    model, data, optimizer = make_case()
    losses = train(model, data, optimizer)
    gaps = [(two["state"][k] - v).abs().max().item() for k, v in model.state_dict().items()]
    assert max(gaps) <= 1e-6, gaps
    assert two["losses"] == pytest.approx(losses, abs=1e-6)


def casestudy_args(out: Path, *extra: str) -> list[str]:
    return ["--train", "--canvases", "128", "--pretrain-epochs", "3", "--epochs", "3",
            "--out", str(out), *extra]  # fmt: skip


def casestudy(out: Path, *extra: str) -> list[str]:
    return [*TORCHRUN, "-m", "mmcourse.casestudy", *casestudy_args(out, *extra)]


def test_the_case_study_trains_under_torchrun_and_a_killed_run_resumes(tmp_path) -> None:
    whole = subprocess.run(casestudy(tmp_path / "whole"), capture_output=True, text=True,
                           timeout=300, env=ENV, cwd=ROOT)  # fmt: skip
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert whole.stdout.count("report written to") == 1  # rank 0 alone writes and prints
    report = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert report["settings"]["processes"] == 2

    killed = tmp_path / "killed"
    encoder_checkpoint = killed / "checkpoints" / "encoder.pt"  # mid-way through pretraining
    launch.interrupt_when(
        "mmcourse.casestudy", casestudy_args(killed), encoder_checkpoint, processes=2
    )
    assert not (killed / "metrics.json").exists()  # it did not finish
    running = subprocess.run(["ps", "-A", "-o", "args="], capture_output=True, text=True).stdout
    assert str(killed) not in running  # no rank left behind (torchrun gives each its session)

    again = subprocess.run(casestudy(killed, "--resume"), capture_output=True, text=True,
                           timeout=300, env=ENV, cwd=ROOT)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("going on from") == 1  # the encoder's run; the decoder starts
    assert "encoder.pt, saved after epoch" in again.stdout
    sums = [(d / "weights" / "SHA256SUMS").read_text() for d in (tmp_path / "whole", killed)]
    assert sums[0] == sums[1]


def test_interrupting_a_run_that_ends_first_says_so(tmp_path) -> None:
    with pytest.raises(RuntimeError, match=r"ended \(exit 0\) before .*never"):
        launch.interrupt_when("this", [], tmp_path / "never", processes=1)
