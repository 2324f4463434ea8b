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
    python scripts/run_notebooks.py --tag-from DIR [DIR ...]
                                                          tag the cells whose outputs differ in
                                                          copies executed on other CPU code paths

Tagging: execute copies under other CPU code paths (e.g. ``MMCOURSE_PORTABLE=0``, and
``MMCOURSE_PORTABLE=0 ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41``) with ``--out``,
then ``--tag-from`` those folders: a cell whose words differ gets ``cpu-dependent-text``, one
whose numbers alone differ gets ``cpu-dependent-numbers``, and where a number moved more than
the default tolerance allows, a tolerance of its own (twice the largest move seen) in the cell's
metadata. tests/notebook_modes.py explains how the tests use them.

Run times go to ``notebooks/run_times.json``; every ``<!-- run-time:NN -->...<!-- /run-time -->``
in README.md, the teacher's guide (book/teachers_guide.md) and the notebooks' Markdown is rewritten from it, so no stated time can drift
from a measured one (tests/test_run_times.py checks that they agree).
"""

from __future__ import annotations

import argparse
import configparser
import functools
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

sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
import notebook_modes as modes  # noqa: E402 -- the tags and tolerances the tests use

from mmcourse import fingerprint, portable  # noqa: E402


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
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    return fold_solutions(notebook), time.perf_counter() - start


def fold_solutions(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Worked solutions are stored without outputs: an answer must not sit under an exercise
    in the file (GitHub and Colab show stored outputs). The solutions still run in the tests,
    and a solution whose self-check fails raises there (``CheckResult.confirm``)."""
    for cell in notebook.cells:
        if "solution" in cell.metadata.get("tags", []):
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    return notebook


@functools.cache
def sanitizer() -> list[tuple[re.Pattern[str], str]]:
    parser = configparser.ConfigParser()
    parser.read(SANITIZE)
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def cell_texts(cell: nbformat.NotebookNode, rules: list[tuple[re.Pattern[str], str]]) -> list[str]:
    """The text outputs nbval compares, sanitized: each stream's text joined (a stream may arrive
    in chunks, as nbval also allows), then each text/* data value."""
    streams: dict[str, str] = {}
    texts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            streams[output["name"]] = streams.get(output["name"], "") + "".join(output["text"])
        for key, value in output.get("data", {}).items():
            if key.startswith("text/"):
                texts.append("".join(value) if isinstance(value, list) else value)
    texts = [streams[name] for name in sorted(streams)] + texts
    for pattern, replacement in rules:
        texts = [pattern.sub(replacement, text) for text in texts]
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


def tag_cpu_dependent(path: Path, variants: list[nbformat.NotebookNode]) -> dict[int, str]:
    """Re-tag ``path``'s code cells from executed ``variants``; returns {cell: tag} (nbval's
    numbering) and writes the notebook."""
    rules = sanitizer()
    notebook = nbformat.read(path, as_version=4)
    stored = [c for c in notebook.cells if c.cell_type == "code"]
    tagged = {}
    for index, cell in enumerate(stored):
        tags = [
            t for t in cell.metadata.get("tags", []) if t not in (modes.NUMBERS_TAG, modes.TEXT_TAG)
        ]
        cell.metadata.pop("mmcourse", None)
        old = "\n".join(cell_texts(cell, rules))
        tag, atol = None, 0.0
        for variant in variants:
            new = "\n".join(
                cell_texts([c for c in variant.cells if c.cell_type == "code"][index], rules)
            )
            if new == old:
                continue
            if modes.skeleton(new) != modes.skeleton(old):
                tag = modes.TEXT_TAG
                break
            tag = modes.NUMBERS_TAG
            pairs = zip(modes.NUMBER.findall(old), modes.NUMBER.findall(new))
            atol = max(
                [atol] + [abs(float(b) - float(a)) - modes.RTOL * abs(float(a)) for a, b in pairs]
            )
        if tag:
            tags.append(tag)
            tagged[index] = tag
        if tag == modes.NUMBERS_TAG and atol > modes.ATOL / 2:
            cell.metadata["mmcourse"] = {"atol": round(max(modes.ATOL, 2 * atol), 4)}
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    nbformat.write(notebook, path)
    return tagged


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
    for page in (ROOT / "README.md", ROOT / "book" / "teachers_guide.md"):
        text = page.read_text()
        if MARKER.sub(fill, text) != text:
            page.write_text(MARKER.sub(fill, text))
            changed.append(page)
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
    parser.add_argument("--tag-from", nargs="+", type=Path, metavar="DIR", help="re-tag cells")
    parser.add_argument(
        "--new-machine",
        action="store_true",
        help="store every notebook on a machine of other arithmetic and record its fingerprint",
    )
    args = parser.parse_args(argv)
    if args.tag_from:
        paths = [p.resolve() for p in args.notebooks] or sorted(
            NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")
        )
        for path in paths:
            variants = [nbformat.read(d / path.name, as_version=4) for d in args.tag_from]
            print(f"{path.name}: {tag_cpu_dependent(path, variants)}")
        return 0
    if args.tables:
        for path in rewrite_tables():
            print(f"rewrote {path.relative_to(ROOT)}")
        return 0
    if args.diff and not args.out:
        parser.error("--diff needs --out (the stored notebooks stay the reference)")
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not args.out and (not portable.in_force() or os.environ.get("TQDM_DISABLE") != "1"):
        parser.error(
            "stored outputs must come from `python3 course.py store` (portable numerics, no progress bars)"
        )
    if not args.out:
        same, why = fingerprint.same_as_stored(os.environ)
        if args.new_machine and args.notebooks:
            parser.error("--new-machine stores every notebook: name none")
        if not same and not args.new_machine:
            parser.error(
                f"{why}. Stored here, a chapter would disagree with the others in the last bits; "
                "store on a machine with the recorded fingerprint, or store every notebook here "
                "with --new-machine"
            )
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
    if args.new_machine and not args.out:
        fingerprint.main(["--record"])
        for path in rewrite_tables():
            print(f"rewrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
