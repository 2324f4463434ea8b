"""Shared test set-up: the suite is offline and deterministic."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

os.environ["MMCOURSE_OFFLINE"] = "1"  # load_mnist never downloads in tests

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection in a test fails loudly."""

    def guard(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tests must not use the network")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "create_connection", guard)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def full_mnist_root() -> Path | None:
    """The folder holding MNIST/raw/ if full MNIST is available to the tests, else None."""
    env = os.environ.get("MMCOURSE_DATA")
    if env and (Path(env) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        return Path(env)
    if (REPO / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        return REPO / "data"
    return None


needs_full_mnist = pytest.mark.skipif(
    full_mnist_root() is None,
    reason="needs the full raw MNIST: set MMCOURSE_DATA to a folder holding MNIST/raw/ "
    "(the four uncompressed files) to run this test",
)


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread, and are immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def close_figures():
    """Close every matplotlib figure a test opened (they pile up in memory otherwise)."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
