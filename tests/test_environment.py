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


def pyproject_groups() -> dict[str, dict[str, str]]:
    """``{"learner": ..., "lab": ..., "test": ...}``, each ``{name: version spec}``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"learner": project["dependencies"], **project["optional-dependencies"]}
    return {group: dict(requirement(item) for item in items) for group, items in groups.items()}


def pyproject_requirements() -> dict[str, str]:
    """Everything a local set-up installs: the learner dependencies and every extra."""
    return {name: spec for group in pyproject_groups().values() for name, spec in group.items()}


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
    groups = pyproject_groups()
    assert set(groups) == {"learner", "lab", "book", "test"}
    assert set(groups["book"]) == {"jupyter-book"}
    learner = {"torch", "torchvision", "ipywidgets", "matplotlib", "seaborn", "tqdm"}
    assert learner | {"scikit-learn", "sacrebleu"} <= set(groups["learner"])
    assert "jupyterlab" in groups["lab"]
    assert {"pytest", "nbval", "ruff", "nltk"} <= set(groups["test"])
    # Colab and a learner's `pip install` get the learner dependencies only: no JupyterLab.
    assert not {"jupyterlab", "pytest", "nbval", "ruff"} & set(groups["learner"])


def test_no_package_is_declared_twice() -> None:
    groups = pyproject_groups()
    seen: dict[str, str] = {}
    for group, names in groups.items():
        for name in names:
            assert name not in seen, f"{name} is in both {seen[name]!r} and {group!r}"
            seen[name] = group


def test_course_py_installs_every_extra() -> None:
    source = (ROOT / "course.py").read_text()
    installs = re.findall(r'^INSTALL_TARGET = "\.\[([\w,]+)\]"', source, flags=re.M)
    assert len(installs) == 1, installs
    assert source.count("INSTALL_TARGET") == 3  # defined once, used by both install commands
    extras = set(installs[0].split(","))
    assert extras == set(pyproject_groups()) - {"learner"}


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
