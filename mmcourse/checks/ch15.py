"""Self-checks for chapter 15 (data parallelism): the negatives CLIP's loss sees with and
without gathering, and the time of a ring all-reduce. Each says right or wrong and why, never
the expected value, and computes its answer with its own arithmetic, not with
:mod:`mmcourse.distributed.scaling`."""

from __future__ import annotations

from mmcourse.checks._core import CheckResult, as_number, describe_miss, known_mistake

__all__ = ["check_allreduce_seconds", "check_negatives"]


def check_negatives(
    global_batch: int, processes: int, gathered: bool, value: object
) -> CheckResult:
    """Is ``value`` the number of negatives each image meets in CLIP's loss, for a global
    batch of ``global_batch`` pairs over ``processes`` processes, with the embeddings
    ``gathered`` or not? Slips named: the own caption counted, the other case's answer."""
    if not all(isinstance(v, int) and v > 0 for v in (global_batch, processes)):
        return CheckResult(False, "global_batch and processes should be positive whole numbers")
    if global_batch % processes:
        return CheckResult(False, "the global batch should split evenly over the processes")
    got = as_number("your count", value, whole=True)
    if isinstance(got, CheckResult):
        return got
    per_process = global_batch // processes
    candidates = global_batch if gathered else per_process  # captions in the image's softmax
    expected = candidates - 1
    if got == expected:
        where = "the whole global batch" if gathered else "its own process's part only"
        return CheckResult(True, f"{got} negatives: the image is scored against {where}")
    other = (per_process if gathered else global_batch) - 1
    mistakes = [
        (candidates, "its own caption is the positive, not a negative: leave it out"),
        (other, "that is the count for the other case: "
                + ("gathered, every rank's captions count" if gathered else
                   "without gathering, a rank sees only its own rows")),
    ]  # fmt: skip
    hint = known_mistake(got, expected, mistakes) or "count the captions in one image's softmax"
    return CheckResult(False, f"your count {describe_miss(got, expected)}; {hint}")


def check_allreduce_seconds(
    num_bytes: float, processes: int, bandwidth: float, value: object
) -> CheckResult:
    """Is ``value`` the seconds a ring all-reduce of ``num_bytes`` bytes takes over
    ``processes`` processes at ``bandwidth`` bytes per second? Slips named: no factor 2
    (one pass instead of two), no ``(N - 1) / N``, milliseconds, bits for bytes."""
    if not (isinstance(processes, int) and processes >= 2):
        return CheckResult(False, "processes should be a whole number of at least 2")
    if not (num_bytes > 0 and bandwidth > 0):
        return CheckResult(False, "num_bytes and bandwidth should be positive")
    got = as_number("your time", value)
    if isinstance(got, CheckResult):
        return got
    share = (processes - 1) / processes  # of the bytes each process sends, in each pass
    expected = 2 * share * num_bytes / bandwidth  # two passes: reduce-scatter, all-gather
    if abs(got - expected) <= 1e-6 * expected:
        return CheckResult(True, f"{got:.3g} s to all-reduce the gradients once")
    mistakes = [
        (share * num_bytes / bandwidth, "a ring all-reduce passes the data twice: add up, then share"),
        (2 * num_bytes / bandwidth, "each process sends only (N - 1) / N of the bytes per pass"),
        (1000 * expected, "give seconds, not milliseconds"),
        (expected / 8, "the bandwidth is in bytes per second already; bytes are not bits"),
        (expected * 8, "bytes, not bits: do not multiply by 8"),
    ]  # fmt: skip
    hint = known_mistake(got, expected, mistakes, tol=1e-6 * expected)
    hint = hint or "2 (N - 1) / N times the bytes, divided by the bandwidth"
    return CheckResult(False, f"your time {describe_miss(got, expected)}; {hint}")
