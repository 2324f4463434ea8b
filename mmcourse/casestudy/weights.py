"""Saving and loading the case study's trained weights, safely and with clear messages.

A weights file is a plain ``state_dict`` written by :func:`save_weights`; next to it,
``SHA256SUMS`` holds one line per file (``<sha256>  <name>``, the format of ``sha256sum``).
:func:`load_weights` refuses, with a message that says what to do, a file that is:

- missing (never trained, or not cloned),
- corrupted or changed (its SHA-256 differs from the recorded one),
- not a state dict, or for another model (missing, unexpected or differently shaped tensors),

and it reads with ``torch.load(..., weights_only=True)``, which runs no code from the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from mmcourse.data.mnist import sha256_of

__all__ = ["WeightsError", "load_weights", "read_sums", "save_weights", "sha256_of"]

SUMS_FILE = "SHA256SUMS"


class WeightsError(ValueError):
    """A weights file that cannot be used; the message says why and how to get a good one."""


def read_sums(folder: str | os.PathLike) -> dict[str, str]:
    """``{file name: sha256}`` from ``folder/SHA256SUMS`` (empty if there is none)."""
    path = Path(folder) / SUMS_FILE
    if not path.exists():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest
    return sums


def save_weights(model: nn.Module, path: str | os.PathLike) -> str:
    """Write ``model``'s state dict (on the CPU) to ``path`` and record its SHA-256 in the
    folder's ``SHA256SUMS``; returns the SHA-256."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}
    torch.save(state, path)
    digest = sha256_of(path)
    sums = read_sums(path.parent)
    sums[path.name] = digest
    lines = [f"{sums[name]}  {name}" for name in sorted(sums)]
    (path.parent / SUMS_FILE).write_text("\n".join(lines) + "\n")
    return digest


def load_weights(model: nn.Module, path: str | os.PathLike, retrain_hint: str = "") -> nn.Module:
    """Load the weights at ``path`` into ``model`` after checking the file's SHA-256 against
    the folder's ``SHA256SUMS``; returns the model in eval mode.

    Raises :class:`WeightsError` (a ``ValueError``) naming the file, what is wrong and
    ``retrain_hint`` (how to make the file again) -- never an error from deep inside torch.
    """
    path = Path(path)
    hint = f" {retrain_hint}" if retrain_hint else ""
    if not path.exists():
        raise WeightsError(f"no weights file at {path}.{hint}")
    expected = read_sums(path.parent).get(path.name)
    if expected is None:
        raise WeightsError(
            f"{path.name} has no SHA-256 in {path.parent / SUMS_FILE}, so it cannot be "
            f"checked.{hint}"
        )
    actual = sha256_of(path)
    if actual != expected:
        raise WeightsError(
            f"{path} is corrupted or was changed: its SHA-256 is {actual[:12]}..., the "
            f"recorded one is {expected[:12]}... Restore it with `git checkout -- {path}`.{hint}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unpickling failure: say so plainly
        raise WeightsError(f"{path} is not a readable weights file ({error}).{hint}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors.{hint}")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(
        name for name in set(own) & set(state) if own[name].shape != state[name].shape
    )
    if missing or unexpected or reshaped:
        details = []
        for label, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("of another shape", reshaped),
        ):
            if names:
                details.append(f"{len(names)} {label} (e.g. {names[0]})")
        raise WeightsError(
            f"{path} was saved from a different model than {type(model).__name__}: "
            f"{', '.join(details)} tensors.{hint}"
        )
    model.load_state_dict(state)
    return model.eval()
