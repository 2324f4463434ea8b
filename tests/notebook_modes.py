"""How the stored notebooks are compared: bit for bit (strict) or within tolerances (tolerant).

*Strict* is nbval's own comparison: every text output must come back exactly. It holds where the
stored numbers can be reproduced bit for bit: Linux on an x86-64 CPU with AVX2, the portable
numerics settings in force (mmcourse/portable.py), the library versions recorded in
constraints.txt -- and, measured rather than assumed, a CPU whose libraries add in the stored
machine's order: a short training run's fingerprint (mmcourse/fingerprint.py) must equal the
stored machine's. An Intel Xeon fails that last test against the AMD EPYC that stored the
notebooks, settings or not.

*Tolerant* is for everywhere else (Apple Silicon, ARM Linux, other library versions, other
arithmetic). Every
notebook still runs top to bottom and no cell may fail. Outputs that are the same on any machine
(data, maths of fixed inputs, shapes, parameter counts) are still compared exactly. Cells whose
outputs come from training carry a tag saying so:

- ``trained-numbers``: the words must match exactly, each number within :data:`RTOL`/:data:`ATOL`
  of the stored one (a cell's metadata ``{"mmcourse": {"rtol": .., "atol": ..}}`` may widen them);
- ``trained-text``: what is printed depends on the trained model word by word (sampled captions,
  nearest neighbours): the cell must run, its output is not compared.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path

from mmcourse import portable

MODE_VARIABLE = "MMCOURSE_NOTEBOOK_MODE"
MODES = ("strict", "tolerant")
NUMBERS_TAG = "cpu-dependent-numbers"
TEXT_TAG = "cpu-dependent-text"
RTOL = 0.25
"""Relative tolerance for a trained cell's numbers in tolerant mode. Training for a few epochs
is chaotic: on a third CPU code path an accuracy logged after epoch 2 moved from 0.61 to 0.42,
and a share of correct captions from 15.2 % to 12.4 %, though both runs end equally good. The
tolerances catch a notebook that no longer learns, not the last digits."""
ATOL = 0.10
"""Absolute tolerance, added to the relative one (accuracies are fractions: 0.1 is ten points)."""

NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_SPACES = re.compile(r"[ \t]+")


def version_differences(constraints: Path) -> list[str]:
    """``'name installed X, recorded Y'`` for each installed package whose version differs from
    the one pinned in ``constraints`` (a pip constraints file); packages not installed are
    skipped."""
    if not constraints.is_file():
        raise FileNotFoundError(f"no constraints file at {constraints}")
    found = []
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        name, recorded = (part.strip() for part in line.split("==", 1))
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed != recorded:
            found.append(f"{name} installed {installed}, recorded {recorded}")
    return found


def choose_mode(
    environ: Mapping[str, str],
    bit_identical: tuple[bool, str],
    differences: list[str],
    same_arithmetic: Callable[[], tuple[bool, str]] = lambda: (True, ""),
) -> tuple[str, str]:
    """Pick ``'strict'`` or ``'tolerant'`` and say why, in one line.

    Args:
        environ: the environment (``MMCOURSE_NOTEBOOK_MODE`` forces a mode; the portable
            settings must be in it for strict).
        bit_identical: :func:`mmcourse.portable.bit_identical_platform`'s answer for this machine.
        differences: :func:`version_differences`' answer.
        same_arithmetic: asked last, only when everything else allows strict: whether this
            machine's arithmetic fingerprint is the stored machine's
            (:func:`mmcourse.fingerprint.same_as_stored`), with its reason.
    """
    forced = environ.get(MODE_VARIABLE, "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"{MODE_VARIABLE} must be one of {MODES}, got {forced!r}")
        return forced, f"{MODE_VARIABLE}={forced} was set"
    platform_ok, platform_why = bit_identical
    if not platform_ok:
        return (
            "tolerant",
            f"{platform_why}: training cannot reproduce the stored numbers bit for bit",
        )
    if not portable.in_force(environ):
        return "tolerant", (
            "the portable numerics settings are not in force (run `python3 course.py test`)"
        )
    if differences:
        shown = "; ".join(differences[:4]) + ("; ..." if len(differences) > 4 else "")
        return "tolerant", f"installed versions differ from constraints.txt: {shown}"
    same, same_why = same_arithmetic()
    if not same:
        return "tolerant", same_why
    return "strict", (
        f"{platform_why}, portable numerics settings, versions as in constraints.txt"
        + (f"; {same_why}" if same_why else "")
    )


def skeleton(text: str) -> str:
    """``text`` with every number replaced by ``#`` and runs of spaces made one (table columns
    shift when a number gets a digit longer)."""
    return _SPACES.sub(" ", NUMBER.sub("#", text))


def numbers_close(stored: str, fresh: str, rtol: float = RTOL, atol: float = ATOL) -> str | None:
    """Compare the numbers of two texts with the same words, in order.

    Returns None when each fresh number ``f`` lies within ``atol + rtol * |s|`` of its stored
    ``s``, else a sentence naming the first that does not (or saying the counts differ).
    """
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    old = [float(x) for x in NUMBER.findall(stored)]
    new = [float(x) for x in NUMBER.findall(fresh)]
    if len(old) != len(new):
        return f"the stored output has {len(old)} numbers, the new one {len(new)}"
    for index, (s, f) in enumerate(zip(old, new)):
        if math.isnan(s) and math.isnan(f):
            continue
        if not abs(f - s) <= atol + rtol * abs(s):
            return (
                f"number {index + 1}: stored {s:g}, got {f:g}; "
                f"allowed {atol:g} + {rtol:g} x |stored| = {atol + rtol * abs(s):.4g}"
            )
    return None


def current_mode(root: Path) -> tuple[str, str]:
    """The mode for this machine and environment, with its reason."""
    from mmcourse import fingerprint  # imports torch: only here, when the mode is chosen

    return choose_mode(
        os.environ,
        portable.bit_identical_platform(),
        version_differences(root / "constraints.txt"),
        lambda: fingerprint.same_as_stored(os.environ),
    )


# Tolerant mode wraps nbval's comparison, a private method: nbval has no public hook for it.
# These are the private names and signatures it relies on, checked before it is installed
# (and by tests/test_notebook_modes.py), so that an nbval release that changes them stops the
# run with this message instead of comparing wrongly.
NBVAL_SURFACE = {
    "IPyNbCell.compare_outputs": "(self, test, ref, skip_compare=None)",
    "IPyNbCell.sanitize": "(self, s)",
    "transform_streams_for_comparison": "(outputs)",
}


def nbval_surface_problems() -> list[str]:
    """How nbval's private names differ from :data:`NBVAL_SURFACE` (empty when they agree)."""
    import inspect

    from nbval import plugin

    problems = []
    for dotted, wanted in NBVAL_SURFACE.items():
        target = plugin
        for part in dotted.split("."):
            target = getattr(target, part, None)
        found = str(inspect.signature(target)) if callable(target) else "missing"
        if found != wanted:
            problems.append(f"nbval.plugin.{dotted}{wanted} is now {found}")
    return problems
