"""Start ``torchrun`` from Python -- from a notebook cell, in JupyterLab or Colab -- and time
it.

A notebook's kernel is one process; torchrun must start the others. A subprocess does it:
the cell waits, then shows what rank 0 printed. ``processes=1`` runs the module in one
plain process, without torchrun, for the comparison.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

from mmcourse._validate import check_int, require

__all__ = ["Launched", "torchrun_command", "run_torchrun"]


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
