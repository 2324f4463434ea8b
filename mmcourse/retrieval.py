"""The case study's contrastive model: retrieval both ways and zero-shot digit recognition.

A CLIP-style :class:`~mmcourse.models.dual.DualEncoder` is trained on MNIST-Captions with the
symmetric InfoNCE loss, and then used, without any further training, for three things:

- **text -> image retrieval**: embed a caption, rank every canvas of a gallery by cosine;
- **image -> text retrieval**: embed a canvas, rank every caption;
- **zero-shot recognition** of plain MNIST digits: put a digit on a canvas the way the dataset
  draws one, embed ten descriptions ("a large seven in the middle", ...), and pick the digit
  whose description is closest. No digit label is ever used for training -- the labels only
  score the result.

Three things make a small model good at this on two CPU cores in about a minute and a half
(:func:`train_dual_encoder`):

- *hard negative captions*: next to the batch's other captions, each canvas is shown its own
  caption with one digit swapped (:func:`swap_digit_words`,
  :func:`~mmcourse.losses.negative_caption_loss`) -- without them the model learns where the
  digits are and how big, and hardly which digit is which;
- a text tower that averages a bidirectional GRU's states over the words
  (:class:`MeanOverWords`), so that a digit's name reaches the embedding directly;
- at test time, each digit is drawn at nine positions the dataset uses and the scores are
  averaged (:data:`DEFAULT_VIEWS`, test-time augmentation), over a prompt ensemble
  (:data:`DEFAULT_PROMPTS`).

Duplicates. Two canvases of MNIST-Captions may have exactly the same ground truth (a third of
the canvases hold a single digit, and there are only 540 single-digit descriptions), so their
captions are the same words. Plain CLIP calls the other canvas's caption a *negative*;
:func:`description_ids` numbers the descriptions so that the loss can know better
(:func:`mmcourse.losses.clip_loss_with_duplicates`, ``mode="mask"`` or ``"soft"``) and so that
the metrics can count any canvas with the right description as a hit (``"description"``
recall in :func:`retrieval_report`), next to the strict ``"instance"`` recall.

The main functions:

- :func:`description_ids`                 one id per distinct ground truth
- :func:`train_dual_encoder`              the recipe (defaults measured in the fast profile)
- :func:`embed_gallery`, :func:`embed_texts`   batched unit embeddings, no gradients
- :func:`retrieval_report`                recall@k both ways, per instance and per description
  (:func:`recall_report` computes it from a similarity matrix; :func:`format_report` prints)
- :func:`place_digits_on_canvas`          MNIST digits -> canvases, as the dataset draws them
- :func:`zero_shot_scores`, :func:`zero_shot_classify`, :func:`zero_shot_accuracy`   CLIP's
  prompt-ensemble classifier
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import (
    check_choice,
    check_float,
    check_index_range,
    check_indices,
    check_int,
    check_module,
    check_nonnegative,
    check_positive,
    check_sizes,
    check_tensor,
)
from mmcourse.callbacks import History, OneCycle, PrintEpochs
from mmcourse.captioning import encode_captions
from mmcourse.data import mnist
from mmcourse.data.captions import (
    CANVAS,
    CANVAS_MEAN,
    CANVAS_STD,
    CENTER_Y_RANGE,
    HOLDOUT,
    MAX_DIGITS,
    N_TEMPLATES,
    NUMBER_WORDS,
    SIZES,
    SLANTS,
    SLOT_X,
    SLOTS,
    THICKNESSES,
    Holdout,
    Layout,
    MNISTCaptions,
    compose,
    describe,
)
from mmcourse.data.pen import PEN_BANDS
from mmcourse.losses import clip_loss, clip_loss_with_duplicates, negative_caption_loss
from mmcourse.metrics import accuracy, recall_at_k
from mmcourse.models.dual import DualEncoder
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.introspect import device_of
from mmcourse.models.pooling import ImageVector
from mmcourse.models.text import RNNTextEncoder
from mmcourse.train import Loop, fit
from mmcourse.vocab import PAD_ID, Vocabulary

__all__ = [
    "DEFAULT_PROMPTS",
    "DEFAULT_VIEWS",
    "DIRECTIONS",
    "MODES",
    "RELEVANCE",
    "TEXT_TOWERS",
    "TYPICAL_CENTRE",
    "Downsampled",
    "MeanOverWords",
    "description_ids",
    "digit_prompts",
    "embed_gallery",
    "embed_texts",
    "new_dual_encoder",
    "format_report",
    "place_digits_on_canvas",
    "prompt_templates",
    "recall_report",
    "retrieval_report",
    "swap_digit_words",
    "swap_one_digit",
    "train_dual_encoder",
    "zero_shot_accuracy",
    "zero_shot_classify",
    "zero_shot_scores",
    "zero_shot_weights",
]

MODES = ("none", "mask", "soft")
"""How :func:`train_dual_encoder` treats same-description pairs of a batch: ``"none"`` is plain
CLIP (they are negatives), ``"mask"`` and ``"soft"`` as in
:func:`mmcourse.losses.clip_loss_with_duplicates`."""

MIDDLE = SLOTS.index("middle")
DIGIT_FIELD = "{digit}"
"""The placeholder of a prompt template that :func:`digit_prompts` fills with a number word."""


# ----------------------------------------------------------------------------------------------
# descriptions


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
    if n == 0:
        raise ValueError("the layout holds no canvas (N = 0)")
    present = fields[0] >= 0
    # an empty slot is -1 in every field, whatever the attribute tensors hold there
    rows = torch.cat([torch.where(present, f.long(), -1) for f in fields], dim=1)  # (N, 12)
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((len(unique),), n, dtype=torch.long)
    first = first.scatter_reduce(0, inverse, torch.arange(n), reduce="amin")  # first canvas
    order = torch.empty_like(first)
    order[first.argsort()] = torch.arange(len(unique))
    return order[inverse]


# ----------------------------------------------------------------------------------------------
# training

Outputs = tuple[torch.Tensor, ...]
"""What the training forward returns: ``(image_emb, text_emb, logit_scale[, negative_emb])``."""


def _check_dataset(data: object, name: str) -> MNISTCaptions:
    if not isinstance(data, MNISTCaptions):
        raise TypeError(
            f"{name} must be an MNISTCaptions split (make_mnist_captions(...)), "
            f"got {type(data).__name__}"
        )
    if len(data) == 0:
        raise ValueError(f"{name} holds no canvas")
    return data


def _check_vocabulary(vocab: object) -> Vocabulary:
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
    if not present.any(dim=1).all():
        raise ValueError("every canvas needs at least one digit to swap")
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
    _check_vocabulary(vocab)
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


def _trim(ids: torch.Tensor) -> torch.Tensor:
    """Drop the columns that are padding in every row."""
    return ids[:, : int((ids != PAD_ID).sum(dim=1).max())]


def _make_forward(
    vocab: Vocabulary, negatives: int, generator: torch.Generator
) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], tuple[Outputs, torch.Tensor]]:
    """``fit``'s forward for a batch ``(images, captions (B, 4, T), layout (B, 3, 4), groups)``.

    One of the four paraphrases per canvas (drawn anew every batch), ``negatives`` fresh hard
    negatives of it (:func:`swap_digit_words`) encoded in the same call, and the description
    ids passed on as the "targets" of the loss.
    """

    def forward(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> tuple[Outputs, torch.Tensor]:
        images, captions, layout, groups = batch
        rows = torch.arange(len(captions), device=captions.device)
        pick = torch.randint(0, captions.shape[1], (len(captions),), generator=generator)
        ids = _trim(captions[rows, pick.to(captions.device)])
        image_emb, scale = model.encode_image(images), model.logit_scale()
        if negatives == 0:
            return (image_emb, model.encode_text(ids), scale), groups
        truth = Layout(*layout.cpu().unbind(dim=2))
        wrong = [swap_digit_words(ids, truth, vocab, generator)[0] for _ in range(negatives)]
        texts = torch.cat([ids, *wrong])  # (B (1 + K), T): one call of the text tower
        text_emb, *wrong_emb = model.encode_text(texts).split(len(ids))
        return (image_emb, text_emb, scale, torch.stack(wrong_emb, dim=1)), groups

    return forward


def _contrastive_loss(
    mode: str, negative_weight: float
) -> Callable[[Outputs, torch.Tensor], torch.Tensor]:
    """``loss_fn(outputs, groups)`` for ``fit``: plain CLIP or the duplicate-aware variant,
    plus ``negative_weight`` times :func:`~mmcourse.losses.negative_caption_loss` when there are negatives."""

    def loss_fn(outputs: Outputs, groups: torch.Tensor) -> torch.Tensor:
        image_emb, text_emb, scale, *negative = outputs
        if mode == "none":
            loss = clip_loss(image_emb, text_emb, scale)
        else:
            loss = clip_loss_with_duplicates(image_emb, text_emb, scale, groups, mode=mode)
        if negative:
            loss = loss + negative_weight * negative_caption_loss(
                image_emb, text_emb, negative[0], scale
            )
        return loss

    return loss_fn


class Downsampled(nn.Module):
    """Average-pool the canvases ``factor`` x ``factor`` before an image -> vector encoder.

    A 64x64 canvas pooled 2x2 is a 32x32 one: digits of 15 to 25 pixels stay easy to read,
    and the first convolution, where a small CNN spends most of its time on a CPU, has a
    quarter of the positions to visit. (Space-to-depth -- ``F.pixel_unshuffle``, every pixel
    kept in 4 channels -- read the digits no better here, at the same cost.)

    Args:
        encoder: maps ``(B, C, 64 / factor, 64 / factor)`` to ``(B, out_dim)`` and has an int
            ``out_dim`` (e.g. an :class:`~mmcourse.models.pooling.ImageVector`).
        factor: the pooling size (1 keeps the full resolution).
    """

    def __init__(self, encoder: nn.Module, factor: int = 2) -> None:
        super().__init__()
        check_module(encoder, "encoder")
        check_int(factor, "factor")
        if not isinstance(getattr(encoder, "out_dim", None), int):
            raise TypeError("encoder must have an int attribute out_dim")
        self.encoder, self.factor, self.out_dim = encoder, factor, encoder.out_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, out_dim)``."""
        if self.factor > 1:
            images = F.avg_pool2d(images, self.factor)
        return self.encoder(images)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class MeanOverWords(nn.Module):
    """A sequence encoder's word vectors, averaged over the real (non-padding) words.

    An RNN's *last* state has to carry every word through all the steps after it; the mean of
    its states hands each word's vector straight to the output, so what a word says (a digit's
    name) is learned as fast as in a bag of words, while each state still carries the words
    around it (with ``bidirectional=True``, those after it too: "a seven *on the left*").

    Args:
        encoder: has ``forward_sequence(ids) -> (B, T, out_dim)``, ``pad_id`` and ``out_dim``,
            as :class:`~mmcourse.models.text.RNNTextEncoder` does.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        check_module(encoder, "encoder")
        if not callable(getattr(encoder, "forward_sequence", None)):
            raise TypeError(
                f"encoder must offer forward_sequence(ids), got {type(encoder).__name__}"
            )
        self.encoder, self.out_dim, self.pad_id = encoder, encoder.out_dim, encoder.pad_id

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B, out_dim)``."""
        return self._mean(self.encoder.forward_sequence(ids), ids)

    def forward_padded(self, ids: torch.Tensor) -> torch.Tensor:
        """``forward`` through the encoder's ``forward_sequence_padded`` (no id check, no
        packing), which ``torch.export`` can trace; ``ids`` must be valid."""
        if not callable(getattr(self.encoder, "forward_sequence_padded", None)):
            raise ValueError(
                f"{type(self.encoder).__name__} has no forward_sequence_padded, so it cannot "
                "run without its value checks (the course's text encoders all have one)"
            )
        return self._mean(self.encoder.forward_sequence_padded(ids), ids)

    def _mean(self, states: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        real = (ids != self.pad_id).unsqueeze(-1).to(states.dtype)  # zeros after the end
        return (states * real).sum(dim=1) / real.sum(dim=1).clamp_min(1.0)


TEXT_TOWERS = ("bigru_mean", "gru_mean", "gru", "lstm", "bow", "transformer")
"""Text towers :func:`train_dual_encoder` can build: ``"bigru_mean"`` and ``"gru_mean"``
(:class:`MeanOverWords` over a bidirectional or a forward GRU), and the encoders of
:data:`mmcourse.models.text.TEXT_ENCODERS` (``"gru"``: the last state of a GRU)."""


def _text_tower(kind: str, vocab_size: int, dim: int) -> nn.Module | str:
    if kind == "gru_mean":
        return MeanOverWords(RNNTextEncoder(vocab_size, dim, dim, cell="gru"))
    if kind == "bigru_mean":
        return MeanOverWords(
            RNNTextEncoder(vocab_size, dim, dim // 2, cell="gru", bidirectional=True)
        )
    return kind


def new_dual_encoder(
    vocab_size: int,
    *,
    seed: int = 0,
    embed_dim: int = 64,
    image_channels: tuple[int, ...] = (16, 32, 64),
    image_dim: int = 32,
    downsample: int = 2,
    text_encoder: str = "bigru_mean",
    text_dim: int = 64,
) -> DualEncoder:
    """The untrained dual encoder of :func:`train_dual_encoder` (same arguments), with weights
    drawn from ``seed``: build one and load saved weights into it to use a trained model."""
    check_int(vocab_size, "vocab_size", minimum=5)
    check_int(seed, "seed", minimum=0)
    check_int(embed_dim, "embed_dim")
    check_sizes(image_channels, "image_channels")
    check_int(image_dim, "image_dim")
    check_int(downsample, "downsample")
    check_choice(text_encoder, "text_encoder", TEXT_TOWERS)
    check_int(text_dim, "text_dim", minimum=2)
    if text_encoder == "bigru_mean" and text_dim % 2:
        raise ValueError(f"a bidirectional text tower needs an even text_dim, got {text_dim}")
    if CANVAS % downsample or (CANVAS // downsample) >> len(image_channels) < 1:
        raise ValueError(
            f"downsample must divide {CANVAS} and leave at least 1 pixel after "
            f"{len(image_channels)} pooling steps, got downsample={downsample}"
        )
    torch.manual_seed(seed)
    side = CANVAS // downsample
    image_encoder = ImageVector(
        CanvasEncoder(image_dim, tuple(image_channels)), "flatten", (side, side)
    )
    return DualEncoder(
        vocab_size,
        embed_dim=embed_dim,
        image_encoder=Downsampled(image_encoder, downsample),
        text_encoder=_text_tower(text_encoder, vocab_size, text_dim),
        text_dim=text_dim,
    )


def train_dual_encoder(
    train_data: MNISTCaptions,
    vocab: Vocabulary,
    *,
    epochs: int = 5,
    seed: int = 0,
    mode: str = "mask",
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.01,
    embed_dim: int = 64,
    image_channels: tuple[int, ...] = (16, 32, 64),
    image_dim: int = 32,
    downsample: int = 2,
    text_encoder: str = "bigru_mean",
    text_dim: int = 64,
    negatives: int = 3,
    negative_weight: float = 1.0,
    device: torch.device | str | None = None,
    progress: bool = False,
    verbose: bool = False,
) -> tuple[DualEncoder, History]:
    """The case study's CLIP recipe: a :class:`~mmcourse.models.dual.DualEncoder` trained with
    the symmetric InfoNCE loss, a learned temperature and hard negative captions.

    What happens, step by step:

    1. The image tower pools each canvas ``downsample`` x ``downsample`` (:class:`Downsampled`)
       and reads it with a :class:`~mmcourse.models.image.CanvasEncoder` (conv widths
       ``image_channels``, ``image_dim`` features per region of its grid), flattened so that
       *where* a digit stands survives. The text tower is a ``text_encoder`` of
       :data:`TEXT_TOWERS` with ``text_dim`` features: by default a bidirectional GRU whose
       states are averaged over the words (:class:`MeanOverWords`); ``"gru"`` is chapter
       07's last-state GRU. Both are projected to ``embed_dim`` and normalised; the logit
       scale starts at ``1 / 0.07``.
    2. Every batch pairs each canvas with *one* of its four paraphrases, drawn at random, so
       over the epochs the text tower sees all of them (free data augmentation).
    3. The loss is :func:`~mmcourse.losses.clip_loss` (``mode="none"``) or
       :func:`~mmcourse.losses.clip_loss_with_duplicates` with the batch's
       :func:`description_ids` (``"mask"``, ``"soft"``), plus ``negative_weight`` times
       :func:`~mmcourse.losses.negative_caption_loss` against ``negatives`` fresh hard
       negatives per caption (one digit swapped, :func:`swap_digit_words`; ``negatives=0``
       switches them off).
    4. AdamW at ``lr`` with ``weight_decay``; the learning rate follows a one-cycle schedule
       (a short warm-up, then a cosine decay to almost 0), stepped after every batch, which
       gets the most out of a few epochs. The shuffling, the paraphrases and the negatives
       are drawn from generators seeded with ``seed``.

    The defaults are chapter 11's recipe on the fast profile's 10,000 training canvases;
    the chapter prints what it reaches and how long it took, and the committed models of
    ``data/weights/`` log theirs in ``training_log.json``. The duplicate ``mode`` matters
    only where a batch holds two canvases of the same description, which ``"mask"`` and
    ``"soft"`` stop from counting as each other's negatives.

    Args:
        train_data: the training canvases with their captions.
        vocab: the vocabulary the captions are encoded with (and later the queries).
        epochs: passes over ``train_data``.
        seed: seeds the weights, the shuffling, the paraphrase draws and the negatives.
        mode: one of :data:`MODES`.
        batch_size: pairs per batch (= 1 positive and ``batch_size - 1`` candidates per row).
        lr, weight_decay: AdamW's peak learning rate and decoupled weight decay.
        embed_dim, image_channels, image_dim, downsample, text_encoder, text_dim: the
            architecture (see :class:`~mmcourse.models.dual.DualEncoder`).
        negatives, negative_weight: hard negatives per caption, and the weight of their loss.
        device: where to train (default: the CPU); the model comes back on the CPU.
        progress, verbose: a progress bar and per-epoch lines (:class:`mmcourse.callbacks.PrintEpochs`).

    Returns ``(model, history)``: the model on the CPU in eval mode, and the
    :class:`~mmcourse.callbacks.History` with ``train_loss``, ``lr``, ``temperature`` (the learned
    temperature after each epoch) and ``seconds`` (wall time since the call began).
    """
    start = time.perf_counter()
    _check_dataset(train_data, "train_data")
    _check_vocabulary(vocab)
    check_int(epochs, "epochs")
    check_int(seed, "seed", minimum=0)
    check_choice(mode, "mode", MODES)
    check_int(batch_size, "batch_size", minimum=2)
    check_positive(lr, "lr")
    check_nonnegative(weight_decay, "weight_decay")
    model = new_dual_encoder(
        len(vocab),
        seed=seed,
        embed_dim=embed_dim,
        image_channels=image_channels,
        image_dim=image_dim,
        downsample=downsample,
        text_encoder=text_encoder,
        text_dim=text_dim,
    )
    check_int(negatives, "negatives", minimum=0)
    check_nonnegative(negative_weight, "negative_weight")
    layout = torch.stack([getattr(train_data.layout, f) for f in Layout.fields()], dim=2)
    tensors = (
        train_data.float_images(),  # (N, 1, 64, 64)
        encode_captions(train_data, vocab),  # (N, 4, T)
        layout,  # (N, 3, 4): digit, size, thickness, slant of each slot
        description_ids(train_data),  # (N,)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if negatives and negative_weight == 0:
        negatives = 0  # nothing to gain from encoding them

    def on_epoch_end(record: dict[str, float]) -> None:
        record["temperature"] = model.logit_scale.temperature
        record["seconds"] = time.perf_counter() - start

    forward = _make_forward(vocab, negatives, torch.Generator().manual_seed(seed))
    history = fit(
        model if device is None else model.to(device),
        tensors,
        loss_fn=_contrastive_loss(mode, negative_weight),
        optimizer=optimizer,
        epochs=epochs,
        batch_size=batch_size,
        callbacks=[OneCycle(lr, pct_start=0.15), on_epoch_end, PrintEpochs(verbose, progress)],
        loop=Loop(seed=seed, forward=forward),
    )
    return model.cpu().eval(), history


# ----------------------------------------------------------------------------------------------
# embeddings


def _check_encoder(model: object) -> nn.Module:
    check_module(model)
    for name in ("encode_image", "encode_text"):
        if not callable(getattr(model, name, None)):
            raise TypeError(
                f"model must offer encode_image(images) and encode_text(ids) like a "
                f"DualEncoder; {type(model).__name__} has no {name}()"
            )
    return model


def _as_float_canvases(images: torch.Tensor) -> torch.Tensor:
    """uint8 canvases ``(N, 64, 64)`` -> standardised floats ``(N, 1, 64, 64)``; floats
    ``(N, 1, H, W)`` are taken as they are (already standardised, as ``float_images()``)."""
    check_tensor(images, "images", "of canvases: uint8 (N, 64, 64) or float (N, 1, 64, 64)")
    if images.dtype == torch.uint8:
        if images.dim() != 3:
            raise ValueError(
                f"uint8 images must be canvases of shape (N, H, W), got {tuple(images.shape)}"
            )
        return mnist.to_float(images, mean=CANVAS_MEAN, std=CANVAS_STD)
    return check_float(images, "images", ("N", 1, "H", "W"))


@torch.no_grad()
def _embed(model: nn.Module, encode: str, inputs: list[torch.Tensor]) -> torch.Tensor:
    """Run ``model.<encode>`` on each chunk in eval mode; unit rows on the CPU."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    try:
        parts = [getattr(model, encode)(x.to(device)).float().cpu() for x in inputs]
    finally:
        model.train(was_training)
    return F.normalize(torch.cat(parts), dim=1)


def embed_gallery(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Unit image embeddings ``(N, E)`` on the CPU, ``batch_size`` canvases at a time.

    Args:
        model: a :class:`~mmcourse.models.dual.DualEncoder` (anything with ``encode_image``).
        images: uint8 canvases ``(N, 64, 64)`` (standardised here with the training canvases'
            statistics) or the float ``(N, 1, 64, 64)`` of ``data.float_images()``.

    The model runs in eval mode (batch norm uses its running statistics, so an image's
    embedding does not depend on the rest of its batch) without gradients, and is put back
    in the mode it was in.
    """
    _check_encoder(model)
    check_int(batch_size, "batch_size")
    images = _as_float_canvases(images)
    if len(images) == 0:
        raise ValueError("images is empty (N = 0)")
    return _embed(model, "encode_image", list(images.split(batch_size)))


def embed_texts(
    model: nn.Module, vocab: Vocabulary, texts: Sequence[str], batch_size: int = 512
) -> torch.Tensor:
    """Unit text embeddings ``(N, E)`` on the CPU for ``N`` captions, in batches.

    Each distinct text is embedded once and shared by all its copies, so identical captions
    get identical embeddings (embedded in batches of different padding they would differ in
    the last bits, enough to break a tie in a ranking). Each batch is tokenised with ``vocab``
    (unknown words become ``<unk>``) and right-padded to its own longest text; the text towers
    of the course ignore the padding.

    >>> embed_texts(nn.Linear(1, 1), Vocabulary.build(["a seven"]), ["a seven"])
    Traceback (most recent call last):
    TypeError: model must offer encode_image(images) and encode_text(ids) like a DualEncoder; \
Linear has no encode_image()
    """
    _check_encoder(model)
    _check_vocabulary(vocab)
    check_int(batch_size, "batch_size")
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts is empty; give at least one caption")
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise TypeError(f"texts must be a list of str; texts[{bad[0]}] is {texts[bad[0]]!r}")
    distinct = list(dict.fromkeys(texts))  # first-seen order
    row_of = {text: row for row, text in enumerate(distinct)}
    batches = [
        vocab.encode_batch(distinct[start : start + batch_size])[0]
        for start in range(0, len(distinct), batch_size)
    ]
    embeddings = _embed(model, "encode_text", batches)
    return embeddings[torch.tensor([row_of[text] for text in texts])]


# ----------------------------------------------------------------------------------------------
# retrieval


Report = dict[str, dict[str, dict[int, float]]]
"""A retrieval report: ``{direction: {relevance: {k: recall@k}}}``."""
DIRECTIONS = ("text_to_image", "image_to_text")
"""The two retrieval directions: captions as queries, or canvases as queries."""
RELEVANCE = ("instance", "description")
"""What counts as a hit: the query's own partner(s), or anything with the same description."""


def recall_report(
    similarity: torch.Tensor,
    caption_owner: torch.Tensor,
    ids: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
) -> Report:
    """Recall@k both ways, per instance and per description, from one similarity matrix.

    Args:
        similarity: ``(T, N)`` scores of ``T`` captions (rows) against ``N`` canvases.
        caption_owner: ``(T,)`` the canvas each caption was written for.
        ids: ``(N,)`` description id of each canvas (:func:`description_ids`).
        ks: the cut-offs.

    Text -> image ranks the canvases of each row; image -> text ranks the captions of each
    column (``similarity.T``). A candidate is relevant per ``"instance"`` if it belongs with
    the query (the caption's own canvas, the canvas's own captions), per ``"description"`` if
    its description id is the query's. Returns ``{direction: {relevance: {k: recall}}}``.
    """
    t, n = check_float(similarity, "similarity", ("T", "N")).shape
    check_indices(caption_owner, "caption_owner", (t,))
    check_indices(ids, "ids", (n,))
    check_index_range(caption_owner, "caption_owner", n, "canvas indices")
    canvases = torch.arange(n)
    caption_owner = caption_owner.long().cpu()
    ids = ids.long().cpu()
    similarity = similarity.cpu()
    own = caption_owner[:, None] == canvases[None, :]  # (T, N): caption i written for canvas j
    same = ids[caption_owner][:, None] == ids[None, :]  # (T, N): same ground truth
    by_image = similarity.T.contiguous()
    if not own.any(dim=0).all():
        lonely = (~own.any(dim=0)).nonzero().flatten()[:5].tolist()
        raise ValueError(f"every canvas needs at least one caption; canvases {lonely} have none")
    return {
        "text_to_image": {
            "instance": recall_at_k(similarity, caption_owner, ks),
            "description": recall_at_k(similarity, same, ks),
        },
        "image_to_text": {
            "instance": recall_at_k(by_image, own.T.contiguous(), ks),
            "description": recall_at_k(by_image, same.T.contiguous(), ks),
        },
    }


def retrieval_report(
    model: nn.Module,
    data: MNISTCaptions,
    vocab: Vocabulary,
    ks: Sequence[int] = (1, 5, 10),
    batch_size: int = 512,
) -> Report:
    """Recall@k of retrieval over a gallery of ``N`` canvases and their ``4 N`` captions.

    As on COCO and Flickr30k, every reference caption is a query or a candidate:

    - **text -> image**: each of the ``4 N`` captions ranks the ``N`` canvases;
    - **image -> text**: each canvas ranks the ``4 N`` captions.

    A hit among the top ``k`` counts (:func:`mmcourse.metrics.recall_at_k`, which takes a
    boolean matrix of relevant candidates) in two ways:

    - ``"instance"``: only the canvas the caption was written for (text -> image), or one of
      the canvas's own four captions (image -> text);
    - ``"description"``: any canvas, or caption, whose ground truth is the same
      (:func:`description_ids`). The strict count penalises a model for something it cannot
      know: two canvases with one description have word-for-word identical captions, which
      tie, and ties count against the model. The gap between the two shows how much of the
      strict miss rate is such duplicates.

    Returns ``{direction: {relevance: {k: recall}}}`` (:func:`recall_report`) with directions
    ``"text_to_image"``, ``"image_to_text"`` and relevances ``"instance"``,
    ``"description"``; :func:`format_report` prints it as a table.
    """
    _check_encoder(model)
    _check_dataset(data, "data")
    _check_vocabulary(vocab)
    n = len(data)
    captions = [caption for references in data.captions for caption in references]
    counts = torch.tensor([len(references) for references in data.captions])
    owner = torch.arange(n).repeat_interleave(counts)  # the canvas of each caption
    image_emb = embed_gallery(model, data.float_images(), batch_size)
    text_emb = embed_texts(model, vocab, captions, batch_size)
    return recall_report(text_emb @ image_emb.T, owner, description_ids(data), ks)


def format_report(report: Report) -> str:
    """A :func:`retrieval_report` as a small table, one row per direction and relevance.

    >>> print(format_report({"text_to_image": {"instance": {1: 0.5, 5: 0.75}}}))
    direction      relevance       R@1    R@5
    text_to_image  instance      0.500  0.750
    """
    if not isinstance(report, dict) or not report:
        raise TypeError("report must be the dict that retrieval_report returns")
    first = next(iter(next(iter(report.values())).values()))
    ks = list(first)
    lines = [f"{'direction':<15}{'relevance':<12}" + "".join(f"{f'R@{k}':>7}" for k in ks)]
    for direction, parts in report.items():
        for relevance, recall in parts.items():
            values = "".join(f"{recall[k]:>7.3f}" for k in ks)
            lines.append(f"{direction:<15}{relevance:<12}{values}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# zero-shot recognition


TYPICAL_CENTRE = (SLOT_X[MIDDLE], sum(CENTER_Y_RANGE) / 2)
"""Where the dataset puts a middle digit's centre of mass on average: ``(32.0, 32.0)``."""


def _check_centre(centre: object, name: str = "centre") -> tuple[float, float]:
    if (
        isinstance(centre, str)
        or not isinstance(centre, Sequence)
        or len(centre) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in centre)
    ):
        raise TypeError(f"{name} must be a pair of numbers (x, y) in pixels, got {centre!r}")
    if not all(math.isfinite(v) and 0 <= v <= CANVAS - 1 for v in centre):
        raise ValueError(f"{name} must lie on the canvas, 0..{CANVAS - 1} pixels, got {centre!r}")
    return float(centre[0]), float(centre[1])


def place_digits_on_canvas(
    digits: torch.Tensor,
    size: str = "large",
    thickness: str = "normal",
    slant: str = "upright",
    centre: tuple[float, float] = TYPICAL_CENTRE,
) -> torch.Tensor:
    """Draw each 28x28 MNIST digit alone in the middle slot of a blank canvas: uint8
    ``(N, 64, 64)``.

    It calls the dataset's own drawing (:func:`mmcourse.data.captions.compose`), so the digit
    is drawn as MNIST-Captions draws a single digit described as
    ``"a <size> [<thickness>] <digit> [leaning <slant>] in the middle"``: its centre line
    deslanted, then sheared by the slant's shear, scaled by the size's factor, traced with a
    pen from the middle of the thickness word's band (:data:`~mmcourse.data.pen.PEN_BANDS`),
    its centre of mass put at ``centre``. The default centre is the *typical* one,
    :data:`TYPICAL_CENTRE` -- the middle slot's ``x = 32`` without the dataset's horizontal
    jitter of up to 1.5 pixels, and ``y = 32``, the middle of its vertical range 26..38 -- so
    the result is deterministic. Unlike the dataset, it never swaps a digit whose drawing
    broke a stroke or filled a loop for another: every digit given is drawn.

    Args:
        digits: uint8 ``(N, 28, 28)`` MNIST digits (``mnist.load_digits(...)[0]``).
        size, thickness, slant: one of :data:`~mmcourse.data.captions.SIZES`,
            :data:`~mmcourse.data.captions.THICKNESSES`,
            :data:`~mmcourse.data.captions.SLANTS`.
        centre: ``(x, y)`` of the digits' centre of mass, in canvas pixels.
    """
    check_tensor(digits, "digits", "of MNIST digits: uint8 (N, 28, 28)")
    if digits.dtype != torch.uint8 or digits.dim() != 3 or tuple(digits.shape[1:]) != (28, 28):
        raise ValueError(
            "digits must be uint8 MNIST digits of shape (N, 28, 28), "
            f"got shape {tuple(digits.shape)} and dtype {digits.dtype}"
        )
    check_choice(size, "size", SIZES)
    check_choice(thickness, "thickness", THICKNESSES)
    check_choice(slant, "slant", SLANTS)
    x, y = _check_centre(centre)
    n = len(digits)
    if n == 0:
        return torch.zeros(0, CANVAS, CANVAS, dtype=torch.uint8)
    empty = torch.full((n, MAX_DIGITS), -1)
    middle = torch.zeros_like(empty).index_fill_(1, torch.tensor([1]), 1).bool()
    layout = Layout(
        torch.where(middle, 0, empty),
        torch.where(middle, SIZES.index(size), empty),
        torch.where(middle, THICKNESSES.index(thickness), empty),
        torch.where(middle, SLANTS.index(slant), empty),
    )
    slots = torch.zeros(n, MAX_DIGITS, 28, 28, dtype=torch.uint8)
    slots[:, 1] = digits
    centers = torch.tensor([x, y]).repeat(n, MAX_DIGITS, 1)
    low, high = PEN_BANDS[thickness]
    pen_width = torch.full((n, MAX_DIGITS), (low + high) / 2)
    return compose(layout, slots, centers, pen_width)


def prompt_templates(
    sizes: Sequence[str] = SIZES,
    thicknesses: Sequence[str] = THICKNESSES,
    slants: Sequence[str] = SLANTS,
    paraphrases: Sequence[int] = tuple(range(N_TEMPLATES)),
) -> list[str]:
    """Prompt templates for one digit in the middle slot, written by the dataset's own caption
    grammar (:func:`mmcourse.data.captions.describe`), with ``{digit}`` where the number word
    goes: one per combination of the given attributes and paraphrases.

    >>> prompt_templates(sizes=["large"], thicknesses=["normal"], slants=["upright"],
    ...                  paraphrases=[0, 3])
    ['a large {digit} in the middle', 'in the middle is a big {digit}']
    """
    choices = (("sizes", sizes, SIZES), ("thicknesses", thicknesses, THICKNESSES))
    choices += (("slants", slants, SLANTS),)
    for name, values, allowed in choices:
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise TypeError(f"{name} must be a non-empty list drawn from {allowed}, got {values!r}")
        for value in values:
            check_choice(value, f"every one of {name}", allowed)
    if isinstance(paraphrases, str) or not isinstance(paraphrases, Sequence) or not paraphrases:
        raise TypeError(f"paraphrases must be a non-empty list of ints, got {paraphrases!r}")
    templates = []
    for paraphrase in paraphrases:
        for size in sizes:
            for thickness in thicknesses:
                for slant in slants:
                    item = (MIDDLE, 0, SIZES.index(size), THICKNESSES.index(thickness))
                    caption = describe([(*item, SLANTS.index(slant))], paraphrase)
                    # "zero" is the number word of digit 0 and occurs nowhere else
                    templates.append(caption.replace(NUMBER_WORDS[0], DIGIT_FIELD))
    return templates


DEFAULT_PROMPTS: tuple[str, ...] = tuple(prompt_templates(sizes=["large"]))
"""The default prompt ensemble: a *large* digit in the middle slot -- the size
:func:`place_digits_on_canvas` draws -- in every thickness, slant and paraphrase, 36 templates
(``"a large {digit} in the middle"``, ``"there is a big thick {digit} tilted left in the
middle"``, ...). The thickness and slant variants are averaged away; the size is not, since
"a small seven" describes another picture (and "a small four" is never seen in training)."""

DEFAULT_VIEWS: tuple[tuple[float, float], ...] = tuple(
    (x, y) for y in (29.0, 32.0, 35.0) for x in (31.0, 32.0, 33.0)
)
"""Where :func:`zero_shot_scores` puts each digit: nine centres spread over the positions the
dataset draws a middle digit at (``x`` within 1 pixel of 32, ``y`` across 29..35)."""


def digit_prompts(digit: int, prompts: Sequence[str] = DEFAULT_PROMPTS) -> list[str]:
    """The prompts of one digit: each template with ``{digit}`` replaced by its number word.

    >>> digit_prompts(7, ["a large {digit} in the middle"])
    ['a large seven in the middle']
    """
    check_int(digit, "digit", minimum=0, maximum=9)
    _check_prompts(prompts)
    return [template.replace(DIGIT_FIELD, NUMBER_WORDS[digit]) for template in prompts]


def _check_prompts(prompts: object) -> Sequence[str]:
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise TypeError(
            f"prompts must be a list of templates such as 'a large {DIGIT_FIELD} in the middle', "
            f"got {type(prompts).__name__}"
        )
    if len(prompts) == 0:
        raise ValueError("prompts is empty; give at least one template")
    for template in prompts:
        if not isinstance(template, str) or DIGIT_FIELD not in template:
            raise ValueError(
                f"every prompt must be a str holding {DIGIT_FIELD} where the number word goes, "
                f"got {template!r}"
            )
    return prompts


def zero_shot_weights(
    model: nn.Module, vocab: Vocabulary, prompts: Sequence[str] | None = None
) -> torch.Tensor:
    """``(10, E)``: one unit "class embedding" per digit, CLIP's prompt ensemble.

    Row ``d`` is the mean of the unit text embeddings of every prompt of digit ``d``
    (:func:`digit_prompts`; default :data:`DEFAULT_PROMPTS`), normalised again. Averaging
    many phrasings ("a large seven ...", "a large thin seven tilted left ...") keeps what
    they share -- the digit -- and washes out what they do not (stroke, slant, wording);
    Radford et al. (2021) gain several points of ImageNet accuracy this way.
    """
    prompts = DEFAULT_PROMPTS if prompts is None else _check_prompts(prompts)
    texts = [text for digit in range(10) for text in digit_prompts(digit, prompts)]
    emb = embed_texts(model, vocab, texts).view(10, len(prompts), -1)
    return F.normalize(emb.mean(dim=1), dim=1)


def _check_views(views: object) -> list[tuple[float, float]]:
    if isinstance(views, str) or not isinstance(views, Sequence):
        raise TypeError(f"views must be a list of centres (x, y), got {type(views).__name__}")
    if len(views) == 0:
        raise ValueError("views is empty; give at least one centre (x, y)")
    return [_check_centre(view, "every view") for view in views]


def zero_shot_scores(
    model: nn.Module,
    vocab: Vocabulary,
    digit_images: torch.Tensor,
    prompts: Sequence[str] | None = None,
    size: str = "large",
    views: Sequence[tuple[float, float]] = DEFAULT_VIEWS,
    batch_size: int = 512,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(N, 10)``: how well each digit image matches each digit's description -- the cosine
    of canvas and class embedding, averaged over ``views``.

    ``class_weights`` ``(10, E)``: the class embeddings of :func:`zero_shot_weights`, when
    they were computed once already (they depend on the model and prompts only, not on the
    digits); ``None`` computes them from ``prompts``.

    1. Put each digit on a canvas as the dataset would draw it
       (:func:`place_digits_on_canvas`, in the middle slot, of ``size``), once per centre in
       ``views``.
    2. Embed the canvases (:func:`embed_gallery`).
    3. Embed each digit's prompts and average them into one class embedding
       (:func:`zero_shot_weights`).
    4. Score every canvas against every class embedding (cosine), and average the scores of
       the views of one digit: *test-time augmentation*. The dataset never draws a digit at
       exactly one spot, so neither do we; averaging over the spots it does use smooths away
       the model's quirks at any single one. ``views=[TYPICAL_CENTRE]`` scores one view.

    No label takes part: the "classifier" is written in words.
    """
    _check_encoder(model)
    _check_vocabulary(vocab)
    centres = _check_views(views)
    if class_weights is None:
        weights = zero_shot_weights(model, vocab, prompts)  # (10, E)
    elif (
        not isinstance(class_weights, torch.Tensor)
        or class_weights.dim() != 2
        or len(class_weights) != 10
    ):
        raise ValueError("class_weights must be the (10, E) tensor zero_shot_weights returns")
    else:
        weights = class_weights
    scores = None
    for centre in centres:
        canvases = place_digits_on_canvas(digit_images, size=size, centre=centre)
        if len(canvases) == 0:
            raise ValueError("digit_images is empty (N = 0)")
        view = embed_gallery(model, canvases, batch_size) @ weights.T  # (N, 10)
        scores = view if scores is None else scores + view
    return scores / len(centres)


def zero_shot_classify(
    model: nn.Module,
    vocab: Vocabulary,
    digit_images: torch.Tensor,
    prompts: Sequence[str] | None = None,
    size: str = "large",
    views: Sequence[tuple[float, float]] = DEFAULT_VIEWS,
    batch_size: int = 512,
) -> torch.Tensor:
    """Recognise MNIST digits with a model trained only on captioned canvases: LongTensor
    ``(N,)`` of predicted digits, the best of :func:`zero_shot_scores`.

    Args:
        model: a trained :class:`~mmcourse.models.dual.DualEncoder`.
        vocab: the vocabulary it was trained with.
        digit_images: uint8 MNIST digits ``(N, 28, 28)``.
        prompts: templates holding ``{digit}``; ``None`` for :data:`DEFAULT_PROMPTS`.
        size: the size the digits are drawn at (``"large"`` or ``"small"``).
        views: the centres each digit is drawn at (:data:`DEFAULT_VIEWS`).
    """
    scores = zero_shot_scores(model, vocab, digit_images, prompts, size, views, batch_size)
    return scores.argmax(dim=1)


def zero_shot_accuracy(
    model: nn.Module,
    vocab: Vocabulary,
    digit_images: torch.Tensor,
    labels: torch.Tensor,
    prompts: Sequence[str] | None = None,
    size: str = "large",
    views: Sequence[tuple[float, float]] = DEFAULT_VIEWS,
) -> float:
    """Fraction of ``digit_images`` that :func:`zero_shot_classify` gets right (``labels``:
    the true digits ``(N,)``, used only to score)."""
    check_indices(labels, "labels", ("N",))
    if len(labels) != len(digit_images):
        raise ValueError(
            f"labels must hold one digit per image, got {len(labels)} labels for "
            f"{len(digit_images)} images"
        )
    predictions = zero_shot_classify(model, vocab, digit_images, prompts, size, views)
    return accuracy(predictions, labels)
