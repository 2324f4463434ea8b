"""mmcourse.train, mmcourse.callbacks, mmcourse.checkpoints: batches, the step, fit, its
callbacks (printing, early stopping, checkpoints, learning rates), evaluation, checkpoints.

References are independent: gradients by hand (or by a separate autograd loop), accuracy by
counting, early stopping against a scripted validation sequence.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from mmcourse import train
from mmcourse.callbacks import (
    Checkpoint,
    EarlyStopping,
    History,
    LRScheduler,
    OneCycle,
    PrintEpochs,
)
from mmcourse.checkpoints import load_checkpoint, save_checkpoint
from mmcourse.train import Loop, batches, evaluate, fit, predict, train_step

pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three well-separated Gaussian blobs in 2-D: a linearly separable 3-class problem."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]])
    y = torch.arange(n) % 3
    x = centers[y] + torch.randn(n, 2, generator=g)
    return x, y


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return (outputs.argmax(1) == targets).float().mean().item()


# ----------------------------------------------------------------------------- batches


def test_shuffled_batches_cover_every_index_once() -> None:
    index = torch.arange(103)
    labels = index * 10
    g = torch.Generator().manual_seed(0)
    parts = list(batches(index, labels, batch_size=16, shuffle=True, generator=g))
    assert [len(b[0]) for b in parts] == [16] * 6 + [7]
    seen = torch.cat([b[0] for b in parts])
    assert sorted(seen.tolist()) == list(range(103))
    assert seen.tolist() != list(range(103))  # actually shuffled
    assert all(torch.equal(b[1], b[0] * 10) for b in parts)  # rows stay aligned


def test_shuffle_order_follows_the_generator() -> None:
    index = torch.arange(50)

    def order(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.cat([b[0] for b in batches(index, batch_size=8, shuffle=True, generator=g)])

    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))
    assert torch.equal(order(1), torch.randperm(50, generator=torch.Generator().manual_seed(1)))


def test_plain_batches_are_views_in_order_and_drop_last() -> None:
    x = torch.arange(10)
    parts = [b[0] for b in batches(x, batch_size=4)]
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert parts[0].data_ptr() == x.data_ptr()
    assert [len(b[0]) for b in batches(x, batch_size=4, drop_last=True)] == [4, 4]
    assert list(batches(x, batch_size=20, drop_last=True)) == []


def test_batches_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"same first dimension.*\[5, 4\]"):
        list(batches(torch.zeros(5), torch.zeros(4), batch_size=2))
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        list(batches(torch.zeros(5), batch_size=0))
    with pytest.raises(TypeError, match="batch_size must be a positive int, got float 2.0"):
        list(batches(torch.zeros(5), batch_size=2.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size must be a positive int, got -3"):
        list(batches(torch.zeros(5), batch_size=-3))
    with pytest.raises(ValueError, match="at least one tensor"):
        list(batches(batch_size=2))
    with pytest.raises(TypeError, match=r"tensors\[1\] must be a torch.Tensor, got list"):
        list(batches(torch.zeros(2), [1, 2], batch_size=2))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- fit: maths


def test_one_full_batch_sgd_epoch_matches_the_gradient_by_hand() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 3, generator=g), torch.randn(16, 1, generator=g)
    model = nn.Linear(3, 1)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    lr = 0.1
    history = fit(
        model,
        (x, y),
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        epochs=1,
        batch_size=16,
    )
    # L = mean(r^2) with r = x w^T + b - y, so dL/dw = 2/N r^T x and dL/db = 2/N sum(r).
    r = x @ w0.T + b0 - y
    assert history["train_loss"][0] == pytest.approx((r**2).mean().item(), rel=1e-6)
    torch.testing.assert_close(model.weight.detach(), w0 - lr * 2 / 16 * (r.T @ x))
    torch.testing.assert_close(model.bias.detach(), b0 - lr * 2 / 16 * r.sum(0))


def test_mini_batch_epoch_matches_a_separate_autograd_loop() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(22, 4, generator=g), torch.randint(0, 3, (22,), generator=g)
    torch.manual_seed(5)
    model = nn.Linear(4, 3)
    reference = nn.Linear(4, 3)
    reference.load_state_dict(model.state_dict())
    history = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        epochs=1,
        batch_size=8,
        loop=Loop(seed=3),
    )
    # The same epoch by hand: the order from a generator seeded with 3, batches 8, 8, 6.
    order = torch.randperm(22, generator=torch.Generator().manual_seed(3))
    weighted = 0.0
    for start in range(0, 22, 8):
        idx = order[start : start + 8]
        loss = nn.functional.cross_entropy(reference(x[idx]), y[idx])
        weighted += loss.item() * len(idx)
        reference.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in reference.parameters():
                p -= 0.5 * p.grad
    for got, want in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(got, want)
    assert history["train_loss"][0] == pytest.approx(weighted / 22, rel=1e-6)


def test_classifier_converges() -> None:
    x, y = blobs(300)
    model = nn.Linear(2, 3)
    history = fit(
        model,
        (x[:240], y[:240]),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
        epochs=8,
        batch_size=32,
        val_data=(x[240:], y[240:]),
        metrics={"accuracy": accuracy},
    )
    assert history.keys() == ["epoch", "train_loss", "val_loss", "val_accuracy"]
    assert history["epoch"] == list(range(1, 9))
    losses = history["train_loss"]
    assert losses[-1] < losses[0] / 3
    assert history.last["val_accuracy"] > 0.95
    assert not model.training  # left in eval mode


def test_regression_converges() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    model = nn.Linear(3, 1)
    history = fit(
        model,
        (x, y),
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=15,
        batch_size=20,
    )
    assert history["train_loss"][-1] < 1e-4 < history["train_loss"][0]
    torch.testing.assert_close(
        model.weight.detach(), torch.tensor([[1.0, -2.0, 0.5]]), atol=0.01, rtol=0
    )


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    x, y = blobs(120)

    def run(seed: int) -> nn.Module:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        fit(
            model,
            (x, y),
            loss_fn=nn.CrossEntropyLoss(),
            optimizer=torch.optim.Adam(model.parameters(), lr=0.01),
            epochs=2,
            batch_size=16,
            loop=Loop(seed=seed),
        )
        return model

    first, again, other = run(0), run(0), run(1)
    for a, b in zip(first.parameters(), again.parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(first.parameters(), other.parameters()))


def test_custom_forward_for_two_inputs_and_default_forward_with_two_inputs() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image = nn.Linear(2, 3)
            self.text = nn.Linear(2, 3)

        def forward(self, image: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
            return self.image(image) + self.text(question)

    x, y = blobs(90)
    q = torch.randn(90, 2)
    model = Pair()
    # default forward: model(*batch[:-1]) with (image, question, answer)
    h1 = fit(
        model,
        (x, q, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
        epochs=2,
    )
    # custom forward: the target sits first
    h2 = fit(
        model,
        (y, x, q),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
        epochs=2,
        loop=Loop(forward=lambda m, b: (m(b[1], b[2]), b[0])),
        val_data=(y, x, q),
    )
    assert len(h1) == len(h2) == 2 and "val_loss" in h2.keys()


def test_fit_trains_where_the_model_is_and_evaluate_takes_a_device() -> None:
    x, y = blobs(40)
    model = nn.Linear(2, 3).to("cpu")
    history = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=1,
        val_data=(x, y),
        loop=Loop(seed=None),
    )
    assert len(history) == 1 and model.weight.device.type == "cpu"
    assert set(evaluate(model, (x, y), loss_fn=nn.CrossEntropyLoss(), device="cpu")) == {"loss"}
    assert predict(model, x, device=torch.device("cpu")).shape == (40, 3)


def test_max_batches_per_epoch_limits_training_steps() -> None:
    calls = []
    x, y = blobs(100)
    model = nn.Linear(2, 3)

    def forward(m: nn.Module, b: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(m.training)
        return m(b[0]), b[1]

    fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        batch_size=10,
        val_data=(x, y),
        loop=Loop(max_batches_per_epoch=3, forward=forward),
    )
    # per epoch: 3 training batches (train mode), then 1 validation batch of 100 (eval mode)
    assert calls == [True, True, True, False] * 2


def test_scheduler_is_stepped_per_epoch_and_lr_recorded() -> None:
    x, y = blobs(60)
    model = nn.Linear(2, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=opt,
        epochs=3,
        callbacks=[LRScheduler(torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))],
    )
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    plateau_opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(plateau_opt, patience=0, factor=0.5)
    history = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=plateau_opt,
        epochs=1,
        callbacks=[LRScheduler(plateau)],
    )
    assert plateau.best == history.last["train_loss"]  # stepped with the monitored number


def test_per_step_scheduler_is_stepped_after_every_optimizer_step() -> None:
    x, y = blobs(60)  # batches of 16: 16, 16, 16, 12 -> 4 optimizer steps per epoch
    model = nn.Linear(2, 3)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    halving = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    history = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=opt,
        epochs=2,
        batch_size=16,
        callbacks=[LRScheduler(halving, per="step")],
    )
    # by hand: the rate where the schedule stands at each epoch's end, 4 and 8 halvings
    assert history["lr"] == [0.5**4, 0.5**8]
    assert halving.last_epoch == 8


@pytest.mark.parametrize(("max_batches", "steps_per_epoch"), [(None, 4), (60 // 16, 3)])
def test_one_cycle_counts_the_steps_fit_takes(
    max_batches: int | None, steps_per_epoch: int
) -> None:
    """60 rows in batches of 16: 16, 16, 16, 12 (4 steps), or 3 whole batches when the ragged
    one is left out. OneCycleLR refuses a step past its total, so the count must be exact."""
    x, y = blobs(60)
    model = nn.Linear(2, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    one_cycle = OneCycle(max_lr=0.1, pct_start=0.25)
    history = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=opt,
        epochs=2,
        batch_size=16,
        callbacks=[one_cycle],
        loop=Loop(max_batches_per_epoch=max_batches),
    )
    total = 2 * steps_per_epoch
    assert one_cycle.scheduler.total_steps == total and one_cycle.scheduler.last_epoch == total
    # the same schedule driven by hand, one step per batch: the rate at each epoch's end
    by_hand = torch.optim.SGD(nn.Linear(2, 3).parameters(), lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.OneCycleLR(by_hand, 0.1, total_steps=total, pct_start=0.25)
    rates = []
    for _ in range(2):
        for _ in range(steps_per_epoch):
            by_hand.step()
            schedule.step()
        rates.append(by_hand.param_groups[0]["lr"])
    assert history["lr"] == rates


def test_on_epoch_end_sees_each_record_and_may_add_to_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    x, y = blobs(60)
    model = nn.Linear(2, 3)
    seen: list[dict] = []

    def double(record: dict) -> None:
        seen.append(dict(record))
        record["double"] = 2 * record["train_loss"]

    history = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=3,
        val_data=(x, y),
        callbacks=[double, PrintEpochs(bar=False)],
    )
    assert [r["epoch"] for r in seen] == [1, 2, 3] and all("val_loss" in r for r in seen)
    assert history["double"] == [2 * value for value in history["train_loss"]]
    assert "  double " in capsys.readouterr().out.splitlines()[0]


def test_verbose_prints_one_line_per_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    x, y = blobs(60)
    model = nn.Linear(2, 3)
    fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=10,
        val_data=(x, y),
        metrics={"accuracy": accuracy},
        callbacks=[PrintEpochs(bar=False)],
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    pattern = (
        r"epoch {width}/10  train_loss \d+\.\d{4}  val_loss \d+\.\d{4}  val_accuracy \d\.\d{4}"
    )
    assert re.fullmatch(pattern.replace("{width}", " 1"), lines[0])
    assert re.fullmatch(pattern.replace("{width}", "10"), lines[9])


@pytest.mark.parametrize(("tqdm_disable", "bar_shown"), [(None, True), ("1", False)])
def test_progress_bar_goes_to_stderr_and_lines_to_stdout(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tqdm_disable: str | None,
    bar_shown: bool,
) -> None:
    """The epoch lines always print; the bar only when TQDM_DISABLE is not set (the test
    command and the stored notebooks set it)."""
    if tqdm_disable is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", tqdm_disable)
    x, y = blobs(30)
    model = nn.Linear(2, 3)
    fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        callbacks=[PrintEpochs()],
    )
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("epoch 1/2  train_loss ")
    # the postfix, set once at the end
    assert ("2/2" in err and "train_loss" in err) is bar_shown


# ----------------------------------------------------------------------------- early stopping


def scripted_evaluate(monkeypatch: pytest.MonkeyPatch, values: list[float]) -> list[dict]:
    """Make fit's validation return ``values`` in turn; return the weights seen each epoch."""
    snapshots: list[dict] = []

    def fake(model: nn.Module, data: object, **kwargs: object) -> dict[str, float]:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"loss": values[len(snapshots) - 1]}

    monkeypatch.setattr(train, "evaluate", fake)
    return snapshots


