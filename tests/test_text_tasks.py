"""Text-only tasks on MNIST-Captions (mmcourse.data.text_tasks), checked against the dataset's
ground truth: the layout, the caption parser and the VQA answers."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
import torch

from mmcourse.data.captions import (
    NUMBER_WORDS,
    SLOTS,
    MNISTCaptions,
    describe,
    make_mnist_captions,
    parse_caption,
)
from mmcourse.data.text_tasks import (
    NONE_CLASS,
    SLOT_ANSWERS,
    TextTask,
    bag_of_words,
    choose_captions,
    digits_present_task,
    order_blind_bound,
    slot_digit_task,
)
from mmcourse.metrics import multilabel_exact_match
from mmcourse.vocab import Vocabulary


@pytest.fixture(scope="module")
def data() -> MNISTCaptions:
    return make_mnist_captions("val", n=300, seed=1)


# ------------------------------------------------------------------ choosing captions


def test_choose_captions_picks_distinct_paraphrases_of_each_canvas(data: MNISTCaptions) -> None:
    texts, canvas = choose_captions(data, per_canvas=3, seed=0)
    assert len(texts) == 3 * len(data) and canvas.tolist() == [i // 3 for i in range(len(texts))]
    for i in range(len(data)):
        mine = texts[3 * i : 3 * i + 3]
        assert len(set(mine)) == 3 and set(mine) <= set(data.captions[i])
    all_four, _ = choose_captions(data, per_canvas=4)
    assert all(set(all_four[4 * i : 4 * i + 4]) == set(data.captions[i]) for i in range(len(data)))


def test_choose_captions_is_deterministic_and_uses_every_template(data: MNISTCaptions) -> None:
    first, _ = choose_captions(data, seed=3)
    again, _ = choose_captions(data, seed=3)
    other, _ = choose_captions(data, seed=4)
    assert first == again and first != other
    template = [data.captions[i].index(text) for i, text in enumerate(first)]
    assert set(template) == {0, 1, 2, 3}


def test_choose_captions_errors(data: MNISTCaptions) -> None:
    with pytest.raises(ValueError, match="must be an MNISTCaptions, got list"):
        choose_captions([["a seven on the left"]])  # type: ignore[arg-type]
    for bad in (0, 5, 1.5):
        with pytest.raises(ValueError, match="per_canvas must be an int in 1..4"):
            choose_captions(data, per_canvas=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ the two tasks


def test_digits_present_agrees_with_the_layout_and_the_parser(data: MNISTCaptions) -> None:
    task = digits_present_task(data, per_canvas=2, seed=1)
    assert task.multi_label and task.class_names == NUMBER_WORDS
    assert task.targets.shape == (2 * len(data), 10) and task.targets.dtype == torch.float32
    for i, text in enumerate(task.texts):
        on_canvas = {d for d in data.layout.digits[int(task.canvas[i])].tolist() if d >= 0}
        said = {d.digit for d in parse_caption(text)}
        assert said == on_canvas
        assert set(task.targets[i].nonzero().squeeze(1).tolist()) == on_canvas


@pytest.mark.parametrize("slot", SLOTS)
def test_slot_digit_agrees_with_the_parser_and_the_vqa_answers(
    data: MNISTCaptions, slot: str
) -> None:
    task = slot_digit_task(data, slot=slot)
    assert not task.multi_label and task.class_names == SLOT_ANSWERS
    where = {"left": "on the left", "middle": "in the middle", "right": "on the right"}[slot]
    for i, text in enumerate(task.texts):
        in_slot = [d.digit for d in parse_caption(text) if d.slot == slot]
        expected = in_slot[0] if in_slot else NONE_CLASS
        assert int(task.targets[i]) == expected
        qa = {q: a for _, q, a in data.qa[int(task.canvas[i])]}
        assert task.answer(i) == qa[f"which digit is {where} ?"]


def test_slot_digit_has_every_class(data: MNISTCaptions) -> None:
    task = slot_digit_task(data)
    assert set(task.targets.tolist()) == set(range(11))


def test_slot_digit_errors(data: MNISTCaptions) -> None:
    with pytest.raises(ValueError, match="slot must be one of"):
        slot_digit_task(data, slot="top")


# ------------------------------------------------------------------ TextTask


def test_task_select_encode_and_answer(data: MNISTCaptions) -> None:
    task = slot_digit_task(data)
    part = task.select([5, 2])
    assert part.texts == [task.texts[5], task.texts[2]]
    assert torch.equal(part.targets, task.targets[torch.tensor([5, 2])])
    assert torch.equal(part.canvas, torch.tensor([5, 2]))
    assert len(part) == 2 and part.num_classes == 11
    vocab = Vocabulary.build(task.texts)
    ids, targets = part.encode(vocab)
    assert ids.shape[0] == 2 and targets is part.targets
    assert vocab.decode(ids[0]) == part.texts[0].replace(" ,", ",").replace(" :", ":")
    present = digits_present_task(data).select([0])
    digits = sorted({d for d in data.layout.digits[0].tolist() if d >= 0})
    assert present.answer(0) == ", ".join(NUMBER_WORDS[d] for d in digits)


def test_task_validation() -> None:
    one = torch.zeros(1, dtype=torch.long)
    with pytest.raises(ValueError, match="texts must be a list of str"):
        TextTask("t", [3], one, one, ("a", "b"), False)  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"canvas must have shape \(1,\)"):
        TextTask("t", ["x"], one, torch.zeros(2, dtype=torch.long), ("a", "b"), False)
    with pytest.raises(ValueError, match="single-label targets must be long"):
        TextTask("t", ["x"], torch.zeros(1), one, ("a", "b"), False)
    with pytest.raises(ValueError, match="class indices in 0..1"):
        TextTask("t", ["x"], torch.tensor([2]), one, ("a", "b"), False)
    with pytest.raises(ValueError, match=r"multi-label targets must be float \(1, 2\)"):
        TextTask("t", ["x"], one, one, ("a", "b"), True)
    with pytest.raises(ValueError, match="must be 0 or 1"):
        TextTask("t", ["x"], torch.tensor([[0.5, 1.0]]), one, ("a", "b"), True)


# ------------------------------------------------------------------ bags of words and the bound


def test_bag_of_words_by_hand() -> None:
    assert bag_of_words("a seven , a two") == ((",", 1), ("a", 2), ("seven", 1), ("two", 1))
    assert bag_of_words("a seven on the left and a two on the right") == bag_of_words(
        "a two on the left and a seven on the right"
    )


def brute_force_bound(data: MNISTCaptions, index: int, slot: str) -> float:
    """Shuffle the digit phrases of canvas ``index`` among its occupied slots in every way,
    keep the shuffles whose caption has the same bag of words (all of them, by the argument
    in the docstring), and return the share of the most common answer for ``slot``."""
    items = data.items(index)
    occupied = [slot_index for slot_index, *_ in items]
    bag = bag_of_words(describe(items, 0))
    answers: Counter[int] = Counter()
    for order in itertools.permutations(range(len(items))):
        shuffled = [(occupied[k], *items[j][1:]) for k, j in enumerate(order)]
        assert bag_of_words(describe(shuffled, 0)) == bag  # same words
        assert bag_of_words(describe(shuffled, 3)) == bag_of_words(describe(items, 3))
        digit = {s: d for s, d, *_ in shuffled}.get(SLOTS.index(slot), NONE_CLASS)
        answers[digit] += 1
    return answers.most_common(1)[0][1] / sum(answers.values())


@pytest.mark.parametrize("slot", SLOTS)
def test_order_blind_bound_matches_a_brute_force(data: MNISTCaptions, slot: str) -> None:
    bound = order_blind_bound(data, slot)
    assert bound.shape == (len(data),)
    for i in range(len(data)):
        assert bound[i].item() == pytest.approx(brute_force_bound(data, i, slot))


def test_order_blind_bound_values_by_hand(data: MNISTCaptions) -> None:
    bound = order_blind_bound(data, "left")
    digits = data.layout.digits
    seen = set()
    for i in range(len(data)):
        row = [d for d in digits[i].tolist() if d >= 0]
        if digits[i, 0] < 0 or len(row) == 1:
            assert bound[i] == 1.0
            seen.add("certain")
        elif len(row) == 3 and len(set(row)) == 3:
            assert bound[i].item() == pytest.approx(1 / 3)
            seen.add("one in three")
        elif len(row) == 2 and len(set(row)) == 2:
            assert bound[i] == 0.5
            seen.add("one in two")
    assert seen == {"certain", "one in three", "one in two"}


def test_order_blind_bound_errors(data: MNISTCaptions) -> None:
    with pytest.raises(ValueError, match="must be an MNISTCaptions"):
        order_blind_bound("captions")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slot must be one of"):
        order_blind_bound(data, "top")


# ------------------------------------------------------------------ exact match


def test_multilabel_exact_match_by_hand() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, -1.0, 0.5], [1.0, 1.0, -1.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    assert multilabel_exact_match(logits, targets) == pytest.approx(2 / 3)


def test_multilabel_exact_match_errors() -> None:
    with pytest.raises(ValueError, match=r"both be \(N, C\)"):
        multilabel_exact_match(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"both be \(N, C\)"):
        multilabel_exact_match(torch.zeros(3), torch.zeros(3))
    with_nan = torch.tensor([[float("nan"), 1.0]])
    with pytest.raises(ValueError, match=r"^logits holds NaN; every score must be a number$"):
        multilabel_exact_match(with_nan, torch.tensor([[0.0, 1.0]]))
    with pytest.raises(TypeError, match=r"logits must be a torch.Tensor, got list"):
        multilabel_exact_match([[1.0, 0.0]], torch.tensor([[1.0, 0.0]]))
