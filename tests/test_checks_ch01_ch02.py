"""Self-checks of chapters 01 and 02 accept right answers and explain wrong ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.checks import ch01, ch02
from mmcourse.joint import DigitWordSpace

# ----------------------------------------------------------------------------- chapter 01


def test_check_fusion_types() -> None:
    right = {"a": "early", "b": "late", "c": "intermediate", "d": "late"}
    assert ch01.check_fusion_types(right)
    assert ch01.check_fusion_types({k: v.upper() for k, v in right.items()})
    result = ch01.check_fusion_types({**right, "c": "early"})
    assert not result and "scenario c is not early fusion" in result.message
    assert (
        "scenario(s) d" in ch01.check_fusion_types({"a": "early", "b": "late", "c": "late"}).message
    )
    assert "answer one of" in ch01.check_fusion_types({**right, "a": "middle"}).message
    assert not ch01.check_fusion_types("early")  # type: ignore[arg-type]
    assert not ch01.check_fusion_types({})


@pytest.fixture(scope="module")
def space() -> tuple[DigitWordSpace, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = DigitWordSpace(dim=2, hidden=8).eval()
    images = torch.randn(40, 1, 28, 28)
    labels = torch.arange(40) % 10
    return model, images, labels


def _brute_similarity(model: DigitWordSpace, images: torch.Tensor) -> list[list[float]]:
    with torch.no_grad():
        points = model.image_encoder(images.flatten(1))
        words = model.word_embedding.weight
    return [[(p @ w / (p.norm() * w.norm())).item() for w in words] for p in points]


def test_check_nearest_word(space) -> None:
    model, images, labels = space
    similarity = _brute_similarity(model, images)
    for index in (0, 7, 13):
        row = similarity[index]
        best = model.words[row.index(max(row))]
        assert ch01.check_nearest_word(model, images, labels, index, best)
        assert ch01.check_nearest_word(model, images, labels, index, f" {best.upper()} ")
        other = model.words[(model.words.index(best) + 1) % 10]
        assert not ch01.check_nearest_word(model, images, labels, index, other)
    wrong = next(i for i, row in enumerate(similarity) if row.index(max(row)) != int(labels[i]))
    message = ch01.check_nearest_word(
        model, images, labels, wrong, model.words[int(labels[wrong])]
    ).message
    assert "true label" in message
    assert "not one of" in ch01.check_nearest_word(model, images, labels, 0, "eleven").message
    assert not ch01.check_nearest_word(model, images, labels, 0, "")


def test_check_precision_at_k(space) -> None:
    model, images, labels = space
    similarity = torch.tensor(_brute_similarity(model, images))
    column = similarity[:, 3]
    top = sorted(range(len(column)), key=lambda i: -column[i].item())[:5]
    precision = sum(int(labels[i]) == 3 for i in top) / 5
    assert ch01.check_precision_at_k(model, images, labels, "three", 5, precision)
    assert not ch01.check_precision_at_k(model, images, labels, "three", 5, precision + 0.2)
    if precision > 0.2:
        assert (
            "fraction"
            in ch01.check_precision_at_k(model, images, labels, "three", 5, precision * 5).message
        )
    assert not ch01.check_precision_at_k(model, images, labels, "three", 5, None)  # type: ignore[arg-type]
    assert not ch01.check_precision_at_k(model, images, labels, "thirty", 5, 0.5)
    assert not ch01.check_precision_at_k(model, images, labels, "three", 0, 0.5)


# ----------------------------------------------------------------------------- chapter 02


def test_check_weight_shapes() -> None:
    assert ch02.check_weight_shapes(2304, 128, 64, (64, 2304), (64, 128), (64, 2432))
    assert ch02.check_weight_shapes(2304, 128, 64, torch.Size([64, 2304]), [64, 128], (64, 2432))
    transposed = ch02.check_weight_shapes(2304, 128, 64, (2304, 64), (64, 128), (64, 2432))
    assert not transposed and "transposed" in transposed.message
    assert (
        "W_Y has shape (64, 128)"
        in ch02.check_weight_shapes(2304, 128, 64, (64, 2304), (64, 64), (64, 2432)).message
    )
    assert not ch02.check_weight_shapes(2304, 128, 64, (64, 2304), (64, 128), (64, 128))
    assert "tuple of ints" in ch02.check_weight_shapes(2304, 128, 64, None, None, None).message


def _reference_grad(x, y, w_x, w_y, b, t):
    """The hand-derived answer: dL/dW_X = (Z - T)^T X for L = 1/2 sum |Z - T|^2."""
    return (x @ w_x.T + y @ w_y.T + b - t).T @ x


def test_check_grad_weight_x_accepts_the_derivation_and_autograd() -> None:
    assert ch02.check_grad_weight_x(_reference_grad)

    def by_autograd(x, y, w_x, w_y, b, t):
        w_x = w_x.clone().requires_grad_(True)
        F.mse_loss(x @ w_x.T + y @ w_y.T + b, t, reduction="sum").mul(0.5).backward()
        return w_x.grad

    assert ch02.check_grad_weight_x(by_autograd)


def test_check_grad_weight_x_explains_mistakes() -> None:
    def mean(x, *rest):
        return _reference_grad(x, *rest) / x.shape[0]

    def flipped(*args):
        return -_reference_grad(*args)

    def transposed(*args):
        return _reference_grad(*args).T

    def crashes(*args):
        raise RuntimeError("boom")

    assert "factor of the batch size" in ch02.check_grad_weight_x(mean).message
    assert "sign" in ch02.check_grad_weight_x(flipped).message
    assert "transposed" in ch02.check_grad_weight_x(transposed).message
    assert "RuntimeError: boom" in ch02.check_grad_weight_x(crashes).message
    assert "None" in ch02.check_grad_weight_x(lambda *a: None).message
    assert "return a tensor" in ch02.check_grad_weight_x(lambda *a: 1.0).message
    assert (
        "differs from autograd"
        in ch02.check_grad_weight_x(lambda x, y, w_x, *r: torch.zeros_like(w_x)).message
    )
    assert not ch02.check_grad_weight_x("grad")  # type: ignore[arg-type]


def test_check_split_weights() -> None:
    fc = nn.Linear(5 + 3, 4)
    w = fc.weight.detach()
    assert ch02.check_split_weights(fc, 5, w[:, :5], w[:, 5:], fc.bias.detach())
    swapped = ch02.check_split_weights(fc, 5, w[:, 3:], w[:, :3], fc.bias.detach())
    assert not swapped and "first image_dim columns" in swapped.message
    no_bias = ch02.check_split_weights(fc, 5, w[:, :5], w[:, 5:], torch.zeros(4))
    assert not no_bias and "differs" in no_bias.message
    square = nn.Linear(4 + 4, 2)
    ws = square.weight.detach()
    assert not ch02.check_split_weights(square, 4, ws[:, 4:], ws[:, :4], square.bias.detach())
    assert "should be a tensor" in ch02.check_split_weights(fc, 5, None, None, None).message
    assert not ch02.check_split_weights(nn.Conv1d(1, 1, 1), 5, w, w, w)  # type: ignore[arg-type]
