"""Self-checks for the exercises: each chapter's checks live in ``mmcourse.checks.chNN``.

A check never just says "wrong": it says what it expected and what it got, so a learner
can find the mistake. Every check returns a :class:`CheckResult` that prints as one line.
"""

from mmcourse.checks._core import CheckResult, check_close, check_equal, check_shape

__all__ = ["CheckResult", "check_close", "check_equal", "check_shape"]
