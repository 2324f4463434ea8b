"""Descriptions of MNIST-Captions canvases, for contrastive training: one id per distinct ground
truth (:func:`description_ids`), and captions with one digit swapped, the hard negatives
(:func:`swap_one_digit`, :func:`swap_digit_words`).
"""

from __future__ import annotations

import torch

from mmcourse._validate import check_indices, require
from mmcourse.data.captions import HOLDOUT, NUMBER_WORDS, SLOTS, Holdout, Layout, MNISTCaptions
from mmcourse.vocab import Vocabulary

__all__ = ["description_ids", "swap_digit_words", "swap_one_digit"]


def description_ids(data: MNISTCaptions | Layout) -> torch.Tensor:
    """LongTensor ``(N,)``: one id per distinct ground truth, shared by identical canvases.

    Two canvases get the same id when every slot holds the same digit with the same size,
    thickness and slant (or is empty in both) -- exactly when their captions say the same
    thing. Ids are ``0..K-1`` numbered in order of first appearance, so ``ids.max() + 1`` is
    the number of distinct descriptions.

    Args:
        data: an :class:`~mmcourse.data.captions.MNISTCaptions` split, or just its
            :class:`~mmcourse.data.captions.Layout` (``(N, 3)`` tensors, ``-1`` = empty slot).

    >>> layout = Layout(torch.tensor([[7, -1, -1], [7, -1, -1], [-1, 7, -1]]),
    ...                 torch.tensor([[1, -1, -1], [1, -1, -1], [-1, 1, -1]]),
    ...                 torch.tensor([[0, -1, -1], [0, -1, -1], [-1, 0, -1]]),
    ...                 torch.tensor([[2, -1, -1], [2, -1, -1], [-1, 2, -1]]))
    >>> description_ids(layout).tolist()  # the third seven stands in another slot
    [0, 0, 1]
    """
    layout = data.layout if isinstance(data, MNISTCaptions) else data
    if not isinstance(layout, Layout):
        raise TypeError(
            f"data must be an MNISTCaptions split or a Layout, got {type(data).__name__}"
        )
    fields = [getattr(layout, name) for name in Layout.fields()]
    check_indices(fields[0], "layout.digits", ("N", len(SLOTS)))
    for name, values in zip(Layout.fields()[1:], fields[1:]):
        check_indices(values, f"layout.{name}", tuple(fields[0].shape))
    n = len(fields[0])
    require(n != 0, "the layout holds no canvas (N = 0)")
    present = fields[0] >= 0
    # an empty slot is -1 in every field, whatever the attribute tensors hold there
    rows = torch.cat([torch.where(present, f.long(), -1) for f in fields], dim=1)  # (N, 12)
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((len(unique),), n, dtype=torch.long)
    first = first.scatter_reduce(0, inverse, torch.arange(n), reduce="amin")  # first canvas
    order = torch.empty_like(first)
    order[first.argsort()] = torch.arange(len(unique))
    return order[inverse]


def check_dataset(data: object, name: str) -> MNISTCaptions:
    if not isinstance(data, MNISTCaptions):
        raise TypeError(
            f"{name} must be an MNISTCaptions split (make_mnist_captions(...)), "
            f"got {type(data).__name__}"
        )
    require(len(data) != 0, f"{name} holds no canvas")
    return data


def check_vocabulary(vocab: object) -> Vocabulary:
    if not isinstance(vocab, Vocabulary):
        raise TypeError(
            f"vocab must be a Vocabulary (Vocabulary.build(captions)), got {type(vocab).__name__}"
        )
    return vocab


