"""Run by tests/test_parallel_fit.py under torchrun: ``fit`` on every rank, rank 0 saves.

    torchrun --standalone --nproc_per_node=2 tests/ddp_fit_worker.py OUT.pt

:func:`make_case` is imported by the test too, so one process trains the very same model on
the very same data for the comparison."""

from __future__ import annotations

import sys

import torch
from torch import nn

from mmcourse.callbacks import OneCycle
from mmcourse.distributed import start, stop
from mmcourse.train import Loop, fit

ROWS, BATCH, EPOCHS = 88, 16, 3  # 5 batches of 16, then one of 8: every batch splits in two


def make_case() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], torch.optim.Optimizer]:
    """A small classifier without dropout or batch norm (so nothing differs per rank), its
    data and its optimizer."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    inputs = torch.randn(ROWS, 8)
    labels = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
    return model, (inputs, labels), torch.optim.Adam(model.parameters(), lr=0.01)


def train(model, data, optimizer) -> list[float]:
    history = fit(
        model, data, loss_fn=nn.CrossEntropyLoss(), optimizer=optimizer, epochs=EPOCHS,
        batch_size=BATCH, callbacks=[OneCycle(max_lr=0.05)], loop=Loop(seed=3),
    )  # fmt: skip
    return history["train_loss"]


if __name__ == "__main__":
    world = start("gloo")
    torch.set_num_threads(1)
    model, data, optimizer = make_case()
    losses = train(model, data, optimizer)
    if world.is_main:
        torch.save({"state": model.state_dict(), "losses": losses}, sys.argv[1])
    stop()
