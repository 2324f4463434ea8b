"""Checking and measuring a deployed model: the same outputs as the original, up to a stated
tolerance (:func:`outputs_match`); milliseconds per request, items per second, bytes on disk;
and :func:`compiled` (``torch.compile``) to compare against.

Measurements are noisy on a shared machine: take the median of many calls, fix the thread
count (``torch.set_num_threads``), and compare variants in the same run. Small models suffer
most from threads: on two cores shared with another busy program, one decoder step took
about 0.1 ms on one thread and 8 ms on two (each parallel operation waits for a thread that
is not running), so a service of small models is often best served by one thread per process.
"""

from __future__ import annotations

import io
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.export import ExportedProgram

from mmcourse._validate import check_int, check_module, check_nonnegative, require
from mmcourse.deploy.export import Inputs, as_args, tensors_in

__all__ = ["compiled", "measure_latency", "measure_throughput", "model_size_bytes", "outputs_match"]


def _call(fn: Callable[..., Any], inputs: Inputs) -> Any:
    return fn(*as_args(inputs, "inputs"))


@torch.no_grad()
def outputs_match(
    reference_fn: Callable[..., Any],
    candidate_fn: Callable[..., Any],
    inputs: Inputs,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> tuple[bool, float]:
    """Run both functions on ``inputs`` (one tensor or a tuple of positional inputs) and
    compare every output tensor: ``|candidate - reference| <= atol + rtol * |reference|``.

    Returns:
        ``(match, max_abs_diff)``: whether every element is within tolerance, and the largest
        absolute difference over all outputs. Outputs of different structure, shape or count
        do not match (``max_abs_diff`` is ``inf``); NaN in the same places counts as equal,
        NaN in only one of them as a difference of ``inf``.
    """
    check_nonnegative(atol, "atol")
    check_nonnegative(rtol, "rtol")
    expected = tensors_in(_call(reference_fn, inputs))
    actual = tensors_in(_call(candidate_fn, inputs))
    if len(expected) != len(actual) or any(a.shape != b.shape for a, b in zip(expected, actual)):
        return False, math.inf
    match, worst = True, 0.0
    for ref, out in zip(expected, actual):
        ref, out = ref.detach().double().cpu(), out.detach().double().cpu()
        match &= bool(torch.allclose(out, ref, atol=atol, rtol=rtol, equal_nan=True))
        both_nan = torch.isnan(ref) & torch.isnan(out)
        diff = (out - ref).abs().masked_fill(both_nan, 0.0).nan_to_num(nan=math.inf)
        if diff.numel():
            worst = max(worst, float(diff.max()))
    return match, worst


def _check_timing(repeats: int, warmup: int) -> None:
    check_int(repeats, "repeats")
    check_int(warmup, "warmup", minimum=0)


@torch.no_grad()
def measure_latency(
    fn: Callable[..., Any], example: Inputs, repeats: int = 50, warmup: int = 5
) -> dict[str, float]:
    """Time ``fn(*example)`` call by call, as one request at a time would see it.

    Pass a batch of 1 for a service's latency. The first ``warmup`` calls are not timed
    (they fill caches and, for a compiled model, may compile); the clock is
    ``time.perf_counter`` and gradients are off. Put a model in eval mode first.

    Returns:
        ``{"median_ms", "mean_ms", "min_ms", "max_ms", "repeats"}``; the median is the number
        to quote, as other programs on the machine make single calls slow now and then.
    """
    _check_timing(repeats, warmup)
    args = as_args(example, "example")
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - start) * 1000.0)
    return {
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": float(repeats),
    }


@torch.no_grad()
def measure_throughput(
    fn: Callable[..., Any], batch: Inputs, repeats: int = 10, warmup: int = 2
) -> float:
    """Items per second of ``fn(*batch)``: ``B * repeats / seconds``, ``B`` the size of
    dimension 0 of the first input tensor (e.g. 64 canvases). ``warmup`` calls go untimed."""
    _check_timing(repeats, warmup)
    args = as_args(batch, "batch")
    tensors = tensors_in(args)
    require(tensors and tensors[0].dim() != 0, "batch must hold a tensor with a batch dimension")
    items = tensors[0].shape[0]
    for _ in range(warmup):
        fn(*args)
    start = time.perf_counter()
    for _ in range(repeats):
        fn(*args)
    seconds = time.perf_counter() - start
    return items * repeats / max(seconds, 1e-12)


def model_size_bytes(model: nn.Module | ExportedProgram) -> int:
    """Bytes of the serialised weights: ``torch.save(model.state_dict())`` for a module
    (int8 weights count their int8 values and scales), ``torch.export.save`` for an
    exported program (graph included). Written to memory, not to disk."""
    buffer = io.BytesIO()
    if isinstance(model, ExportedProgram):
        torch.export.save(model, buffer)
    else:
        check_module(model, "model")
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def compiled(
    module: nn.Module, example_inputs: Inputs, **compile_kwargs: Any
) -> tuple[Callable[..., Any], float]:
    """``torch.compile(module)``, compiled now: returns ``(compiled_module, seconds)``.

    ``torch.compile`` compiles lazily, on the first call; this makes that call with
    ``example_inputs`` (gradients off) so the one-off cost -- often 10-30 s on a laptop's
    CPU, against milliseconds per call afterwards -- is reported apart from the latency.
    A new input shape (another batch size) may compile again. The compiled module shares
    its weights with ``module``, which must be in eval mode.
    """
    check_module(module, "module")
    if module.training:
        raise ValueError("compile a model for inference in eval mode: call module.eval() first")
    fast = torch.compile(module, **compile_kwargs)
    start = time.perf_counter()
    with torch.no_grad():
        _call(fast, example_inputs)
    return fast, time.perf_counter() - start
