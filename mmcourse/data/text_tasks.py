"""Text-only tasks built from MNIST-Captions: a bench on which to compare text encoders.

Each task pairs captions (no images) with a target read from the canvas's ground truth
(:attr:`MNISTCaptions.layout`), so every label is exact:

- :func:`digits_present_task` -- *which digits does the caption describe?* A multi-label task
  with ten yes/no answers. Knowing which words occur (and how often) is enough: a count word
  such as the "two" of "two digits : ..." is not a digit on the canvas, but the number of
  times "two" occurs tells the two apart.
- :func:`slot_digit_task` -- *which digit stands on the left* (or in the middle, or on the
  right), or ``"none"``. This needs word order: "a seven on the left and a two on the right"
  and "a two on the left and a seven on the right" hold exactly the same words.

:func:`order_blind_bound` bounds the accuracy that *any* model seeing only the bag of words (the
multiset of tokens) can reach on :func:`slot_digit_task` -- the limit of bag-of-words models.

>>> from mmcourse.data.captions import make_mnist_captions
>>> task = slot_digit_task(make_mnist_captions("val", n=200))
>>> task.texts[0], task.class_names[int(task.targets[0])]  # doctest: +SKIP
('a small one on the right', 'none')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mmcourse._validate import require
from mmcourse.data.captions import N_TEMPLATES, NUMBER_WORDS, SLOTS, MNISTCaptions
from mmcourse.vocab import Vocabulary, tokenize

SLOT_ANSWERS: tuple[str, ...] = (*NUMBER_WORDS, "none")
"""The classes of :func:`slot_digit_task`: the ten digits, then ``"none"`` (an empty slot)."""
NONE_CLASS = len(NUMBER_WORDS)
"""Class index of ``"none"`` in :data:`SLOT_ANSWERS` (10)."""


@dataclass(frozen=True)
class TextTask:
    """Texts and their targets.

    Attributes:
        name: a short description, e.g. ``"digit on the left"``.
        texts: ``N`` captions.
        targets: long ``(N,)`` class indices (single-label) or float ``(N, C)`` 0/1 rows
            (multi-label).
        canvas: long ``(N,)`` index of the canvas each text describes (several paraphrases of
            one canvas share it).
        class_names: the ``C`` class names.
        multi_label: whether ``targets`` are multi-hot rows.
    """

    name: str
    texts: list[str]
    targets: torch.Tensor
    canvas: torch.Tensor
    class_names: tuple[str, ...]
    multi_label: bool

    def __post_init__(self) -> None:
        n, classes = len(self.texts), len(self.class_names)
        require(all(isinstance(text, str) for text in self.texts), "texts must be a list of str")
        if self.canvas.shape != (n,):
            raise ValueError(f"canvas must have shape ({n},), got {tuple(self.canvas.shape)}")
        if self.multi_label:
            if self.targets.shape != (n, classes) or not self.targets.is_floating_point():
                raise ValueError(
                    f"multi-label targets must be float ({n}, {classes}), got "
                    f"{self.targets.dtype} {tuple(self.targets.shape)}"
                )
            if not ((self.targets == 0) | (self.targets == 1)).all():
                raise ValueError("multi-label targets must be 0 or 1")
        else:
            if self.targets.shape != (n,) or self.targets.dtype != torch.long:
                raise ValueError(
                    f"single-label targets must be long ({n},), got "
                    f"{self.targets.dtype} {tuple(self.targets.shape)}"
                )
            if n and (self.targets.min() < 0 or self.targets.max() >= classes):
                raise ValueError(f"targets must be class indices in 0..{classes - 1}")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def select(self, index: torch.Tensor | Sequence[int]) -> TextTask:
        """A new task holding the examples at ``index``."""
        index = torch.as_tensor(index, dtype=torch.long)
        return TextTask(
            self.name,
            [self.texts[i] for i in index.tolist()],
            self.targets[index],
            self.canvas[index],
            self.class_names,
            self.multi_label,
        )

    def encode(
        self, vocab: Vocabulary, max_len: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, targets)``: the texts as right-padded ids ``(N, T)`` (with ``<bos>`` and
        ``<eos>``) and the targets, ready for training."""
        ids, _ = vocab.encode_batch(self.texts, max_len=max_len)
        return ids, self.targets

    def answer(self, index: int) -> str:
        """The target of example ``index`` in words (``"seven, two"`` for multi-label)."""
        target = self.targets[index]
        if self.multi_label:
            named = [self.class_names[c] for c in target.nonzero().squeeze(1).tolist()]
            return ", ".join(named) if named else "(none)"
        return self.class_names[int(target)]


