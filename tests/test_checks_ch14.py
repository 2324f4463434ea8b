"""Self-checks of chapter 14 accept right answers and explain wrong ones."""

from __future__ import annotations

import math

import torch
from test_checks_core import assert_hides

from mmcourse.checks import ch14

FIRST = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
SECOND = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
# worked by hand at temperature 1: unit vectors a=(1,0), b=(0,1), a'=(.707,.707), b'=(0,1).
# view a: others b, a', b' -> cosines 0, .7071, 0: loss = log(e^0 + e^.7071 + e^0) - .7071
# view b: a, a', b' -> 0, .7071, 1: loss = log(1 + e^.7071 + e) - 1
# view a': a, b, b' -> .7071, .7071, .7071: loss = log(3 e^.7071) - .7071 = log 3
# view b': a, b, a' -> 0, 1, .7071: loss = log(1 + e + e^.7071) - 1
R = math.sqrt(0.5)
BY_HAND = (
    math.log(2 + math.exp(R)) - R
    + 2 * (math.log(1 + math.e + math.exp(R)) - 1)
    + math.log(3)
) / 4  # fmt: skip


def test_nt_xent_accepts_the_loss_worked_by_hand() -> None:
    result = ch14.check_nt_xent(FIRST, SECOND, 1.0, BY_HAND)
    assert result and "log(2N - 1)" in result.message
    assert ch14.check_nt_xent(FIRST, SECOND, 1.0, torch.tensor(BY_HAND))


def test_nt_xent_names_the_usual_slips() -> None:
    wrong_side = (math.log(2 + math.exp(R)) - R + math.log(1 + math.e + math.exp(R)) - 1) / 2
    for guess, hint in (
        (wrong_side, "all 2N views"),
        (BY_HAND * 1.5, "too high"),
        (0.0, "placeholder"),
    ):
        result = ch14.check_nt_xent(FIRST, SECOND, 1.0, guess)
        assert hint in result.message, (hint, result)
        assert_hides(result, BY_HAND)
    unnormalised = ch14.check_nt_xent(
        FIRST, SECOND, 0.5, ch14._nt_xent_by_views(FIRST, SECOND, 0.5, normalise=False)
    )
    assert "normalise" in unnormalised.message
    no_temperature = ch14.check_nt_xent(FIRST, SECOND, 0.5, BY_HAND)
    assert "temperature" in no_temperature.message
    with_self = ch14.check_nt_xent(
        FIRST, SECOND, 1.0, ch14._nt_xent_by_views(FIRST, SECOND, 1.0, keep_self=True)
    )
    assert "its own candidates" in with_self.message


def test_nt_xent_rejects_bad_inputs() -> None:
    assert "(N, D)" in ch14.check_nt_xent([1.0], SECOND, 1.0, 1.0).message
    assert "same N" in ch14.check_nt_xent(FIRST, SECOND[:1], 1.0, 1.0).message
    assert "still None" in ch14.check_nt_xent(FIRST, SECOND, 1.0, None).message


def test_pseudo_label_accuracy() -> None:
    pseudo, truth = torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])
    assert ch14.check_pseudo_label_accuracy(pseudo, truth, 0.75)
    for guess, hint in (
        (3, "not a count"),
        (75.0, "percentage"),
        (0.25, "wrong"),
        (0.5, "too low"),
    ):
        result = ch14.check_pseudo_label_accuracy(pseudo, truth, guess)
        assert hint in result.message, (hint, result)
        assert_hides(result, 0.75)
    assert (
        "exactly the examples" in ch14.check_pseudo_label_accuracy(pseudo, truth[:2], 0.5).message
    )


def zero_shot_setting() -> tuple:
    from mmcourse import retrieval
    from mmcourse.models.dual import new_dual_encoder
    from mmcourse.vocab import Vocabulary

    texts = [p for d in range(10) for p in retrieval.digit_prompts(d)]
    vocab = Vocabulary.build(texts)
    dual = new_dual_encoder(len(vocab), seed=1).eval()
    from mmcourse.data import mnist

    digits, labels = mnist.load_subset("test")
    return dual, vocab, digits[:60], labels[:60]


def test_drawn_zero_shot_accuracy_accepts_a_count_done_by_hand_and_names_slips() -> None:
    from mmcourse import retrieval

    dual, vocab, digits, labels = zero_shot_setting()
    with torch.no_grad():  # by hand: every prompt of every digit embedded, averaged, nearest
        rows = []
        for d in range(10):
            one = torch.cat([
                dual.encode_text(torch.tensor([vocab.encode(p)])) for p in retrieval.digit_prompts(d)
            ])  # fmt: skip
            rows.append(one.mean(0) / one.mean(0).norm())
        canvases = retrieval.place_digits_on_canvas(digits).float()[:, None] / 255
        from mmcourse.data.captions.dataset import CANVAS_MEAN, CANVAS_STD

        images = dual.encode_image((canvases - CANVAS_MEAN) / CANVAS_STD)
        right = (images @ torch.stack(rows).T).argmax(1) == labels
    accuracy = float(right.double().mean())
    assert ch14.check_drawn_zero_shot_accuracy(dual, vocab, digits, labels, accuracy)
    for guess, hint in ((100 * accuracy, "percentage"), (1 - accuracy, "wrong")):
        if abs(guess - accuracy) <= 0.025:
            continue
        result = ch14.check_drawn_zero_shot_accuracy(dual, vocab, digits, labels, guess)
        assert hint in result.message, (hint, result)
        assert_hides(result, accuracy)
    from mmcourse.fewlabels.image_text import paste_on_canvas

    nine_views = retrieval.zero_shot_accuracy(dual, vocab, digits, labels)
    with torch.no_grad():
        pasted_images = paste_on_canvas(digits).float()[:, None] / 255
        pasted_images = dual.encode_image((pasted_images - CANVAS_MEAN) / CANVAS_STD)
        pasted = float(((pasted_images @ torch.stack(rows).T).argmax(1) == labels).double().mean())
    slips = {"pasted as they are": pasted, "nine views": nine_views}
    for hint, value in slips.items():
        others = [v for h, v in slips.items() if h != hint]
        if abs(value - accuracy) > 0.025 and all(abs(value - v) > 0.025 for v in others):
            result = ch14.check_drawn_zero_shot_accuracy(dual, vocab, digits, labels, value)
            assert hint in result.message, (hint, result)
    assert (
        "uint8"
        in ch14.check_drawn_zero_shot_accuracy(dual, vocab, digits.float(), labels, 0.5).message
    )
    assert (
        "one true digit"
        in ch14.check_drawn_zero_shot_accuracy(dual, vocab, digits, labels[:3], 0.5).message
    )