def test_early_stopping_stops_at_the_right_epoch_and_restores_best(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshots = scripted_evaluate(monkeypatch, [1.0, 0.8, 0.9, 0.85, 0.95, 0.7, 0.6])
    x, y = blobs(60)
    model = nn.Linear(2, 3)
    history = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        epochs=7,
        val_data=(x, y),
        callbacks=[EarlyStopping(patience=2), PrintEpochs(bar=False)],
    )
    # best at epoch 2; epochs 3 and 4 bring no improvement: with patience 2 it stops after 4
    assert history["val_loss"] == [1.0, 0.8, 0.9, 0.85]
    assert history.best_epoch == 2
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][key])
    assert not torch.equal(snapshots[1]["weight"], snapshots[3]["weight"])
    assert capsys.readouterr().out.splitlines()[-1] == (
        "early stopping: val_loss did not improve for 2 epochs; "
        "restored the weights of epoch 2 (val_loss 0.8000)"
    )


def test_early_stopping_max_mode_min_delta_and_restore_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # val_accuracy: 0.5, 0.7, 0.705 (< min_delta better), 0.69; patience 5 -> runs all 4 epochs
    values = [0.5, 0.7, 0.705, 0.69]

    def fake(model: nn.Module, data: object, **kwargs: object) -> dict[str, float]:
        fake.weights.append(model.weight.detach().clone())
        return {"loss": 1.0, "accuracy": values[len(fake.weights) - 1]}

    fake.weights = []  # type: ignore[attr-defined]
    monkeypatch.setattr(train, "evaluate", fake)
    x, y = blobs(60)
    model = nn.Linear(2, 3)
    history = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        epochs=4,
        val_data=(x, y),
        metrics={"accuracy": accuracy},
        callbacks=[EarlyStopping("val_accuracy", mode="max", patience=5, min_delta=0.01)],
    )
    assert len(history) == 4 and history.best_epoch == 2
    assert torch.equal(model.weight.detach(), fake.weights[1])  # type: ignore[attr-defined]


