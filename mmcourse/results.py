"""Results that experiments store for the chapters (``data/results/*.json``).

One format, ``{"settings": {...}, "results": {...}}``: what was run (profile, seeds, threads,
versions) beside what it measured. :func:`save_results` writes it; :func:`load_results` reads
it back and, for a missing file, names the script that makes it. A chapter reads a stored
result when recomputing it would take longer than the chapter's budget (several seeds of a
study, every decoder at every beam width), and says so where it shows the numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

__all__ = ["load_results", "save_results"]


def save_results(path: str | Path, settings: Mapping, results: Mapping) -> Path:
    """Write ``{"settings": settings, "results": results}`` to ``path`` as JSON (parent
    folders created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"settings": dict(settings), "results": dict(results)}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def load_results(path: str | Path, made_by: str) -> tuple[dict, dict]:
    """``(settings, results)`` from a file :func:`save_results` wrote.

    ``made_by`` is the script that writes it (e.g. ``"experiments/decoders.py"``): a missing
    file raises ``FileNotFoundError`` saying to run it; a file of another kind ``ValueError``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no stored results at {path}: run python {made_by}")
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or set(record) != {"settings", "results"}:
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path} is not a result stored by {made_by} (it holds {keys})")
    return record["settings"], record["results"]
