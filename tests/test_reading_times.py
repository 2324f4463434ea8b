"""Stated reading times come from what each chapter holds (scripts/reading_times.py writes
them; mmcourse.chapters counts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmcourse import chapters

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
HINT = "run python scripts/reading_times.py"


def notebook(tmp_path: Path, cells: list[dict]) -> Path:
    path = tmp_path / "07_sample.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4}))
    return path


def test_counts_and_minutes_by_hand(tmp_path: Path) -> None:
    """300 words, 3 lines of code (a blank line, a comment and a solution left out), 1
    exercise: 300/150 + 3/15 = 2.2 minutes, rounded up to 5; 10 for the exercise."""
    words = " ".join(["word"] * 299)
    path = notebook(
        tmp_path,
        [
            {"cell_type": "markdown", "metadata": {}, "source": f"# Two {words}"},
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": "<!-- reading-time:07 -->about 90 minutes<!-- /reading-time -->",
            },
            {"cell_type": "code", "metadata": {}, "source": "x = 1\n\n# a comment\ny = 2\nz = x"},
            {"cell_type": "code", "metadata": {"tags": ["solution"]}, "source": "a = 1\nb = 2"},
        ],
    )
    assert chapters.chapter_counts(path) == {"words": 300, "code_lines": 3, "exercises": 1}
    assert chapters.reading_time(path) == (5, 10)
    assert chapters.reading_phrase(path) == "about 5 minutes of reading and 10 of exercises"


def test_a_long_chapter_rounds_up_to_five_minutes(tmp_path: Path) -> None:
    words = " ".join(["word"] * 1501)  # 10.007 minutes -> 15
    path = notebook(tmp_path, [{"cell_type": "markdown", "metadata": {}, "source": words}])
    assert chapters.reading_time(path) == (15, 0)
    assert chapters.reading_phrase(path) == "about 15 minutes of reading"


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name[:2] for p in CHAPTERS])
def test_every_chapter_states_its_computed_reading_time(path: Path) -> None:
    text = "\n".join(
        "".join(cell["source"])
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
        if cell["cell_type"] == "markdown"
    )
    found = chapters.READING_MARKER.findall(text)
    assert [number for number, _ in found] == [path.name[:2]], (
        f"{path.name} needs one reading-time marker of its own"
    )
    assert found[0][1] == chapters.reading_phrase(path), HINT


@pytest.mark.parametrize("name", ["README.md", "book/teachers_guide.md"])
def test_the_documents_state_the_computed_reading_times(name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    found = chapters.READING_MARKER.findall(text)
    assert found, f"{name} states reading times in markers"
    by_number = {path.name[:2]: path for path in CHAPTERS}
    for number, phrase in found:
        assert phrase == chapters.reading_phrase(by_number[number]), HINT


def test_the_readme_states_the_rates_the_counts_use() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert (
        f"{chapters.WORDS_PER_MINUTE} words and {chapters.CODE_LINES_PER_MINUTE} lines of code "
        f"a minute, {chapters.MINUTES_PER_EXERCISE} minutes an exercise"
    ) in readme
    table = [line for line in readme.split("|") if "reading-time:" in line]
    assert len(table) == len(CHAPTERS), "one reading time per chapter in the README's table"