@pytest.mark.parametrize("patience", [1, 2, 3, 4])
def test_early_stopping_patience_counts_epochs_without_improvement(
    monkeypatch: pytest.MonkeyPatch, patience: int
) -> None:
    """Keras's and Lightning's rule: the best epoch, then ``patience`` epochs without
    improvement, then stop. Counted by hand: best at epoch 2, so 2 + patience epochs run."""
    scripted_evaluate(monkeypatch, [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1])
    x, y = blobs(30)
    model = nn.Linear(2, 3)
    stopper = EarlyStopping(patience=patience)
    history = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=8,
        val_data=(x, y),
        callbacks=[stopper],
    )
    assert len(history) == 2 + patience
    assert stopper.wait == patience and history.best_epoch == 2


def test_early_stopping_rules_by_hand() -> None:
    stopper = EarlyStopping(patience=1)
    assert stopper.step(1.0, 1) and not stopper.should_stop
    assert not stopper.step(1.0, 2) and stopper.should_stop  # equal is no improvement
    stopper.reset()
    assert stopper.best is None and not stopper.should_stop
    stopper = EarlyStopping(patience=2)
    assert [stopper.step(v, e) for e, v in enumerate([3.0, 2.0, 2.5, 1.0, 1.5, 1.2], 1)] == [
        True,
        True,
        False,
        True,  # an improvement resets the count
        False,
        False,
    ]
    assert stopper.should_stop and stopper.best_epoch == 4
    assert not EarlyStopping().improved(float("nan"))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"mode": "lowest"}, ValueError, r"mode must be one of \('min', 'max'\), got 'lowest'"),
        ({"patience": 0}, ValueError, "patience must be a positive int, got 0"),
        ({"patience": 1.5}, TypeError, "patience must be a positive int, got float 1.5"),
        ({"min_delta": -0.1}, ValueError, "min_delta must be a finite number >= 0, got -0.1"),
        ({"min_delta": "0"}, TypeError, "min_delta must be a finite number >= 0, got str"),
        ({"monitor": ""}, ValueError, "monitor must be a record key"),
        ({"monitor": 3}, TypeError, "monitor must be a record key"),
    ],
)
def test_early_stopping_rejects(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        EarlyStopping(**kwargs)


# ----------------------------------------------------------------------------- history


def test_history_table_and_columns() -> None:
    history = History(
        records=[
            {"epoch": 1, "train_loss": 0.51234, "val_accuracy": 0.9},
            {"epoch": 2, "train_loss": 0.2, "val_accuracy": 0.912345},
        ],
        best_epoch=2,
    )
    assert history.to_table() == (
        "epoch  train_loss  val_accuracy\n"
        "    1      0.5123        0.9000\n"
        "    2      0.2000        0.9123\n"
        "best epoch: 2"
    )
    assert str(history) == history.to_table()
    assert history["val_accuracy"] == [0.9, 0.912345]
    assert history.last == {"epoch": 2, "train_loss": 0.2, "val_accuracy": 0.912345}
    with pytest.raises(KeyError, match="history has no 'val_loss'"):
        history["val_loss"]
    assert History().to_table() == "(no epochs)" and History().last == {}


# ----------------------------------------------------------------------------- evaluate, predict


def test_evaluate_counts_like_a_hand_loop() -> None:
    x, y = blobs(103)
    model = nn.Linear(2, 3)
    result = evaluate(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        metrics={"accuracy": accuracy},
        batch_size=10,  # 10 batches of 10 and one of 3: weighting by size keeps it exact
    )
    with torch.no_grad():
        logits = x @ model.weight.T + model.bias
    correct = sum(int(logits[i].argmax() == y[i]) for i in range(103))
    assert result["accuracy"] == pytest.approx(correct / 103)
    expected_loss = -torch.log_softmax(logits, 1)[torch.arange(103), y].mean().item()
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert model.training  # mode restored


def test_predict_concatenates_in_eval_mode_on_cpu() -> None:
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    x = torch.randn(37, 2)
    out = predict(model, x, batch_size=10)
    with torch.no_grad():
        model.eval()
        expected = model(x)
        model.train()
    assert out.shape == (37, 3) and out.device.type == "cpu" and not out.requires_grad
    torch.testing.assert_close(out, expected)
    assert model.training


# ----------------------------------------------------------------------------- checkpoints


MARK = {"ran": False}


def _mark() -> None:
    MARK["ran"] = True


class Trap:
    """Unpickling this calls _mark(): a stand-in for a file that runs code when loaded."""

    def __reduce__(self) -> tuple:
        return (_mark, ())


def test_checkpoint_round_trip_with_optimizer(tmp_path) -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", model, opt, epoch=3, val_loss=0.25, note="x")
    assert path.is_file() and not (tmp_path / "sub" / "ck.pt.tmp").exists()

    fresh = nn.Linear(3, 2)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.5)
    extra = load_checkpoint(path, fresh, fresh_opt)
    assert extra == {"epoch": 3, "val_loss": 0.25, "note": "x"}
    for a, b in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(a, b)
    assert fresh_opt.param_groups[0]["lr"] == 0.01
    state, fresh_state = opt.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert torch.equal(state[0]["exp_avg"], fresh_state[0]["exp_avg"])


