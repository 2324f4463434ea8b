#!/usr/bin/env python3
"""Execute the course's notebooks, store their outputs, record their run times, write the tables.

Run it through ``python3 course.py store [NOTEBOOK ...]``, which sets the environment the stored
outputs must come from (portable numerics, fast profile, no progress bars). Directly:

    python scripts/run_notebooks.py [NOTEBOOK ...]        execute, store outputs, record times
    python scripts/run_notebooks.py --out DIR [...]       execute into DIR; stored copies untouched
    python scripts/run_notebooks.py --out DIR --diff [...]
                                                          ... and list the code cells whose outputs
                                                          differ from the stored ones
    python scripts/run_notebooks.py --tables              only rewrite the run-time tables

Run times go to ``notebooks/run_times.json``; every ``<!-- run-time:NN -->...<!-- /run-time -->``
in README.md and in the notebooks' Markdown is rewritten from it, so no stated time can drift
from a measured one (tests/test_run_times.py checks that they agree).
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
RECORD = NOTEBOOKS / "run_times.json"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
BUDGET_SECONDS = 180
MARKER = re.compile(r"<!-- run-time:(\d\d) -->(.*?)<!-- /run-time -->")

sys.path.insert(0, str(ROOT))
from mmcourse import portable  # noqa: E402


def chapter_number(path: Path) -> str:
    return path.name[:2]


def format_time(seconds: float) -> str:
    """How a run time is written for a reader: '25 s' (to 5 s) under 90 s, else '2.5 min'."""
    if seconds < 90:
        return f"{max(5, 5 * round(seconds / 5))} s"
    return f"{seconds / 60:.1f} min"


def execute(path: Path, timeout: int = 900) -> tuple[nbformat.NotebookNode, float]:
    """Run one notebook top to bottom in a fresh kernel; returns it and its wall time."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - start


def sanitizer() -> list[tuple[re.Pattern[str], str]]:
    parser = configparser.ConfigParser()
    parser.read(SANITIZE)
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def cell_texts(cell: nbformat.NotebookNode, rules: list[tuple[re.Pattern[str], str]]) -> list[str]:
    """The text outputs nbval compares (streams and text/* data), sanitized."""
    texts = []
    for output in cell.get("outputs", []):
        values = [output.get("text", "")] + [
            v for k, v in output.get("data", {}).items() if k.startswith("text/")
        ]
        for value in values:
            text = "".join(value) if isinstance(value, list) else value
            for pattern, replacement in rules:
                text = pattern.sub(replacement, text)
            texts.append(text)
    return texts


def differing_cells(stored: nbformat.NotebookNode, fresh: nbformat.NotebookNode) -> list[int]:
    """nbval's numbers (code cells counted from 0) of the cells whose text outputs differ."""
    rules = sanitizer()
    code_old = [c for c in stored.cells if c.cell_type == "code"]
    code_new = [c for c in fresh.cells if c.cell_type == "code"]
    return [
        i
        for i, (old, new) in enumerate(zip(code_old, code_new))
        if cell_texts(old, rules) != cell_texts(new, rules)
    ]


def load_record() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.exists() else {"notebooks": {}}


def save_record(times: dict[str, float]) -> None:
    record = load_record()
    for name, seconds in times.items():
        record["notebooks"][name] = round(seconds, 1)
    record["measured_on"] = {
        "processor": platform.processor() or platform.machine(),
        "cores_used": 2,
        "portable_settings": portable.in_force(),
        "python": platform.python_version(),
    }
    record["notebooks"] = dict(sorted(record["notebooks"].items()))
    RECORD.write_text(json.dumps(record, indent=1) + "\n")


def rewrite_tables() -> list[Path]:
    """Rewrite every run-time marker from the record; returns the files that changed."""
    times = {name[:2]: seconds for name, seconds in load_record()["notebooks"].items()}

    def fill(match: re.Match[str]) -> str:
        number = match.group(1)
        if number not in times:
            raise SystemExit(f"no recorded run time for notebook {number}: run it first")
        return f"<!-- run-time:{number} -->{format_time(times[number])}<!-- /run-time -->"

    changed = []
    readme = ROOT / "README.md"
    text = readme.read_text()
    if MARKER.sub(fill, text) != text:
        readme.write_text(MARKER.sub(fill, text))
        changed.append(readme)
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        touched = False
        for cell in notebook.cells:
            if cell.cell_type == "markdown" and MARKER.search(cell.source):
                new = MARKER.sub(fill, cell.source)
                touched |= new != cell.source
                cell.source = new
        if touched:
            nbformat.write(notebook, path)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    parser.add_argument("--out", type=Path, help="write executed copies here instead")
    parser.add_argument("--diff", action="store_true", help="with --out: list differing cells")
    parser.add_argument("--tables", action="store_true", help="only rewrite the run-time tables")
    args = parser.parse_args(argv)
    if args.tables:
        for path in rewrite_tables():
            print(f"rewrote {path.relative_to(ROOT)}")
        return 0
    if args.diff and not args.out:
        parser.error("--diff needs --out (the stored notebooks stay the reference)")
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not args.out and (not portable.in_force() or os.environ.get("TQDM_DISABLE") != "1"):
        parser.error("stored outputs must come from `python3 course.py store` (portable numerics, no progress bars)")
    print(f"portable numerics settings in force: {portable.in_force()}", flush=True)
    times: dict[str, float] = {}
    for path in paths:
        notebook, seconds = execute(path)
        over = "  OVER THE 3-MINUTE BUDGET" if seconds > BUDGET_SECONDS else ""
        print(f"{path.name}: {seconds:.1f} s{over}", flush=True)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, args.out / path.name)
            if args.diff:
                cells = differing_cells(nbformat.read(path, as_version=4), notebook)
                print(f"  code cells whose outputs differ from the stored ones: {cells}")
        else:
            nbformat.write(notebook, path)
            times[path.name] = seconds
    if times:
        save_record(times)
        for path in rewrite_tables():
            print(f"rewrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
