"""The course's one training loop, with its helpers.

Data lives in memory as aligned tensors, e.g. ``(images, labels)`` or
``(images, questions, answers)``; :func:`batches` slices them, so there is no per-sample
``DataLoader`` overhead (a small CNN trains an MNIST epoch in about 10 s on two CPU cores).
The **last** tensor of a batch is the target.

- :func:`batches`          aligned mini-batches, optionally shuffled by a seeded generator
- :func:`fit`              train for some epochs; returns a :class:`History`
- :class:`EarlyStopping`   stop when a monitored number stops improving, restore the best weights
- :func:`evaluate`         loss and metrics on a dataset (eval mode, no gradients)
- :func:`predict`          a model's outputs on a dataset, concatenated, on the CPU
- :func:`save_checkpoint`, :func:`load_checkpoint`   state dicts on disk, loaded safely

A typical call::

    history = fit(model, (x_train, y_train), loss_fn=nn.CrossEntropyLoss(),
                  optimizer=torch.optim.Adam(model.parameters(), lr=1e-3), epochs=5,
                  val_data=(x_val, y_val), metrics={"accuracy": accuracy})
    print(history.to_table())
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import pickle
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from mmcourse import utils
from mmcourse._validate import (
    check_callable,
    check_int,
    check_module,
    check_nonnegative,
    check_tensor,
    warn_at_caller,
)
from mmcourse.models.introspect import find_unregistered_modules
from mmcourse.modes import eval_mode, frozen_parts, train_mode

Batch = tuple[Tensor, ...]
Forward = Callable[[nn.Module, Batch], tuple[Tensor, Tensor]]
Metric = Callable[[Tensor, Tensor], float]

MODES = ("min", "max")
"""Early stopping's modes: lower is better, or higher is better."""
SCHEDULER_STEPS = ("epoch", "step")
"""When :func:`fit` steps a learning-rate scheduler."""
_PLATEAU = torch.optim.lr_scheduler.ReduceLROnPlateau

__all__ = [
    "EarlyStopping",
    "History",
    "batches",
    "evaluate",
    "fit",
    "load_checkpoint",
    "predict",
    "save_checkpoint",
]


# ----------------------------------------------------------------------------- checks