def swap_one_digit(
    layout: Layout, generator: torch.Generator, holdout: Holdout = HOLDOUT
) -> Layout:
    """A copy of ``layout`` in which one digit per canvas -- in a slot drawn at random -- is
    replaced by another digit drawn at random; sizes, strokes, slants and the other digits
    stay. Its captions are *hard negatives*: right about everything but one digit.

    A replacement that would create a combination ``holdout`` keeps out of training (a thick
    seven, a three next to an eight, ...) is drawn again, so that the compositional split's
    combinations are not even seen as negatives.

    >>> one = Layout(*(torch.tensor([[-1, v, -1]]) for v in (7, 1, 1, 1)))
    >>> swapped = swap_one_digit(one, torch.Generator().manual_seed(0))
    >>> swapped.digits[0, 1].item() != 7, swapped.size.tolist() == one.size.tolist()
    (True, True)
    """
    check_indices(layout.digits, "layout.digits", ("N", len(SLOTS)))
    present = layout.digits >= 0
    require(present.any(dim=1).all(), "every canvas needs at least one digit to swap")
    n = len(layout)
    out = Layout(*(getattr(layout, f).clone() for f in Layout.fields()))
    rows = torch.arange(n)
    # a random occupied slot: the largest of uniform draws, with the empty slots set to -1
    slot = torch.rand(n, len(SLOTS), generator=generator).masked_fill(~present, -1).argmax(1)
    old = layout.digits[rows, slot]
    already = holdout.violations(layout)
    todo = torch.ones(n, dtype=torch.bool)
    for _ in range(100):
        shift = torch.randint(1, 10, (n,), generator=generator)  # one of the 9 other digits
        out.digits[rows[todo], slot[todo]] = ((old + shift) % 10)[todo]
        todo = holdout.violations(out) & ~already
        if not todo.any():
            return out
    raise ValueError("could not swap a digit without creating a held-out combination")


def swap_digit_words(
    ids: torch.Tensor,
    layout: Layout,
    vocab: Vocabulary,
    generator: torch.Generator,
    holdout: Holdout = HOLDOUT,
) -> tuple[torch.Tensor, Layout]:
    """Hard negative captions by token surgery: in each caption ``ids[i]`` of canvas
    ``layout[i]``, the number word of one digit is replaced by another digit's.

    The digits to swap are drawn by :func:`swap_one_digit`. Captions name the digits from
    left to right, so the ``j``-th number word of a caption is the digit in the ``j``-th
    occupied slot -- except a count ("three digits : ..."), the number word just before
    ``digit`` or ``digits``, which is skipped. Nothing has to be re-written or re-tokenised,
    so fresh negatives cost a few tensor operations per batch.

    Args:
        ids: ``(B, T)`` token ids of one caption per canvas (right-padded).
        layout: the ``B`` canvases' ground truth.
        vocab: the vocabulary of ``ids``.
        generator: draws the slots and the new digits.
        holdout: combinations a negative may not create (see :func:`swap_one_digit`).

    Returns ``(negative_ids (B, T), swapped_layout)``: the negative of caption ``i`` is
    exactly the caption the dataset would write, in the same paraphrase, for canvas ``i`` of
    ``swapped_layout``.
    """
    check_indices(ids, "ids", ("B", "T"))
    check_indices(layout.digits, "layout.digits", (len(ids), len(SLOTS)))
    check_vocabulary(vocab)
    swapped = swap_one_digit(layout, generator, holdout)
    present = layout.digits >= 0
    slot = (swapped.digits != layout.digits).float().argmax(dim=1)  # the one changed slot
    rank = present.long().cumsum(dim=1).gather(1, slot[:, None]).squeeze(1) - 1
    numbers = torch.tensor([vocab[word] for word in NUMBER_WORDS], device=ids.device)
    counters = torch.tensor([vocab["digit"], vocab["digits"]], device=ids.device)
    is_count = torch.zeros_like(ids, dtype=torch.bool)
    is_count[:, :-1] = torch.isin(ids[:, 1:], counters)
    is_digit_word = torch.isin(ids, numbers) & ~is_count  # (B, T)
    if not torch.equal(is_digit_word.sum(dim=1).cpu(), present.sum(dim=1)):
        raise ValueError(
            "ids must be captions of the canvases of layout: each names every digit once"
        )
    target = is_digit_word & (
        is_digit_word.long().cumsum(dim=1) - 1 == rank[:, None].to(ids.device)
    )
    new_digit = swapped.digits[torch.arange(len(ids)), slot]
    negative = ids.clone()
    negative[target] = numbers[new_digit.to(ids.device)]  # one position per row, in row order
    return negative, swapped
