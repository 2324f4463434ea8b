"""Self-checks for the exercises: each chapter's checks live in ``mmcourse.checks.chNN``.

A check tells a learner whether an answer is right and, when it is not, *why*: in which
direction it misses (too high, too low, the wrong sign, the wrong shape), by roughly how much
("within a few percent", "off by a factor of about two") and, for the usual slips, which
mistake it looks like (counting digits instead of canvases, forgetting the padding, the bias,
the ``+ 1``...). It never prints the expected value, so a wrong answer still leaves something
to work out; on success it may repeat the learner's own value with a short explanation. Every
check returns a :class:`CheckResult` that prints as one line, "Correct: ..." or "Not yet: ...".
"""

from mmcourse.checks._core import (
    CheckResult,
    as_number,
    check_close,
    check_equal,
    describe_miss,
    describe_shape_miss,
    known_mistake,
)

__all__ = [
    "CheckResult",
    "as_number",
    "check_close",
    "check_equal",
    "describe_miss",
    "describe_shape_miss",
    "known_mistake",
]
