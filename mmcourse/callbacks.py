"""What :func:`mmcourse.train.fit` records, and the callbacks it calls.

:func:`~mmcourse.train.fit` itself only trains and validates. Everything else a training run
may want is a *callback*, an object with up to four hooks that ``fit`` calls in the order the
callbacks are given (minGPT's ``Trainer.register_callback`` is the same idea):

- ``on_fit_start(state)``          once, before the first epoch
- ``on_step_end(state)``           after every optimizer step
- ``on_epoch_end(state, record)``  after each epoch's validation; may add entries to ``record``
- ``on_fit_end(state, history)``   once, after the last epoch

=====================  ===============================================================
:class:`PrintEpochs`   a progress bar over the epochs and one line per epoch
:class:`EarlyStopping` stop when a number stops improving; put the best weights back
:class:`Checkpoint`    save the model whenever a number improves
:class:`LRScheduler`   step a ``torch.optim.lr_scheduler`` and record ``"lr"``
:class:`OneCycle`      the one-cycle learning rate, its steps counted by ``fit``
a plain function       ``fn(record)``, called at each epoch's end (it may add entries)
=====================  ===============================================================

A callback writes to ``state.notes`` what it wants said at the end (:class:`PrintEpochs`
prints the notes), and sets ``state.stop`` to end training after the current epoch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmcourse import utils
from mmcourse._validate import check_callable, check_choice, check_int, check_nonnegative, require
from mmcourse.checkpoints import save_checkpoint
from mmcourse.parallel import Ranks

MODES = ("min", "max")
"""Whether lower or higher is better for a monitored number."""
PER = ("epoch", "step")
"""When :class:`LRScheduler` steps its scheduler."""

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "FitState",
    "History",
    "LRScheduler",
    "OneCycle",
    "PrintEpochs",
]


# ----------------------------------------------------------------------------- history


def format_value(key: str, value: float) -> str:
    """How a record's number is printed: epochs whole, learning rates as ``1.00e-03``, the
    rest with four decimals."""
    if key == "epoch":
        return str(int(value))
    if key == "lr":
        return f"{value:.2e}"
    return f"{value:.4f}"


def describe(record: dict[str, float]) -> str:
    """``train_loss 0.1234  val_loss 0.2345``: a record without its epoch, rounded."""
    return "  ".join(f"{k} {format_value(k, v)}" for k, v in record.items() if k != "epoch")


@dataclass
class History:
    """What :func:`~mmcourse.train.fit` measured: one dict per epoch.

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
        cells = [[format_value(k, r[k]) if k in r else "" for k in keys] for r in self.records]
        widths = [max([len(k)] + [len(row[i]) for row in cells]) for i, k in enumerate(keys)]
        lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
        if self.best_epoch is not None:
            lines.append(f"best epoch: {self.best_epoch}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the protocol


@dataclass
class FitState:
    """What a callback sees of a running :func:`~mmcourse.train.fit`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs: int
    steps_per_epoch: int
    has_validation: bool
    epoch: int = 0
    """The epoch running now (after :func:`~mmcourse.train.fit` resumes a run: the last one
    it had completed, until the next starts)."""
    generator: torch.Generator | None = None
    """The seeded generator of the batches' order (``None`` when ``Loop(seed=None)``)."""
    history: History = field(default_factory=History)
    """The records of the epochs so far."""
    stop: bool = False
    """Set it to end training after the current epoch."""
    notes: list[str] = field(default_factory=list)
    """What to say when training ends (printed by :class:`PrintEpochs`)."""


class Callback:
    """The four hooks :func:`~mmcourse.train.fit` calls; a callback overrides those it needs."""

    def on_fit_start(self, state: FitState) -> None:
        """Once, before the first epoch."""

    def on_step_end(self, state: FitState) -> None:
        """After every optimizer step."""

    def on_epoch_end(self, state: FitState, record: dict[str, float]) -> None:
        """After each epoch's validation; ``record`` may be extended."""

    def on_fit_end(self, state: FitState, history: History) -> None:
        """Once, after the last epoch."""


class EpochHook(Callback):
    """A plain function ``fn(record)`` called at each epoch's end (how ``fit`` wraps one)."""

    def __init__(self, fn: Callable[[dict[str, float]], None]) -> None:
        self.fn = check_callable(fn, "an epoch hook")

    def on_epoch_end(self, state: FitState, record: dict[str, float]) -> None:
        self.fn(record)


def as_callbacks(callbacks: object) -> list[Callback]:
    """``callbacks`` checked: each a :class:`Callback` or a plain function of the record."""
    if isinstance(callbacks, (Callback, str)) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            "callbacks must be a list, e.g. [EarlyStopping('val_loss'), PrintEpochs()], got "
            f"{type(callbacks).__name__}"
        )
    checked = []
    for position, callback in enumerate(callbacks):
        if isinstance(callback, Callback):
            checked.append(callback)
        elif callable(callback) and not isinstance(callback, type):
            checked.append(EpochHook(callback))
        else:
            raise TypeError(
                f"callbacks[{position}] must be a Callback (e.g. EarlyStopping(...)) or a "
                f"function of the epoch's record, got {callback!r}"
            )
    return checked


