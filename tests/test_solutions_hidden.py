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


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name[:2])
def test_no_answer_is_stored_or_shown_by_run_all(path: Path) -> None:
    """GitHub's viewer and Colab show stored outputs, and after Run All JupyterLab shows a
    folded cell's fresh output: so a worked solution is stored without outputs, prints and
    draws only inside ``folded_output()`` (one closed ``<details>`` at the end), and checks
    itself with ``.confirm()``, which raises if it stops passing (nbval then fails)."""
    for cell in solution_cells(path):
        source = "".join(cell["source"])
        where = f"{path.name}, solution starting {source[:60]!r}"
        assert cell["outputs"] == [] and cell["execution_count"] is None, where
        lines = source.splitlines()
        assert lines[1:4] == [
            "from mmcourse.utils import folded_output",
            "",
            "with folded_output():  # shown folded: Run All puts no answer on the screen",
        ], where
        assert all(not line or line.startswith("    ") for line in lines[4:]), where
        assert ".confirm()" in source, where


def test_store_strips_the_solutions_outputs() -> None:
    import nbformat
    import run_notebooks  # scripts/ is on pytest's pythonpath

    notebook = nbformat.v4.new_notebook()
    solution = nbformat.v4.new_code_cell("print(42)", metadata={"tags": ["solution"]})
    solution.outputs = [nbformat.v4.new_output("stream", text="42\n")]
    solution.execution_count = 3
    other = nbformat.v4.new_code_cell("print(1)", execution_count=4)
    other.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    notebook.cells = [solution, other]
    folded = run_notebooks.fold_solutions(notebook)
    assert folded.cells[0].outputs == [] and folded.cells[0].execution_count is None
    assert folded.cells[1].outputs[0]["text"] == "1\n"
