"""The student edition (scripts/student_edition.py): every chapter loses its worked solutions and
outputs and nothing else, no kept cell needs a removed one, and one edition runs end to end with
its self-checks answering "Not yet" to the placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import run_notebooks  # scripts/ is on pytest's pythonpath
import student_edition as edition

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECK_CALL = re.compile(r"\bch\d\d\.check_\w+\(")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("student")
    return {path.name: path for path in edition.write_edition(CHAPTERS, out)}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name[:2])
def test_a_chapter_loses_its_solutions_and_outputs_and_nothing_else(
    chapter: Path, written: dict[str, Path]
) -> None:
    original = nbformat.read(chapter, as_version=4)
    student = nbformat.read(written[chapter.name], as_version=4)
    kept = [cell for cell in original.cells if not edition.is_solution(cell)]
    added = [cell for cell in student.cells if cell.source == edition.NOTE]
    assert [c.source for c in student.cells if c.source != edition.NOTE] == [c.source for c in kept]
    assert not any("Worked solution" in c.source for c in student.cells if c.cell_type == "code")
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in student.cells
        if c.cell_type == "code"
    )
    has_exercises = any(
        c.cell_type == "markdown" and edition.EXERCISES.search(c.source) for c in original.cells
    )
    assert has_exercises or chapter.name.startswith("00"), f"{chapter.name}: no ## Exercises"
    assert len(added) == (1 if has_exercises else 0)
    solutions = [c for c in original.cells if edition.is_solution(c)]
    if has_exercises and chapter.name[:2] != "00":
        assert solutions, f"{chapter.name} has exercises but no worked solution to remove"
        checks = sum(bool(CHECK_CALL.search(c.source)) for c in student.cells)
        assert checks >= len(solutions), "each exercise keeps its self-check for the learner"
    assert "widgets" not in student.metadata, "the explorers' saved state (their pictures) stays"
    nbformat.validate(student)


def test_a_name_only_a_solution_defines_is_caught(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    solution = nbformat.v4.new_code_cell("answer = 42\nhelper = answer + 1", id="s")
    solution.metadata["tags"] = ["solution"]
    notebook.cells = [
        nbformat.v4.new_code_cell("answer = None  # your code here", id="a"),
        solution,
        nbformat.v4.new_code_cell("print(answer, helper)", id="b"),
    ]
    problems = edition.names_only_solutions_define(notebook)
    assert problems == ["cell 2 reads `helper`, which only a worked solution defines"]
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(SystemExit, match="would break:\n  99_broken.ipynb: cell 2 reads `helper`"):
        edition.write_edition([path], tmp_path / "out")


def test_shell_and_magic_lines_do_not_stop_the_check() -> None:
    bound, read = edition._names("!git clone -q x\n%pip install -q y\nimport sys\nz = sys.path")
    assert {"sys", "z"} <= bound and "sys" in read


@pytest.mark.slow  # runs a chapter
def test_the_edition_of_chapter_02_runs_and_its_checks_say_not_yet(
    written: dict[str, Path],
) -> None:
    """The learner's first run of an edition: no error, and every self-check answers the
    placeholders with "Not yet" (the solutions that would have made them "Correct" are gone)."""
    notebook, _ = run_notebooks.execute(written["02_joint_representation.ipynb"], timeout=300)
    answers = [
        "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code" and CHECK_CALL.search(cell.source)
        for output in cell.outputs
    ]
    assert answers and all("Not yet" in text for text in answers), answers
