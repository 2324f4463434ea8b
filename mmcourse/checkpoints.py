"""Checkpoints: a model's (and optimizer's) state on disk, written safely and read safely.

- :func:`save_checkpoint`   state dicts plus plain numbers, written atomically
- :func:`load_checkpoint`   read back with ``weights_only=True``, so a file cannot run code
- :func:`save_run`          everything a training run needs to go on after an epoch
- :func:`resume_run`        ... read back into the run, which then goes on exactly as before

:class:`mmcourse.callbacks.Checkpoint` calls :func:`save_checkpoint` during training.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmcourse._validate import require
from mmcourse.parallel import Ranks, gather_objects

__all__ = ["load_checkpoint", "resume_run", "save_checkpoint", "save_run", "write_atomically"]

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
    payload: dict[str, Any] = {"model": model.state_dict(), "extra": dict(extra)}
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    write_atomically(payload, path)
    return Path(path)


def write_atomically(payload: Any, path: str | Path) -> None:
    """``torch.save(payload, path)`` through a temporary file renamed into place, so that a
    process killed mid-write leaves the previous file whole, never half of a new one
    (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


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


# ----------------------------------------------------------------------------- a run that goes on


def _random_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def save_run(path: str | Path, state: Any, callbacks: list[Any]) -> None:
    """Write what :func:`~mmcourse.train.fit` needs to go on after epoch ``state.epoch``
    (``Loop(checkpoint=path)`` calls it after every epoch): the model, the optimizer, the
    generator of the batches' order, every rank's own random state (dropout), the history and
    each callback's ``state_dict()`` (a learning-rate schedule, the best epoch so far).
    Under torchrun every rank sends its random state and rank 0 alone writes the file,
    atomically, so a run killed at any moment leaves the last complete epoch behind."""
    randoms = gather_objects(_random_state())  # every rank takes part, rank 0 writes
    if not Ranks.now().is_main:
        return
    payload = {
        "epoch": state.epoch,
        "stopped": state.stop,
        "schedule": [state.epochs, state.steps_per_epoch],
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "order": state.generator.get_state(),
        "random": randoms,
        "history": state.history.records,
        "callbacks": [c.state_dict() for c in callbacks if hasattr(c, "state_dict")],
    }
    write_atomically(payload, path)


def resume_run(path: str | Path, state: Any, callbacks: list[Any]) -> int:
    """Load a :func:`save_run` file into the run ``state`` describes (and its ``callbacks``);
    return the last epoch it completed. It must be the same run: as many epochs, batches per
    epoch, callbacks and processes, or a ``ValueError`` says what differs."""
    path = Path(path)
    payload = _read_checkpoint(path)
    if not isinstance(payload, Mapping) or "random" not in payload:
        raise ValueError(f"{path} is not a checkpoint written by fit (Loop(checkpoint=...))")
    ranks, keeping = Ranks.now(), [c for c in callbacks if hasattr(c, "state_dict")]
    saved = [len(payload["random"]), *payload["schedule"], len(payload["callbacks"])]
    here = [ranks.size, state.epochs, state.steps_per_epoch, len(keeping)]
    names = ("processes", "epochs", "batches per epoch", "callbacks that keep a state")
    for name, then, now in zip(names, saved, here):
        require(
            then == now,
            f"{path} was saved by a run with {then} {name}, this one has {now}: resume it with "
            f"the same settings, or delete it to start again",
        )
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.generator.set_state(payload["order"])
    mine = payload["random"][ranks.rank]
    torch.set_rng_state(mine["cpu"])
    if "cuda" in mine and torch.cuda.is_available():
        torch.cuda.set_rng_state(mine["cuda"])
    state.history.records[:] = payload["history"]
    for callback, saved_state in zip(keeping, payload["callbacks"]):
        callback.load_state_dict(saved_state)
    state.epoch = int(payload["epoch"])
    if ranks.is_main:
        print(f"going on from {path}, saved after epoch {state.epoch}", flush=True)
    return state.epochs if payload["stopped"] else state.epoch