def _monitored(record: dict[str, float], monitor: str, who: str) -> float:
    if monitor not in record:
        hint = "; pass val_data=... to fit" if monitor.startswith("val_") else ""
        raise ValueError(f"{who} monitors {monitor!r}, but the epoch records {list(record)}{hint}")
    return float(record[monitor])


def _is_better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (NaN never does)."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


# ----------------------------------------------------------------------------- printing


class PrintEpochs(Callback):
    """A ``tqdm.auto`` bar over the epochs (hidden when ``TQDM_DISABLE=1``, as for the stored
    notebooks) and, with ``lines``, one line per epoch::

        epoch  3/10  train_loss 0.1234  val_loss 0.2345  val_accuracy 0.9712

    and at the end what the other callbacks noted (e.g. early stopping's verdict).
    """

    def __init__(self, lines: bool = True, bar: bool = True) -> None:
        self.lines, self.show_bar = bool(lines), bool(bar)
        self.bar: Any = None

    def on_fit_start(self, state: FitState) -> None:
        self.speaks = Ranks.now().is_main  # under torchrun, rank 0 alone prints
        self.bar = utils.progress(
            total=state.epochs, desc="fit", unit="epoch", leave=True,
            disable=not (self.show_bar and self.speaks),
        )  # fmt: skip

    def on_epoch_end(self, state: FitState, record: dict[str, float]) -> None:
        self.bar.update(1)
        if self.lines and self.speaks:
            line = f"epoch {record['epoch']:>{len(str(state.epochs))}}/{state.epochs}  "
            (self.bar.write if self.show_bar else print)(line + describe(record))

    def on_fit_end(self, state: FitState, history: History) -> None:
        self.bar.set_postfix_str(describe(history.last), refresh=False)
        self.bar.close()
        if self.lines and self.speaks and state.notes:
            print("; ".join(state.notes))


# ----------------------------------------------------------------------------- early stopping


class EarlyStopping(Callback):
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
        restore_best: when :func:`~mmcourse.train.fit` ends, load the weights of the best epoch.

    ``fit`` calls :meth:`reset` at its start, so one object can be reused.
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
        require(monitor, "monitor must be a record key such as 'val_loss', got ''")
        self.monitor = monitor
        self.mode = check_choice(mode, "mode", MODES)
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

    def state_dict(self) -> dict[str, Any]:
        """What it has seen so far, for a run that must go on (``Loop(checkpoint=...)``)."""
        keys = ("best", "best_epoch", "best_state", "wait", "should_stop")
        return {key: getattr(self, key) for key in keys}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`state_dict`."""
        for key, value in state.items():
            setattr(self, key, value)

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta`` (NaN never does)."""
        return _is_better(value, self.best, self.mode, self.min_delta)

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

    def on_fit_start(self, state: FitState) -> None:
        self.reset()
        if self.monitor.startswith("val_") and not state.has_validation:
            raise ValueError(
                f"early stopping monitors {self.monitor!r}, a validation number, but fit has "
                "no val_data; pass val_data=(inputs..., targets)"
            )

    def on_epoch_end(self, state: FitState, record: dict[str, float]) -> None:
        value = _monitored(record, self.monitor, "early stopping")
        self.step(value, state.epoch, state.model)
        state.stop = state.stop or self.should_stop
        if self.should_stop:
            state.notes.append(
                f"early stopping: {self.monitor} did not improve for {self.wait} epochs"
            )
        if self._restores(state.epoch) and (self.should_stop or state.epoch == state.epochs):
            best = format_value(self.monitor, float(self.best))
            state.notes.append(
                f"restored the weights of epoch {self.best_epoch} ({self.monitor} {best})"
            )

    def _restores(self, last_epoch: int) -> bool:
        return self.restore_best and self.best_state is not None and self.best_epoch != last_epoch

    def on_fit_end(self, state: FitState, history: History) -> None:
        history.best_epoch = self.best_epoch
        if self._restores(state.epoch):
            state.model.load_state_dict(self.best_state)


