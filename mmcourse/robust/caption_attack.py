"""Attacking a captioner: one word of its caption changed by pixels that move at most
``epsilon`` each (chapter 13).

- :func:`swap_first_word` -- the target: the model's own caption with the first word found in
  ``swaps`` replaced (``"three"`` -> ``"four"``), every other word kept;
- :func:`targeted_caption_pgd` -- PGD that *lowers* the teacher-forced loss of the target
  caption, each step projected back into the ``epsilon`` ball and the pixel range;
- :func:`caption_is` -- whether greedy decoding now writes exactly the target.

Canvases are pixels in ``[0, 1]``, ``(B, 1, H, W)``; the captioner reads them standardised,
``(pixels - mean) / std``, so ``epsilon`` is in pixel units as for the digit readers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import (
    check_int,
    check_module,
    check_nonnegative,
    check_tensor,
    describe_tensor,
    require,
)
from mmcourse.decode import greedy_decode
from mmcourse.modes import eval_mode
from mmcourse.vocab import BOS_ID, EOS_ID, PAD_ID

__all__ = ["caption_is", "swap_first_word", "targeted_caption_pgd"]


def _check_ids(ids: object, name: str) -> torch.Tensor:
    check_tensor(ids, name, "(B, L) of token ids")
    require(
        ids.dim() == 2 and ids.dtype == torch.long and ids.shape[1] > 0,  # type: ignore[union-attr]
        f"{name} must be a (B, L) tensor of token ids (int64), got {describe_tensor(ids)}",
    )
    return ids  # type: ignore[return-value]


def _check_pixels(pixels: object, batch: int) -> torch.Tensor:
    check_tensor(pixels, "pixels", "(B, 1, H, W) of floats in [0, 1]")
    require(
        pixels.is_floating_point() and pixels.dim() == 4 and len(pixels) == batch,  # type: ignore[union-attr]
        f"pixels must be float (B, C, H, W) with B = {batch} as in the captions, "
        f"got {describe_tensor(pixels)}",
    )
    return pixels  # type: ignore[return-value]


def swap_first_word(
    ids: torch.Tensor, swaps: Mapping[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets for a one-word attack: ``ids`` (greedy captions, ``(B, L)``, no ``<bos>``) with
    the first token of each row that is a key of ``swaps`` replaced by its value.

    Returns ``(targets, swapped)``: the new captions and a bool ``(B,)`` saying which rows had
    a word to swap (the others come back unchanged and are no target)."""
    _check_ids(ids, "ids")
    require(
        isinstance(swaps, Mapping) and len(swaps) > 0,
        f"swaps must be a non-empty mapping token id -> token id, got {swaps!r}",
    )
    require(
        all(k != v for k, v in swaps.items()), "swaps must change each word it names to another"
    )
    keys = torch.tensor(list(swaps))
    found = torch.isin(ids, keys)
    swapped = found.any(dim=1)
    position = found.int().argmax(dim=1)  # the first match (0 where there is none)
    targets = ids.clone()
    rows = swapped.nonzero()[:, 0]
    old = ids[rows, position[rows]]
    targets[rows, position[rows]] = torch.tensor([swaps[int(t)] for t in old], dtype=torch.long)
    return targets, swapped


def _target_loss(
    model: nn.Module, pixels: torch.Tensor, targets: torch.Tensor, mean: float, std: float
) -> torch.Tensor:
    """Sum over the batch of each target caption's teacher-forced cross-entropy."""
    inputs = torch.cat([torch.full((len(targets), 1), BOS_ID), targets[:, :-1]], dim=1)
    logits = model((pixels - mean) / std, inputs)
    return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD_ID, reduction="sum")


def targeted_caption_pgd(
    model: nn.Module,
    pixels: torch.Tensor,
    targets: torch.Tensor,
    epsilon: float,
    normalize: tuple[float, float],
    steps: int = 20,
    step_size: float | None = None,
) -> torch.Tensor:
    """Pixels within ``epsilon`` of ``pixels`` (and in ``[0, 1]``) that make ``model`` likely
    to write ``targets`` (``(B, L)``, each row ending in ``<eos>``, padded).

    Starting from the clean canvas, each of ``steps`` steps moves every pixel by
    ``step_size`` (default ``2.5 * epsilon / steps``) *against* the sign of the gradient of the
    target's teacher-forced loss, then projects back. ``normalize`` is the ``(mean, std)`` the
    model's training standardised canvases with. The model is in eval mode meanwhile."""
    check_module(model)
    _check_ids(targets, "targets")
    _check_pixels(pixels, len(targets))
    require(
        bool((targets == EOS_ID).any(dim=1).all()),
        "every target caption must end with <eos> (the caption the model should write)",
    )
    check_nonnegative(epsilon, "epsilon")
    check_int(steps, "steps")
    step = 2.5 * epsilon / steps if step_size is None else check_nonnegative(step_size, "step_size")
    mean, std = normalize
    x = pixels.detach().clone()
    with eval_mode(model):
        for _ in range(steps):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(_target_loss(model, x, targets, mean, std), x)
            x = x.detach() - step * grad.sign()
            x = torch.minimum(torch.maximum(x, pixels - epsilon), pixels + epsilon).clamp(0, 1)
    return x.detach()


@torch.no_grad()
def caption_is(
    model: nn.Module, pixels: torch.Tensor, targets: torch.Tensor, normalize: tuple[float, float]
) -> torch.Tensor:
    """Bool ``(B,)``: whether greedy decoding of the canvases writes exactly ``targets``."""
    check_module(model)
    _check_ids(targets, "targets")
    _check_pixels(pixels, len(targets))
    mean, std = normalize
    written = greedy_decode(model, (pixels - mean) / std, max_len=targets.shape[1])
    width = max(written.shape[1], targets.shape[1])
    written = F.pad(written, (0, width - written.shape[1]), value=PAD_ID)
    targets = F.pad(targets, (0, width - targets.shape[1]), value=PAD_ID)
    return (written == targets).all(dim=1)
