"""Small notebook conveniences: showing an expected error, timing a step, a progress bar."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm


@contextmanager
def expect_error(*kinds: type[BaseException]) -> Iterator[None]:
    """Run a block that is *meant* to fail and print the error instead of stopping.

    Chapters use it to show a classic bug failing, then fixed::

        with expect_error(RuntimeError):
            torch.cat([image_features, text_features], dim=1)

    prints ``RuntimeError: Sizes of tensors must match ...``. If the block does not fail, that
    is itself an error (the lesson would be wrong), so ``AssertionError`` is raised. Errors of
    other kinds than ``kinds`` (default: any ``Exception``) propagate.
    """
    expected = kinds or (Exception,)
    for kind in expected:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise ValueError(f"expect_error takes exception classes, got {kind!r}")
    try:
        yield
    except expected as error:
        message = str(error).strip().splitlines()
        print(f"{type(error).__name__}: {message[0] if message else ''}")
    else:
        raise AssertionError("the block was expected to raise an error, but it ran fine")


@contextmanager
def timer(label: str = "wall time") -> Iterator[None]:
    """Print how long a block took as ``<label>: 12.3 s`` (nbval ignores the number when the
    label is the default "wall time")."""
    start = time.perf_counter()
    yield
    print(f"{label}: {time.perf_counter() - start:.1f} s")


def progress_hidden() -> bool:
    """Whether progress bars are switched off: ``TQDM_DISABLE`` set to anything but ``0``,
    ``false`` or an empty string (the stored copies of the notebooks are made so)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false")


def progress(iterable: Iterable[Any] | None = None, **options: Any) -> tqdm:
    """A ``tqdm.auto`` progress bar that honours ``TQDM_DISABLE``.

    tqdm's notebook bars ignore that variable, so a notebook executed to be stored would keep a
    bar frozen at 0 %; this one is simply not shown then. ``options`` go to ``tqdm``.
    """
    # Always passed: tqdm's own default for ``disable`` was fixed from the environment when it
    # was imported, and a test or a learner may change the environment later.
    options["disable"] = progress_hidden() or bool(options.get("disable", False))
    return tqdm(iterable, **options)
