"""Hold out validation data from the training data, so choices never look at the test set.

>>> import torch
>>> labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
>>> kept, held_out = validation_split(labels, fraction=0.5, seed=0)
>>> sorted(labels[held_out].tolist())  # half of each class
[0, 0, 1, 1]
>>> sorted(kept.tolist() + held_out.tolist()) == list(range(8))
True
"""

from __future__ import annotations

import torch

from mmcourse._validate import check_int, check_tensor, require

__all__ = ["validation_split"]


def validation_split(
    labels: torch.Tensor, fraction: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(train, val)`` that split examples into a training and a validation part.

    Stratified: each class gives ``round(fraction * its count)`` examples (at least one) to the
    validation part, drawn at random with ``seed``, so both parts keep the class balance. The
    two index tensors are disjoint, cover every example and are sorted.
    """
    labels = check_tensor(labels, "labels")
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be a 1-D tensor of integer classes, got {labels.dtype} of shape "
            f"{tuple(labels.shape)}"
        )
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"fraction must be a number in (0, 1), got {type(fraction).__name__}")
    require(0 < fraction < 1, f"fraction must be in (0, 1), got {fraction}")
    check_int(seed, "seed", minimum=0)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    held_out = []
    for label in labels.unique().tolist():
        of_label = order[labels[order] == label]
        n_val = max(1, round(fraction * len(of_label)))
        if n_val >= len(of_label):
            raise ValueError(
                f"class {label} has {len(of_label)} example(s): too few to hold out "
                f"{n_val} and keep one for training"
            )
        held_out.append(of_label[:n_val])
    val = torch.cat(held_out).sort().values
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    is_val[val] = True
    return (~is_val).nonzero().squeeze(1), val
