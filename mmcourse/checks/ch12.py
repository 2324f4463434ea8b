"""Self-checks for chapter 12 (deployment).

A failed check says what is wrong and why -- a count of numbers instead of bytes, buffers left
out, one scale for the whole matrix instead of one per row, a ratio turned upside down,
milliseconds mixed with seconds -- and whether the answer is too high or too low, by roughly
how much, but never the expected value; see :mod:`mmcourse.checks`. Each check computes its
answer its own way (the state dict's bytes, int8 rounding in float64, a ratio of times) rather
than with :mod:`mmcourse.deploy`.
"""

from __future__ import annotations

import io
import math

import torch
from torch import nn

from mmcourse.checks._core import CheckResult, as_number, describe_miss, known_mistake

INT8_MAX = 127
"""The symmetric int8 range of the exercise: ``q`` in ``-127..127``, ``scale = max|w| / 127``."""
SPEEDUP_RTOL = 0.03
"""Relative tolerance of :func:`check_speedup`: measured times are often copied from a table
rounded to two or three digits."""


# ----------------------------------------------------------------------------- model size
def _unique_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The tensors ``torch.save(model.state_dict())`` stores, each storage counted once."""
    seen, tensors = set(), []
    for tensor in model.state_dict(keep_vars=True).values():
        try:
            where = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        except (NotImplementedError, RuntimeError, TypeError):  # a tensor subclass (int8)
            where = (id(tensor), 0)
        key = (*where, tuple(tensor.shape))
        if key not in seen:
            seen.add(key)
            tensors.append(tensor)
    return tensors


def _model_bytes_mistakes(model: nn.Module) -> list[tuple[float, str]]:
    tensors = _unique_tensors(model)
    values = sum(t.numel() for t in tensors)
    nbytes = sum(t.numel() * t.element_size() for t in tensors)
    parameters = {id(p) for p in model.parameters()}
    parameter_bytes = sum(t.numel() * t.element_size() for t in tensors if id(t) in parameters)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return [
        (
            float(buffer.getbuffer().nbytes),
            "that is the size of the saved file (deploy.model_size_bytes), which adds the "
            "tensors' names and pickle's structure; count only the tensors' own bytes",
        ),
        (
            float(values),
            "that is how many numbers the model holds; multiply each tensor's count by its "
            "bytes per number (tensor.element_size())",
        ),
        (
            float(parameter_bytes),
            "that counts the parameters only; add the buffers (model.buffers(): batch norm's "
            "running averages and counters), which the saved file holds too",
        ),
        (
            4.0 * values,
            "not every tensor holds 4-byte floats: batch norm's counters are int64 (8 bytes); "
            "use each tensor's own element_size()",
        ),
        (8.0 * nbytes, "give bytes, not bits"),
        (nbytes / 1024, "give bytes, not kibibytes (do not divide by 1024)"),
        (nbytes / 1000, "give bytes, not kilobytes (do not divide by 1000)"),
        (nbytes / 1024**2, "give bytes, not mebibytes"),
        (nbytes / 1e6, "give bytes, not megabytes"),
    ]


def check_model_bytes(model: nn.Module, value: object) -> CheckResult:
    """Is ``value`` the number of bytes the tensors of ``model`` take: every parameter and
    every buffer, each ``numel() * element_size()`` (a shared tensor counted once)?

    The reference counts the tensors of ``model.state_dict()``, so a non-persistent buffer
    (which is not saved) does not count. A wrong value is described as too high or too low
    and, for the usual slips (a count of numbers, parameters only, 4 bytes for everything,
    bits, kilobytes), named -- never printed.
    """
    if not isinstance(model, nn.Module):
        return CheckResult(False, f"model should be an nn.Module, got {type(model).__name__}")
    got = as_number("your byte count", value)
    if isinstance(got, CheckResult):
        return got
    expected = sum(t.numel() * t.element_size() for t in _unique_tensors(model))
    if got == expected:
        return CheckResult(True, f"the tensors of the model take {int(got):,} bytes")
    hint = None
    if got != 0:  # 0 is the placeholder, whatever slip might also give it
        for wrong, text in _model_bytes_mistakes(model):
            # a count of bytes or numbers up to rounding; kilobytes to about three digits
            whole = float(wrong).is_integer()
            close = math.isclose(got, wrong, rel_tol=1e-9 if whole else 2e-3, abs_tol=0.5 * whole)
            if wrong != expected and close:
                hint = text
                break
    if hint is None and got == 0:
        hint = "add numel() * element_size() over model.parameters() and model.buffers()"
    elif hint is None and not float(got).is_integer():
        return CheckResult(False, "your byte count should be a whole number of bytes")
    elif hint is None:
        hint = "add tensor.numel() * tensor.element_size() over every parameter and every buffer"
    return CheckResult(False, f"your byte count {describe_miss(got, expected)}; {hint}")


# ----------------------------------------------------------------------------- int8 by hand
def _max_error(weight: torch.Tensor, scale: torch.Tensor, low: int, high: int, fn=torch.round):
    """``max |w - clamp(fn(w / scale), low, high) * scale|``, in float64."""
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = fn(weight / safe).clamp(low, high)
    return (weight - q * safe).abs().max().item()


def _int8_mistakes(weight: torch.Tensor) -> list[tuple[float, str]]:
    rows = weight.abs().amax(dim=1, keepdim=True)
    scale = rows / INT8_MAX
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(weight / safe).clamp(-INT8_MAX, INT8_MAX)
    errors = (weight - q * safe).abs()
    return [
        (
            _max_error(weight, weight.abs().max() / INT8_MAX * torch.ones_like(rows), -127, 127),
            "that uses one scale for the whole matrix; give each row its own scale, "
            "max |w| of that row / 127",
        ),
        (
            _max_error(weight, scale, -127, 127, torch.trunc),
            "round to the nearest integer (torch.round), not toward zero",
        ),
        (
            _max_error(weight, scale, -127, 127, torch.floor),
            "round to the nearest integer (torch.round), not down (floor)",
        ),
        (
            _max_error(weight, rows / 127.5, -128, 127),
            "that is torchao's convention (scale = max|w| / 127.5, q in -128..127); this "
            "exercise divides by 127 and keeps q in -127..127",
        ),
        (
            _max_error(weight, rows / 255, -127, 127),
            "the scale maps the row's largest |w| to 127 (int8 holds -128..127), not to 255",
        ),
        (
            _max_error(weight, rows / 255, -255, 255),
            "the scale maps the row's largest |w| to 127 (int8 holds -128..127), not to 255",
        ),
        (
            _max_error(weight, rows / 128, -128, 127),
            "divide the row's largest |w| by 127, not 128",
        ),
        (
            (weight - q).abs().max().item(),
            "de-quantise before comparing: the reconstruction is q * scale, not q",
        ),
        (errors.mean().item(), "that is the mean error; the exercise asks for the largest"),
        (
            (errors / rows.clamp_min(1e-300)).max().item(),
            "give the error in the weight's own units, not relative to max |w|",
        ),
    ]


def check_int8_error(weight: torch.Tensor, value: object) -> CheckResult:
    """Is ``value`` the largest reconstruction error ``max |w - q * scale|`` of ``weight``
    ``(rows, cols)`` quantised to int8 per row: ``scale = max|w_row| / 127``,
    ``q = clamp(round(w / scale), -127, 127)``?

    A wrong value is described as too high or too low and, for the usual slips (one scale for
    the matrix, truncation, another range, comparing with ``q`` itself, the mean), named.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.numel() == 0:
        return CheckResult(False, "weight should be a non-empty (rows, cols) tensor")
    if not weight.is_floating_point() or not torch.isfinite(weight).all():
        return CheckResult(False, "weight should hold finite floating-point values")
    got = as_number("your largest error", value)
    if isinstance(got, CheckResult):
        return got
    w = weight.detach().cpu().double()
    scale = w.abs().amax(dim=1, keepdim=True) / INT8_MAX
    expected = _max_error(w, scale, -INT8_MAX, INT8_MAX)
    bound = scale.max().item() / 2
    if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-9):
        return CheckResult(
            True,
            f"largest error {got:.3g}, within half a step of the coarsest row "
            f"({got / bound:.0%} of max(scale) / 2)",
        )
    if got < 0:
        return CheckResult(False, "an error max |w - q * scale| cannot be negative")
    hint = known_mistake(got, expected, _int8_mistakes(w), tol=1e-7 + 1e-4 * abs(expected))
    if hint is None and got > 2 * bound:
        hint = (
            "rounding moves a weight by at most half a step: the error cannot exceed max(scale) / 2"
        )
    elif hint is None:
        hint = (
            "per row: scale = max|w| / 127, q = round(w / scale) clamped, error = |w - q * scale|"
        )
    return CheckResult(False, f"your largest error {describe_miss(got, expected)}; {hint}")


