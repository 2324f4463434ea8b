"""Start ``torchrun`` from Python -- from a notebook cell, in JupyterLab or Colab -- and time
it.

A notebook's kernel is one process; torchrun must start the others. A subprocess does it:
the cell waits, then shows what rank 0 printed. ``processes=1`` runs the module in one
plain process, without torchrun, for the comparison.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmcourse._validate import check_int, require

__all__ = ["Launched", "interrupt_when", "run_torchrun", "torchrun_command"]


@dataclass(frozen=True)
class Launched:
    """What a run printed, and how long it took from start to end (wall clock)."""

    stdout: str
    seconds: float


def _first_error(stderr: str) -> str:
    """The first "SomethingError: message" line of the ranks' tracebacks (torchrun's own
    summary comes after them and hides it otherwise)."""
    for line in stderr.splitlines():
        name = line.split(":", 1)[0].strip().split(".")[-1]
        if name.endswith("Error") and ":" in line and not line.startswith(" "):
            return line.strip()
    return "see the end of its error output below"


def torchrun_command(module: str, args: list[str], processes: int) -> list[str]:
    """The command line: ``torchrun --standalone --nproc_per_node=N -m module args...`` (with
    this Python, so the course's environment is used), or ``python -m module`` for one."""
    require(
        isinstance(module, str) and module,
        "module must be a module name, e.g. mmcourse.distributed.check",
    )
    check_int(processes, "processes")
    if processes == 1:
        return [sys.executable, "-m", module, *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", "-m", module, *args]  # fmt: skip


def run_torchrun(
    module: str, args: list[str] | None = None, *, processes: int, threads: int = 1,
    timeout: float = 600,
) -> Launched:  # fmt: skip
    """Run ``module`` on ``processes`` processes of ``threads`` threads each; raises
    ``RuntimeError`` with the end of its error output if it fails."""
    check_int(threads, "threads")
    command = torchrun_command(module, list(args or []), processes)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[1:])} failed (exit {done.returncode}): "
            f"{_first_error(done.stderr)}\n\n{done.stderr[-1500:]}"
        )
    return Launched(done.stdout, seconds)


def _family(pid: int) -> list[int]:
    """``pid`` and every process it started, children first (``ps``, on Linux and macOS).
    torchrun starts each rank in a session of its own, so killing torchrun's process group
    would leave the ranks running: each must be killed by its own id."""
    table = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True)
    children: dict[int, list[int]] = {}
    for line in table.stdout.splitlines():
        child, parent = (int(field) for field in line.split())
        children.setdefault(parent, []).append(child)
    family, todo = [], [pid]
    while todo:
        current = todo.pop()
        family.append(current)
        todo += children.get(current, [])
    return family[::-1]


def _kill_family(run: subprocess.Popen) -> None:
    for pid in _family(run.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # it had ended already
            pass
    run.wait()


def interrupt_when(
    module: str, args: list[str], path: str | Path, *, processes: int, timeout: float = 600
) -> float:
    """Start ``module`` as :func:`run_torchrun` does, and kill every one of its processes
    (``SIGKILL``: no chance to clean up, as when a machine fails) as soon as ``path``
    exists, e.g. the checkpoint of its first epoch. Returns the seconds it ran; raises
    ``RuntimeError`` if it ended or failed before ``path`` appeared. POSIX only."""
    require(os.name == "posix", "interrupt_when needs a POSIX system (Linux, macOS)")
    command = torchrun_command(module, list(args), processes)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: a full pipe would block it
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, text=True,
                               env=env)  # fmt: skip
        while not Path(path).exists():
            if run.poll() is not None or time.perf_counter() - start > timeout:
                if run.poll() is None:  # past the timeout: stop it
                    _kill_family(run)
                errors.seek(0)
                raise RuntimeError(
                    f"{' '.join(command[1:])} ended (exit {run.wait()}) before {path} "
                    f"appeared: {_first_error(errors.read())}"
                )
            time.sleep(0.02)
        _kill_family(run)  # torchrun and every rank it started
    return time.perf_counter() - start
