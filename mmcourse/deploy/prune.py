"""Pruning: set the least important weights to zero (``torch.nn.utils.prune``), beside int8.

- :func:`prune_weights` -- **unstructured**: the ``amount`` share of all weights of the
  model's ``nn.Linear`` and ``nn.Conv2d`` layers with the smallest magnitude, chosen across
  the layers together (global magnitude pruning); or **structured**: in each layer, the
  ``amount`` share of its output rows (neurons, channels) with the smallest L2 norm. The
  zeros are made permanent (``prune.remove``), so the model saves and runs as before.
- :func:`sparsity` -- the share of those weights that are zero;
- :func:`compressed_size_bytes` -- the saved weights' bytes after zlib compression, which is
  where zeros pay off without any sparse format: a run of zeros compresses to almost nothing.

Zeros do not make a dense kernel faster or a saved file smaller by themselves: unstructured
sparsity needs sparse storage or kernels to pay off, while structured pruning removes whole
rows that a smaller dense layer could drop.
"""

from __future__ import annotations

import copy
import io
import zlib

import torch
from torch import nn
from torch.nn.utils import prune

from mmcourse._validate import check_module, require

__all__ = ["compressed_size_bytes", "prune_weights", "prunable_layers", "sparsity"]


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    """The ``nn.Linear`` and ``nn.Conv2d`` layers of ``model``, in module order."""
    return [m for m in check_module(model).modules() if isinstance(m, nn.Linear | nn.Conv2d)]


def prune_weights(model: nn.Module, amount: float, structured: bool = False) -> nn.Module:
    """A pruned copy of ``model`` (the original is left as it is); see the module docstring."""
    layers = prunable_layers(model)
    require(layers, f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer to prune")
    require(0 <= amount < 1, f"amount must be a share in [0, 1), got {amount!r}")
    pruned = copy.deepcopy(model)
    layers = prunable_layers(pruned)
    if structured:
        for layer in layers:
            prune.ln_structured(layer, "weight", amount=amount, n=2, dim=0)
    else:
        targets = [(layer, "weight") for layer in layers]
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    for layer in layers:
        prune.remove(layer, "weight")
    return pruned


@torch.no_grad()
def sparsity(model: nn.Module) -> float:
    """The share of the weights of ``model``'s linear and convolution layers that are zero.

    >>> layer = nn.Linear(4, 2)
    >>> sparsity(prune_weights(layer, 0.25))
    0.25
    """
    weights = [layer.weight for layer in prunable_layers(model)]
    require(weights, f"{type(model).__name__} has no nn.Linear or nn.Conv2d layer")
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / sum(w.numel() for w in weights)


def compressed_size_bytes(model: nn.Module, level: int = 6) -> int:
    """Bytes of ``torch.save(model.state_dict())`` compressed with zlib at ``level`` (as a
    ``.zip`` or ``.gz`` of the weights file would be): float weights barely compress, zeros do.

    >>> dense, pruned = nn.Linear(256, 256), prune_weights(nn.Linear(256, 256), 0.9)
    >>> compressed_size_bytes(pruned) < compressed_size_bytes(dense) / 3
    True
    """
    check_module(model, "model")
    require(level in range(10), f"level must be a zlib level 0..9, got {level!r}")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return len(zlib.compress(buffer.getvalue(), level))
