"""The book (scripts/build_book.py, `python3 course.py book`): it builds from the stored outputs,
its table of contents is the course map, and its pages load nothing from the internet -- maths,
scripts and styles come from files beside them, so the book works opened from disk offline.

The build runs once per session (about 10-20 s) into a temporary folder. It needs the npm
packs of MathJax, require.js and the widget manager, which `python3 course.py setup` fetches
into book/_build/npm/ (tests never download); where they are missing, the build tests are
skipped with that reason. (A real browser opens the built book in tests/test_browser.py.)
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import build_book  # scripts/ is on pytest's pythonpath
import nbformat
import pytest
import yaml

from mmcourse.chapters import CHAPTERS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    return [entry["file"] for part in toc["parts"] for entry in part["chapters"]]


def test_the_table_of_contents_is_the_course_map() -> None:
    chapters = [Path(chapter.file).stem for chapter in CHAPTERS]
    files = toc_files()
    assert files[: len(chapters)] == chapters
    assert files[len(chapters) :] == ["teachers_guide", "references"]
    for name in files[len(chapters) :]:
        assert (ROOT / "book" / f"{name}.md").is_file()


def test_the_book_executes_nothing_and_points_at_local_scripts() -> None:
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    sphinx = CONFIG["sphinx"]["config"]
    urls = [sphinx["mathjax_path"], *sphinx["nb_ipywidgets_js"]]
    assert not [url for url in urls if urlsplit(url).scheme], "a script from the internet"
    assert sphinx["html_extra_path"] == ["extra"]


def test_npm_pack_names() -> None:
    assert build_book.tarball_name("mathjax@3.2.2") == "mathjax-3.2.2.tgz"
    name = build_book.tarball_name("@jupyter-widgets/html-manager@1.0.15")
    assert name == "jupyter-widgets-html-manager-1.0.15.tgz"


def test_the_book_folds_a_solution_and_points_file_links_at_the_repository() -> None:
    notebook = build_book.book_notebook(ROOT / "notebooks" / "08_training_evaluation.ipynb", "R")
    original = nbformat.read(ROOT / "notebooks" / "08_training_evaluation.ipynb", as_version=4)
    for cell, before in zip(notebook.cells, original.cells, strict=True):
        tags = cell.metadata.get("tags", [])
        if "solution" in tags:
            assert "hide-cell" in tags and "hide-input" not in tags
        if cell.cell_type == "markdown":
            assert "](../" not in cell.source
            assert cell.source.count("](R/blob/main/") == before.source.count("](../")
        assert cell.get("outputs") == before.get("outputs")


# ------------------------------------------------------------------------------ the build
class Links(HTMLParser):
    """Every URL a page would load (script src, link href of a stylesheet or preload, img and
    iframe src) and every anchor's href."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.anchors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag in ("script", "img", "iframe", "source", "audio", "video") and values.get("src"):
            self.loads.append(values["src"])
        elif tag == "link" and values.get("rel", "") in ("stylesheet", "preload", "icon"):
            self.loads.append(values.get("href", ""))
        elif tag == "a" and "href" in values:
            self.anchors.append(values["href"])


def page_links(path: Path) -> Links:
    parser = Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.mark.slow  # builds the book
def test_every_chapter_and_page_is_built(built_book: Path) -> None:
    for name in toc_files():
        assert (built_book / f"{name}.html").is_file(), name
    assert "intro.html" in (built_book / "index.html").read_text()
    assert (built_book / "search.html").is_file()
    index = (built_book / "searchindex.js").read_text()
    assert "beam" in index and "zero-shot" in index.lower(), "the search index lacks chapter text"


@pytest.mark.slow  # builds the book
def test_no_page_loads_anything_from_the_internet(built_book: Path) -> None:
    """Every script, style, image and frame of every page is a file of the book itself."""
    pages = sorted(built_book.glob("*.html"))
    assert len(pages) > len(CHAPTERS)
    for page in pages:
        for url in page_links(page).loads:
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, f"{page.name} loads {url}"
            if url.startswith("data:"):
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page.name} loads {url}, which the book lacks"


@pytest.mark.slow  # builds the book
def test_maths_is_rendered_by_a_local_mathjax(built_book: Path) -> None:
    page = built_book / "02_joint_representation.html"
    loads = page_links(page).loads
    mathjax = [url for url in loads if "mathjax" in url.lower()]
    assert mathjax, "a page with maths must load MathJax"
    assert all(not urlsplit(url).scheme for url in mathjax)
    text = page.read_text()
    assert r"Z = W_X X' + W_Y Y'" in text or r"W_X" in text
    fonts = built_book / "assets" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert any(fonts.glob("*.woff")), "MathJax's fonts are missing"


@pytest.mark.slow  # builds the book
def test_figures_are_files_of_the_book(built_book: Path) -> None:
    page = built_book / "04_image_encoders.html"
    images = [url for url in page_links(page).loads if url.startswith("_images/")]
    assert images and all((built_book / url).is_file() for url in images)


@pytest.mark.slow  # builds the book
def test_worked_solutions_are_behind_a_toggle(built_book: Path) -> None:
    for chapter in CHAPTERS[1:]:
        notebook = nbformat.read(ROOT / "notebooks" / chapter.file, as_version=4)
        solutions = sum("solution" in c.metadata.get("tags", []) for c in notebook.cells)
        page = (built_book / chapter.file.replace(".ipynb", ".html")).read_text()
        folded = re.findall(r'<div class="cell tag_solution[^"]*tag_hide-cell[^"]*"', page)
        assert len(folded) == solutions > 0, chapter.file


@pytest.mark.slow  # builds the book
def test_the_references_are_listed(built_book: Path) -> None:
    page = (built_book / "references.html").read_text()
    for title in ("Show and Tell", "Show, Attend and Tell", "Natural Language Supervision"):
        assert title in page, title


@pytest.mark.slow  # builds the book
def test_the_widget_scripts_are_local_files(built_book: Path) -> None:
    for url in CONFIG["sphinx"]["config"]["nb_ipywidgets_js"]:
        path = (built_book / "_static" / url).resolve()
        assert path.is_file(), f"{url} is not in the book"
