"""Worked solutions stay folded until a learner opens one, in JupyterLab and in Colab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.name[:2] != "00")


def solution_cells(path: Path) -> list[dict]:
    cells = json.loads(path.read_text())["cells"]
    return [c for c in cells if "solution" in c.get("metadata", {}).get("tags", [])]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name[:2])
def test_every_chapter_has_folded_solutions(path: Path) -> None:
    solutions = solution_cells(path)
    assert 2 <= len(solutions) <= 4, f"{path.name}: {len(solutions)} worked solutions"
    for cell in solutions:
        source = "".join(cell["source"])
        where = f"{path.name}, solution starting {source[:60]!r}"
        # JupyterLab folds a cell whose metadata says so, input and output alike.
        assert cell["metadata"].get("jupyter") == {"source_hidden": True, "outputs_hidden": True}, (
            where
        )
        # Colab shows a form cell's title and hides its code until "Show code".
        assert cell["metadata"].get("cellView") == "form", where
        assert source.startswith("# @title Worked solution"), where
