"""Counting what is in MNIST-Captions: balance of digits and attributes, caption lengths, words.

These are the numbers a learner should look at before training anything on a dataset.
"""

from __future__ import annotations

from collections import Counter

import torch

from mmcourse.data.captions import ATTRIBUTES, N_TEMPLATES, MNISTCaptions
from mmcourse.vocab import tokenize


def attribute_table(data: MNISTCaptions, attribute: str) -> torch.Tensor:
    """``(10, k)`` how many digits of each class have each value of ``attribute``
    (``"size"``, ``"thickness"`` or ``"slant"``)."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {tuple(ATTRIBUTES)}, got {attribute!r}")
    values = getattr(data.layout, attribute)
    present = data.layout.digits >= 0
    k = len(ATTRIBUTES[attribute])
    flat = data.layout.digits[present] * k + values[present]
    return torch.bincount(flat, minlength=10 * k).reshape(10, k)


def pair_table(data: MNISTCaptions) -> torch.Tensor:
    """``(10, 10)`` symmetric: on how many canvases digits ``a`` and ``b`` (a != b) appear
    together. The diagonal counts canvases holding the same digit twice or more."""
    table = torch.zeros(10, 10, dtype=torch.long)
    for row in data.layout.digits.tolist():
        digits = [d for d in row if d >= 0]
        pairs = {(min(a, b), max(a, b)) for i, a in enumerate(digits) for b in digits[i + 1 :]}
        for a, b in pairs:
            table[a, b] += 1
            if a != b:
                table[b, a] += 1
    return table


def caption_lengths(data: MNISTCaptions, template: int | None = None) -> torch.Tensor:
    """Caption lengths in tokens: of one template ``(N,)``, or of all ``(N * 4,)``."""
    if template is not None and not 0 <= template < N_TEMPLATES:
        raise ValueError(f"template must be None or in 0..{N_TEMPLATES - 1}, got {template}")
    chosen = range(N_TEMPLATES) if template is None else [template]
    return torch.tensor([len(tokenize(refs[t])) for refs in data.captions for t in chosen])


def word_counts(data: MNISTCaptions) -> Counter[str]:
    """How often each token occurs across all reference captions."""
    return Counter(
        token for refs in data.captions for caption in refs for token in tokenize(caption)
    )