def test_checkpoint_refuses_pickled_code(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": Trap()}, path)
    with pytest.raises(ValueError, match="refused"):
        load_checkpoint(path, nn.Linear(1, 1))
    assert MARK["ran"] is False  # the trap never ran


def test_checkpoint_errors(tmp_path) -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="extra 'loss' must be a plain int/float/str"):
        save_checkpoint(tmp_path / "a.pt", model, loss=torch.tensor(1.0))
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt", model)
    torch.save(torch.zeros(2), tmp_path / "tensor.pt")
    with pytest.raises(ValueError, match="not a checkpoint written by save_checkpoint"):
        load_checkpoint(tmp_path / "tensor.pt", model)
    save_checkpoint(tmp_path / "b.pt", model)
    with pytest.raises(ValueError, match="holds no optimizer state"):
        load_checkpoint(tmp_path / "b.pt", model, torch.optim.SGD(model.parameters(), lr=1))


def _damage(path, how: str) -> None:
    data = path.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "tail cut": data[:-10],
        "empty": b"",
        "not torch": b"hello world\n" * 10,
        "scribbled": data[:200] + bytes(50) + data[250:],  # zip intact, its pickle broken
    }[how]
    path.write_bytes(damaged)


@pytest.mark.parametrize("how", ["truncated", "tail cut", "empty", "not torch", "scribbled"])
def test_checkpoint_damaged_file_gets_a_clear_error(tmp_path, how: str) -> None:
    """torch's "PytorchStreamReader failed reading zip archive" (or an EOFError, KeyError...)
    used to leak out; now the file is named and the way out is said."""
    path = save_checkpoint(tmp_path / "run" / "best.pt", nn.Linear(2, 2), epoch=3)
    _damage(path, how)
    message = (
        rf"{re.escape(str(path))} is damaged \(truncated or corrupted.*delete it and re-run "
        r"the cell or training run that saved it"
    )
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path, nn.Linear(2, 2))


