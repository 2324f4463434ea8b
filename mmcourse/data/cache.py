"""A disk cache for generated datasets, so that a chapter builds MNIST-Captions once.

Drawing every digit with a pen (:mod:`mmcourse.data.pen`) costs about a millisecond a canvas,
and the course builds the same splits in many chapters. As Hugging Face ``datasets`` does,
a generated split is stored under a *fingerprint* of everything that decides it: the
arguments, a digest of the digit pool, the source code of the modules that draw it and the
torch version. Change any of them and the fingerprint changes, so a stale file is never read.

Where: ``$MMCOURSE_CACHE`` if set, else ``$XDG_CACHE_HOME/mmcourse`` (``~/.cache/mmcourse``).
Set ``MMCOURSE_CACHE=off`` to generate every time. A folder that cannot be written is skipped.
Of each name the :data:`KEEP` most recently used files are kept, so old versions do not pile up.

>>> fingerprint("a", 1) == fingerprint("a", 1) != fingerprint("a", 2)
True
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

__all__ = ["cache_dir", "cached", "fingerprint"]

T = TypeVar("T")


def cache_dir() -> Path | None:
    """The cache folder, or ``None`` when ``MMCOURSE_CACHE=off``."""
    chosen = os.environ.get("MMCOURSE_CACHE", "").strip()
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmcourse"


def fingerprint(*parts: object) -> str:
    """A SHA-256 hex digest of ``parts``: tensors by their dtype, shape and bytes, files
    (:class:`~pathlib.Path`) by their contents, anything else by its ``repr``."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            data = part.detach().cpu().contiguous()
            digest.update(f"{data.dtype}{tuple(data.shape)}".encode())
            digest.update(data.view(torch.uint8).numpy().tobytes())
        elif isinstance(part, Path):
            digest.update(part.read_bytes())
        else:
            digest.update(repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def cached(name: str, key: str, make: Callable[[], T]) -> T:
    """``make()``, stored as ``<cache>/<name>-<key[:24]>.pt`` the first time and read back
    after that. ``make`` must return what ``torch.load(weights_only=True)`` reads: tensors,
    lists, tuples, dicts and strings."""
    folder = cache_dir()
    path = folder / f"{name}-{key[:24]}.pt" if folder is not None else None
    if path is not None and path.exists():
        try:
            value = torch.load(path, weights_only=True)
            os.utime(path)  # used now: the last to be pruned
            return value
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):  # damaged: made again
            pass
    value = make()
    if path is not None:
        _store(value, path)
        _prune(folder, name)
    return value


KEEP = 6
"""How many files of one name the cache keeps (the most recently used): older versions of a
split, made before the code or the pool changed, are deleted."""


def _prune(folder: Path, name: str) -> None:
    files = sorted(folder.glob(f"{name}-*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP:]:
        old.unlink(missing_ok=True)


def _store(value: object, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as file:
            partial = Path(file.name)
            torch.save(value, file)
        os.replace(partial, path)  # atomic: a reader never sees half a file
    except OSError:
        if "partial" in locals():
            partial.unlink(missing_ok=True)
