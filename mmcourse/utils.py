"""Small notebook conveniences: showing an expected error, timing a step, a progress bar, a
worked solution's output folded until the learner opens it."""

from __future__ import annotations

import base64
import contextlib
import html
import io
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


FOLDED_SUMMARY = "Output of the worked solution (click to open)"


@contextmanager
def folded_output(summary: str = FOLDED_SUMMARY) -> Iterator[None]:
    """Run a worked solution with everything it prints and every figure it draws folded away:
    they are shown at the end in one HTML ``<details>`` element, closed, which JupyterLab,
    Colab, VS Code and GitHub all draw as a line the learner clicks to open. So "Run All" puts
    no answer on the screen under an exercise, while the solution still runs (and checks
    itself: a failed check raises, and the cell fails).

    The figures are drawn to PNG images inside the element (``plt.show()`` there does not show
    them outside); the text is escaped.
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    text = io.StringIO()
    images: list[str] = []
    before = set(plt.get_fignums())

    def keep_figures() -> None:
        for number in plt.get_fignums():
            if number in before:
                continue
            buffer = io.BytesIO()
            plt.figure(number).savefig(buffer, format="png", bbox_inches="tight")
            plt.close(number)
            images.append(base64.b64encode(buffer.getvalue()).decode("ascii"))

    show = plt.show
    plt.show = lambda *args, **kwargs: keep_figures()
    try:
        with contextlib.redirect_stdout(text):
            yield
        keep_figures()
    finally:
        plt.show = show
    parts = [f"<summary>{html.escape(summary)}</summary>"]
    if text.getvalue():
        parts.append(f"<pre>{html.escape(text.getvalue())}</pre>")
    parts += [f'<img src="data:image/png;base64,{png}"/>' for png in images]
    display(HTML(f"<details>{''.join(parts)}</details>"))
