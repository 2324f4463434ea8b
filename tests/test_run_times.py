"""Stated run times come from measured ones (scripts/run_notebooks.py writes both)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import run_notebooks as runner  # scripts/ is on pytest's pythonpath

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


RECORD = json.loads(runner.RECORD.read_text())["notebooks"]


def markers(text: str) -> dict[str, str]:
    return {number: value for number, value in runner.MARKER.findall(text)}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3, "5 s"), (22.4, "20 s"), (23, "25 s"), (89, "90 s"), (90, "1.5 min"), (151, "2.5 min")],
)
def test_format_time(seconds: float, text: str) -> None:
    assert runner.format_time(seconds) == text


def test_every_chapter_has_a_measured_time_within_budget() -> None:
    assert sorted(RECORD) == [path.name for path in CHAPTERS]
    over = {name: s for name, s in RECORD.items() if s > runner.BUDGET_SECONDS}
    assert not over, f"over the 3-minute budget on 2 cores: {over}"


@pytest.mark.parametrize(
    "path",
    [ROOT / "README.md", CHAPTERS[0], ROOT / "book" / "teachers_guide.md"],
    ids=["README", "00", "teachers_guide"],
)
def test_tables_list_every_chapter_with_its_measured_time(path: Path) -> None:
    found = markers(path.read_text())
    assert sorted(found) == [p.name[:2] for p in CHAPTERS]
    for number, value in found.items():
        name = next(p.name for p in CHAPTERS if p.name.startswith(number))
        assert value == runner.format_time(RECORD[name]), (
            f"{path.name} says {value!r} for {name}, measured {RECORD[name]} s: "
            "run `python scripts/run_notebooks.py --tables`"
        )


@pytest.mark.parametrize("path", CHAPTERS[1:], ids=lambda p: p.name[:2])
def test_each_chapter_states_its_own_measured_time(path: Path) -> None:
    notebook = json.loads(path.read_text())
    text = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    found = markers(text)
    assert list(found) == [path.name[:2]], f"{path.name} needs one run-time marker of its own"
    assert found[path.name[:2]] == runner.format_time(RECORD[path.name])


def test_no_hand_written_time_next_to_the_markers() -> None:
    readme = (ROOT / "README.md").read_text()
    table = [line for line in readme.splitlines() if re.match(r"\| `\d\d_", line)]
    assert all("run-time:" in line for line in table)
