"""The course's one training loop: a step, and :func:`fit` repeating it.

Data lives in memory as aligned tensors, e.g. ``(images, labels)`` or
``(images, questions, answers)``; :func:`batches` slices them, so there is no per-sample
``DataLoader`` overhead (a small CNN trains an MNIST epoch in about 10 s on two CPU cores).
The **last** tensor of a batch is the target.

- :func:`train_step`   forward, loss, backward, one optimizer step: all of training, once
- :func:`fit`          :func:`train_step` over shuffled batches for some epochs, validation
                       after each; returns a :class:`~mmcourse.callbacks.History`
- :class:`Loop`        how an epoch goes through the data (order, length, forward)
- :func:`batches`      aligned mini-batches, optionally shuffled by a seeded generator
- :func:`evaluate`     loss and metrics on a dataset (eval mode, no gradients)
- :func:`predict`      a model's outputs on a dataset, concatenated, on the CPU

Everything else (printing, early stopping, checkpoints, learning-rate schedules, your own
epoch hooks) is a callback: :mod:`mmcourse.callbacks`. A typical call::

    history = fit(model, (x_train, y_train), loss_fn=nn.CrossEntropyLoss(),
                  optimizer=torch.optim.Adam(model.parameters(), lr=1e-3), epochs=5,
                  val_data=(x_val, y_val), metrics={"accuracy": accuracy},
                  callbacks=[EarlyStopping("val_loss", patience=3), PrintEpochs()])
    print(history.to_table())
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mmcourse._validate import (
    check_callable,
    check_int,
    check_module,
    check_tensor,
    require,
    warn_at_caller,
)
from mmcourse.callbacks import Callback, FitState, History, as_callbacks
from mmcourse.checkpoints import resume_run, save_run
from mmcourse.models.introspect import find_unregistered_modules
from mmcourse.modes import eval_mode, frozen_parts, train_mode
from mmcourse.parallel import Ranks, from_rank_0, replicate, share_buffers, sum_over_ranks

Batch = tuple[Tensor, ...]
Forward = Callable[[nn.Module, Batch], tuple[Tensor, Tensor]]
Metric = Callable[[Tensor, Tensor], float]
LossFn = Callable[[Tensor, Tensor], Tensor]

__all__ = ["Loop", "batches", "evaluate", "fit", "predict", "train_step"]


# ----------------------------------------------------------------------------- one step


def train_step(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    forward: Forward | None = None,
) -> Tensor:
    """One step of training: the model's outputs on ``batch``, their loss, its gradient, and
    one update of the parameters. Returns the loss (still attached to the graph).

    ``forward(model, batch) -> (outputs, targets)`` says how a batch becomes outputs; the
    default is ``model(*batch[:-1])``, with the last tensor as the target.
    """
    outputs, targets = _run_forward(forward or _default_forward, model, batch)
    loss = _check_loss(loss_fn(outputs, targets))
    optimizer.zero_grad(set_to_none=True)  # forget the previous step's gradients
    loss.backward()  # d loss / d parameter, into each parameter's .grad
    optimizer.step()  # move each parameter against its gradient
    return loss


# ----------------------------------------------------------------------------- fit


@dataclass(frozen=True)
class Loop:
    """How each epoch of :func:`fit` goes through the data; most runs keep the defaults.

    Args:
        seed: seeds the shuffling (a ``torch.Generator``) and torch's global generator
            (dropout), so a run repeats exactly; ``None`` uses the global generator as it is.
            Note the side effect: ``torch.manual_seed(seed)`` runs when ``fit`` starts, so
            whatever draws random numbers after ``fit`` (a notebook's next cell) starts from
            a state ``fit`` left.
        max_batches_per_epoch: train on at most this many batches per epoch (a quick trial
            run, a fixed budget, or ``N // batch_size`` to leave out a ragged last batch);
            validation still uses all of ``val_data``.
        forward: ``forward(model, batch) -> (outputs, targets)`` for models that do not take
            ``model(*batch[:-1])``, e.g. ``lambda m, b: (m(b[0], b[1]), b[2])``.
        checkpoint: a file to write after every epoch with everything the run needs to go on
            (:func:`mmcourse.checkpoints.save_run`); if it exists when ``fit`` starts, ``fit``
            goes on from it, and ends with the weights an uninterrupted run would have.

    Under ``torchrun``, once the program has joined the process group
    (:func:`mmcourse.distributed.start`), ``fit`` trains data-parallel: every rank takes its
    part of each seeded global batch (``batch_size`` is the *global* batch), DDP averages the
    gradients, rank 0 alone prints and writes (:mod:`mmcourse.parallel`). What it does not
    do: gather a loss that needs every rank's rows (CLIP's: use
    :func:`mmcourse.distributed.gathered_clip_loss`), synchronise batch norm, or allow a
    trainable parameter that the forward leaves unused (DDP then stops with an error).
    ``forward`` receives the DDP wrapper: it must call ``model(...)``, not a method of it.
    """

    seed: int | None = 0
    max_batches_per_epoch: int | None = None
    forward: Forward | None = None
    checkpoint: str | Path | None = None

    def __post_init__(self) -> None:
        if self.seed is not None:
            check_int(self.seed, "seed", minimum=0)
        if self.max_batches_per_epoch is not None:
            check_int(self.max_batches_per_epoch, "max_batches_per_epoch")
        if self.forward is not None:
            check_callable(self.forward, "forward")
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, Path)):
            raise TypeError(
                f"checkpoint must be a str or Path, got {type(self.checkpoint).__name__}"
            )
        require(
            self.checkpoint is None or self.seed is not None,
            "a run goes on exactly from its checkpoint only if the order of its batches is "
            "seeded: give Loop(seed=...) with checkpoint=...",
        )


def fit(
    model: nn.Module,
    train_data: Batch,
    *,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int = 128,
    val_data: Batch | None = None,
    metrics: dict[str, Metric] | None = None,
    callbacks: list[Callback | Callable[[dict[str, float]], None]] | tuple = (),
    loop: Loop = Loop(),
) -> History:
    """Train ``model`` for ``epochs`` epochs of :func:`train_step`; return the
    :class:`~mmcourse.callbacks.History`, one record per epoch.

    Each epoch shuffles ``train_data`` (aligned tensors, the last one the target; the order
    is fixed by ``loop.seed``), takes one :func:`train_step` per batch, then scores
    ``val_data`` with :func:`evaluate`, ``loss_fn`` and ``metrics`` (``{"accuracy": fn}``
    with ``fn(outputs, targets) -> float``, recorded as ``val_accuracy``). ``callbacks`` run
    in the order given (:mod:`mmcourse.callbacks`). ``fit`` trains where the model is: move
    it first, ``model.to(device)``. Parts frozen with :func:`mmcourse.modes.freeze` stay in
    eval mode; the model is left in eval mode.
    """
    callbacks = as_callbacks(callbacks)
    _check_fit(model, train_data, loss_fn, optimizer, epochs, batch_size, val_data, metrics, loop)
    device, frozen, ranks = _model_device(model), frozen_parts(model), Ranks.now()
    generator = None
    if loop.seed is not None:
        torch.manual_seed(loop.seed + ranks.rank)  # dropout...: under torchrun, a seed per rank
        generator = torch.Generator().manual_seed(loop.seed)  # the order of the batches
    per_epoch = -(-len(train_data[0]) // batch_size)  # the last batch may be smaller
    per_epoch = min(per_epoch, loop.max_batches_per_epoch or per_epoch)
    state = FitState(model, optimizer, epochs, per_epoch, val_data is not None, generator=generator)
    history, replica = state.history, replicate(model)  # under torchrun: DDP, else the model
    for callback in callbacks:
        callback.on_fit_start(state)
    done = 0  # epochs already trained: a run that goes on from loop.checkpoint skips them
    if loop.checkpoint is not None and from_rank_0(Path(loop.checkpoint).exists()):
        done = resume_run(loop.checkpoint, state, callbacks)  # every rank, as rank 0 decided
    for epoch in range(done + 1, epochs + 1):
        state.epoch = epoch
        train_mode(model, frozen)  # dropout and batch norm on, except in frozen parts
        shuffled = batches(*train_data, batch_size=batch_size, shuffle=True, generator=generator)
        total_loss = torch.zeros(2, dtype=torch.float64, device=device)  # loss x rows, rows
        for batch in itertools.islice(shuffled, per_epoch):
            mine = ranks.rows(len(batch[0]))  # under torchrun: this rank's part of the batch
            batch = tuple(t[mine].to(device, non_blocking=True) for t in batch)
            loss = train_step(replica, batch, loss_fn, optimizer, loop.forward)
            total_loss[0] += loss.detach().to(torch.float64) * len(batch[0])  # a mean per row
            total_loss[1] += len(batch[0])
            for callback in callbacks:
                callback.on_step_end(state)
        total, seen = sum_over_ranks(total_loss).tolist()  # every rank's rows
        record = {"epoch": epoch, "train_loss": total / seen}
        share_buffers(model)  # under torchrun: rank 0's batch-norm statistics, on every rank
        if val_data is not None:
            scores = evaluate(model, val_data, loss_fn=loss_fn, metrics=metrics,
                              batch_size=max(batch_size, 512), forward=loop.forward)  # fmt: skip
            record.update({f"val_{key}": value for key, value in scores.items()})
        history.records.append(record)
        for callback in callbacks:
            callback.on_epoch_end(state, record)  # may add to the record, or set state.stop
        if loop.checkpoint is not None:
            save_run(loop.checkpoint, state, callbacks)  # rank 0 writes; a killed run goes on
        if state.stop:
            break
    for callback in callbacks:
        callback.on_fit_end(state, history)
    model.eval()
    return history


def _check_fit(
    model: nn.Module,
    train_data: Batch,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    val_data: Batch | None,
    metrics: dict[str, Metric] | None,
    loop: Loop,
) -> None:
    """Every argument of :func:`fit` checked before anything runs."""
    check_module(model)
    check_int(epochs, "epochs")
    check_int(batch_size, "batch_size")
    check_callable(loss_fn, "loss_fn")
    if not isinstance(loop, Loop):
        raise TypeError(f"loop must be a Loop(...), got {type(loop).__name__}")
    _check_data(train_data, "train_data", loop.forward)
    if val_data is not None:
        _check_data(val_data, "val_data", loop.forward)
    elif metrics:
        raise ValueError(
            f"metrics {sorted(metrics)} are computed on val_data, but val_data is None; "
            "pass val_data=(inputs..., targets)"
        )
    _check_optimizer(model, optimizer)
    _check_ranks(len(train_data[0]), batch_size, loop)


def _check_ranks(rows: int, batch_size: int, loop: Loop) -> None:
    """Under torchrun: a seeded order, and batches every rank can share equally."""
    ranks = Ranks.now()
    started = os.environ.get("WORLD_SIZE", "1").strip()
    if ranks.size == 1 and started.isdigit() and int(started) > 1:
        warn_at_caller(
            "torchrun started several processes, but this one has not joined their process "
            "group, so each trains on every batch alone: call mmcourse.distributed.start() first"
        )
    if ranks.size > 1:
        require(
            loop.seed is not None,
            "under torchrun every rank must draw the same batches: use Loop(seed=...), not None",
        )
        if loop.max_batches_per_epoch is not None:  # the batches that will be trained on
            rows = min(rows, loop.max_batches_per_epoch * batch_size)
        ranks.check_batches(rows, batch_size)


# ----------------------------------------------------------------------------- batches


def batches(
    *tensors: Tensor,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, ...]]:
    """Yield aligned mini-batches ``(t1[idx], t2[idx], ...)`` of in-memory tensors.

    Args:
        tensors: tensors with the same first dimension N, e.g. images ``(N, 1, 28, 28)`` and
            labels ``(N,)``.
        batch_size: rows per batch; the last batch may be smaller unless ``drop_last``.
        shuffle: visit the rows in a random order (``torch.randperm`` with ``generator``).
        generator: a seeded ``torch.Generator`` (on the CPU) for a reproducible order.
        drop_last: skip a final batch smaller than ``batch_size``.

    Without shuffling the batches are views (no copy).

    >>> x, y = torch.arange(5), torch.arange(5) * 10
    >>> [b[1].tolist() for b in batches(x, y, batch_size=2)]
    [[0, 10], [20, 30], [40]]
    """
    n = _check_tensors(tensors, "tensors")
    check_int(batch_size, "batch_size")
    order = torch.randperm(n, generator=generator) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if order is None:
            yield tuple(t[start:end] for t in tensors)
        else:
            idx = order[start:end]
            yield tuple(t[idx.to(t.device)] for t in tensors)


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: tuple[Tensor, ...],
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    metrics: dict[str, Metric] | None = None,
    batch_size: int = 512,
    forward: Forward | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data``, in eval mode and without gradients.

    Args:
        data: aligned tensors ``(input_1, ..., target)``.
        loss_fn: reported as ``"loss"``: the mean over samples (batch means weighted by size).
        metrics: ``{"accuracy": fn}`` with ``fn(outputs, targets) -> float``; averaged the same
            way, which is exact for per-sample means such as accuracy.
        forward: as in :func:`fit`.
        device: default: where the model's parameters are.

    Returns:
        ``{"loss": ..., "accuracy": ...}``. The model's train/eval mode is restored afterwards.
    """
    _check_data(data, "data", forward)
    check_int(batch_size, "batch_size")
    metrics = dict(metrics or {})
    if loss_fn is None and not metrics:
        raise ValueError("evaluate needs loss_fn or metrics (or both); got neither")
    forward_fn = forward if forward is not None else _default_forward
    device = _resolve_device(model, device)
    sums = dict.fromkeys(["loss"] if loss_fn is not None else [], 0.0)
    sums.update(dict.fromkeys(metrics, 0.0))
    seen = 0
    with eval_mode(model):
        for batch in batches(*data, batch_size=batch_size):
            batch = _to_device(batch, device)
            outputs, targets = _run_forward(forward_fn, model, batch)
            rows = batch[0].shape[0]
            if loss_fn is not None:
                sums["loss"] += float(_check_loss(loss_fn(outputs, targets))) * rows
            for name, metric in metrics.items():
                sums[name] += float(metric(outputs, targets)) * rows
            seen += rows
    return {name: total / seen for name, total in sums.items()}


@torch.no_grad()
def predict(
    model: nn.Module,
    *inputs: Tensor,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> Tensor:
    """``model(*inputs)`` batch by batch, in eval mode without gradients; returned on the CPU.

    The model must return one tensor whose first dimension is the batch::

        logits = predict(model, x_test)                          # (N, num_classes)
        answers = predict(vqa_model, images, questions).argmax(1)  # (N,)

    The model's train/eval mode is restored afterwards.
    """
    require(inputs, "predict needs at least one input tensor, e.g. predict(model, x)")
    _check_tensors(inputs, "inputs")
    check_int(batch_size, "batch_size")
    device = _resolve_device(model, device)
    outputs = []
    with eval_mode(model):
        for batch in batches(*inputs, batch_size=batch_size):
            out = model(*_to_device(batch, device))
            if not isinstance(out, Tensor):
                raise TypeError(
                    f"predict expects the model to return a tensor, got {type(out).__name__}"
                )
            outputs.append(out.cpu())
    require(outputs, "predict got inputs with 0 rows")
    return torch.cat(outputs)


# ----------------------------------------------------------------------------- checks and helpers


def _default_forward(model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    outputs = model(*batch[:-1])
    return outputs, batch[-1]


def _run_forward(forward: Forward, model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    result = forward(model, batch)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(
            "forward(model, batch) must return a pair (outputs, targets), "
            f"got {type(result).__name__}"
        )
    return result


def _check_loss(loss: Tensor) -> Tensor:
    check_tensor(loss, "the value of loss_fn", "(a scalar: reduction='mean')")
    if loss.dim() != 0:
        raise ValueError(
            f"loss_fn must return a scalar tensor (reduction='mean'), got {tuple(loss.shape)}"
        )
    return loss


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return tuple(t.to(device, non_blocking=True) for t in batch)


def _resolve_device(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is None:
        return _model_device(model)
    device = torch.device(device)
    model.to(device)
    return device


def _check_data(data: tuple[Tensor, ...], name: str, forward: Forward | None) -> int:
    n = _check_tensors(data, name)
    require(n != 0, f"{name} is empty: its tensors have 0 rows")
    if forward is None and len(data) < 2:
        raise ValueError(
            f"{name} must hold inputs and targets, e.g. (images, labels), got {len(data)} "
            "tensor; the last tensor is the target (or pass forward=... to say otherwise)"
        )
    return n


def _check_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(
            "the model has no trainable parameters (none, or all have requires_grad=False)"
            + _plain_list_hint(model)
        )
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not any(id(p) in held for p in trainable):
        raise ValueError(
            "the optimizer holds none of the model's trainable parameters, so fit would "
            "change nothing; build it from this model, e.g. "
            "torch.optim.Adam(model.parameters()), after the model is created"
            + _plain_list_hint(model)
        )
    hidden = find_unregistered_modules(model)
    if hidden:
        warn_at_caller(
            f"{', '.join(hidden)} hold layers/parameters in a plain Python container; PyTorch "
            "does not register them, so model.parameters() misses them: use nn.ModuleList, "
            "nn.ModuleDict or nn.ParameterList"
        )


def _check_tensors(tensors: tuple[Tensor, ...] | list[Tensor], name: str) -> int:
    """Check that ``tensors`` is a non-empty sequence of aligned tensors; return their length."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (tuple, list)):
        raise TypeError(
            f"{name} must be a tuple of tensors such as (inputs, targets), "
            f"got {type(tensors).__name__}"
        )
    require(len(tensors) != 0, f"{name} is empty: expected at least one tensor, got ()")
    for i, t in enumerate(tensors):
        check_tensor(t, f"{name}[{i}]")
        require(t.dim() != 0, f"{name}[{i}] is a 0-d tensor; expected a first (sample) dimension")
    lengths = [t.shape[0] for t in tensors]
    if len(set(lengths)) > 1:
        raise ValueError(
            f"the tensors in {name} must have the same first dimension (one row per sample), "
            f"got lengths {lengths}"
        )
    return lengths[0]


def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for an empty model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _plain_list_hint(model: nn.Module) -> str:
    hidden = find_unregistered_modules(model)
    if not hidden:
        return ""
    return (
        f"; {', '.join(hidden)} hold layers/parameters in a plain Python container, which "
        "PyTorch never registers: use nn.ModuleList, nn.ModuleDict or nn.ParameterList"
    )
