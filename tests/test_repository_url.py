"""The course's address is written once (pyproject.toml) and everything else agrees with it.

Each notebook's "Open in Colab" link and Colab set-up cell, README and CONTRIBUTING are
generated from ``[project.urls] Repository`` by scripts/sync_notebook_headers.py. The set-up cell
installs exactly what learners need: the package with no extras.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
import sync_notebook_headers as sync  # scripts/ is on pytest's pythonpath
from test_environment import tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DOCS = ("README.md", "CONTRIBUTING.md")
PIP_LINE = "%pip install -q -e /content/course"
# GitHub repositories other than the course that its texts may link to (none yet).
OTHER_PROJECTS: set[str] = set()
GITHUB_LINK = re.compile(r"(?:github\.com|colab\.research\.google\.com/github)/([\w.-]+/[\w.-]+)")


def pyproject_url() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def colab_url(notebook: str) -> str:
    owner_name = pyproject_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/main/notebooks/{notebook}"


def cells(path: Path) -> list[str]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(cell["source"]) for cell in notebook["cells"]]


def foreign_links(text: str) -> list[str]:
    """GitHub (and Colab-from-GitHub) links in ``text`` that are not the course's address."""
    home = pyproject_url().removeprefix("https://github.com/")
    found = [m.group(1).removesuffix(".git") for m in GITHUB_LINK.finditer(text)]
    return [link for link in found if link != home and link not in OTHER_PROJECTS]


def colab_cell_template() -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split("## The Colab set-up cell", 1)[1]
    match = re.search(r"```python\n(.*?)\n```", section, flags=re.S)
    assert match, "CONTRIBUTING.md: no ```python block under 'The Colab set-up cell'"
    return match.group(1)


def test_the_address_is_a_github_repository() -> None:
    url = pyproject_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    assert sync.repository_url(ROOT) == url


def test_the_script_reads_the_address_without_tomllib_too() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert sync.url_without_tomllib(text) == pyproject_url()
    assert sync.url_without_tomllib("[project]\nname = 'x'\n") is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_badge_and_colab_cell_use_the_address(path: Path) -> None:
    title, setup = cells(path)[:2]
    badge = f"[Open in Colab]({colab_url(path.name)})"
    assert badge in title, (
        f"{path.name}: the first cell lacks {badge}; run python scripts/sync_notebook_headers.py"
    )
    clone = f"!git clone -q --depth 1 {pyproject_url()} /content/course"
    assert clone in setup, f"{path.name}: the Colab cell does not clone {pyproject_url()}"
    assert foreign_links(title + setup) == [], f"{path.name}: links elsewhere"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_colab_cell_installs_exactly_the_learner_dependencies(path: Path) -> None:
    setup = cells(path)[1]
    installs = [line.strip() for line in setup.splitlines() if re.search(r"\bpip\b", line)]
    # No extras: Colab gets the learner dependencies and neither JupyterLab nor the test tools.
    assert installs == [PIP_LINE], f"{path.name}: the Colab cell installs {installs}"
    assert setup == colab_cell_template(), (
        f"{path.name}: the Colab cell differs from CONTRIBUTING.md's 'The Colab set-up cell'"
    )


def test_readme_and_contributing_use_the_address() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert colab_url("00_start_here.ipynb") in readme
    assert f"[Open in Colab]({colab_url('NN_name.ipynb')})" in contributing
    assert f"!git clone -q --depth 1 {pyproject_url()} /content/course" in contributing
    assert PIP_LINE in colab_cell_template()
    for name, text in (("README.md", readme), ("CONTRIBUTING.md", contributing)):
        assert foreign_links(text) == [], f"{name} links to another repository"


def test_every_notebook_markdown_cell_links_only_to_the_course() -> None:
    for path in NOTEBOOKS:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for cell in notebook["cells"]:
            if cell["cell_type"] == "markdown":
                links = foreign_links("".join(cell["source"]))
                assert links == [], f"{path.name}, cell {cell.get('id')}: {links}"


def test_sync_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert sync.main(["--check"]) == 0, capsys.readouterr().err


def test_sync_moves_a_fork_and_touches_nothing_else(tmp_path: Path) -> None:
    for name in ("pyproject.toml", *DOCS):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    home, fork = pyproject_url(), "https://github.com/someone/my-course"
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f'"{home}"', f'"{fork}.git"'))

    assert sync.main(["--check", "--root", str(tmp_path)]) == 1
    assert sync.main(["--root", str(tmp_path)]) == 0
    assert sync.main(["--check", "--root", str(tmp_path)]) == 0
    written = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert sync.main(["--root", str(tmp_path)]) == 0  # idempotent: nothing rewritten
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == written

    old_owner_name, new_owner_name = home[len("https://github.com/") :], "someone/my-course"
    for name in [*DOCS, *(f"notebooks/{p.name}" for p in NOTEBOOKS)]:
        before = (ROOT / name).read_text(encoding="utf-8")
        after = (tmp_path / name).read_text(encoding="utf-8")
        assert after != before, f"{name} was not moved to the fork"
        # Only the address changed: swapping it back gives the original, byte for byte.
        assert after.replace(new_owner_name, old_owner_name) == before, name


class FakeShell:
    """Stands in for Colab's IPython: records the shell commands and line magics a cell runs
    instead of running them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def system(self, command: str) -> None:
        self.calls.append(("!", command))

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1) -> None:
        self.calls.append(("%" + name, line))


def run_setup_cell(source: str, in_colab: bool, monkeypatch: pytest.MonkeyPatch) -> FakeShell:
    """Run a Colab set-up cell as IPython would (``!`` and ``%`` lines translated by IPython's
    own transformer), with ``google.colab`` importable or not, and the shell faked."""
    from IPython.core.inputtransformer2 import TransformerManager

    shell = FakeShell()
    if in_colab:
        google = types.ModuleType("google")
        colab = types.ModuleType("google.colab")
        google.colab = colab  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", colab)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the cell inserts into sys.path
    code = TransformerManager().transform_cell(source)
    exec(compile(code, "<colab set-up cell>", "exec"), {"get_ipython": lambda: shell})
    return shell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_in_colab_the_set_up_cell_clones_the_course_and_installs_only_its_package(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faking the ``google.colab`` module: the cell clones the configured repository, installs
    the package from the clone without extras (exactly ``[project] dependencies``, no lab or
    test tools) and puts the clone on ``sys.path``; outside Colab it does nothing at all."""
    setup = cells(path)[1]
    shell = run_setup_cell(setup, in_colab=True, monkeypatch=monkeypatch)
    assert shell.calls == [
        ("!", f"git clone -q --depth 1 {pyproject_url()} /content/course"),
        ("%pip", "install -q -e /content/course"),
    ]
    assert sys.path[0] == "/content/course"
    sys.path.remove("/content/course")
    assert run_setup_cell(setup, in_colab=False, monkeypatch=monkeypatch).calls == []
    assert "/content/course" not in sys.path


def test_the_editable_install_without_extras_is_the_learner_dependencies() -> None:
    """What ``pip install -e /content/course`` installs is ``[project] dependencies``: the
    packages the notebooks import, and none of the lab, test or book extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ;]", spec)[0].lower() for spec in project["dependencies"]}
    assert {"torch", "torchvision", "ipywidgets", "matplotlib", "seaborn"} <= names
    extras = project["optional-dependencies"]
    for extra, specs in extras.items():
        for spec in specs:
            name = re.split(r"[<>=!~\[ ;]", spec)[0].lower()
            assert name not in names, f"{name} is both a dependency and in the {extra} extra"
    assert {"jupyterlab", "pytest", "nbval"} & names == set()
