"""Write every chapter's reading time, computed from what it holds, into its markers.

    python scripts/reading_times.py

A chapter's notebook, the teachers' guide and the README state reading times between
``<!-- reading-time:NN -->`` and ``<!-- /reading-time -->``; this script replaces the text in
between with :func:`mmcourse.chapters.reading_phrase` of chapter ``NN`` (words, lines of code
and exercises counted; see :mod:`mmcourse.chapters`). ``tests/test_reading_times.py`` fails
when a marker and its chapter disagree. Only Markdown changes: no output is touched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse.chapters import READING_MARKER, reading_phrase  # noqa: E402

CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DOCUMENTS = [ROOT / "README.md", ROOT / "book" / "teachers_guide.md"]


def phrases() -> dict[str, str]:
    return {path.name[:2]: reading_phrase(path) for path in CHAPTERS}


def rewrite(text: str, wanted: dict[str, str]) -> str:
    def replace(match) -> str:
        number = match.group(1)
        return f"<!-- reading-time:{number} -->{wanted[number]}<!-- /reading-time -->"

    return READING_MARKER.sub(replace, text)


def main() -> None:
    wanted = phrases()
    for path in CHAPTERS:
        notebook = nbformat.read(path, as_version=4)
        changed = False
        for cell in notebook.cells:
            if cell.cell_type == "markdown" and rewrite(cell.source, wanted) != cell.source:
                cell.source = rewrite(cell.source, wanted)
                changed = True
        if changed:
            nbformat.write(notebook, path)
            print("updated", path.relative_to(ROOT))
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, wanted)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print("updated", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
