"""The helper package stays small enough to read: no module over 600 lines, no function whose
code (its docstring left out) runs over 60 lines, no public function or method with more than
10 parameters (``self`` not counted). A long list of settings goes into a dataclass such as
``train.Loop`` or ``digits.DigitRecipe``; a long check into helpers with one job each."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mmcourse"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 600
MAX_BODY_LINES = 60
MAX_PARAMETERS = 10


def functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the function's last line."""
    body = function.body
    first = body[0]
    has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if has_docstring and isinstance(first.value.value, str):
        if len(body) == 1:
            return 0
        first = body[1]
    return function.end_lineno - first.lineno + 1


def parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = function.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return len([name for name in names if name not in ("self", "cls")])


def where(path: Path, function: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{function.lineno} {function.name}"


def test_the_measures_count_what_they_say(tmp_path: Path) -> None:
    """By hand: a docstring and 3 statements are 3 body lines; self is not a parameter."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "class A:\n"
        "    def f(self, a, b=1, *rest, c, **options):\n"
        '        """Doc."""\n'
        "        x = 1\n"
        "        y = 2\n"
        "        return x + y\n"
    )
    (function,) = functions(sample)
    assert body_lines(function) == 3 and parameters(function) == 5


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, (
        f"{path.relative_to(PACKAGE.parent)} has {lines} lines: split it by job"
    )


def test_no_function_body_is_over_60_lines() -> None:
    long = [
        f"{where(path, f)} ({body_lines(f)} lines)"
        for path in MODULES
        for f in functions(path)
        if body_lines(f) > MAX_BODY_LINES
    ]
    assert not long, "functions to split: " + "; ".join(long)


def test_no_public_function_takes_more_than_10_parameters() -> None:
    wide = [
        f"{where(path, f)} ({parameters(f)} parameters)"
        for path in MODULES
        for f in functions(path)
        if not f.name.startswith("_") and parameters(f) > MAX_PARAMETERS
    ]
    assert not wide, "group the settings of: " + "; ".join(wide)
