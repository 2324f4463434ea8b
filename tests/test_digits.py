"""The digit-classifier recipe: model, augmentation, training helper and (slow) its 99 % claim."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from mmcourse.callbacks import History
from mmcourse.data.mnist import load_mnist, load_subset
from mmcourse.digits import (
    RECIPE,
    epochs_to_reach,
    random_shift,
    train_digit_classifier,
)
from tests.conftest import full_mnist_root, needs_full_mnist

# ----------------------------------------------------------------------------- random_shift


def test_random_shift_matches_a_loop_of_slices():
    images = torch.randn(6, 2, 9, 7)
    m = 2
    shifted = random_shift(images, m, torch.Generator().manual_seed(3))
    offsets = torch.randint(0, 2 * m + 1, (2, 6), generator=torch.Generator().manual_seed(3))
    background = images.min()
    for i in range(6):
        dy, dx = int(offsets[0, i]) - m, int(offsets[1, i]) - m  # output(r, c) = input(r+dy, c+dx)
        expected = torch.full_like(images[i], float(background))
        for r in range(9):
            for c in range(7):
                if 0 <= r + dy < 9 and 0 <= c + dx < 7:
                    expected[:, r, c] = images[i, :, r + dy, c + dx]
        torch.testing.assert_close(shifted[i], expected)


def test_random_shift_zero_is_identity_and_errors():
    x = torch.randn(2, 1, 5, 5)
    assert random_shift(x, 0) is x
    with pytest.raises(ValueError, match="max_shift must be a non-negative int, got -1"):
        random_shift(x, -1)
    with pytest.raises(ValueError, match=r"float batch \(B, C, H, W\), got torch.uint8"):
        random_shift(torch.zeros(2, 1, 5, 5, dtype=torch.uint8), 1)
    with pytest.raises(ValueError, match=r"float batch \(B, C, H, W\), got torch.float32 \(5, 5\)"):
        random_shift(torch.zeros(5, 5), 1)


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def subset():
    x, y = load_subset("train")
    xt, yt = load_subset("test")
    return x[:2000], y[:2000], xt[:500], yt[:500]


def test_training_learns_on_a_small_subset(subset):
    x, y, xt, yt = subset
    model, history = train_digit_classifier(
        x, y, (xt, yt), epochs=2, recipe=replace(RECIPE, batch_size=64), record_time=True
    )
    assert history.keys() == [
        "epoch",
        "train_loss",
        "lr",
        "test_loss",
        "test_accuracy",
        "train_seconds",
        "train_cpu_seconds",
    ]
    assert len(history) == 2 and not model.training
    assert history["train_loss"][1] < history["train_loss"][0]
    # 2,000 digits, two short epochs: far above chance (0.1)
    assert history.last["test_accuracy"] >= 0.85
    # the one-cycle schedule ends near zero
    assert history.last["lr"] < RECIPE.lr / 100
    assert 0 < history["train_seconds"][0] <= history["train_seconds"][1]
    # the accuracy recorded is the accuracy of the returned model
    with torch.no_grad():
        from mmcourse.data.mnist import to_float

        predictions = model(to_float(xt)).argmax(1)
    assert history.last["test_accuracy"] == pytest.approx((predictions == yt).float().mean().item())


def test_training_another_model_with_shift_and_float_inputs(subset):
    x, y, _, _ = subset
    from mmcourse.data.mnist import to_float

    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    trained, history = train_digit_classifier(
        to_float(x[:1024]),
        y[:1024],
        epochs=1,
        model=model,
        recipe=replace(RECIPE, max_shift=2, channels_last=False),
    )
    assert trained is model and history.keys() == ["epoch", "train_loss", "lr"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive int, got 0"),
        ({"epochs": 1.0}, TypeError, "epochs must be a positive int, got float 1.0"),
        ({"recipe": {"lr": 0.1}}, TypeError, r"recipe must be a DigitRecipe\(...\), got dict"),
        (
            {"eval_data": torch.zeros(3, 28, 28, dtype=torch.uint8)},
            TypeError,
            r"eval_data must be a pair \(images, labels\), got Tensor",
        ),
        (
            {"eval_data": (torch.zeros(3, 28, 28, dtype=torch.uint8), torch.zeros(2).long())},
            ValueError,
            "eval_data's labels has 2 labels for 3 images",
        ),
        ({"recipe": replace(RECIPE, batch_size=256)}, ValueError, "need at least one full batch"),
        ({"recipe": replace(RECIPE, batch_size=100)}, ValueError, "too few steps for the one-cyc"),
    ],
)
def test_training_rejects_settings(subset, kwargs, error, match):
    x, y, _, _ = subset
    with pytest.raises(error, match=match):
        train_digit_classifier(x[:200], y[:200], **kwargs)


@pytest.mark.parametrize(
    "changes, error, match",
    [
        ({"batch_size": 1}, ValueError, "batch_size must be an int >= 2, got 1"),
        ({"lr": 0.0}, ValueError, "lr must be a finite number > 0, got 0.0"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay must be a finite number >= 0"),
        ({"pct_start": 1.0}, ValueError, "pct_start must be between 0 and 1"),
        ({"max_shift": -1}, ValueError, "max_shift must be an int >= 0, got -1"),
    ],
)
def test_recipe_rejects_settings(changes, error, match):
    with pytest.raises(error, match=match):
        replace(RECIPE, **changes)


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (torch.zeros(4, 784, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), r"\(N, H, W\)"),
        (torch.zeros(4, 28, 28), torch.zeros(4, dtype=torch.long), r"\(B, 1, H, W\)"),
        (
            torch.zeros(4, 28, 28, dtype=torch.uint8),
            torch.zeros(4, dtype=torch.int32),
            r"labels must be an int64 tensor of shape \(N,\), got torch.int32",
        ),
        (
            torch.zeros(4, 28, 28, dtype=torch.uint8),
            torch.zeros(3, dtype=torch.long),
            "labels has 3 labels for 4 images",
        ),
    ],
)
def test_training_rejects_data(images, labels, match):
    with pytest.raises(ValueError, match=match):
        train_digit_classifier(images, labels, recipe=replace(RECIPE, batch_size=2))


def test_training_rejects_data_that_are_not_tensors():
    with pytest.raises(TypeError, match="images must be a torch.Tensor, got list"):
        train_digit_classifier([[0]], torch.zeros(1, dtype=torch.long))
    with pytest.raises(TypeError, match="labels must be a torch.Tensor .*, got list"):
        train_digit_classifier(torch.zeros(4, 28, 28, dtype=torch.uint8), [0, 1, 2, 3])


def test_epochs_to_reach():
    history = History(
        records=[
            {"epoch": 1, "test_accuracy": 0.97},
            {"epoch": 2, "test_accuracy": 0.991},
            {"epoch": 3, "test_accuracy": 0.99},
        ]
    )
    assert epochs_to_reach(history, 0.99) == 2
    assert epochs_to_reach(history, 0.995) is None
    with pytest.raises(ValueError, match="threshold must be a number"):
        epochs_to_reach(history, "0.99")


# ----------------------------------------------------------------------------- the claim


@pytest.mark.slow
@needs_full_mnist
def test_recipe_reaches_99_percent_on_full_mnist_in_one_epoch():
    """The promise of chapter 04 and the README: 99 % test accuracy after one epoch (seed 0;
    the six seeds measured gave 99.02-99.17 %, see mmcourse.digits)."""
    root = full_mnist_root()
    x, y = load_mnist("train", root=root)
    xt, yt = load_mnist("test", root=root)
    # about 15 s of training on two idle cores (timing is the benchmark's job, not a test's)
    _, history = train_digit_classifier(x, y, (xt, yt), epochs=RECIPE.epochs_full_mnist)
    assert history.last["test_accuracy"] >= 0.99, history.to_table()


def test_validation_digits_get_val_columns_and_a_bad_name_is_refused() -> None:
    torch.manual_seed(0)
    x, y = torch.randint(0, 256, (256, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (256,))
    _, history = train_digit_classifier(
        x, y, (x[:64], y[:64]), epochs=2, recipe=replace(RECIPE, batch_size=32), eval_name="val"
    )
    assert "val_accuracy" in history.keys() and "test_accuracy" not in history.keys()
    with pytest.raises(ValueError, match="eval_name"):
        train_digit_classifier(x, y, (x[:64], y[:64]), epochs=2, eval_name="dev")
