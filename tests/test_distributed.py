"""mmcourse.distributed: the gathered CLIP loss against the single-process losses of
mmcourse.losses (one process, and two gloo processes under torchrun, gradients included),
and the naive per-rank loss shown *not* to match."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from mmcourse import distributed
from mmcourse.losses import clip_loss, clip_loss_with_duplicates

pytestmark = pytest.mark.usefixtures("one_thread")


def embeddings(rows: int = 6, dim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(rows, dim, generator=generator), torch.randn(rows, dim, generator=generator)


def test_in_one_process_the_gathered_loss_is_the_single_process_loss() -> None:
    images, texts = embeddings()
    assert torch.allclose(
        distributed.gathered_clip_loss(images, texts, 3.0), clip_loss(images, texts, 3.0)
    )
    groups = torch.tensor([0, 1, 0, 2, 1, 3])
    for mode in ("mask", "soft"):
        assert torch.allclose(
            distributed.gathered_clip_loss(images, texts, 3.0, groups, mode),
            clip_loss_with_duplicates(images, texts, 3.0, groups, mode),
        )


def test_the_gathered_loss_by_hand_for_two_pairs() -> None:
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    s, r = 2.0, math.sqrt(0.5)
    # cosines: image 0 with texts (r, 0); image 1 with (r, 1); text 0 with images (r, r)
    image_rows = [-math.log(math.exp(s * r) / (math.exp(s * r) + 1)),
                  -math.log(math.exp(s) / (math.exp(s * r) + math.exp(s)))]  # fmt: skip
    text_rows = [-math.log(math.exp(s * r) / (2 * math.exp(s * r))),
                 -math.log(math.exp(s) / (1 + math.exp(s)))]  # fmt: skip
    expected = (sum(image_rows) / 2 + sum(text_rows) / 2) / 2
    assert float(distributed.gathered_clip_loss(images, texts, s)) == pytest.approx(
        expected, rel=1e-6
    )


def test_bad_input_gets_a_clear_error() -> None:
    images, texts = embeddings()
    with pytest.raises(ValueError, match="logit_scale"):
        distributed.gathered_clip_loss(images, texts, 0.0)
    with pytest.raises(ValueError, match="text_emb"):
        distributed.gathered_clip_loss(images, texts[:3], 1.0)
    with pytest.raises(ValueError, match="groups"):
        distributed.gathered_clip_loss(images, texts, 1.0, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="mode"):
        distributed.gathered_clip_loss(images, texts, 1.0, torch.arange(6), "hard")


def test_local_rows_split_a_global_batch_in_equal_parts() -> None:
    parts = [distributed.local_rows(12, distributed.World(rank, 3)) for rank in range(3)]
    assert [list(range(12))[p] for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    with pytest.raises(ValueError, match="divisible by 3"):
        distributed.local_rows(10, distributed.World(0, 3))


def test_without_torchrun_the_world_is_one_process(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world = distributed.start()
    assert (world.rank, world.size, world.is_main, world.distributed) == (0, 1, True, False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        distributed.start()
    with pytest.raises(ValueError, match="backend"):
        distributed.start("mpi")


def test_two_gloo_processes_give_one_process_gradients_and_the_naive_loss_does_not(
    tmp_path,
) -> None:
    out = tmp_path / "check.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "mmcourse.distributed.check", "--out", str(out)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["world_size"] == 2
    assert report["negatives_per_row"] == {"gathered": 11, "naive": 5}
    for mode, parts in report["modes"].items():
        assert parts["gathered"]["loss_delta"] <= 1e-6, mode
        assert parts["gathered"]["gradient_delta"] <= 1e-6, mode
        assert parts["naive"]["loss_delta"] > 1e-2, mode  # fewer negatives: another loss
        assert parts["naive"]["gradient_delta"] > 1e-2, mode


def test_rank_0_first_runs_the_block_once_in_one_process() -> None:
    ran = []
    with distributed.world.rank_0_first(distributed.World()):
        ran.append(True)
    assert ran == [True]
