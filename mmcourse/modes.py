"""Train and eval mode, one module at a time: freezing a part, and putting modes back.

``model.train()`` and ``model.eval()`` switch *every* submodule. That is wrong for a model
with a frozen part, a pretrained encoder whose weights stay fixed: in training mode its batch
norm layers would go on updating their running statistics from the new data (and its dropout
would switch on), so the "frozen" encoder would change after all. Three helpers keep each part
in its own mode:

- :func:`freeze` fixes a part: no gradients, eval mode;
- :func:`train_mode` switches a model to training mode *except* its frozen parts
  (:func:`mmcourse.train.fit` calls it every epoch);
- :func:`eval_mode` runs a block in eval mode, then puts every submodule back in the mode it
  was in (``model.train(was_training)`` would switch a frozen part back on).

>>> from torch import nn
>>> model = nn.Sequential(freeze(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))), nn.Linear(2, 1))
>>> train_mode(model)
>>> [layer.training for layer in model.modules()]  # the whole, encoder, its layers, the head
[True, False, False, False, True]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode", "freeze", "frozen_parts", "train_mode"]


def _check_module(module: object, name: str) -> nn.Module:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(module).__name__}")
    return module


def freeze(module: nn.Module) -> nn.Module:
    """Fix ``module``'s weights (``requires_grad=False``) and put it in eval mode, so that
    :func:`train_mode` and :func:`mmcourse.train.fit` leave it frozen; returns ``module``."""
    return _check_module(module, "module").requires_grad_(False).eval()


def frozen_parts(model: nn.Module) -> list[nn.Module]:
    """The submodules of ``model`` that are frozen: in eval mode, holding parameters, none of
    them trainable (what :func:`freeze` leaves). The model itself counts too."""
    _check_module(model, "model")
    return [
        part
        for part in model.modules()
        if not part.training
        and any(True for _ in part.parameters())
        and not any(p.requires_grad for p in part.parameters())
    ]


def train_mode(model: nn.Module, frozen: list[nn.Module] | None = None) -> None:
    """Put ``model`` in training mode, except its ``frozen`` parts (default: its
    :func:`frozen_parts` now), which stay in eval mode."""
    frozen = frozen_parts(model) if frozen is None else frozen
    model.train()
    for part in frozen:
        part.eval()


@contextmanager
def eval_mode(module: object) -> Iterator[None]:
    """Run a block with ``module`` in eval mode (dropout off, batch norm's stored statistics),
    then put every submodule back in the mode it was in. Anything that is not an
    ``nn.Module`` (a plain function standing in for a model) is left alone."""
    if not isinstance(module, nn.Module):
        yield
        return
    modes = [(part, part.training) for part in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for part, training in modes:
            part.training = training