def _check_tensors(tensors: tuple[Tensor, ...] | list[Tensor], name: str) -> int:
    """Check that ``tensors`` is a non-empty sequence of aligned tensors; return their length."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (tuple, list)):
        raise TypeError(
            f"{name} must be a tuple of tensors such as (inputs, targets), "
            f"got {type(tensors).__name__}"
        )
    if len(tensors) == 0:
        raise ValueError(f"{name} is empty: expected at least one tensor, got ()")
    for i, t in enumerate(tensors):
        check_tensor(t, f"{name}[{i}]")
        if t.dim() == 0:
            raise ValueError(f"{name}[{i}] is a 0-d tensor; expected a first (sample) dimension")
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


# ----------------------------------------------------------------------------- history


def _format_value(key: str, value: float) -> str:
    if key == "epoch":
        return str(int(value))
    if key == "lr":
        return f"{value:.2e}"
    return f"{value:.4f}"


@dataclass
class History:
    """What :func:`fit` measured: one dict per epoch.

    ``records[i]`` has keys such as ``"epoch"`` (1-based), ``"train_loss"``, ``"val_loss"``,
    ``"val_accuracy"`` (one ``val_<name>`` per metric) and ``"lr"`` when a scheduler is used.
    ``history["val_loss"]`` is the list of that column; ``best_epoch`` is the epoch whose
    weights early stopping kept (``None`` without early stopping).
    """

    records: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None

    def __getitem__(self, key: str) -> list[float]:
        """The values of one column, one per epoch (NaN where an epoch lacks it)."""
        if not any(key in record for record in self.records):
            raise KeyError(f"history has no {key!r}; it has {self.keys()}")
        return [record.get(key, math.nan) for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __str__(self) -> str:
        return self.to_table()

    def keys(self) -> list[str]:
        """Column names in order of first appearance."""
        names: list[str] = []
        for record in self.records:
            names += [key for key in record if key not in names]
        return names

    @property
    def last(self) -> dict[str, float]:
        """The record of the last epoch (a copy; ``{}`` before any epoch)."""
        return dict(self.records[-1]) if self.records else {}

    def to_table(self) -> str:
        """A fixed-width text table, numbers rounded to 4 decimals, e.g.::

        epoch  train_loss  val_loss  val_accuracy
            1      0.4512    0.2301        0.9310
            2      0.2011    0.1907        0.9421
        """
        keys = self.keys()
        if not keys:
            return "(no epochs)"
        cells = [[_format_value(k, r[k]) if k in r else "" for k in keys] for r in self.records]
        widths = [max([len(k)] + [len(row[i]) for row in cells]) for i, k in enumerate(keys)]
        lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
        if self.best_epoch is not None:
            lines.append(f"best epoch: {self.best_epoch}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- early stopping


class EarlyStopping:
    """Stop training once ``monitor`` has gone ``patience`` epochs in a row without improving.

    The rule of Keras and Lightning: with ``patience=2`` and the best value at epoch 5, epochs
    6 and 7 bring no improvement and training stops after epoch 7 (then, with
    ``restore_best``, the weights of epoch 5 are put back).

    Args:
        monitor: a key of the epoch record, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        mode: ``"min"`` (lower is better) or ``"max"``.
        patience: the number of epochs in a row without improvement after which training
            stops (at least 1).
        min_delta: an improvement must beat the best value by more than this.
        restore_best: when :func:`fit` ends, load the weights of the best epoch.

    :func:`fit` calls :meth:`reset` at its start, so one object can be reused.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "min",
        patience: int = 3,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a record key such as 'val_loss', got {monitor!r}")
        if not monitor:
            raise ValueError("monitor must be a record key such as 'val_loss', got ''")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.patience = check_int(patience, "patience")
        self.min_delta = float(check_nonnegative(min_delta, "min_delta"))
        self.restore_best = restore_best
        self.reset()

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(monitor={self.monitor!r}, mode={self.mode!r}, "
            f"patience={self.patience}, min_delta={self.min_delta}, "
            f"restore_best={self.restore_best})"
        )

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.wait = 0
        self.should_stop = False

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta`` (NaN never does)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: float, epoch: int, model: nn.Module | None = None) -> bool:
        """Record one epoch's value; return True if it is a new best.

        On a new best the model's weights are copied (if ``restore_best``); otherwise ``wait``,
        the count of epochs without improvement, grows, and ``should_stop`` turns True when it
        reaches ``patience``.
        """
        value = float(value)
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best and model is not None:
                self.best_state = copy.deepcopy(model.state_dict())
            return True
        self.wait += 1
        self.should_stop = self.wait >= self.patience
        return False


# ----------------------------------------------------------------------------- fit


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
    if n == 0:
        raise ValueError(f"{name} is empty: its tensors have 0 rows")
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


def _check_schedule(scheduler: Any, scheduler_step: str) -> None:
    if scheduler_step not in SCHEDULER_STEPS:
        raise ValueError(f"scheduler_step must be one of {SCHEDULER_STEPS}, got {scheduler_step!r}")
    if scheduler_step == "step" and isinstance(
        scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau
    ):
        raise ValueError(
            "ReduceLROnPlateau reacts to one number per epoch: use scheduler_step='epoch'"
        )


def _check_early_stopping(
    early_stopping: EarlyStopping | None, keys: list[str], val_data: Batch | None
) -> None:
    if early_stopping is None:
        return
    if not isinstance(early_stopping, EarlyStopping):
        raise TypeError(
            f"early_stopping must be an EarlyStopping, got {type(early_stopping).__name__}"
        )
    if early_stopping.monitor not in keys:
        raise ValueError(
            f"early stopping monitors {early_stopping.monitor!r}, but each epoch records "
            f"{keys}" + ("; pass val_data=..." if val_data is None else "")
        )