# ----------------------------------------------------------------------------- checkpoints


class Checkpoint(Callback):
    """Save the model and optimizer (:func:`mmcourse.checkpoints.save_checkpoint`, with the
    epoch's record) to ``path`` whenever ``monitor`` improves; ``monitor=None`` saves after
    every epoch."""

    def __init__(self, path: str | Path, monitor: str | None = "val_loss", mode: str = "min"):
        if not isinstance(path, (str, Path)):
            raise TypeError(f"path must be a str or Path, got {type(path).__name__}")
        self.path, self.monitor = Path(path), monitor
        self.mode = check_choice(mode, "mode", MODES)
        self.best: float | None = None

    def on_fit_start(self, state: FitState) -> None:
        self.best = None

    def state_dict(self) -> dict[str, Any]:
        """The best value so far, for a run that must go on (``Loop(checkpoint=...)``)."""
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`state_dict`."""
        self.best = state["best"]

    def on_epoch_end(self, state: FitState, record: dict[str, float]) -> None:
        if self.monitor is not None:
            value = _monitored(record, self.monitor, "Checkpoint")
            if not _is_better(value, self.best, self.mode):
                return
            self.best = value
        save_checkpoint(self.path, state.model, state.optimizer, **record)


# ----------------------------------------------------------------------------- learning rates


class LRScheduler(Callback):
    """Step a learning-rate scheduler and record the rate as ``"lr"``.

    ``per="epoch"``: once after each epoch, and ``"lr"`` is the rate the epoch trained with
    (``ReduceLROnPlateau`` is given ``monitor``, default ``val_loss`` if there is validation,
    else ``train_loss``). ``per="step"``: after every optimizer step (as ``OneCycleLR``
    expects), and ``"lr"`` is the rate reached at the epoch's end.
    """

    def __init__(self, scheduler: Any, per: str = "epoch", monitor: str | None = None) -> None:
        self.per = check_choice(per, "per", PER)
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if per == "step" and plateau:
            raise ValueError("ReduceLROnPlateau reacts to one number per epoch: use per='epoch'")
        self.scheduler, self.monitor, self.plateau = scheduler, monitor, plateau

    def on_step_end(self, state: FitState) -> None:
        if self.per == "step":
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state, for a run that must go on (:func:`~mmcourse.train.fit`'s
        ``Loop(checkpoint=...)``)."""
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`state_dict`."""
        self.scheduler.load_state_dict(state)

    def on_epoch_end(self, state: FitState, record: dict[str, float]) -> None:
        record["lr"] = float(state.optimizer.param_groups[0]["lr"])
        if self.per == "epoch" and self.plateau:
            default = "val_loss" if state.has_validation else "train_loss"
            self.scheduler.step(_monitored(record, self.monitor or default, "the scheduler"))
        elif self.per == "epoch":
            self.scheduler.step()


class OneCycle(LRScheduler):
    """The one-cycle learning rate (``torch.optim.lr_scheduler.OneCycleLR``, stepped after
    every batch): up from ``max_lr / 25`` to ``max_lr`` over the first ``pct_start`` of the
    steps, then down. ``fit`` counts the steps (epochs x batches per epoch), so no recipe
    has to."""

    def __init__(self, max_lr: float, pct_start: float = 0.3) -> None:
        require(0 < pct_start < 1, f"pct_start must be between 0 and 1, got {pct_start!r}")
        self.max_lr, self.pct_start = max_lr, pct_start
        self.per, self.monitor, self.plateau = "step", None, False

    def on_fit_start(self, state: FitState) -> None:
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            state.optimizer,
            max_lr=self.max_lr,
            total_steps=state.epochs * state.steps_per_epoch,
            pct_start=self.pct_start,
        )