# ----------------------------------------------------------------------------- speed-up
def check_speedup(latency_ms: object, items_per_second: object, value: object) -> CheckResult:
    """Is ``value`` how many times less time a canvas takes in a batch than alone: the time
    per canvas of one request (``latency_ms``, milliseconds) divided by the time per canvas of
    a batch running at ``items_per_second``?

    Accepted within :data:`SPEEDUP_RTOL` (times copied from a rounded table). A wrong value is
    described as too high or too low and, for the usual slips (the ratio upside down, seconds
    mixed with milliseconds, a difference, the share of time saved, a percentage), named.
    """
    latency = as_number("latency_ms", latency_ms)
    if isinstance(latency, CheckResult):
        return latency
    rate = as_number("items_per_second", items_per_second)
    if isinstance(rate, CheckResult):
        return rate
    if latency <= 0 or rate <= 0:
        return CheckResult(False, "latency_ms and items_per_second should be positive measurements")
    got = as_number("your speed-up", value)
    if isinstance(got, CheckResult):
        return got
    batched_ms = 1000.0 / rate
    expected = latency / batched_ms
    if math.isclose(got, expected, rel_tol=SPEEDUP_RTOL):
        if got >= 1:
            return CheckResult(
                True, f"speed-up {got:.3g}: a canvas takes that many times less time in the batch"
            )
        return CheckResult(True, f"speed-up {got:.3g}: below 1, batching made each canvas slower")
    mistakes = [
        (1 / expected, "upside down: divide the time before (alone) by the time after (batched)"),
        (
            latency * rate,
            "mind the units: latency is in milliseconds, throughput in canvases per *second*",
        ),
        (
            latency * rate / 1e6,
            "mind the units: 1 s = 1000 ms, so one canvas of the batch takes 1000 / rate ms",
        ),
        (latency - batched_ms, "a speed-up is a ratio of times, not their difference"),
        (1 - 1 / expected, "that is the share of time saved; the speed-up is the ratio of times"),
        (100 * (1 - 1 / expected), "that is the percentage of time saved, not the factor"),
        (100 * expected, "give a factor (twice as fast is a speed-up of two), not a percentage"),
    ]
    hint = None
    for wrong, text in mistakes:
        if math.isclose(got, wrong, rel_tol=SPEEDUP_RTOL) and not math.isclose(
            wrong, expected, rel_tol=SPEEDUP_RTOL
        ):
            hint = text
            break
    if hint is None and got == 0:
        hint = "time per canvas alone / time per canvas in the batch"
    elif hint is None:
        hint = "time per canvas alone (latency) / time per canvas in the batch (1000 / rate ms)"
    return CheckResult(False, f"your speed-up {describe_miss(got, expected)}; {hint}")


