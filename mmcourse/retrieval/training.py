"""Training the case study's dual encoder: CLIP's loss, hard negative captions, a one-cycle
learning rate (:func:`train_dual_encoder`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mmcourse._validate import check_choice, check_int, check_nonnegative, check_positive
from mmcourse.callbacks import History, OneCycle, PrintEpochs
from mmcourse.captioning import encode_captions
from mmcourse.data.captions import Layout, MNISTCaptions
from mmcourse.losses import clip_loss, clip_loss_with_duplicates, negative_caption_loss
from mmcourse.models.dual import DualEncoder, new_dual_encoder
from mmcourse.retrieval.descriptions import (
    check_dataset,
    check_vocabulary,
    description_ids,
    swap_digit_words,
)
from mmcourse.train import Loop, fit
from mmcourse.vocab import PAD_ID, Vocabulary

__all__ = [
    "ContrastiveRecipe",
    "MODES",
    "draw_texts",
    "make_forward",
    "make_loss_fn",
    "train_dual_encoder",
]


MODES = ("none", "mask", "soft")
"""How :func:`train_dual_encoder` treats same-description pairs of a batch: ``"none"`` is plain
CLIP (they are negatives), ``"mask"`` and ``"soft"`` as in
:func:`mmcourse.losses.clip_loss_with_duplicates`."""


Outputs = tuple[torch.Tensor, ...]
"""What the training forward returns: ``(image_emb, text_emb, logit_scale[, negative_emb])``."""


def _trim(ids: torch.Tensor) -> torch.Tensor:
    """Drop the columns that are padding in every row."""
    return ids[:, : int((ids != PAD_ID).sum(dim=1).max())]


def make_forward(
    vocab: Vocabulary, negatives: int, generator: torch.Generator
) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], tuple[Outputs, torch.Tensor]]:
    """``fit``'s forward for a batch ``(images, captions (B, 4, T), layout (B, 3, 4), groups)``.

    One of the four paraphrases per canvas (drawn anew every batch), ``negatives`` fresh hard
    negatives of it (:func:`swap_digit_words`) encoded in the same call, and the description
    ids passed on as the "targets" of the loss.
    """
    check_vocabulary(vocab)
    check_int(negatives, "negatives", minimum=0)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")

    def forward(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> tuple[Outputs, torch.Tensor]:
        images, captions, layout, groups = batch
        ids, wrong = draw_texts(captions, layout, vocab, negatives, generator)
        image_emb, scale = model.encode_image(images), model.logit_scale()
        if negatives == 0:
            return (image_emb, model.encode_text(ids), scale), groups
        texts = torch.cat([ids, *wrong])  # (B (1 + K), T): one call of the text tower
        text_emb, *wrong_emb = model.encode_text(texts).split(len(ids))
        return (image_emb, text_emb, scale, torch.stack(wrong_emb, dim=1)), groups

    return forward


def draw_texts(
    captions: torch.Tensor,
    layout: torch.Tensor,
    vocab: Vocabulary,
    negatives: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The texts of one batch: one of each canvas's paraphrases ``captions`` ``(B, 4, T)``,
    drawn with ``generator``, and ``negatives`` hard negatives of it (``layout`` ``(B, 3, 4)``
    says which digit words may be swapped). Returns ``(ids (B, T'), [ids of each negative])``,
    the columns that are padding in every row dropped."""
    rows = torch.arange(len(captions), device=captions.device)
    pick = torch.randint(0, captions.shape[1], (len(captions),), generator=generator)
    ids = _trim(captions[rows, pick.to(captions.device)])
    if negatives == 0:
        return ids, []
    truth = Layout(*layout.cpu().unbind(dim=2))
    return ids, [swap_digit_words(ids, truth, vocab, generator)[0] for _ in range(negatives)]


def make_loss_fn(
    mode: str, negative_weight: float
) -> Callable[[Outputs, torch.Tensor], torch.Tensor]:
    """``loss_fn(outputs, groups)`` for ``fit``: plain CLIP or the duplicate-aware variant,
    plus ``negative_weight`` times :func:`~mmcourse.losses.negative_caption_loss` when there
    are negatives."""
    check_choice(mode, "mode", MODES)
    check_nonnegative(negative_weight, "negative_weight")

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


@dataclass(frozen=True)
class ContrastiveRecipe:
    """How :func:`train_dual_encoder` trains; the defaults are chapter 11's recipe.

    Args:
        mode: how same-description pairs of a batch count, one of :data:`MODES`: ``"none"``
            is plain CLIP (:func:`~mmcourse.losses.clip_loss`, they are negatives);
            ``"mask"`` and ``"soft"`` as in :func:`~mmcourse.losses.clip_loss_with_duplicates`.
        batch_size: pairs per batch (= 1 positive and ``batch_size - 1`` candidates per row).
        lr, weight_decay: AdamW's peak learning rate and decoupled weight decay.
        negatives, negative_weight: hard negative captions per caption (one digit swapped,
            :func:`~mmcourse.retrieval.descriptions.swap_digit_words`; 0 switches them off),
            and the weight of their :func:`~mmcourse.losses.negative_caption_loss`.
    """

    mode: str = "mask"
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    negatives: int = 3
    negative_weight: float = 1.0

    def __post_init__(self) -> None:
        check_choice(self.mode, "mode", MODES)
        check_int(self.batch_size, "batch_size", minimum=2)
        check_positive(self.lr, "lr")
        check_nonnegative(self.weight_decay, "weight_decay")
        check_int(self.negatives, "negatives", minimum=0)
        check_nonnegative(self.negative_weight, "negative_weight")


