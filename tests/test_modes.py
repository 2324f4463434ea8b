"""Train/eval modes one module at a time: a frozen encoder stays frozen through fit, decoding,
evaluation and prediction (mmcourse.modes)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mmcourse.decode import greedy_decode
from mmcourse.modes import eval_mode, freeze, frozen_parts, train_mode
from mmcourse.train import evaluate, fit, predict


def encoder_with_batch_norm() -> nn.Sequential:
    """A small encoder whose batch norm has learned statistics of its own data."""
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5))
    with torch.no_grad():
        encoder.train()(torch.randn(64, 3) * 3 + 1)  # running stats move away from 0 and 1
    return encoder


def data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, generator=generator) - 2, torch.randint(
        0, 2, (n,), generator=generator
    )


def train_head(model: nn.Module) -> None:
    fit(
        model,
        data(),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1),
        epochs=2,
        batch_size=8,
    )


def test_fit_leaves_a_frozen_encoders_batch_norm_alone() -> None:
    encoder = freeze(encoder_with_batch_norm())
    before = copy.deepcopy(encoder.state_dict())
    model = nn.Sequential(encoder, nn.Linear(4, 2))
    head_before = model[1].weight.clone()
    train_head(model)
    for name, value in encoder.state_dict().items():  # weights *and* running statistics
        assert torch.equal(value, before[name]), name
    assert not torch.equal(model[1].weight, head_before)  # the head did train


def test_without_freeze_the_statistics_move() -> None:
    """The control: weights fixed but the encoder left in training mode, as
    ``model.train()`` leaves it; its running mean follows the new data."""
    encoder = encoder_with_batch_norm().requires_grad_(False)  # not freeze(): no eval()
    before = encoder[1].running_mean.clone()
    train_head(nn.Sequential(encoder, nn.Linear(4, 2)))
    assert not torch.allclose(encoder[1].running_mean, before)


def test_train_mode_and_frozen_parts() -> None:
    encoder = freeze(encoder_with_batch_norm())
    model = nn.Sequential(encoder, nn.Linear(4, 2)).eval()
    assert frozen_parts(model) == [encoder, encoder[0], encoder[1]]  # not ReLU/Dropout alone
    train_mode(model)
    assert model.training and model[1].training
    assert not any(part.training for part in encoder.modules())  # dropout inside stays off
    model.eval()
    assert frozen_parts(model) == [encoder, encoder[0], encoder[1]]
    encoder[0].weight.requires_grad_(True)  # a trainable weight inside: no longer frozen
    assert frozen_parts(model) == [encoder[1]]


def test_eval_mode_puts_every_part_back() -> None:
    encoder = freeze(encoder_with_batch_norm())
    model = nn.Sequential(encoder, nn.Linear(4, 2))
    train_mode(model)
    modes = [part.training for part in model.modules()]
    with eval_mode(model):
        assert not any(part.training for part in model.modules())
    assert [part.training for part in model.modules()] == modes
    x, _ = data(6)
    predict(model, x)
    evaluate(model, data(6), loss_fn=nn.CrossEntropyLoss())
    assert [part.training for part in model.modules()] == modes
    with pytest.raises(RuntimeError, match="inside"), eval_mode(model):
        raise RuntimeError("inside")  # modes come back after an error too
    assert [part.training for part in model.modules()] == modes


class Stepper(nn.Module):
    """A decoder with a frozen encoder, as greedy_decode needs it (init_state, step)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = freeze(encoder_with_batch_norm())
        self.out = nn.Linear(4, 5)

    def init_state(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def step(self, tokens: torch.Tensor, state: torch.Tensor) -> tuple:
        return self.out(state), state


def test_decoding_mid_training_keeps_the_encoder_frozen() -> None:
    model = Stepper()
    train_mode(model)
    greedy_decode(model, torch.randn(2, 3), max_len=3)
    assert model.training and model.out.training
    assert not model.encoder.training and not model.encoder[1].training


def test_errors_name_the_argument() -> None:
    with pytest.raises(TypeError, match="module must be a torch.nn.Module, got list"):
        freeze([nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        frozen_parts("model")
