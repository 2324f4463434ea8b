"""Write the course's address, from pyproject.toml, into the notebooks, README and CONTRIBUTING.

Usage:  python scripts/sync_notebook_headers.py [--check] [--root FOLDER]

The address is written in one place only: ``Repository`` under ``[project.urls]`` in
pyproject.toml. This script derives from it

- each notebook's "Open in Colab" link (in its first cell, Markdown),
- the ``!git clone`` line of each notebook's Colab set-up cell (its second cell),
- the Colab links and the set-up cell's clone line in README.md and CONTRIBUTING.md.

It rewrites those URLs and nothing else: cell ids, metadata, outputs and execution counts stay
as they are, notebooks are written as nbformat writes them, and a file that is already right is
not touched, so a second run changes nothing. ``--check`` changes nothing and exits with 1 if
any file disagrees with pyproject.toml (tests/test_repository_url.py runs it). Standard library
only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRANCH = "main"  # the branch Colab opens the notebooks from
DOCS = ("README.md", "CONTRIBUTING.md")

GITHUB_URL = re.compile(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?")
# A text link, not Colab's badge image: the image would be fetched from the internet and shows
# broken offline (JupyterLab in a classroom without network, the book opened from disk).
BADGE = re.compile(r"(\[Open in Colab\]\()([^)\s]*)(\))")
COLAB_PREFIX = re.compile(
    r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/"
)
CLONE = re.compile(r"(!git clone -q --depth 1 )(\S+)( /content/course)")


def url_without_tomllib(pyproject: str) -> str | None:
    """``Repository`` under ``[project.urls]``, read without tomllib (Python 3.10)."""
    section = re.search(r"^\[project\.urls\][ \t]*$(.*?)(?=^\[|\Z)", pyproject, re.M | re.S)
    if section is None:
        return None
    match = re.search(r"""^Repository\s*=\s*["']([^"'\n]*)["']""", section.group(1), re.M)
    return match.group(1) if match else None


def repository_url(root: Path = ROOT) -> str:
    """The course's GitHub address from pyproject.toml, as ``https://github.com/OWNER/NAME``."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        url = url_without_tomllib(text)
    else:
        url = tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository")
    match = GITHUB_URL.fullmatch(url or "")
    if match is None:
        raise SystemExit(
            f"{root / 'pyproject.toml'}: [project.urls] needs Repository = "
            f'"https://github.com/OWNER/NAME" (Colab opens notebooks from GitHub); found {url!r}'
        )
    return f"https://github.com/{match.group(1)}/{match.group(2)}"


def colab_prefix(url: str) -> str:
    """``https://colab.research.google.com/github/OWNER/NAME/blob/main/``."""
    owner_name = url.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/{BRANCH}/"


def _substitute(cell: dict, pattern: re.Pattern[str], replacement: str) -> int:
    """Apply ``pattern.sub`` to a cell's source (a list of lines or one string); count matches."""
    source = cell["source"]
    lines = [source] if isinstance(source, str) else source
    total = 0
    for i, line in enumerate(lines):
        lines[i], count = pattern.subn(lambda m: m.expand(replacement), line)
        total += count
    if isinstance(source, str):
        cell["source"] = lines[0]
    return total


def dumps_notebook(notebook: dict) -> str:
    """JSON exactly as nbformat writes a notebook."""
    text = json.dumps(
        notebook, sort_keys=True, indent=1, ensure_ascii=False, separators=(",", ": ")
    )
    return text + "\n"


def sync_notebook(path: Path, url: str, root: Path = ROOT) -> tuple[str, list[str]]:
    """The notebook's text with its badge and clone URLs derived from ``url``, and problems."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = notebook.get("cells", [])
    problems = []
    badge_url = colab_prefix(url) + path.relative_to(root).as_posix()
    if not cells or cells[0]["cell_type"] != "markdown":
        problems.append("the first cell is not the Markdown title cell")
    elif not _substitute(cells[0], BADGE, rf"\g<1>{badge_url}\g<3>"):
        problems.append("the first cell has no '[Open in Colab](...)' link")
    if len(cells) < 2 or cells[1]["cell_type"] != "code":
        problems.append("the second cell is not the Colab set-up cell")
    elif not _substitute(cells[1], CLONE, rf"\g<1>{url}\g<3>"):
        problems.append("the second cell has no '!git clone -q --depth 1 URL /content/course'")
    return dumps_notebook(notebook), problems


def sync_doc(path: Path, url: str) -> str:
    """A Markdown file's text with its Colab links and clone line derived from ``url``."""
    text = path.read_text(encoding="utf-8")
    text = COLAB_PREFIX.sub(lambda m: colab_prefix(url), text)
    return CLONE.sub(lambda m: m.group(1) + url + m.group(3), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the course folder")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    url = repository_url(root)

    wanted: dict[Path, str] = {}
    problems = []
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        wanted[path], found = sync_notebook(path, url, root)
        problems += [f"{path.relative_to(root)}: {problem}" for problem in found]
    for name in DOCS:
        if (root / name).is_file():
            wanted[root / name] = sync_doc(root / name, url)
    stale = [path for path, text in wanted.items() if path.read_text(encoding="utf-8") != text]

    for problem in problems:
        print(problem, file=sys.stderr)
    if args.check:
        for path in stale:
            print(f"{path.relative_to(root)}: does not match {url}", file=sys.stderr)
        if stale:
            print("run: python scripts/sync_notebook_headers.py", file=sys.stderr)
        return 1 if stale or problems else 0
    for path in stale:
        with open(path, "w", encoding="utf-8", newline="\n") as file:
            file.write(wanted[path])
        print(f"updated {path.relative_to(root)}")
    if not stale:
        print(f"everything already points to {url}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