def train_dual_encoder(
    train_data: MNISTCaptions,
    vocab: Vocabulary,
    *,
    epochs: int = 5,
    model: DualEncoder | None = None,
    recipe: ContrastiveRecipe = ContrastiveRecipe(),
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
    verbose: bool = False,
) -> tuple[DualEncoder, History]:
    """The case study's CLIP recipe: a :class:`~mmcourse.models.dual.DualEncoder` trained with
    the symmetric InfoNCE loss, a learned temperature and hard negative captions.

    What happens, step by step:

    1. The model is ``model``, or :func:`~mmcourse.models.dual.new_dual_encoder` with its
       defaults (weights drawn from ``seed``): each canvas pooled 2 x 2 and read by a small
       CNN whose grid is flattened, so that *where* a digit stands survives; a bidirectional
       GRU whose states are averaged over the words
       (:class:`~mmcourse.models.dual.MeanOverWords`); both projected to 64 numbers and
       normalised; the logit scale starts at ``1 / 0.07``.
    2. Every batch pairs each canvas with *one* of its four paraphrases, drawn at random, so
       over the epochs the text tower sees all of them (free data augmentation).
    3. The loss is CLIP's, counting duplicates as ``recipe.mode`` says (with the batch's
       :func:`~mmcourse.retrieval.descriptions.description_ids`), plus
       ``recipe.negative_weight`` times the loss against ``recipe.negatives`` fresh hard
       negatives per caption.
    4. AdamW; the learning rate follows a one-cycle schedule (a short warm-up, then a cosine
       decay to almost 0, :class:`~mmcourse.callbacks.OneCycle`), which gets the most out of
       a few epochs. The shuffling, the paraphrases and the negatives are drawn from
       generators seeded with ``seed``.

    The defaults are chapter 11's recipe on the fast profile's 10,000 training canvases;
    the chapter prints what it reaches and how long it took, and the committed models of
    ``data/weights/`` log theirs in ``training_log.json``.

    Args:
        train_data: the training canvases with their captions.
        vocab: the vocabulary the captions are encoded with (and later the queries).
        epochs: passes over ``train_data``.
        model: the dual encoder to train (default: a fresh ``new_dual_encoder``).
        recipe: a :class:`ContrastiveRecipe`.
        seed: seeds the weights, the shuffling, the paraphrase draws and the negatives.
        device: where to train (default: the CPU); the model comes back on the CPU.
        progress, verbose: a progress bar and per-epoch lines
            (:class:`mmcourse.callbacks.PrintEpochs`).

    Returns ``(model, history)``: the model on the CPU in eval mode, and the
    :class:`~mmcourse.callbacks.History` with ``train_loss``, ``lr``, ``temperature`` (the
    learned temperature after each epoch) and ``seconds`` (wall time since the call began).
    """
    start = time.perf_counter()
    check_dataset(train_data, "train_data")
    check_vocabulary(vocab)
    check_int(epochs, "epochs")
    check_int(seed, "seed", minimum=0)
    if not isinstance(recipe, ContrastiveRecipe):
        raise TypeError(f"recipe must be a ContrastiveRecipe(...), got {type(recipe).__name__}")
    if model is None:
        model = new_dual_encoder(len(vocab), seed=seed)
    elif not isinstance(model, DualEncoder):
        raise TypeError(
            f"model must be a DualEncoder (new_dual_encoder), got {type(model).__name__}"
        )
    if model.vocab_size != len(vocab):
        raise ValueError(
            f"the model embeds {model.vocab_size} tokens but the vocabulary holds {len(vocab)}"
        )
    layout = torch.stack([getattr(train_data.layout, f) for f in Layout.fields()], dim=2)
    tensors = (
        train_data.float_images(),  # (N, 1, 64, 64)
        encode_captions(train_data, vocab),  # (N, 4, T)
        layout,  # (N, 3, 4): digit, size, thickness, slant of each slot
        description_ids(train_data),  # (N,)
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    negatives = recipe.negatives if recipe.negative_weight else 0  # nothing to gain from 0

    def on_epoch_end(record: dict[str, float]) -> None:
        record["temperature"] = model.logit_scale.temperature
        record["seconds"] = time.perf_counter() - start

    forward = make_forward(vocab, negatives, torch.Generator().manual_seed(seed))
    history = fit(
        model if device is None else model.to(device),
        tensors,
        loss_fn=make_loss_fn(recipe.mode, recipe.negative_weight),
        optimizer=optimizer,
        epochs=epochs,
        batch_size=recipe.batch_size,
        callbacks=[
            OneCycle(recipe.lr, pct_start=0.15),
            on_epoch_end,
            PrintEpochs(verbose, progress),
        ],
        loop=Loop(seed=seed, forward=forward),
    )
    return model.cpu().eval(), history
