"""Write the student edition: copies of the chapters without their worked solutions.

    python3 course.py student                  # every chapter, into student/notebooks/
    python scripts/student_edition.py --out DIR NOTEBOOK ...

Each copy keeps the story, the code and the exercises with their self-checks; it loses every
cell tagged ``solution`` (the worked solutions) and every stored output, so that learners run
the chapter themselves. A note at the top of each Exercises section says that the solutions
were left out. The work is done by nbconvert's own preprocessors (``TagRemovePreprocessor``
and ``ClearOutputPreprocessor``), the tools Jupyter provides for this; nbgrader's
``generate_assignment`` does the same job with its own cell markers for a teacher who grades
with it.

Before writing, each chapter is checked: a cell the learner keeps must not use a name that
only a removed solution defines (the edition would stop with a ``NameError`` there). The
check reads the code (Python's ``ast``), so it costs no execution.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_OUT = ROOT / "student" / "notebooks"
SOLUTION_TAG = "solution"
EXERCISES = re.compile(r"^## Exercises\s*$", flags=re.M)
"""The heading of a chapter's exercises (alone in its cell, or after the Summary)."""
NOTE = (
    "*Student edition: the worked solutions are left out of this copy. Each exercise's "
    "self-check still says whether your answer is right, and why not when it is not.*"
)


def _code(source: str) -> str:
    """A code cell's source as Python: IPython's ``!`` and ``%`` lines become comments."""
    lines = source.splitlines()
    return "\n".join(
        ("# " + line) if line.lstrip().startswith(("!", "%")) else line for line in lines
    )


def _names(source: str) -> tuple[set[str], set[str]]:
    """The names a cell binds (assignments, imports, defs, loop targets) and the names it
    reads."""
    tree = ast.parse(_code(source))
    bound: set[str] = set()
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store | ast.Del) else read).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound, read


def is_solution(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", [])


def names_only_solutions_define(notebook: nbformat.NotebookNode) -> list[str]:
    """Problems the edition would have: ``"cell N reads `x`, which only a solution defines"``
    for every kept code cell that reads a name bound *only* by removed solution cells before
    it (a name the kept cells also bind, such as an exercise's placeholder, is fine)."""
    kept_bound: set[str] = set()
    solution_bound: set[str] = set()
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        bound, read = _names(cell.source)
        if is_solution(cell):
            solution_bound |= bound
            continue
        for name in sorted((read & solution_bound) - kept_bound - bound):
            problems.append(f"cell {index} reads `{name}`, which only a worked solution defines")
        kept_bound |= bound
    return problems


def student_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A student copy of ``notebook`` (the original is not changed): no solution cells, no
    outputs, and :data:`NOTE` right after the cell with the Exercises heading."""
    copy = nbformat.from_dict(notebook)
    remover = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG}, enabled=True)
    copy, _ = remover.preprocess(copy, {})
    copy, _ = ClearOutputPreprocessor().preprocess(copy, {})
    copy.metadata.pop("widgets", None)  # the explorers' saved state (their starting pictures)
    for index, cell in enumerate(copy.cells):
        if cell.cell_type == "markdown" and EXERCISES.search(cell.source):
            copy.cells.insert(index + 1, nbformat.v4.new_markdown_cell(NOTE))
            copy.cells[index + 1].pop("id", None)
            copy.cells[index + 1]["id"] = "student-edition-note"
            break
    return copy


def write_edition(paths: list[Path], out: Path) -> list[Path]:
    """Check, then write the student copy of each notebook into ``out``; returns the paths."""
    problems = {}
    for path in paths:
        found = names_only_solutions_define(nbformat.read(path, as_version=4))
        if found:
            problems[path.name] = found
    if problems:
        lines = [f"{name}: {problem}" for name, found in problems.items() for problem in found]
        raise SystemExit("the student edition would break:\n  " + "\n  ".join(lines))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        target = out / path.name
        nbformat.write(student_notebook(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise SystemExit(f"no such notebook: {', '.join(missing)}")
    written = write_edition(paths, args.out)
    print(f"wrote {len(written)} student notebooks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
