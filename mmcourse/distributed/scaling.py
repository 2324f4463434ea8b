"""What data parallelism costs, as arithmetic (chapter 15): the all-reduce of the gradients,
a step's time on ``N`` processes, and the negatives CLIP's loss sees.

A *ring* all-reduce (Patarasuk and Yuan, 2009; what NCCL and gloo use for large tensors)
passes every gradient around a ring of ``N`` processes twice -- once to add the parts up
(reduce-scatter), once to share the sums (all-gather) -- and each process sends and receives
``(N - 1) / N`` of the bytes each time::

    seconds = 2 (N - 1) / N * bytes / bandwidth  +  2 (N - 1) * latency

The first term, the bytes, hardly grows with ``N``; the second, one latency per hop, does.
For a large gradient the bytes dominate and the slowest link's bandwidth sets the time; for
a small one the hops do. (Real libraries switch to tree algorithms when latency dominates.)
"""

from __future__ import annotations

from torch import nn

from mmcourse._validate import check_int, check_module, check_positive, require

__all__ = [
    "LINKS",
    "gradient_bytes",
    "negatives_per_example",
    "ring_allreduce_seconds",
    "step_seconds",
]

LINKS = {
    "NVLink": (450e9, 3e-6),
    "100 Gb/s Ethernet": (100e9 / 8, 15e-6),
}
"""``(bandwidth in bytes per second, latency per hop in seconds)`` of two links a ring may
run over: the GPUs of one server (an H100's NVLink moves about 450 GB/s each way; it joins
the 8 GPUs of one server) and servers in a rack (100 gigabits are 12.5 gigabytes). The
latencies are rough assumptions (a few microseconds within a server, tens between servers
over TCP), for the model's shape, not a measurement."""


def ring_allreduce_seconds(
    num_bytes: float, processes: int, bandwidth: float, latency: float = 0.0
) -> float:
    """Seconds a ring all-reduce of ``num_bytes`` takes over ``processes`` processes linked
    at ``bandwidth`` bytes per second, with ``latency`` seconds per hop:
    ``2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency`` (0 for one process)."""
    check_positive(num_bytes, "num_bytes")
    check_int(processes, "processes")
    check_positive(bandwidth, "bandwidth")
    require(latency >= 0, f"latency must be 0 or more seconds, got {latency!r}")
    hops = 2 * (processes - 1)
    return hops / processes * num_bytes / bandwidth + hops * latency


def gradient_bytes(model: nn.Module, bytes_per_value: int = 4) -> int:
    """Bytes of the gradients DDP all-reduces each step: the trainable parameters, at
    ``bytes_per_value`` bytes each (4 for float32, 2 for bfloat16)."""
    check_module(model)
    check_int(bytes_per_value, "bytes_per_value")
    return bytes_per_value * sum(p.numel() for p in model.parameters() if p.requires_grad)


def step_seconds(
    compute_seconds: float, num_bytes: float, processes: int, link: tuple[float, float]
) -> float:
    """A rough model of one training step on ``processes`` processes at a fixed *global*
    batch: the one-process compute time ``compute_seconds`` split evenly, plus one ring
    all-reduce over ``link`` = ``(bandwidth, latency)``. It leaves out what DDP overlaps
    (communication during the backward pass), what it adds (a gathered loss's own
    exchanges, the slowest rank, small per-process batches that use a GPU less well)."""
    check_positive(compute_seconds, "compute_seconds")
    check_int(processes, "processes")
    bandwidth, latency = link
    return compute_seconds / processes + ring_allreduce_seconds(
        num_bytes, processes, bandwidth, latency
    )


def negatives_per_example(global_batch: int, processes: int, gathered: bool) -> int:
    """How many other captions (negatives) each image is scored against in CLIP's loss: the
    whole global batch less its own caption when the embeddings are gathered, only its own
    process's part less one when they are not."""
    check_int(global_batch, "global_batch")
    check_int(processes, "processes")
    require(
        global_batch % processes == 0,
        f"a global batch of {global_batch} does not split evenly over {processes} processes",
    )
    return (global_batch if gathered else global_batch // processes) - 1
