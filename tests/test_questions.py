"""VQA examples from MNIST-Captions, checked against the dataset's ground-truth layout."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from mmcourse import metrics
from mmcourse.data import questions
from mmcourse.data.captions import (
    ANSWERS,
    NUMBER_WORDS,
    QUESTION_TYPES,
    SIZES,
    SLANTS,
    THICKNESSES,
    make_mnist_captions,
)
from mmcourse.vocab import PAD_ID, UNK_ID, Vocabulary


@pytest.fixture(scope="module")
def data():
    return make_mnist_captions("train", n=300, seed=1, profile="fast")


@pytest.fixture(scope="module")
def examples(data):
    return questions.make_vqa(data)


def answers_of(examples: questions.VQAExamples, question: str) -> tuple[torch.Tensor, list[str]]:
    rows = [i for i, text in enumerate(examples.texts) if text == question]
    return examples.canvas[rows], [ANSWERS[examples.answers[i]] for i in rows]


def test_one_example_per_question(data, examples) -> None:
    assert len(examples) == sum(len(qa) for qa in data.qa)
    # canvas indices run in order, each canvas as often as it has questions
    counts = torch.bincount(examples.canvas, minlength=len(data)).tolist()
    assert counts == [len(qa) for qa in data.qa]
    assert examples.questions.shape[0] == len(examples)
    assert examples.vocab.decode_tokens(examples.questions[0]) == data.qa[0][0][1].split()


@pytest.mark.parametrize("slot", [0, 1, 2])
def test_digit_at_answers_match_the_layout(data, examples, slot: int) -> None:
    where = ["on the left", "in the middle", "on the right"][slot]
    canvas, answers = answers_of(examples, f"which digit is {where} ?")
    assert len(canvas) == len(data)  # asked about every canvas
    digits = data.layout.digits[canvas, slot].tolist()
    expected = [NUMBER_WORDS[d] if d >= 0 else "none" for d in digits]
    assert answers == expected


def test_other_answers_match_the_layout(data, examples) -> None:
    layout = data.layout
    canvas, answers = answers_of(examples, "how many digits are there ?")
    assert answers == [NUMBER_WORDS[n] for n in (layout.digits[canvas] >= 0).sum(1).tolist()]
    canvas, answers = answers_of(examples, "what do the digits add up to ?")
    assert answers == [str(s) for s in layout.digits[canvas].clamp_min(0).sum(1).tolist()]
    canvas, answers = answers_of(examples, "is any digit thick ?")
    thick = (layout.thickness[canvas] == THICKNESSES.index("thick")).any(1)
    assert answers == ["yes" if t else "no" for t in thick.tolist()]
    canvas, answers = answers_of(examples, "is any digit leaning left ?")
    left = (layout.slant[canvas] == SLANTS.index("left")).any(1)
    assert answers == ["yes" if t else "no" for t in left.tolist()]
    canvas, answers = answers_of(examples, "is the digit on the right small or large ?")
    assert (layout.digits[canvas, 2] >= 0).all()  # only asked where there is a digit
    assert answers == [SIZES[s] for s in layout.size[canvas, 2].tolist()]


def test_types_and_answer_texts(data, examples) -> None:
    flat = [(kind, answer) for qa in data.qa for kind, _, answer in qa]
    assert examples.type_names() == [kind for kind, _ in flat]
    assert examples.answer_texts() == [answer for _, answer in flat]
    assert examples.type_counts() == dict(Counter(kind for kind, _ in flat))
    assert "VQAExamples(" in repr(examples)


def test_choice_of_question_types(data) -> None:
    some = questions.make_vqa(data, types=["count", "sum"])
    assert set(some.type_names()) == {"count", "sum"}
    assert len(some) == 2 * len(data)
    only = questions.make_vqa(data).of_type("digit_at")
    assert set(only.texts) == {
        "which digit is on the left ?",
        "which digit is in the middle ?",
        "which digit is on the right ?",
    }
    with pytest.raises(ValueError, match="types must be a non-empty selection"):
        questions.make_vqa(data, types=["colour"])
    with pytest.raises(ValueError, match="types must be a non-empty selection"):
        questions.make_vqa(data, types=[])
    with pytest.raises(ValueError, match="not the string"):
        questions.make_vqa(data, types="count")
    with pytest.raises(ValueError, match="question type must be one of"):
        some.of_type("colour")


def test_vocabulary_is_shared_and_padding(data, examples) -> None:
    other = make_mnist_captions("val", n=50, seed=1, profile="fast")
    val = questions.make_vqa(other, examples.vocab, max_len=12)
    assert val.vocab is examples.vocab
    assert val.questions.shape[1] == 12
    lengths = (val.questions != PAD_ID).sum(1)
    assert lengths.tolist() == [len(t.split()) for t in val.texts]
    tiny = Vocabulary.build(["how many digits are there ?"])
    unknown = questions.make_vqa(data, tiny, types=["sum"])
    assert (unknown.questions == UNK_ID).any()
    with pytest.raises(ValueError, match="vocab must be a Vocabulary"):
        questions.make_vqa(data, vocab={"a": 1})
    with pytest.raises(ValueError, match="expected an MNISTCaptions"):
        questions.make_vqa(examples)
    with pytest.raises(ValueError, match="at least one dataset"):
        questions.build_question_vocab([])


def test_select(examples) -> None:
    part = examples.select([3, 1])
    assert part.texts == [examples.texts[3], examples.texts[1]]
    assert torch.equal(part.answers, examples.answers[[3, 1]])
    assert torch.equal(part.canvas, examples.canvas[[3, 1]])
    with pytest.raises(ValueError, match="out of range"):
        examples.select([len(examples)])
    with pytest.raises(ValueError, match="must be 1-D"):
        examples.select([[0]])


def test_answer_ids() -> None:
    assert questions.answer_ids(["yes", "seven", "27"]).tolist() == [
        ANSWERS.index("yes"),
        ANSWERS.index("seven"),
        ANSWERS.index("27"),
    ]
    with pytest.raises(ValueError, match="not in ANSWERS"):
        questions.answer_ids(["maybe"])
    with pytest.raises(ValueError, match="not one string"):
        questions.answer_ids("yes")


def test_slot_targets(data) -> None:
    targets = questions.slot_targets(data)
    assert targets.shape == (len(data), 3, 4)
    for i in range(5):
        for slot, digit, size, thickness, slant in data.items(i):
            assert targets[i, slot].tolist() == [digit + 1, size + 1, thickness + 1, slant + 1]
        empty = set(range(3)) - {item[0] for item in data.items(i)}
        for slot in empty:
            assert targets[i, slot].tolist() == [0, 0, 0, 0]
    for k, classes in enumerate(questions.ATTRIBUTE_CLASSES):
        assert int(targets[..., k].max()) < classes
    assert questions.ATTRIBUTE_CLASSES == (
        11,
        len(SIZES) + 1,
        len(THICKNESSES) + 1,
        len(SLANTS) + 1,
    )


def test_answer_prior_by_brute_force(examples) -> None:
    prior = questions.answer_prior(examples, by="type")
    for kind in QUESTION_TYPES:
        answers = [a for k, a in zip(examples.type_names(), examples.answer_texts()) if k == kind]
        top = max(Counter(answers).values())
        # the most common answer (the smallest id among equally common ones)
        best = min(ANSWERS.index(a) for a, c in Counter(answers).items() if c == top)
        assert prior[kind] == best
    by_question = questions.answer_prior(examples, by="question")
    assert set(by_question) == set(examples.texts)


def test_prior_predictions(examples) -> None:
    test = examples.select(torch.arange(0, len(examples), 7))
    pred = questions.prior_predictions(examples, test)
    prior = questions.answer_prior(examples)
    assert pred.tolist() == [prior[k] for k in test.type_names()]
    pred_q = questions.prior_predictions(examples, test, by="question")
    prior_q = questions.answer_prior(examples, by="question")
    assert pred_q.tolist() == [prior_q[t] for t in test.texts]
    # a question text never seen in training falls back to its type's majority answer
    count_only = examples.of_type("count")
    renamed = count_only.select([0, 1])
    renamed.texts = ["how many digits do you see ?"] * 2
    assert (
        questions.prior_predictions(count_only, renamed, by="question").tolist()
        == [questions.answer_prior(count_only)["count"]] * 2
    )
    with pytest.raises(ValueError, match="no question of type 'sum'"):
        questions.prior_predictions(count_only, examples.of_type("sum"))
    with pytest.raises(ValueError, match="by must be one of"):
        questions.answer_prior(examples, by="canvas")


def test_accuracy_by_type(examples) -> None:
    pred = examples.answers.clone()
    wrong = examples.types == QUESTION_TYPES.index("sum")
    pred[wrong] = (pred[wrong] + 1) % len(ANSWERS)
    acc = metrics.accuracy_by_type(pred, examples)
    assert list(acc) == list(QUESTION_TYPES)
    assert acc["sum"] == 0.0 and all(v == 1.0 for k, v in acc.items() if k != "sum")
    logits = torch.nn.functional.one_hot(pred, len(ANSWERS)).float()
    assert metrics.accuracy_by_type(logits, examples) == acc
    with pytest.raises(ValueError, match="one answer per example"):
        metrics.accuracy_by_type(pred[:-1], examples)
    with pytest.raises(ValueError, match="must be a tensor"):
        metrics.accuracy_by_type(pred.tolist(), examples)
    logits[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^predictions holds NaN; every score must be a number$"):
        metrics.accuracy_by_type(logits, examples)
