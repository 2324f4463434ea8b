"""Every ``>>>`` example in the package's docstrings runs and shows what it says it shows.

``python3 course.py test`` runs pytest on ``tests`` (and the notebooks), so the examples are
checked there too; a failing example fails this test with doctest's report.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

import mmcourse

MODULES = sorted(info.name for info in pkgutil.walk_packages(mmcourse.__path__, "mmcourse."))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def run_examples(name: str) -> tuple[doctest.TestResults, str]:
    """Run the examples of module ``name``; return doctest's counts and its report."""
    module = importlib.import_module(name)
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test, out=report.write)
    return runner.summarize(verbose=False), report.getvalue()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name: str) -> None:
    result, report = run_examples(name)
    assert result.failed == 0, report


def test_the_examples_are_found() -> None:
    """Guards the test above against finding nothing (e.g. a broken module list)."""
    assert "mmcourse.metrics" in MODULES and "mmcourse.models.introspect" in MODULES
    attempted = sum(run_examples(name)[0].attempted for name in MODULES)
    assert attempted >= 30
