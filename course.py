#!/usr/bin/env python3
"""Set up and run the course with one command (standard library only; Linux, macOS, Windows).

    python3 course.py lab      set everything up, then open the course in JupyterLab
    python3 course.py test     set everything up, then run the whole test suite
                               (or only the files named: course.py test notebooks/04_*.ipynb)
    python3 course.py test --quick
                               the inner loop: lint, unit tests and doctests; no notebooks,
                               no browser, no book (tests marked slow are left out)
    python3 course.py setup    only set everything up
    python3 course.py store [NOTEBOOK ...]
                               re-execute notebooks (all by default), store their outputs and
                               record their run times (for course authors)
    python3 course.py lock     record the installed versions in constraints.txt (for authors)
    python3 course.py book     build the course's book into book/_build/html/ (opens offline)
    python3 course.py student  write the student edition (no worked solutions, no outputs)
                               into student/notebooks/ (for teachers)

"Set up" makes a virtual environment in .venv/ and installs the course's helper package with
everything it needs (pyproject.toml), at the exact versions that produced the stored notebook
outputs (constraints.txt). It is idempotent: when neither file has changed since the last
set-up, nothing is installed again.

Every command runs PyTorch under the portable numerics settings (mmcourse/portable.py), so the
numbers a learner sees are the ones stored in the notebooks on any x86-64 CPU with AVX2.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".setup-stamp"
CONSTRAINTS = ROOT / "constraints.txt"
MIN_PYTHON = (3, 10)
INSTALL_TARGET = ".[lab,book,test]"  # the package, editable, with every extra

sys.path.insert(0, str(ROOT))
from mmcourse import portable  # noqa: E402 -- standard library only, found beside this file

LINT_PATHS = [
    "mmcourse", "tests", "notebooks", "scripts", "benchmarks", "experiments",
    "course.py", "conftest.py",
]  # fmt: skip
TEST_PATHS = ["tests", "notebooks"]
QUICK_PATHS = ["tests"]  # `course.py test --quick`: the unit tests and doctests only
TEST_COMMAND = [
    "-m", "pytest",
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
    digest.update(CONSTRAINTS.read_bytes() if CONSTRAINTS.exists() else b"")
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
    pinned = ["-c", CONSTRAINTS] if CONSTRAINTS.exists() else []
    try:
        run(python, "-m", "pip", "install", *pinned, "-e", INSTALL_TARGET)
    except subprocess.CalledProcessError:
        if not pinned:
            raise
        # The recorded versions are not available for this platform or Python (a new Python,
        # say): install the newest versions pyproject.toml allows. The tests then say which
        # versions differ and compare training results within tolerances.
        print(
            "\nThe versions recorded in constraints.txt cannot be installed here; installing "
            "the newest allowed versions instead. Stored numbers may differ slightly.\n",
            flush=True,
        )
        run(python, "-m", "pip", "install", "-e", INSTALL_TARGET)
    STAMP.write_text(wanted_stamp())
    fetch_book_scripts(python)
    return python


def fetch_book_scripts(python: Path) -> None:
    """Fetch the scripts the book's pages load (MathJax, require.js, the widget manager) from
    the npm registry, once, after an install, so that building the book later needs no
    network. Without npm or a network the course still works; only the book cannot be built
    until they are fetched (`python3 course.py book` tries again; its tests say so)."""
    cache = ROOT / "book" / "_build" / "npm"
    if cache.is_dir() and len(list(cache.glob("*.tgz"))) >= 3:  # build_book.ASSETS: three packs
        return
    if shutil.which("npm") is None:
        print("npm is not installed: the book's scripts were not fetched (python3 course.py book "
              "needs them; everything else works).")  # fmt: skip
        return
    try:
        run(python, "scripts/build_book.py", "--fetch")
    except subprocess.CalledProcessError:
        print("Could not fetch the book's scripts from the npm registry; the book cannot be "
              "built until they are (everything else works).")  # fmt: skip


def course_environment(stored_outputs: bool) -> dict[str, str]:
    """The environment every command runs in.

    ``stored_outputs``: the outputs are compared with, or become, the stored ones (test, store):
    the portable settings are forced, the profile is ``fast`` and progress bars are off (a
    stored copy must not show a bar frozen at 0%). Otherwise (lab) a learner's own settings win.
    """
    env = dict(os.environ)
    # Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads
    # slow small training steps down many times over. Results are unchanged.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    portable.apply(env, force=stored_outputs)
    if stored_outputs:
        env.update(MMCOURSE_PROFILE="fast", PYTHONHASHSEED="0", TQDM_DISABLE="1")
        env.pop("MMCOURSE_DEVICE", None)
    return env


def test(python: Path, extra: list[str]) -> None:
    """Lint, then unit tests and the notebooks (nbval) in one pytest run.

    Paths among ``extra`` (``course.py test notebooks/04_image_encoders.ipynb``) replace the
    default ones; options go to pytest. ``--quick``: lint, then the unit tests and doctests
    without the notebooks and without the tests marked slow (browser, book, a student
    edition's run), the loop to run after each change.
    """
    env = course_environment(stored_outputs=True)
    run(python, "-m", "ruff", "check", *LINT_PATHS, env=env)
    run(python, "-m", "ruff", "format", "--check", *LINT_PATHS, env=env)
    quick = "--quick" in extra
    extra = [arg for arg in extra if arg != "--quick"]
    chosen = [arg for arg in extra if (ROOT / arg.split("::")[0]).exists()]
    options = [arg for arg in extra if arg not in chosen]
    if quick:  # no --nbval: notebooks are not collected; slow tests are deselected
        run(python, "-m", "pytest", *(chosen or QUICK_PATHS), "-m", "not slow", *options, env=env)
        return
    run(python, *TEST_COMMAND, *(chosen or TEST_PATHS), *options, env=env)


def store(python: Path, extra: list[str]) -> None:
    """Re-execute notebooks in place and record their run times (scripts/run_notebooks.py)."""
    run(python, "scripts/run_notebooks.py", *extra, env=course_environment(stored_outputs=True))


def lock(python: Path, extra: list[str]) -> None:
    """Write the installed versions to constraints.txt."""
    frozen = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--exclude-editable"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    header = [line for line in CONSTRAINTS.read_text().splitlines() if line.startswith("#")]
    pins = [line for line in frozen.splitlines() if line and not line.startswith("mmcourse")]
    CONSTRAINTS.write_text("\n".join(header + pins) + "\n")
    STAMP.write_text(wanted_stamp())
    print(f"Wrote {len(pins)} versions to {CONSTRAINTS.name}.")


def book(python: Path, extra: list[str]) -> None:
    """Build the book (scripts/build_book.py) from the stored outputs; nothing is executed."""
    run(python, "scripts/build_book.py", *extra, env=course_environment(stored_outputs=False))


def student(python: Path, extra: list[str]) -> None:
    """Write the student edition (scripts/student_edition.py)."""
    run(python, "scripts/student_edition.py", *extra, env=course_environment(stored_outputs=False))


def lab(python: Path, extra: list[str]) -> None:
    env = course_environment(stored_outputs=False)
    run(python, "-m", "jupyter", "lab", "notebooks/00_start_here.ipynb", *extra, env=env)


def main(argv: list[str]) -> None:
    commands = {
        "setup": None, "test": test, "lab": lab, "store": store, "lock": lock, "book": book,
        "student": student,
    }  # fmt: skip
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