def test_checkpoint_damaged_error_keeps_the_cause(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "best.pt", nn.Linear(2, 2))
    _damage(path, "truncated")
    with pytest.raises(ValueError, match=r"\(RuntimeError\)") as info:
        load_checkpoint(path, nn.Linear(2, 2))
    assert "PytorchStreamReader" in str(info.value.__cause__)


def test_fit_checkpoints_the_best_epoch(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    snapshots = scripted_evaluate(monkeypatch, [0.9, 0.5, 0.7, 0.6])
    x, y = blobs(60)
    model = nn.Linear(2, 3)
    path = tmp_path / "best.pt"
    fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
        epochs=4,
        val_data=(x, y),
        callbacks=[Checkpoint(path)],
    )
    fresh = nn.Linear(2, 3)
    extra = load_checkpoint(path, fresh)
    assert extra["epoch"] == 2 and extra["val_loss"] == 0.5
    assert torch.equal(fresh.weight, snapshots[1]["weight"])


# ----------------------------------------------------------------------------- fit errors


def _fit(model: nn.Module | None = None, **changes: object) -> History:
    x, y = blobs(30)
    model = model if model is not None else changes.pop("model", nn.Linear(2, 3))
    kwargs: dict = {"loss_fn": nn.CrossEntropyLoss(), "epochs": 1, **changes}
    if "optimizer" not in kwargs:
        kwargs["optimizer"] = torch.optim.SGD(model.parameters(), lr=0.1)
    train_data = kwargs.pop("train_data", (x, y))
    return fit(model, train_data, **kwargs)