# ----------------------------------------------------------------------------- AUROC
AUROC_ATOL = 1e-6
"""Absolute tolerance of :func:`check_auroc` (float rounding of a mean over many pairs)."""


def _pair_counts(ordinary: torch.Tensor, unusual: torch.Tensor) -> tuple[float, float, float]:
    """Over every (ordinary, unusual) pair: the share where the ordinary request scores
    higher, the share of ties, and the share where it scores lower -- counted pair by pair."""
    a = ordinary.detach().double().reshape(-1, 1)
    b = unusual.detach().double().reshape(1, -1)
    return (
        float((a > b).double().mean()),
        float((a == b).double().mean()),
        float((a < b).double().mean()),
    )


def check_auroc(ordinary: object, unusual: object, value: object) -> CheckResult:
    """Is ``value`` the AUROC of a confidence score that should be higher on ``ordinary``
    requests than on ``unusual`` ones: the probability that a random ordinary request scores
    higher than a random unusual one, a tie counting one half?

    Computed here pair by pair, not with ranks or :func:`mmcourse.robust.auroc`. A wrong value
    is described as too high or too low and, for the usual slips (the two sets swapped, ties
    counted as wins or as losses), named.
    """
    tensors = []
    for name, scores in (("ordinary", ordinary), ("unusual", unusual)):
        if not isinstance(scores, torch.Tensor) or scores.dim() != 1 or len(scores) == 0:
            return CheckResult(False, f"{name} should be a 1-D tensor of scores, one per request")
        tensors.append(scores)
    got = as_number("your AUROC", value)
    if isinstance(got, CheckResult):
        return got
    higher, tied, lower = _pair_counts(*tensors)
    expected = higher + tied / 2
    if abs(got - expected) <= AUROC_ATOL:
        return CheckResult(
            True, f"AUROC {got:.4f} (1 would separate the two sets perfectly, 0.5 is a coin toss)"
        )
    if not 0 <= got <= 1:
        return CheckResult(False, "an AUROC is a probability: it lies between 0 and 1")
    mistakes = [
        (
            lower + tied / 2,
            "the sets are swapped: count the pairs where the *ordinary* request "
            "scores higher, since the score is a confidence",
        ),
        (higher, "ties count one half each: they are pairs the score cannot order"),
        (higher + tied, "a tie is not a win: count it as one half"),
    ]
    hint = known_mistake(got, expected, mistakes, tol=AUROC_ATOL)
    hint = (
        hint
        or "compare every ordinary score with every unusual one: (a > b) + (a == b) / 2, averaged"
    )
    return CheckResult(False, f"your AUROC {describe_miss(got, expected)}; {hint}")