def _describe(record: dict[str, float]) -> str:
    """``train_loss 0.1234  val_loss 0.2345``: a record without its epoch, rounded."""
    return "  ".join(f"{k} {_format_value(k, v)}" for k, v in record.items() if k != "epoch")


@dataclass
class _Run:
    """One call of :func:`fit`: its arguments, checked, and what it keeps between epochs."""

    model: nn.Module
    train_data: Batch
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    optimizer: torch.optim.Optimizer
    epochs: int
    val_data: Batch | None
    batch_size: int
    metrics: dict[str, Metric]
    forward: Forward | None
    early_stopping: EarlyStopping | None
    scheduler: Any
    scheduler_step: str
    checkpoint_path: str | Path | None
    device: torch.device | str | None
    seed: int | None
    progress: bool
    verbose: bool
    max_batches_per_epoch: int | None
    on_epoch_end: Callable[[dict[str, float]], None] | None
    generator: torch.Generator | None = None
    best_saved: float | None = None
    """The best validation number checkpointed so far (when there is no early stopping)."""

    def __post_init__(self) -> None:
        self.check()
        self.forward_fn = self.forward if self.forward is not None else _default_forward
        self.device = _resolve_device(self.model, self.device)
        self.frozen = frozen_parts(self.model)  # e.g. a pretrained encoder (modes.freeze)
        if self.seed is not None:
            torch.manual_seed(self.seed)
            self.generator = torch.Generator().manual_seed(self.seed)
        default = "val_loss" if self.val_data is not None else "train_loss"
        stopper = self.early_stopping
        self.watch = stopper.monitor if stopper is not None else default
        if stopper is not None:
            stopper.reset()

    def check(self) -> None:
        """Every argument checked before anything runs."""
        check_module(self.model)
        check_int(self.epochs, "epochs")
        check_int(self.batch_size, "batch_size")
        if self.max_batches_per_epoch is not None:
            check_int(self.max_batches_per_epoch, "max_batches_per_epoch")
        if self.seed is not None:
            check_int(self.seed, "seed", minimum=0)
        check_callable(self.loss_fn, "loss_fn")
        _check_data(self.train_data, "train_data", self.forward)
        if self.val_data is not None:
            _check_data(self.val_data, "val_data", self.forward)
        elif self.metrics:
            raise ValueError(
                f"metrics {sorted(self.metrics)} are computed on val_data, but val_data is None; "
                "pass val_data=(inputs..., targets)"
            )
        _check_optimizer(self.model, self.optimizer)
        _check_schedule(self.scheduler, self.scheduler_step)
        _check_early_stopping(self.early_stopping, self.record_keys(), self.val_data)
        if self.on_epoch_end is not None:
            check_callable(self.on_epoch_end, "on_epoch_end")

    def record_keys(self) -> list[str]:
        """The keys every epoch's record has."""
        keys = ["epoch", "train_loss"]
        if self.val_data is not None:
            keys += ["val_loss"] + [f"val_{name}" for name in self.metrics]
        return keys + (["lr"] if self.scheduler is not None else [])

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the shuffled training data: ``{"epoch": ..., "train_loss": ...}``."""
        train_mode(self.model, self.frozen)  # frozen parts stay in eval mode
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = 0
        parts = batches(
            *self.train_data, batch_size=self.batch_size, shuffle=True, generator=self.generator
        )
        for batch in itertools.islice(parts, self.max_batches_per_epoch):
            batch = _to_device(batch, self.device)
            loss = self.train_step(batch)
            total += loss.detach().to(torch.float64) * batch[0].shape[0]
            seen += batch[0].shape[0]
        return {"epoch": epoch, "train_loss": total.item() / seen}

    def train_step(self, batch: Batch) -> Tensor:
        """Forward, loss, backward, one optimizer step (and a per-step scheduler's)."""
        outputs, targets = _run_forward(self.forward_fn, self.model, batch)
        loss = _check_loss(self.loss_fn(outputs, targets))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None and self.scheduler_step == "step":
            self.scheduler.step()
        return loss

    def end_epoch(self, record: dict[str, float]) -> dict[str, float]:
        """Add validation and the learning rate to ``record``, step a per-epoch scheduler, and
        let ``on_epoch_end`` add its own entries."""
        if self.val_data is not None:
            result = evaluate(
                self.model,
                self.val_data,
                loss_fn=self.loss_fn,
                metrics=self.metrics,
                batch_size=max(self.batch_size, 512),
                forward=self.forward,
                device=self.device,
            )
            record.update({f"val_{key}": value for key, value in result.items()})
        if self.scheduler is not None:
            record["lr"] = float(self.optimizer.param_groups[0]["lr"])
            if self.scheduler_step == "epoch" and isinstance(self.scheduler, _PLATEAU):
                self.scheduler.step(record[self.watch])
            elif self.scheduler_step == "epoch":
                self.scheduler.step()
        if self.on_epoch_end is not None:
            self.on_epoch_end(record)
        return record

    def keep_best(self, record: dict[str, float]) -> None:
        """Step early stopping, and save a checkpoint if the watched number improved."""
        value, improved = record[self.watch], True
        if self.early_stopping is not None:
            improved = self.early_stopping.step(value, record["epoch"], self.model)
        elif self.val_data is not None:
            improved = not math.isnan(value) and (
                self.best_saved is None or value < self.best_saved
            )
            self.best_saved = value if improved else self.best_saved
        if self.checkpoint_path is not None and improved:
            save_checkpoint(self.checkpoint_path, self.model, self.optimizer, **record)

    def report(self, record: dict[str, float], bar: Any) -> None:
        """Advance the bar; print ``epoch  3/10  train_loss 0.1234 ...`` if ``verbose``."""
        bar.update(1)
        if self.verbose:
            line = f"epoch {record['epoch']:>{len(str(self.epochs))}}/{self.epochs}  "
            (bar.write if self.progress else print)(line + _describe(record))

    def should_stop(self) -> bool:
        return self.early_stopping is not None and self.early_stopping.should_stop

    def finish(self, history: History) -> None:
        """Put the best epoch's weights back if early stopping asks, say so, and set eval mode."""
        stopper = self.early_stopping
        if stopper is not None:
            history.best_epoch = stopper.best_epoch
            messages = []
            if stopper.should_stop:
                messages.append(
                    f"early stopping: {stopper.monitor} did not improve for {stopper.wait} epochs"
                )
            last = history.records[-1]["epoch"]
            if (
                stopper.restore_best
                and stopper.best_state is not None
                and stopper.best_epoch != last
            ):
                self.model.load_state_dict(stopper.best_state)
                best = _format_value(stopper.monitor, float(stopper.best))
                messages.append(
                    f"restored the weights of epoch {stopper.best_epoch} ({stopper.monitor} {best})"
                )
            if self.verbose and messages:
                print("; ".join(messages))
        self.model.eval()


def fit(
    model: nn.Module,
    train_data: tuple[Tensor, ...],
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    val_data: tuple[Tensor, ...] | None = None,
    batch_size: int = 128,
    metrics: dict[str, Metric] | None = None,
    forward: Forward | None = None,
    early_stopping: EarlyStopping | None = None,
    scheduler: Any = None,
    scheduler_step: Literal["epoch", "step"] = "epoch",
    checkpoint_path: str | Path | None = None,
    device: torch.device | str | None = None,
    seed: int | None = 0,
    progress: bool = True,
    verbose: bool = True,
    max_batches_per_epoch: int | None = None,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
) -> History:
    """Train ``model`` on in-memory tensors for ``epochs`` epochs and return the :class:`History`.

    Each epoch: shuffle ``train_data`` (a ``torch.Generator`` seeded from ``seed``, so the
    order is the same on every run), and for every batch run ``forward``, ``loss_fn``,
    ``backward`` and ``optimizer.step()``; then, if ``val_data`` is given, :func:`evaluate`
    it (eval mode, no gradients) with ``loss_fn`` and ``metrics``.

    Args:
        model: the network; moved to ``device`` if one is given.
        train_data: aligned tensors ``(input_1, ..., target)``; the last one is the target.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor`` (mean over the batch).
        optimizer: built from ``model.parameters()``.
        epochs: the number of passes over ``train_data`` (at most; see ``early_stopping``).
        val_data: aligned tensors like ``train_data`` for validation after each epoch.
        batch_size: rows per training batch.
        metrics: ``{"accuracy": fn}`` with ``fn(outputs, targets) -> float``, computed on
            ``val_data`` and recorded as ``"val_accuracy"``. Values are averaged over batches
            weighted by batch size: exact for per-sample means such as accuracy.
        forward: ``forward(model, batch) -> (outputs, targets)`` for models that do not take
            ``model(*batch[:-1])``, e.g. ``lambda m, b: (m(b[0], b[1]), b[2])``.
        early_stopping: an :class:`EarlyStopping`; its ``monitor`` must be a record key.
        scheduler: a learning-rate scheduler; its learning rate is recorded as ``"lr"``.
        scheduler_step: when ``scheduler.step()`` is called: ``"epoch"``, once after each
            epoch (``ReduceLROnPlateau`` gets the early-stopping monitor, else ``val_loss``,
            else ``train_loss``), and ``"lr"`` is the rate the epoch trained with; or
            ``"step"``, after every optimizer step (as ``OneCycleLR`` expects), and ``"lr"``
            is the rate reached at the epoch's end.
        checkpoint_path: save a checkpoint (:func:`save_checkpoint`) whenever the validation
            result improves (the early-stopping monitor, else ``val_loss``), or after every
            epoch without ``val_data``.
        device: where to train; default: where the model's parameters are. Batches are moved
            there one at a time, so the data may stay on the CPU.
        seed: seeds the shuffling and torch's global generator (dropout), so a run repeats
            exactly; ``None`` uses the global generator as it is. Note the side effect:
            ``torch.manual_seed(seed)`` runs at the start, so whatever draws random numbers
            after ``fit`` (a notebook's next cell) starts from a state ``fit`` left, not from
            the one it would have had without this call.
        progress: show one ``tqdm.auto`` bar over the epochs (unless ``TQDM_DISABLE=1`` is set,
            as it is for the stored copies of the notebooks).
        verbose: print one line per epoch,
            ``epoch  3/10  train_loss 0.1234  val_loss 0.2345  val_accuracy 0.9712``.
        max_batches_per_epoch: train on at most this many batches per epoch (a quick trial
            run, or ``N // batch_size`` to leave out a ragged last batch); validation still
            uses all of ``val_data``.
        on_epoch_end: called with each epoch's record (a dict) once it is complete, before it
            is stored and printed; it may add entries, e.g. a test-set score or a time.

    Returns:
        The :class:`History`; ``train_loss`` is the mean loss over the training samples seen
        in the epoch (each batch weighted by its size). The model is left in eval mode, with
        the best epoch's weights if early stopping restored them.

    Each epoch puts the model in training mode except its frozen parts: submodules in eval
    mode whose parameters are all fixed when ``fit`` starts (:func:`mmcourse.modes.freeze`),
    so a pretrained encoder's batch norm keeps its statistics.
    """
    run = _Run(
        model=model,
        train_data=train_data,
        loss_fn=loss_fn,
        optimizer=optimizer,
        epochs=epochs,
        val_data=val_data,
        batch_size=batch_size,
        metrics=dict(metrics or {}),
        forward=forward,
        early_stopping=early_stopping,
        scheduler=scheduler,
        scheduler_step=scheduler_step,
        checkpoint_path=checkpoint_path,
        device=device,
        seed=seed,
        progress=progress,
        verbose=verbose,
        max_batches_per_epoch=max_batches_per_epoch,
        on_epoch_end=on_epoch_end,
    )
    history = History()
    bar = utils.progress(total=epochs, desc="fit", unit="epoch", leave=True, disable=not progress)
    try:
        for epoch in range(1, epochs + 1):
            record = run.end_epoch(run.train_epoch(epoch))
            history.records.append(record)
            run.keep_best(record)
            run.report(record, bar)
            if run.should_stop():
                break
        bar.set_postfix_str(_describe(history.last), refresh=False)
    finally:
        bar.close()
    run.finish(history)
    return history


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
    if not inputs:
        raise ValueError("predict needs at least one input tensor, e.g. predict(model, x)")
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
    if not outputs:
        raise ValueError("predict got inputs with 0 rows")
    return torch.cat(outputs)


# ----------------------------------------------------------------------------- checkpoints


_PLAIN = (int, float, str, bool, type(None))

_DAMAGED = (RuntimeError, EOFError, KeyError, IndexError, ValueError, zipfile.BadZipFile)
"""What ``torch.load`` raises on a truncated or corrupted file (e.g. "PytorchStreamReader
failed reading zip archive", an ``EOFError`` for an empty file)."""


def _damaged(path: Path, error: BaseException) -> ValueError:
    return ValueError(
        f"{path} is damaged (truncated or corrupted, for example by an interrupted copy or a "
        f"full disk), so it cannot be read as a checkpoint ({type(error).__name__}); delete "
        "it and re-run the cell or training run that saved it with save_checkpoint"
    )


def _read_checkpoint(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``, its errors turned into clear ones."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" not in str(error).lower():  # not a refused object: a corrupted pickle
            raise _damaged(path, error) from error
        raise ValueError(
            f"{path} holds Python objects other than tensors and plain values, so it was "
            "refused (weights_only=True): unpickling them could run arbitrary code"
        ) from error
    except _DAMAGED as error:
        raise _damaged(path, error) from error


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    **extra: int | float | str | bool | None,
) -> Path:
    """Save the model's (and optimizer's) state dict plus plain numbers/strings to ``path``.

    ``extra`` holds things like ``epoch=3, val_loss=0.21``; only ``int``, ``float``, ``str``,
    ``bool`` and ``None`` are accepted, so the file can be read back with
    ``weights_only=True`` (see :func:`load_checkpoint`). Parent folders are created; the file
    is written to a temporary name first, so an interrupted save never leaves half a file.
    Returns the path.
    """
    for key, value in extra.items():
        if not isinstance(value, _PLAIN):
            raise TypeError(
                f"checkpoint extra {key!r} must be a plain int/float/str/bool/None, got "
                f"{type(value).__name__}; convert tensors with .item()"
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"model": model.state_dict(), "extra": dict(extra)}
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Load a :func:`save_checkpoint` file into ``model`` (and ``optimizer``); return its extras.

    The file is read with ``torch.load(path, map_location="cpu", weights_only=True)``.
    ``torch.save`` uses Python's pickle, and unpickling can run *any* code the file's author
    put there, so loading an untrusted ``.pt`` file with ``weights_only=False`` is like running
    their script. ``weights_only=True`` only rebuilds tensors, numbers, strings and
    containers, and refuses everything else (raised here as ``ValueError``); a truncated or
    corrupted file is reported as damaged (``ValueError``, naming it). ``map_location``
    puts the tensors on the CPU first, so a GPU checkpoint loads on a laptop; the state dict is
    then copied onto the model's own device.

    Returns:
        the extras saved with it, e.g. ``{"epoch": 3, "val_loss": 0.21}``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = _read_checkpoint(path)
    if not isinstance(payload, Mapping) or "model" not in payload:
        raise ValueError(f"{path} is not a checkpoint written by save_checkpoint")
    model.load_state_dict(payload["model"])
    if optimizer is not None:
        if "optimizer" not in payload:
            raise ValueError(f"{path} holds no optimizer state; call it without optimizer")
        optimizer.load_state_dict(payload["optimizer"])
    return dict(payload.get("extra", {}))
