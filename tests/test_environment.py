"""The project's own files agree: environment.yml vs pyproject.toml, README vs .ci/run."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda's name -> the name pip knows

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


def requirement(text: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", text)
    assert match, text
    return match.group(1).lower(), match.group(2).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    listed = project["dependencies"] + project["optional-dependencies"]["test"]
    return dict(requirement(item) for item in listed)


def conda_requirements() -> dict[str, str]:
    packages = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        match = re.fullmatch(r"  - ([A-Za-z0-9_.\-]+)(.*)", line)
        if match and match.group(1) not in ("python", "pip", "conda-forge"):
            name, spec = requirement(match.group(1) + match.group(2))
            packages[CONDA_NAMES.get(name, name)] = spec
    return packages


def test_environment_yml_lists_the_same_packages_as_pyproject() -> None:
    assert conda_requirements() == pyproject_requirements()


def test_course_packages_are_declared() -> None:
    needed = {"torch", "torchvision", "jupyterlab", "nbval", "ipywidgets", "matplotlib", "seaborn"}
    assert needed <= set(pyproject_requirements())


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python3 course.py test"
    assert command in readme
    assert re.search(rf"^{re.escape(command)}$", ci, flags=re.MULTILINE)
    assert "python3 course.py lab" in readme


def test_every_notebook_is_in_the_readme_and_the_chapter_map() -> None:
    readme = (ROOT / "README.md").read_text()
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for name in notebooks:
        assert name in readme, f"{name} is missing from README.md"
