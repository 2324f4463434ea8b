"""Build the course's book: every chapter with its stored outputs, readable offline.

    python3 course.py book          # -> book/_build/html/index.html, opened from disk

Jupyter Book 1 (Sphinx) builds it; nothing is executed. Three steps:

1. **Stage** the sources in ``book/_build/src/``: the book's own pages (``book/*.md``, its
   configuration, the bibliography) and a copy of each chapter in which a worked solution is
   tagged ``hide-cell`` (its code *and* output behind a toggle; in the notebooks only the code
   is folded). All pages sit side by side, so every page finds the local scripts at the same
   relative path.
2. **Fetch the scripts a page would load from a CDN** -- MathJax (maths), require.js and the
   Jupyter widget manager (widgets from their stored state) -- as npm packages, once, with
   ``npm pack`` from the npm registry into ``book/_build/npm/``, and unpack the files a page
   needs into ``assets/``, which Sphinx copies to the site's root (``html_extra_path``). Not
   into ``_static/``: Jupyter Book adds every script found there to every page.
3. **Build** with ``jupyter-book build`` into ``book/_build/html/``.

Only step 2 needs a network (the npm registry), and only the first time: the packs stay in
``book/_build/npm/``, which can be copied to a machine with no network.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import nbformat
import sync_notebook_headers  # beside this script: the course's address, from pyproject.toml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
BUILD = BOOK / "_build"
STAGE = BUILD / "src"
NPM_CACHE = BUILD / "npm"
HTML = BUILD / "html"
NOTEBOOKS = ROOT / "notebooks"

# npm package -> where under assets/ and which of its files (paths under package/, a folder
# meaning all it holds, or a glob) a page needs.
ASSETS: dict[str, tuple[str, list[str]]] = {
    "mathjax@3.2.2": (
        "mathjax",
        [
            "es5/tex-chtml.js",
            "es5/input/tex/extensions",
            "es5/output/chtml/fonts/woff-v2",
            "es5/a11y",
            "es5/ui",
            "es5/adaptors",
        ],
    ),
    "requirejs@2.3.8": ("", ["require.js"]),
    "@jupyter-widgets/html-manager@1.0.15": (
        "html-manager",
        [
            "dist/embed-amd.js",
            *(f"dist/*.{font}" for font in ("woff", "woff2", "ttf", "eot", "svg")),
        ],
    ),
}
BOOK_FILES = ("_config.yml", "_toc.yml", "*.md", "*.bib")


def tarball_name(spec: str) -> str:
    """``npm pack``'s file name for ``name@version``: ``@scope/name`` -> ``scope-name``."""
    name, version = spec.rsplit("@", 1)
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def fetch_assets(cache: Path = NPM_CACHE) -> dict[str, Path]:
    """Each package's tarball in ``cache``, fetched with ``npm pack`` when missing."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec in ASSETS if not (cache / tarball_name(spec)).is_file()]
    if missing:
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit(
                "building the book needs MathJax, require.js and the widget manager, fetched "
                f"once from the npm registry with `npm pack`; npm is not installed. Install "
                f"Node.js (npm), or copy {cache} from a machine that has built the book."
            )
        try:
            subprocess.run(
                [npm, "pack", "--silent", "--pack-destination", str(cache), *missing],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            raise SystemExit(
                f"`npm pack {' '.join(missing)}` failed (no network to the npm registry?):\n"
                f"{getattr(error, 'stderr', '') or error}\nCopy {cache} from a machine that "
                "has built the book, or build once with a network."
            ) from error
    return {spec: cache / tarball_name(spec) for spec in ASSETS}


def unpack_assets(tarballs: dict[str, Path], target: Path) -> None:
    """Unpack the files :data:`ASSETS` names into ``target`` (e.g. ``assets/mathjax/...``)."""
    for spec, (folder, members) in ASSETS.items():
        destination = target / folder
        with tarfile.open(tarballs[spec]) as archive:
            for member in archive.getmembers():
                inside = member.name.removeprefix("package/")
                wanted = any(
                    inside.startswith(m + "/") or fnmatch.fnmatchcase(inside, m) for m in members
                )
                if not wanted or not member.isfile():
                    continue
                # es5/tex-chtml.js -> mathjax/tex-chtml.js: MathJax finds its fonts and
                # extensions relative to its own script.
                relative = inside.removeprefix("es5/").removeprefix("dist/")
                path = destination / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                path.write_bytes(source.read())


def book_notebook(path: Path, repository: str) -> nbformat.NotebookNode:
    """A chapter as the book shows it: each worked solution's code and output folded, and a
    link to a file of the repository (``](../mmcourse/x.py)``, which works in JupyterLab)
    pointed at that file on the course's ``repository`` instead."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "solution" in tags:
            cell.metadata["tags"] = [t for t in tags if t != "hide-input"] + ["hide-cell"]
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("](../", f"]({repository}/blob/main/")
    return notebook


def stage(target: Path = STAGE) -> Path:
    """Copy the book's pages and the chapters into ``target`` (emptied first)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for pattern in BOOK_FILES:
        for path in BOOK.glob(pattern):
            shutil.copy2(path, target / path.name)
    repository = sync_notebook_headers.repository_url(ROOT)
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nbformat.write(book_notebook(path, repository), target / path.name)
    unpack_assets(fetch_assets(), target / "extra" / "assets")
    return target


def build(source: Path = STAGE, html: Path = HTML) -> float:
    """Build the staged book into ``html`` (``jupyter-book`` writes to ``<path-output>/_build/
    html``, so ``html`` must end in ``_build/html``); returns the build's seconds."""
    if html.parent.name != "_build" or html.name != "html":
        raise ValueError(f"html must be a folder <somewhere>/_build/html, got {html}")
    if html.exists():
        shutil.rmtree(html)
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from jupyter_book.cli.main import main; main()",
            "build",
            str(source),
            "--path-output",
            str(html.parent.parent),
            "--keep-going",
        ],
        check=True,
    )
    if not (html / "index.html").is_file():
        raise SystemExit(f"the build wrote no {html / 'index.html'}")
    return time.perf_counter() - start


def assets_cached(cache: Path = NPM_CACHE) -> bool:
    """Whether every npm pack the book needs is in ``cache`` already."""
    return all((cache / tarball_name(spec)).is_file() for spec in ASSETS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--fetch", action="store_true", help="only fetch the npm packs (course.py setup does)"
    )
    args = parser.parse_args(argv)
    if args.fetch:
        fetch_assets()
        print(f"the book's scripts are in {NPM_CACHE}")
        return 0
    seconds = build(stage())
    size = sum(p.stat().st_size for p in HTML.rglob("*") if p.is_file())
    print(f"built the book in {seconds:.0f} s: {HTML / 'index.html'} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
