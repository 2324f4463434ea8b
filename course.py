#!/usr/bin/env python3
"""Set up and run the course with one command (standard library only; Linux, macOS, Windows).

    python3 course.py lab      set everything up, then open the course in JupyterLab
    python3 course.py test     set everything up, then run the whole test suite
    python3 course.py setup    only set everything up

"Set up" makes a virtual environment in .venv/ and installs the course's helper package with
everything it needs (pyproject.toml). It is idempotent: when pyproject.toml has not changed
since the last set-up, nothing is installed again.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".setup-stamp"
MIN_PYTHON = (3, 10)

LINT_PATHS = ["mmcourse", "tests", "notebooks", "scripts", "benchmarks", "course.py"]
TEST_COMMAND = [
    "-m", "pytest", "tests", "notebooks",
    "--nbval", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
]  # fmt: skip


def venv_python() -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    return VENV / scripts / ("python.exe" if os.name == "nt" else "python")


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True, env=env)


def wanted_stamp() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def setup() -> Path:
    """Create .venv and install the course into it, unless that was already done."""
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"The course needs Python {'.'.join(map(str, MIN_PYTHON))} or newer.")
    python = venv_python()
    if not python.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == wanted_stamp():
        print("Set-up is up to date (delete .venv/.setup-stamp to force a reinstall).")
        return python
    run(python, "-m", "pip", "install", "--upgrade", "pip")
    run(python, "-m", "pip", "install", "-e", ".[lab,test]")
    STAMP.write_text(wanted_stamp())
    return python


def test(python: Path, extra: list[str]) -> None:
    """Lint, then unit tests and the notebooks (nbval, strict) in one pytest run."""
    env = dict(os.environ, MMCOURSE_PROFILE="fast", PYTHONHASHSEED="0")
    # Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads
    # slow small training steps down many times over. Results are unchanged.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.pop("MMCOURSE_DEVICE", None)
    run(python, "-m", "ruff", "check", *LINT_PATHS, env=env)
    run(python, "-m", "ruff", "format", "--check", *LINT_PATHS, env=env)
    run(python, *TEST_COMMAND, *extra, env=env)


def lab(python: Path, extra: list[str]) -> None:
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run(python, "-m", "jupyter", "lab", "notebooks/00_start_here.ipynb", *extra, env=env)


def main(argv: list[str]) -> None:
    commands = {"setup": None, "test": test, "lab": lab}
    if not argv or argv[0] not in commands:
        sys.exit(__doc__)
    python = setup()
    action = commands[argv[0]]
    if action is not None:
        try:
            action(python, argv[1:])
        except subprocess.CalledProcessError as error:
            sys.exit(error.returncode)


if __name__ == "__main__":
    main(sys.argv[1:])
