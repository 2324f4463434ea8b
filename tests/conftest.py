"""Shared test set-up: the suite is offline and deterministic."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

os.environ["MMCOURSE_OFFLINE"] = "1"  # load_mnist never downloads in tests

REPO = Path(__file__).resolve().parents[1]


LOOPBACK = ("127.0.0.1", "localhost", "::1")
"""Connections to this machine itself stay allowed (the browser test's JupyterLab server)."""


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection in a test fails loudly (except to this
    machine's own loopback address)."""
    connect, create_connection = socket.socket.connect, socket.create_connection

    def guarded_connect(self: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[0] in LOOPBACK:
            return connect(self, address)
        raise RuntimeError(f"tests must not use the network (tried {address!r})")

    def guarded_create(address: tuple, *args: object, **kwargs: object) -> socket.socket:
        if address[0] in LOOPBACK:
            return create_connection(address, *args, **kwargs)
        raise RuntimeError(f"tests must not use the network (tried {address!r})")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", guarded_create)


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


@pytest.fixture(scope="session")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The course's book, built once per session into a temporary folder (tests/test_book.py,
    tests/test_browser.py); skipped where the npm packs it needs are missing."""
    import build_book  # scripts/ is on pytest's pythonpath

    if not build_book.assets_cached():
        pytest.skip(
            "the book needs MathJax, require.js and the widget manager, which `python3 "
            "course.py setup` fetches from the npm registry (with npm, online) into "
            "book/_build/npm/; they are not there, and tests never download"
        )
    folder = tmp_path_factory.mktemp("book")
    source = build_book.stage(folder / "src")
    html = folder / "_build" / "html"
    seconds = build_book.build(source, html)
    print(f"the book built in {seconds:.1f} s")
    return html
