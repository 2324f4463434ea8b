"""pytest's set-up for the notebooks: strict or tolerant comparison (tests/notebook_modes.py).

Strict mode is nbval's own comparison. Tolerant mode (other CPUs, other library versions) keeps
it for every cell except those tagged as training results, which are compared within tolerances.
The run's first lines say which mode was used and why.
"""

from __future__ import annotations

import os
from pathlib import Path

import notebook_modes  # tests/ is on pytest's pythonpath (pyproject.toml)
import pytest

ROOT = Path(__file__).resolve().parent
MODE, REASON = notebook_modes.current_mode(ROOT)
# The stored notebooks hold no progress bars; the kernels nbval starts inherit this.
os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_report_header(config: pytest.Config) -> str:
    return f"notebook comparison: {MODE} mode, because {REASON}"


def pytest_configure(config: pytest.Config) -> None:
    if MODE == "tolerant" and (config.option.nbval or config.option.nbval_lax):
        from nbval.plugin import IPyNbCell

        problems = notebook_modes.nbval_surface_problems()
        if problems:
            raise pytest.UsageError(
                "tolerant notebook comparison needs nbval's private comparison as of nbval "
                "0.11 (constraints.txt pins it): " + "; ".join(problems)
            )
        IPyNbCell.compare_outputs = _tolerant_compare(IPyNbCell.compare_outputs)


def _tolerant_compare(strict_compare):
    """nbval's comparison, with the tagged training cells compared within tolerances."""

    def compare(self, test, ref, skip_compare=None):
        tags = set(self.cell.metadata.get("tags", []))
        if notebook_modes.TEXT_TAG in tags:
            return True
        if notebook_modes.NUMBERS_TAG not in tags:
            return strict_compare(self, test, ref, skip_compare)
        plain_sanitize = self.sanitize
        self.sanitize = lambda text: notebook_modes.skeleton(plain_sanitize(text))
        try:
            if not strict_compare(self, test, ref, skip_compare):
                return False  # the words differ; nbval has described how
        finally:
            del self.sanitize
        limits = self.cell.metadata.get("mmcourse", {})
        stored = "\n".join(_texts(self, ref, skip_compare))
        fresh = "\n".join(_texts(self, test, skip_compare))
        problem = notebook_modes.numbers_close(
            stored,
            fresh,
            rtol=limits.get("rtol", notebook_modes.RTOL),
            atol=limits.get("atol", notebook_modes.ATOL),
        )
        if problem:
            self.comparison_traceback = [
                f"tolerant mode: a training result is out of tolerance ({problem})",
                "stored:",
                stored,
                "new:",
                fresh,
            ]
            return False
        return True

    return compare


def _texts(cell, outputs, skip_compare):
    from nbval.plugin import transform_streams_for_comparison

    skip = skip_compare or cell.parent.skip_compare
    texts = []
    for output in transform_streams_for_comparison(outputs):
        for key, value in output.items():
            if key in skip:
                continue
            if key == "data":
                texts += [cell.sanitize(v) for k, v in value.items() if k not in skip]
            elif isinstance(value, str):
                texts.append(cell.sanitize(value))
    return texts