def choose_captions(
    data: MNISTCaptions, per_canvas: int = 1, seed: int = 0
) -> tuple[list[str], torch.Tensor]:
    """Pick ``per_canvas`` different paraphrases of each canvas's caption at random.

    Returns the texts (canvas by canvas) and the long ``(N * per_canvas,)`` canvas index of
    each. Deterministic in ``seed``.
    """
    if not isinstance(data, MNISTCaptions):
        raise ValueError(f"data must be an MNISTCaptions, got {type(data).__name__}")
    if not isinstance(per_canvas, int) or not 1 <= per_canvas <= N_TEMPLATES:
        raise ValueError(f"per_canvas must be an int in 1..{N_TEMPLATES}, got {per_canvas!r}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.rand(len(data), N_TEMPLATES, generator=generator).argsort(dim=1)
    chosen = order[:, :per_canvas]
    texts = [data.captions[i][int(t)] for i in range(len(data)) for t in chosen[i]]
    canvas = torch.arange(len(data)).repeat_interleave(per_canvas)
    return texts, canvas


def digits_present_task(data: MNISTCaptions, per_canvas: int = 1, seed: int = 0) -> TextTask:
    """Multi-label: which of the digits 0-9 stand on the canvas the caption describes.

    ``targets[i, d]`` is 1.0 when digit ``d`` is in any slot of the canvas.
    """
    texts, canvas = choose_captions(data, per_canvas, seed)
    digits = data.layout.digits[canvas]  # (N, 3), -1 = empty
    targets = torch.zeros(len(texts), len(NUMBER_WORDS))
    present = digits >= 0
    rows = torch.arange(len(texts))[:, None].expand_as(digits)
    targets[rows[present], digits[present]] = 1.0
    return TextTask("digits present", texts, targets, canvas, NUMBER_WORDS, multi_label=True)


def slot_digit_task(
    data: MNISTCaptions, slot: str = "left", per_canvas: int = 1, seed: int = 0
) -> TextTask:
    """Single-label: the digit in ``slot`` (``"left"``, ``"middle"`` or ``"right"``), or
    :data:`NONE_CLASS` when that slot is empty; class names are :data:`SLOT_ANSWERS`."""
    require(slot in SLOTS, f"slot must be one of {SLOTS}, got {slot!r}")
    texts, canvas = choose_captions(data, per_canvas, seed)
    digits = data.layout.digits[canvas, SLOTS.index(slot)]
    targets = torch.where(digits >= 0, digits, torch.full_like(digits, NONE_CLASS))
    name = "digit in the middle" if slot == "middle" else f"digit on the {slot}"
    return TextTask(name, texts, targets, canvas, SLOT_ANSWERS, multi_label=False)


def bag_of_words(text: str) -> tuple[tuple[str, int], ...]:
    """The multiset of ``text``'s tokens as a sorted tuple of ``(token, count)``: all that an
    order-blind model can know about the text."""
    return tuple(sorted(Counter(tokenize(text)).items()))


def order_blind_bound(data: MNISTCaptions, slot: str = "left") -> torch.Tensor:
    """``(N,)``: for each canvas, an upper bound on how often any order-blind model can name
    the digit in ``slot`` from its caption.

    Shuffle the digit phrases of a caption among the occupied slots ("a large seven on the
    left and a small two on the right" -> "a small two on the left and a large seven on the
    right"): the words stay the same, and each shuffled canvas is exactly as likely to be
    drawn as the original (slots, digits and attributes are drawn independently, and the
    held-out combinations do not depend on the slot). A model that sees only the bag of words
    cannot tell these captions apart, so it must give them one answer: when ``slot`` holds one
    of ``k`` digits, it is right with probability at most (copies of its most common digit)
    / ``k``; when ``slot`` is empty it can always be right. The true limit is a little lower
    still: the "left" of "leaning left" and of "on the left" also look alike in a bag.
    """
    if not isinstance(data, MNISTCaptions):
        raise ValueError(f"data must be an MNISTCaptions, got {type(data).__name__}")
    require(slot in SLOTS, f"slot must be one of {SLOTS}, got {slot!r}")
    digits = data.layout.digits  # (N, 3)
    present = digits >= 0
    k = present.sum(dim=1).clamp_min(1)
    counts = torch.zeros(len(digits), len(NUMBER_WORDS), dtype=torch.long)
    counts.scatter_add_(1, digits.clamp_min(0), present.long())
    best = counts.max(dim=1).values.float() / k.float()
    empty = ~present[:, SLOTS.index(slot)]
    return torch.where(empty, torch.ones_like(best), best)


__all__ = [
    "NONE_CLASS",
    "SLOT_ANSWERS",
    "TextTask",
    "bag_of_words",
    "choose_captions",
    "digits_present_task",
    "order_blind_bound",
    "slot_digit_task",
]
