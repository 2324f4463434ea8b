"""Self-checks for chapter 15 (data parallelism): the negatives CLIP's loss sees with and
without gathering, the time of a ring all-reduce, and the weight of one token when each rank
averages its own tokens. Each says right or wrong and why, never
the expected value, and computes its answer with its own arithmetic, not with
:mod:`mmcourse.distributed.scaling`."""

from __future__ import annotations

from mmcourse.checks._core import CheckResult, as_number, describe_miss, known_mistake

__all__ = ["check_allreduce_seconds", "check_negatives", "check_token_weight"]


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


def check_token_weight(tokens: list[int], rank: int, value: object) -> CheckResult:
    """Is ``value`` how many times more one token of rank ``rank`` weighs in a DDP step than
    in one process, when rank ``r``'s loss is the mean over its own ``tokens[r]`` tokens and
    DDP averages the ranks' gradients (one process: the mean over all the tokens)? Right to
    half a percent (three figures). Slips named: another rank's factor, the inverse, the
    rank's share of the tokens, "the same"."""
    if not (isinstance(tokens, (list, tuple)) and len(tokens) >= 2):
        return CheckResult(False, "tokens should list the tokens of each rank, two ranks or more")
    if not all(isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in tokens):
        return CheckResult(False, "each rank's count of tokens should be a positive whole number")
    if not (isinstance(rank, int) and 0 <= rank < len(tokens)):
        return CheckResult(False, f"rank should be one of 0..{len(tokens) - 1}")
    got = as_number("your factor", value)
    if isinstance(got, CheckResult):
        return got

    def factor(r: int) -> float:  # DDP's 1 / (N x rank r's tokens) over one process's 1 / all
        return (1 / len(tokens) / tokens[r]) / (1 / sum(tokens))

    expected, tol = factor(rank), 0.005 * factor(rank)
    if abs(got - expected) <= tol:
        more = "more" if expected > 1 else "less"
        return CheckResult(True, f"{got:.3g}: a token weighs {more} where its rank holds fewer")
    mistakes = [
        *((factor(r), "that is another rank's factor: use the tokens of the rank asked about")
          for r in range(len(tokens)) if r != rank),
        (1 / expected, "that is the inverse: one process's weight over DDP's"),
        (tokens[rank] / sum(tokens), "that is the rank's share of the tokens, not a weight"),
        (1.0, "the weights are equal only when every rank holds as many tokens"),
    ]  # fmt: skip
    hint = known_mistake(got, expected, mistakes, tol=tol)
    hint = hint or "with how many tokens is one token averaged, under DDP and in one process?"
    return CheckResult(False, f"your factor {describe_miss(got, expected)}; {hint}")
