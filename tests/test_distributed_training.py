"""The dual encoder under DistributedDataParallel (mmcourse.distributed.dual): one process
gives train_dual_encoder's weights bit for bit; two gloo processes under torchrun train,
rank 0 alone writes, and a run killed after its first checkpoint resumes to the weights of
a run never interrupted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmcourse import distributed
from mmcourse.data.captions import make_mnist_captions
from mmcourse.distributed import dual, launch
from mmcourse.retrieval.training import ContrastiveRecipe, train_dual_encoder
from mmcourse.vocab import Vocabulary

pytestmark = pytest.mark.usefixtures("one_thread")


def small_data(n: int = 256) -> tuple:
    data = make_mnist_captions("train", n=n, seed=0)
    return data, Vocabulary.build([c for captions in data.captions for c in captions])


def test_one_process_gives_train_dual_encoders_weights_bit_for_bit(tmp_path: Path) -> None:
    data, vocab = small_data()
    expected, history = train_dual_encoder(data, vocab, epochs=2)
    model, records = dual.train(data, vocab, epochs=2, out=tmp_path)
    mine, theirs = model.state_dict(), expected.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[name], theirs[name]) for name in mine)
    assert [r["train_loss"] for r in records] == history["train_loss"]
    assert (tmp_path / "checkpoint.pt").exists()


def test_a_batch_that_does_not_split_evenly_is_refused(tmp_path: Path) -> None:
    data, vocab = small_data(64)
    three = distributed.World(rank=0, size=3)
    with pytest.raises(ValueError, match="divisible by 3"):
        dual.train(data, vocab, epochs=1, out=tmp_path, world=three)
    with pytest.raises(ValueError, match="last batch holds 7"):  # 71 = 64 + 7
        data71, vocab71 = small_data(71)
        dual.train(data71, vocab71, epochs=1, out=tmp_path, world=distributed.World(0, 2),
                   recipe=ContrastiveRecipe())  # fmt: skip


def torchrun(out: Path, *extra: str, epochs: int = 3) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node=2", "-m", "mmcourse.distributed.dual", "--out", str(out),
            "--epochs", str(epochs), "--canvases", "1024", *extra]  # fmt: skip


ENV = dict(os.environ, OMP_NUM_THREADS="1")


def test_two_processes_train_and_a_killed_run_resumes_to_the_same_weights(tmp_path) -> None:
    whole = subprocess.run(
        torchrun(tmp_path / "whole"), capture_output=True, text=True, timeout=300, env=ENV
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert whole.stdout.count("epoch 1/3") == 1  # rank 0 alone prints
    metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and len(metrics["history"]) == 3
    losses = [record["train_loss"] for record in metrics["history"]]
    assert losses[-1] < losses[0]

    killed_dir = tmp_path / "killed"
    module_args = torchrun(killed_dir)[torchrun(killed_dir).index("--out") :]
    launch.interrupt_when(  # torchrun and both ranks, mid-way
        "mmcourse.distributed.dual", module_args, killed_dir / "checkpoint.pt", processes=2
    )
    assert (killed_dir / "checkpoint.pt").exists(), "no checkpoint was written"
    assert not (killed_dir / "dual_encoder.pt").exists(), "the run ended before it was killed"
    resumed = subprocess.run(
        torchrun(killed_dir, "--resume"), capture_output=True, text=True, timeout=300, env=ENV
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "epoch 1/3" not in resumed.stdout  # it did not start again
    final = torch.load(killed_dir / "dual_encoder.pt", weights_only=True)
    reference = torch.load(tmp_path / "whole" / "dual_encoder.pt", weights_only=True)
    assert all(torch.equal(final[name], reference[name]) for name in reference)
