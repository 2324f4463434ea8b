"""A chapter imports only what the course installs for learners.

Learners (Colab's set-up cell, a plain ``pip install -e .``) get the ``dependencies`` of
pyproject.toml and nothing else: no ``lab`` or ``test`` extra. So every import in a notebook, and
in the package, must come from the standard library, from ``mmcourse`` itself, or from a
distribution listed there *directly* (not merely pulled in by another one, which may stop doing
so). The import names are mapped to distributions with ``importlib.metadata``
(``sklearn`` -> ``scikit-learn``, ``PIL`` -> ``pillow``).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from test_environment import pyproject_groups

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PROJECT = "mmcourse"
# Learner dependencies no notebook imports by name, and why the course still installs them.
USED_INDIRECTLY = {
    "ipywidgets": "tqdm.auto draws its progress bars as Jupyter widgets",
    "onnx": "torch.onnx.export builds and saves its graph with it (mmcourse.deploy.onnx_runtime)",
    "onnxscript": "torch.onnx.export(dynamo=True) translates ATen operations with it",
}


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them: ``Scikit_Learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Import:
    where: str  # "notebooks/08_x.ipynb, cell 12 (id ab12cd34), line 3"
    statement: str  # "from sklearn.metrics import f1_score"
    module: str  # top-level name: "sklearn"


def python_source(cell_source: str) -> str:
    """A code cell as plain Python: IPython ``!shell`` and ``%magic`` lines become ``pass``."""
    lines = []
    for line in cell_source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("!", "%")):
            line = line[: len(line) - len(stripped)] + "pass"
        lines.append(line)
    return "\n".join(lines)


def imports_in(source: str, where: str) -> list[Import]:
    """Every absolute import in ``source`` (nested ones too), with its top-level module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        statement = ast.get_source_segment(source, node) or ast.unparse(node)
        for module in modules:
            found.append(Import(f"{where}, line {node.lineno}", statement, module.split(".")[0]))
    return found


def notebook_imports(path: Path) -> list[Import]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for number, cell in enumerate(notebook["cells"], start=1):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        where = f"notebooks/{path.name}, cell {number} (id {cell.get('id', '?')})"
        try:
            found += imports_in(python_source(source), where)
        except SyntaxError as error:
            pytest.fail(f"{where}: cannot parse the code cell: {error}")
    return found


def file_imports(folder: str) -> list[Import]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        found += imports_in(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    return found


def package_imports() -> list[Import]:
    return file_imports(PROJECT)


@cache
def installed_modules() -> dict[str, list[str]]:
    """Top-level module -> the installed distributions that provide it (slow: computed once)."""
    return metadata.packages_distributions()


def distributions_of(module: str) -> tuple[str, ...]:
    """The installed distributions that provide top-level ``module``, normalized."""
    return tuple(normalize(d) for d in installed_modules().get(module, ()))


def missing(imports: list[Import], allowed: set[str]) -> list[str]:
    """One readable line per import that neither the standard library nor ``allowed`` covers."""
    problems = []
    for item in imports:
        if item.module in sys.stdlib_module_names or item.module == PROJECT:
            continue
        provided_by = distributions_of(item.module)
        if not provided_by:
            problems.append(
                f"{item.where}: `{item.statement}` imports {item.module!r}, which no installed "
                "distribution provides, so it cannot be matched to a learner dependency"
            )
        elif not set(provided_by) & allowed:
            names = " or ".join(repr(d) for d in provided_by)
            problems.append(
                f"{item.where}: `{item.statement}` needs the distribution {names}, which is "
                "not in pyproject.toml's [project] dependencies (what learners and Colab install)"
            )
    return problems


def learner_distributions() -> set[str]:
    return {normalize(name) for name in pyproject_groups()["learner"]}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_imports_only_what_learners_install(path: Path) -> None:
    problems = missing(notebook_imports(path), learner_distributions())
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_package_imports_only_what_learners_install() -> None:
    problems = missing(package_imports(), learner_distributions())
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_tests_import_only_what_the_test_extra_installs() -> None:
    # the tests' own helpers (conftest, ...) and the scripts they test (on pytest's pythonpath)
    local = {"tests"} | {
        p.stem for folder in ("tests", "scripts") for p in (ROOT / folder).glob("*.py")
    }
    imports = [item for item in file_imports("tests") if item.module not in local]
    test_extra = {normalize(name) for name in pyproject_groups()["test"]}
    problems = missing(imports, learner_distributions() | test_extra)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_every_learner_dependency_is_used() -> None:
    """`dependencies` is exactly what learners need: nothing there that nobody imports."""
    imported = set()
    for item in package_imports() + [i for p in NOTEBOOKS for i in notebook_imports(p)]:
        imported.update(distributions_of(item.module))
    unused = learner_distributions() - imported - set(USED_INDIRECTLY)
    assert not unused, (
        f"{sorted(unused)} are learner dependencies in pyproject.toml, but no notebook and no "
        "module of mmcourse imports them: move them to an extra, or name them in USED_INDIRECTLY"
    )


def test_the_checker_catches_an_undeclared_import() -> None:
    cell = (
        'import sys\nif "google.colab" in sys.modules:\n    !pip install x\nimport sklearn.metrics'
    )
    found = imports_in(python_source(cell), "a cell")
    assert [i.module for i in found] == ["sys", "sklearn"]
    problems = missing(found, {"torch"})
    assert len(problems) == 1
    assert "a cell, line 4" in problems[0]
    assert "import sklearn.metrics" in problems[0] and "'scikit-learn'" in problems[0]
    assert not missing(found, {"scikit-learn"})