class PlainList(nn.Module):
    """The classic bug: layers in a plain list are never registered."""

    def __init__(self, with_head: bool) -> None:
        super().__init__()
        self.layers = [nn.Linear(2, 2)]
        self.head = nn.Linear(2, 3) if with_head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers[0](x)
        return self.head(x) if self.head is not None else x


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive int, got 0"),
        ({"batch_size": 0}, "batch_size must be a positive int, got 0"),
        ({"train_data": ()}, r"train_data is empty: expected at least one tensor"),
        ({"train_data": (torch.zeros(0, 2), torch.zeros(0))}, "train_data is empty: .* 0 rows"),
        (
            {"train_data": (torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))},
            r"same first dimension .* lengths \[3, 4\]",
        ),
        ({"train_data": (torch.zeros(3, 2),)}, "must hold inputs and targets"),
        ({"val_data": (torch.zeros(3, 2), torch.zeros(2))}, r"val_data .* lengths \[3, 2\]"),
        ({"metrics": {"accuracy": accuracy}}, "computed on val_data, but val_data is None"),
        ({"callbacks": [EarlyStopping()]}, r"monitors 'val_loss', .* pass val_data"),
        ({"callbacks": [Checkpoint("x.pt")]}, r"monitors 'val_loss', .* pass val_data"),
        ({"loss_fn": nn.CrossEntropyLoss(reduction="none")}, r"scalar tensor .* got \(30,\)"),
    ],
)
def test_fit_rejects(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _fit(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 2.0}, "epochs must be a positive int, got float 2.0"),
        ({"train_data": torch.zeros(3, 2)}, "train_data must be a tuple of tensors"),
        ({"train_data": (torch.zeros(3, 2), [1, 2, 3])}, r"train_data\[1\] must be a torch"),
        ({"loss_fn": "mse"}, "loss_fn must be callable, got str 'mse'"),
        ({"loss_fn": lambda o, t: 1.0}, "the value of loss_fn must be a torch.Tensor"),
        ({"loop": Loop(forward=lambda m, b: m(b[0]))}, r"must return a pair \(outputs, targets\)"),
        ({"loop": {"seed": 1}}, r"loop must be a Loop\(...\), got dict"),
        ({"optimizer": "adam"}, "optimizer must be a torch.optim.Optimizer, got str"),
        ({"callbacks": ["val_loss"]}, r"callbacks\[0\] must be a Callback .* got 'val_loss'"),
        ({"callbacks": [PrintEpochs(), 3]}, r"callbacks\[1\] must be a Callback .* got 3"),
        ({"callbacks": EarlyStopping()}, r"callbacks must be a list, .* got EarlyStopping"),
        ({"model": "net", "optimizer": None}, "model must be a torch.nn.Module, got str 'net'"),
    ],
)
def test_fit_rejects_wrong_types(changes: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        _fit(**changes)


def test_loop_and_schedules_reject_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_batches_per_epoch must be a positive int, got 0"):
        Loop(max_batches_per_epoch=0)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        Loop(seed=-1)
    with pytest.raises(TypeError, match="seed must be an int >= 0, got str '0'"):
        Loop(seed="0")
    with pytest.raises(TypeError, match="forward must be callable, got int 3"):
        Loop(forward=3)
    model = nn.Linear(2, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    with pytest.raises(ValueError, match="ReduceLROnPlateau reacts to one number per epoch"):
        LRScheduler(plateau, per="step")
    with pytest.raises(ValueError, match=r"per must be one of \('epoch', 'step'\), got 'batch'"):
        LRScheduler(plateau, per="batch")
    with pytest.raises(ValueError, match="pct_start must be between 0 and 1, got 1.5"):
        OneCycle(0.1, pct_start=1.5)
    with pytest.raises(TypeError, match="path must be a str or Path, got int"):
        Checkpoint(3)


def test_fit_rejects_a_model_without_trainable_parameters() -> None:
    frozen = nn.Linear(2, 3).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        _fit(frozen, optimizer=torch.optim.SGD(frozen.parameters(), lr=0.1))
    hidden = PlainList(with_head=False)
    with pytest.raises(ValueError, match="no trainable parameters.*layers hold .*nn.ModuleList"):
        _fit(hidden, optimizer=torch.optim.SGD(hidden.layers[0].parameters(), lr=0.1))


def test_fit_rejects_an_optimizer_of_another_model() -> None:
    model = nn.Linear(2, 3)
    with pytest.raises(ValueError, match="optimizer holds none of the model's trainable"):
        _fit(model, optimizer=torch.optim.SGD(nn.Linear(2, 3).parameters(), lr=0.1))
    hidden = PlainList(with_head=True)
    with pytest.raises(ValueError, match="holds none.*'?layers'? hold"):
        _fit(hidden, optimizer=torch.optim.SGD(hidden.layers[0].parameters(), lr=0.1))


def test_fit_warns_about_layers_in_a_plain_list() -> None:
    hidden = PlainList(with_head=True)
    with pytest.warns(UserWarning, match="layers hold layers/parameters in a plain Python") as got:
        _fit(hidden, optimizer=torch.optim.SGD(hidden.parameters(), lr=0.1))
    # it points at the learner's line (here, _fit's call of fit in this file), not into mmcourse
    assert [Path(w.filename).name for w in got] == [Path(__file__).name]


def test_warn_at_caller_skips_every_frame_of_the_package() -> None:
    from mmcourse import _validate

    package = {"__name__": "mmcourse.somewhere", "warn_at_caller": _validate.warn_at_caller}
    exec("def inner():\n    warn_at_caller('look here')\ndef outer():\n    inner()", package)
    with pytest.warns(UserWarning, match="look here") as got:
        package["outer"]()  # two of the package's functions between this line and the warning
    assert got[0].filename == __file__


def test_evaluate_and_predict_reject() -> None:
    model = nn.Linear(2, 3)
    x, y = blobs(9)
    with pytest.raises(ValueError, match="needs loss_fn or metrics"):
        evaluate(model, (x, y))
    with pytest.raises(ValueError, match="data is empty: its tensors have 0 rows"):
        evaluate(model, (x[:0], y[:0]), loss_fn=nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="predict needs at least one input tensor"):
        predict(model)
    with pytest.raises(ValueError, match="predict got inputs with 0 rows"):
        predict(model, x[:0])
    with pytest.raises(TypeError, match="expects the model to return a tensor, got tuple"):
        predict(lambda_module(lambda t: (t, t)), x)


def lambda_module(fn) -> nn.Module:
    class Wrap(nn.Module):
        def forward(self, x: torch.Tensor):
            return fn(x)

    return Wrap()


# ----------------------------------------------------------------------------- step and callbacks


def test_train_step_is_one_gradient_step_by_hand() -> None:
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(8, 3, generator=g), torch.randn(8, 1, generator=g)
    model = nn.Linear(3, 1)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    loss = train_step(model, (x, y), nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.2))
    r = x @ w0.T + b0 - y  # L = mean(r^2): dL/dw = 2/N r^T x, dL/db = 2/N sum(r)
    assert loss.item() == pytest.approx((r**2).mean().item(), rel=1e-6)
    torch.testing.assert_close(model.weight.detach(), w0 - 0.2 * 2 / 8 * (r.T @ x))
    torch.testing.assert_close(model.bias.detach(), b0 - 0.2 * 2 / 8 * r.sum(0))


def test_fit_says_nothing_without_a_printing_callback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    x, y = blobs(30)
    model = nn.Linear(2, 3)
    fit(model, (x, y), loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=2)  # fmt: skip
    assert capsys.readouterr() == ("", "")


def test_callbacks_run_in_order_and_early_stopping_may_watch_a_hook_s_number(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hook adds ``score`` before early stopping reads it; the run ends its epochs (no stop),
    and the best epoch's weights come back, said at the end."""
    scores = iter([0.2, 0.6, 0.4])
    calls: list[str] = []

    class Spy(PrintEpochs):
        def on_fit_start(self, state):  # type: ignore[no-untyped-def]
            calls.append("start")
            super().on_fit_start(state)

        def on_step_end(self, state):  # type: ignore[no-untyped-def]
            calls.append("step")

    def add_score(record: dict) -> None:
        calls.append("hook")
        record["score"] = next(scores)

    x, y = blobs(30)
    model = nn.Linear(2, 3)
    weights = []
    history = fit(
        model, (x, y), loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.5), epochs=3, batch_size=15,
        callbacks=[add_score, lambda record: weights.append(model.weight.detach().clone()),
                   EarlyStopping("score", mode="max", patience=5), Spy(bar=False)],
    )  # fmt: skip
    assert calls == ["start"] + ["step", "step", "hook"] * 3
    assert history["score"] == [0.2, 0.6, 0.4] and history.best_epoch == 2
    assert torch.equal(model.weight.detach(), weights[1])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].endswith("score 0.2000")
    assert lines[-1] == "restored the weights of epoch 2 (score 0.6000)"
