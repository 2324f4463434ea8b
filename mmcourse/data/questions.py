"""Visual question answering on MNIST-Captions: questions as ids, answers as classes.

Every canvas of :class:`~mmcourse.data.captions.MNISTCaptions` comes with about ten
``(type, question, answer)`` triples (``data.qa``). :func:`make_vqa` flattens them into one
example per question::

    vqa = make_vqa(data)             # all question types; or types=("count", "digit_at")
    vqa.canvas[i]     # which canvas question i is about (an index into data)
    vqa.questions[i]  # its token ids, right-padded with PAD_ID (vocabulary: vqa.vocab)
    vqa.answers[i]    # the index of its answer in captions.ANSWERS
    vqa.types[i]      # the index of its type in captions.QUESTION_TYPES

Answers are classes of the fixed list :data:`~mmcourse.data.captions.ANSWERS`, so a VQA
model is a classifier. :func:`prior_predictions` is the baseline every model must beat: it
answers each question with the most common training answer of its type, without looking at
the image. :func:`slot_targets` gives what stands in each slot, for pretraining an image
encoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from mmcourse._validate import Dims, check_no_nan, require
from mmcourse.data.captions import ANSWERS, QUESTION_TYPES, MNISTCaptions
from mmcourse.vocab import Vocabulary

ANSWER_IDS = {answer: i for i, answer in enumerate(ANSWERS)}
ATTRIBUTE_NAMES = ("digit", "size", "thickness", "slant")
ATTRIBUTE_CLASSES = (11, 3, 4, 4)
"""Classes of each attribute in :func:`slot_targets`: 0 means "empty slot", then the values
(digits 0-9; SIZES; THICKNESSES; SLANTS)."""
PRIOR_KEYS = ("type", "question")


def _check_data(data: object) -> MNISTCaptions:
    if not isinstance(data, MNISTCaptions):
        raise ValueError(f"expected an MNISTCaptions dataset, got {type(data).__name__}")
    require(len(data) != 0, "the dataset holds no canvases")
    return data


def answer_ids(answers: Sequence[str]) -> torch.Tensor:
    """``(N,)`` long: the index of each answer in :data:`~mmcourse.data.captions.ANSWERS`."""
    require(not isinstance(answers, str), "answer_ids expects a list of answers, not one string")
    unknown = sorted({a for a in answers if a not in ANSWER_IDS})
    require(not unknown, f"not in ANSWERS: {unknown[:5]}; answers are {ANSWERS[:8]}...")
    return torch.tensor([ANSWER_IDS[a] for a in answers], dtype=torch.long)


def slot_targets(data: MNISTCaptions) -> torch.Tensor:
    """``(N, 3, 4)`` long: for each canvas and slot (left, middle, right), the class of its
    digit, size, thickness and slant, each shifted by one so that 0 means "empty slot"."""
    _check_data(data)
    layout = data.layout
    fields = (layout.digits, layout.size, layout.thickness, layout.slant)
    return torch.stack([values + 1 for values in fields], dim=-1)


def _check_types(types: Iterable[str] | None) -> tuple[str, ...]:
    if types is None:
        return QUESTION_TYPES
    if isinstance(types, str):
        raise ValueError(f"types must be a list of question types, not the string {types!r}")
    types = tuple(types)
    unknown = [t for t in types if t not in QUESTION_TYPES]
    if unknown or not types:
        raise ValueError(
            f"types must be a non-empty selection of {QUESTION_TYPES}, got {list(types)}"
        )
    return types


def build_question_vocab(data: MNISTCaptions | Sequence[MNISTCaptions]) -> Vocabulary:
    """The vocabulary of all questions of ``data`` (one dataset or several)."""
    datasets = [data] if isinstance(data, MNISTCaptions) else list(data)
    require(datasets, "build_question_vocab needs at least one dataset")
    texts = {q for d in datasets for qa in _check_data(d).qa for _, q, _ in qa}
    return Vocabulary.build(sorted(texts))


@dataclass
class VQAExamples:
    """One row per question; see the module docstring. ``len(vqa)`` questions."""

    canvas: torch.Tensor
    questions: torch.Tensor
    answers: torch.Tensor
    types: torch.Tensor
    texts: list[str]
    vocab: Vocabulary

    def __len__(self) -> int:
        return len(self.answers)

    def __repr__(self) -> str:
        return f"VQAExamples({len(self)} questions about {len(self.canvas.unique())} canvases)"

    def answer_texts(self) -> list[str]:
        """The answers as words."""
        return [ANSWERS[i] for i in self.answers.tolist()]

    def type_names(self) -> list[str]:
        """The question type of each example, as a name."""
        return [QUESTION_TYPES[i] for i in self.types.tolist()]

    def select(self, index: torch.Tensor | Sequence[int]) -> VQAExamples:
        """The examples at ``index`` (canvas indices keep pointing into the same dataset)."""
        index = torch.as_tensor(index, dtype=torch.long)
        require(index.dim() == 1, f"index must be 1-D, got shape {tuple(index.shape)}")
        if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
            raise ValueError(f"index out of range for {len(self)} examples")
        return VQAExamples(
            self.canvas[index],
            self.questions[index],
            self.answers[index],
            self.types[index],
            [self.texts[i] for i in index.tolist()],
            self.vocab,
        )

    def of_type(self, name: str) -> VQAExamples:
        """Only the questions of type ``name``."""
        if name not in QUESTION_TYPES:
            raise ValueError(f"question type must be one of {QUESTION_TYPES}, got {name!r}")
        return self.select((self.types == QUESTION_TYPES.index(name)).nonzero().squeeze(1))

    def type_counts(self) -> dict[str, int]:
        """How many questions of each type (types with none left out)."""
        counts = torch.bincount(self.types, minlength=len(QUESTION_TYPES)).tolist()
        return {name: c for name, c in zip(QUESTION_TYPES, counts) if c}


def make_vqa(
    data: MNISTCaptions,
    vocab: Vocabulary | None = None,
    types: Iterable[str] | None = None,
    max_len: int | None = None,
) -> VQAExamples:
    """Every question of ``data`` as a VQA example.

    Args:
        data: a split of MNIST-Captions.
        vocab: the question vocabulary; default :func:`build_question_vocab` of ``data``
            (build it on the training split and pass it to the others).
        types: which question types to keep (default: all of ``QUESTION_TYPES``).
        max_len: pad (or cut) the question ids to this many tokens; default: the longest.

    Questions are encoded without ``<bos>``/``<eos>`` (an encoder of whole questions needs
    neither).
    """
    _check_data(data)
    keep = _check_types(types)
    if vocab is None:
        vocab = build_question_vocab(data)
    if not isinstance(vocab, Vocabulary):
        raise ValueError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
    canvas, texts, answers, kinds = [], [], [], []
    for index, qa in enumerate(data.qa):
        for kind, question, answer in qa:
            if kind in keep:
                canvas.append(index)
                texts.append(question)
                answers.append(answer)
                kinds.append(QUESTION_TYPES.index(kind))
    require(texts, f"no question of types {list(keep)} in this dataset")
    distinct = sorted(set(texts))  # the questions are templates: encode each text once
    ids, _ = vocab.encode_batch(distinct, max_len=max_len, add_bos_eos=False)
    row = {text: i for i, text in enumerate(distinct)}
    return VQAExamples(
        canvas=torch.tensor(canvas, dtype=torch.long),
        questions=ids[torch.tensor([row[t] for t in texts])],
        answers=answer_ids(answers),
        types=torch.tensor(kinds, dtype=torch.long),
        texts=texts,
        vocab=vocab,
    )


def _majority(values: torch.Tensor) -> int:
    """The most common value (the smallest one on a tie)."""
    return int(torch.bincount(values, minlength=len(ANSWERS)).argmax())


def answer_prior(train: VQAExamples, by: str = "type") -> dict[str, int]:
    """The majority answer (an index into ANSWERS) for each question type (``by="type"``)
    or for each distinct question text (``by="question"``)."""
    require(by in PRIOR_KEYS, f"by must be one of {PRIOR_KEYS}, got {by!r}")
    if not isinstance(train, VQAExamples) or len(train) == 0:
        raise ValueError("answer_prior needs a non-empty VQAExamples")
    keys = train.type_names() if by == "type" else train.texts
    groups: dict[str, list[int]] = {}
    for key, answer in zip(keys, train.answers.tolist()):
        groups.setdefault(key, []).append(answer)
    return {key: _majority(torch.tensor(values)) for key, values in groups.items()}


def prior_predictions(train: VQAExamples, test: VQAExamples, by: str = "type") -> torch.Tensor:
    """``(len(test),)`` answer ids: each test question gets the majority training answer of
    its type (or of its exact text with ``by="question"``, falling back to its type's
    answer for a question never seen in training). The image is never looked at."""
    prior = answer_prior(train, by)
    by_type = prior if by == "type" else answer_prior(train, "type")
    keys = test.type_names() if by == "type" else test.texts
    predictions = []
    for key, kind in zip(keys, test.type_names()):
        if key in prior:
            predictions.append(prior[key])
        elif kind in by_type:
            predictions.append(by_type[kind])
        else:
            raise ValueError(f"the training examples hold no question of type {kind!r}")
    return torch.tensor(predictions, dtype=torch.long)


def split_slot_logits(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The logits of each attribute, ``(B, slots, classes)`` for digit, size, thickness and
    slant, out of a slot head's ``(B, slots, 22)`` output, checked against the
    :func:`slot_targets` ``(B, slots, 4)`` they are scored with."""
    dims = Dims()
    dims.float(logits, "logits", f"B slots {sum(ATTRIBUTE_CLASSES)}")
    dims.indices(targets, "targets", f"B slots {len(ATTRIBUTE_CLASSES)}")
    check_no_nan(logits, "logits")
    return logits.split(ATTRIBUTE_CLASSES, dim=2)
