"""Self-checks of chapters 01 and 02 accept right answers and explain wrong ones."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from test_checks_core import assert_hides
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
    assert "3 of 4 right" in result.message and "intermediate" not in result.message
    result = ch01.check_fusion_types({**right, "b": "early", "d": "intermediate"})
    assert "2 of 4 right; scenario b is not early" in result.message
    assert "late" not in result.message  # the right kind of b is not given away
    placeholder = ch01.check_fusion_types(dict.fromkeys("abcd"))
    assert str(placeholder).startswith("Not yet: replace each None")
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
        result = ch01.check_nearest_word(model, images, labels, index, other)
        assert not result and repr(best) not in result.message
        worst = model.words[row.index(min(row))]
        if worst != model.words[int(labels[index])]:
            assert "least" in ch01.check_nearest_word(model, images, labels, index, worst).message
    wrong = next(i for i, row in enumerate(similarity) if row.index(max(row)) != int(labels[i]))
    message = ch01.check_nearest_word(
        model, images, labels, wrong, model.words[int(labels[wrong])]
    ).message
    assert "true label" in message
    nearest = model.words[similarity[wrong].index(max(similarity[wrong]))]
    assert repr(nearest) not in message
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


def _precision_by_hand(model, images, labels, word: str, k: int, descending: bool = True):
    similarity = _brute_similarity(model, images)
    column = [row[model.words.index(word)] for row in similarity]
    order = sorted(range(len(column)), key=lambda i: -column[i] if descending else column[i])
    return sum(int(labels[i]) == model.words.index(word) for i in order[:k]) / k


def test_check_precision_at_k_hides_the_answer(space) -> None:
    model, images, labels = space
    k = 10
    word = max(
        model.words, key=lambda w: _precision_by_hand(model, images, labels, w, k)
    )  # a word with a non-zero precision, so that 0 is wrong
    precision = _precision_by_hand(model, images, labels, word, k)
    assert precision > 0
    for guess in (0.0, precision + 0.1, precision - 0.05, 1.0 if precision < 1 else 0.5):
        result = ch01.check_precision_at_k(model, images, labels, word, k, guess)
        assert_hides(result, precision)
    assert "placeholder" in str(ch01.check_precision_at_k(model, images, labels, word, k, 0.0))
    percent = ch01.check_precision_at_k(model, images, labels, word, k, 100 * precision + 0.5)
    assert "percentage" in str(percent) or "count" in str(percent)
    assert "a number, got str" in str(
        ch01.check_precision_at_k(model, images, labels, word, k, "0.5")
    )
    good = ch01.check_precision_at_k(model, images, labels, word, k, precision)
    assert good and f"{precision:.3f} of the {k} images" in str(good)
    word = next(
        w
        for w in model.words
        if 0 < _precision_by_hand(model, images, labels, w, k, descending=False)
        and _precision_by_hand(model, images, labels, w, k, descending=False)
        != _precision_by_hand(model, images, labels, w, k)
    )
    least = _precision_by_hand(model, images, labels, word, k, descending=False)
    result = ch01.check_precision_at_k(model, images, labels, word, k, least)
    assert "*least* similar" in str(result)


# ----------------------------------------------------------------------------- chapter 02


def test_check_weight_shapes() -> None:
    assert ch02.check_weight_shapes(2304, 128, 64, (64, 2304), (64, 128), (64, 2432))
    assert ch02.check_weight_shapes(2304, 128, 64, torch.Size([64, 2304]), [64, 128], (64, 2432))
    transposed = ch02.check_weight_shapes(2304, 128, 64, (2304, 64), (64, 128), (64, 2432))
    assert not transposed and "transposed" in transposed.message
    wrong_y = ch02.check_weight_shapes(2304, 128, 64, (64, 2304), (64, 64), (64, 2432))
    assert_hides(wrong_y, 128, (64, 128))
    assert "W_Y (64, 64) is not right" in wrong_y.message
    assert "second number" in wrong_y.message and "text features" in wrong_y.message
    concat = ch02.check_weight_shapes(2304, 128, 64, (64, 2304), (64, 128), (64, 128))
    assert_hides(concat, 2432, (64, 2432))
    assert "reads both modalities" in concat.message
    rows = ch02.check_weight_shapes(2304, 128, 64, (32, 2304), (64, 128), (64, 2432))
    assert_hides(rows, (64, 2304))
    assert "first number" in rows.message and "joint space" in rows.message
    near = ch02.check_weight_shapes(2304, 128, 64, (64, 2305), (64, 128), (64, 2432))
    assert_hides(near, 2304, (64, 2304))
    swapped = ch02.check_weight_shapes(2304, 128, 64, (64, 128), (64, 2304), (64, 2432))
    assert_hides(swapped, 2304, (64, 2304))
    assert "meets the image features" in swapped.message
    trivial = ch02.check_weight_shapes(2304, 128, 64, (0, 0), (0, 0), (0, 0))
    assert_hides(trivial, 64, 2304, 128, 2432)
    assert (
        "two numbers" in ch02.check_weight_shapes(2304, 128, 64, (64,), (64, 128), (1, 1)).message
    )
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

    def doubled(*args):
        return 2 * _reference_grad(*args)

    def no_bias(x, y, w_x, w_y, b, t):
        return _reference_grad(x, y, w_x, w_y, torch.zeros_like(b), t)

    def no_text(x, y, w_x, w_y, b, t):
        return _reference_grad(x, y, w_x, torch.zeros_like(w_y), b, t)

    def slightly_off(*args):
        return 1.01 * _reference_grad(*args) + 0.003

    assert "factor of the batch size" in ch02.check_grad_weight_x(mean).message
    assert "sign" in ch02.check_grad_weight_x(flipped).message
    assert "transposed" in ch02.check_grad_weight_x(transposed).message
    assert "factor of two" in ch02.check_grad_weight_x(doubled).message
    assert "bias" in ch02.check_grad_weight_x(no_bias).message
    assert "text term" in ch02.check_grad_weight_x(no_text).message
    assert "RuntimeError: boom" in ch02.check_grad_weight_x(crashes).message
    assert "None" in ch02.check_grad_weight_x(lambda *a: None).message
    assert "return a tensor" in ch02.check_grad_weight_x(lambda *a: 1.0).message
    zeros = ch02.check_grad_weight_x(lambda x, y, w_x, *r: torch.zeros_like(w_x))
    assert not zeros and "all zeros" in zeros.message
    near = ch02.check_grad_weight_x(slightly_off)
    assert "differs from autograd" in near.message and "slightly too" in near.message
    for result in (zeros, near):
        assert not re.search(r"\d\.\d", str(result)), result  # not a single value printed
    assert not ch02.check_grad_weight_x("grad")  # type: ignore[arg-type]


def test_check_split_weights() -> None:
    fc = nn.Linear(5 + 3, 4)
    w = fc.weight.detach()
    assert ch02.check_split_weights(fc, 5, w[:, :5], w[:, 5:], fc.bias.detach())
    swapped = ch02.check_split_weights(fc, 5, w[:, 3:], w[:, :3], fc.bias.detach())
    assert not swapped and "first image_dim columns" in swapped.message
    no_bias = ch02.check_split_weights(fc, 5, w[:, :5], w[:, 5:], torch.zeros(4))
    assert not no_bias and "all zeros" in no_bias.message and "linear.bias" in no_bias.message
    other_bias = ch02.check_split_weights(fc, 5, w[:, :5], w[:, 5:], fc.bias.detach() + 0.1)
    assert not other_bias and "take linear.bias" in other_bias.message
    square = nn.Linear(4 + 4, 2)
    ws = square.weight.detach()
    swapped_square = ch02.check_split_weights(square, 4, ws[:, 4:], ws[:, :4], square.bias)
    assert not swapped_square and "swapped" in swapped_square.message
    rows = ch02.check_split_weights(fc, 5, w[:2, :5].repeat(2, 1), w[:, 5:], fc.bias.detach())
    assert not rows and "first image_dim columns" in rows.message
    transposed = ch02.check_split_weights(fc, 5, w[:, :5].T, w[:, 5:], fc.bias.detach())
    assert not transposed and "transposed" in transposed.message
    assert "(out_features" not in transposed.message
    assert "should be a tensor" in ch02.check_split_weights(fc, 5, None, None, None).message
    assert "linear.bias" in ch02.check_split_weights(fc, 5, w[:, :5], w[:, 5:], None).message
    zeros = ch02.check_split_weights(fc, 5, torch.zeros(4, 5), torch.zeros(4, 3), torch.zeros(4))
    assert not zeros and not re.search(r"\d\.\d", str(zeros))  # no value of the layer printed
    assert not ch02.check_split_weights(nn.Conv1d(1, 1, 1), 5, w, w, w)  # type: ignore[arg-type]
