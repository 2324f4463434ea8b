"""The case study's captioning recipe: one image encoder, three decoders, chosen on validation.

The article's six steps, carried out on MNIST-Captions:

1. **data** -- :func:`build_data`: the four splits and a vocabulary from the training captions;
2. **encoders** -- :func:`pretrain_encoder`: a CNN taught to name the digit, size, thickness
   and slant in each of the three slots (supervised pretraining on the captions' own facts:
   the captioner starts from what it knows),
   or :func:`new_encoder` for the from-scratch control;
3. **joint layer / decoder** -- :func:`make_decoder`: Show and Tell, Show, Attend and Tell, or
   a Transformer decoder, all reading the encoder's 8x8 grid of regions;
4. **loss** -- the sequence cross-entropy under teacher forcing
   (:func:`mmcourse.captioning.caption_forward`);
5. **training** -- :func:`train_decoder`, which keeps the epoch whose greedy captions are
   exactly right most often on *validation* canvases;
6. **evaluation** -- :func:`write_captions` then :mod:`mmcourse.caption_metrics`.

When the encoder is frozen its regions are computed once (:func:`store_regions`) and the
decoders train on them through a :class:`~mmcourse.models.grid.StoredGrid`: an epoch then
costs seconds. :func:`mmcourse.models.grid.swap_encoder` puts the CNN back afterwards.

What the recipe reaches is measured where it can be seen: chapter 09 trains one decoder, and
``data/weights/training_log.json`` holds every committed decoder's validation scores per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mmcourse._validate import check_choice, check_int, check_positive, require
from mmcourse.callbacks import Callback, FitState, History, OneCycle, PrintEpochs
from mmcourse.caption_metrics import caption_report_for
from mmcourse.captioning import caption_forward, encode_captions
from mmcourse.data import mnist, questions
from mmcourse.data.captions import (
    CANVAS_MEAN,
    CANVAS_STD,
    MNISTCaptions,
    describe,
    make_mnist_captions,
)
from mmcourse.decode import beam_search, greedy_decode
from mmcourse.losses import sequence_loss, slot_attribute_loss
from mmcourse.models.attention_captioner import AttentionCaptioner
from mmcourse.models.captioner import Captioner
from mmcourse.models.image import CanvasEncoder, DigitNet
from mmcourse.models.introspect import device_of
from mmcourse.models.pooling import ImageVector
from mmcourse.models.transformer_captioner import TransformerCaptioner
from mmcourse.models.vqa import CanvasBackbone, SlotAttributeHead
from mmcourse.train import Loop, fit
from mmcourse.vocab import BOS, BOS_ID, EOS, Vocabulary, tokenize

__all__ = [
    "DECODERS",
    "MAX_CAPTION_LEN",
    "BestOnValidation",
    "CaseStudyData",
    "build_data",
    "caption_with_attention",
    "digitnet_encoder",
    "make_decoder",
    "new_encoder",
    "pretrain_encoder",
    "slot_head_captions",
    "store_regions",
    "train_decoder",
    "write_captions",
]

DECODERS = ("show_and_tell", "attention", "transformer")
"""The three decoders the case study compares, in the order of the papers."""
MAX_CAPTION_LEN = 40
"""Most tokens a generated caption may have (the longest reference has 31, ``<eos>`` included)."""
REGION_DIM = 64
"""Features per region of the encoder's 8x8 grid."""


@dataclass
class CaseStudyData:
    """The four splits of MNIST-Captions, the training vocabulary and every caption as ids."""

    splits: dict[str, MNISTCaptions]
    vocab: Vocabulary
    captions: dict[str, torch.Tensor]

    def images(self, split: str) -> torch.Tensor:
        """Standardised canvases ``(N, 1, 64, 64)`` of ``split``."""
        return self.splits[split].float_images()


def build_data(
    sizes: dict[str, int] | None = None,
    seed: int = 0,
    profile: str | None = None,
    vocab: Vocabulary | None = None,
) -> CaseStudyData:
    """Build the train, val, test and compositional splits (sizes from the profile unless
    given) and a vocabulary of the training captions -- or use ``vocab`` (e.g. the one saved
    with trained weights, :func:`mmcourse.casestudy.pretrained.vocabulary`), which must hold
    every word of the captions."""
    names = ("train", "val", "test", "compositional")
    sizes = dict(sizes or {})
    unknown = set(sizes) - set(names)
    require(not unknown, f"unknown splits {sorted(unknown)}; the splits are {names}")
    splits = {
        name: make_mnist_captions(name, n=sizes.get(name), seed=seed, profile=profile)
        for name in names
    }
    train_captions = [c for captions in splits["train"].captions for c in captions]
    if vocab is None:
        vocab = Vocabulary.build(train_captions)
    elif not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
    else:
        words = {
            w for split in splits.values() for cs in split.captions for c in cs for w in tokenize(c)
        }
        unknown = sorted(words - set(vocab.itos))
        require(not unknown, f"vocab lacks words of the captions: {unknown[:5]}")
    captions = {name: encode_captions(data, vocab) for name, data in splits.items()}
    return CaseStudyData(splits, vocab, captions)


def new_encoder(seed: int = 0) -> CanvasBackbone:
    """A randomly initialised encoder: 64x64 canvas -> 8x8 grid of 64-d regions."""
    torch.manual_seed(seed)
    return CanvasBackbone(CanvasEncoder(out_dim=REGION_DIM, channels=(16, 32, 64)), out_dim=64)


def digitnet_encoder(digitnet: DigitNet, seed: int = 0) -> CanvasBackbone:
    """A :func:`new_encoder` whose three conv blocks are those of a ``digitnet`` trained on
    plain MNIST (chapter 04): transfer from a model that never saw a canvas or a caption.

    The blocks have the same shapes (16, 32 and 64 channels; convolutions do not care that a
    digit is 28 pixels and a canvas 64). DigitNet read pixels standardised with MNIST's mean
    and standard deviation, the encoder reads them standardised with the canvases'
    (:data:`~mmcourse.data.captions.CANVAS_MEAN`, :data:`~mmcourse.data.captions.CANVAS_STD`),
    so the first convolution's weights are multiplied by ``CANVAS_STD / mnist.STD``: it then
    sees the same pixel contrasts. The two means differ by a constant, which shifts each of
    its output channels by the mean's difference times the sum of that channel's weights; the
    batch norm after it subtracts that shift from its running mean, so that in eval mode the
    first block answers a digit on a canvas as DigitNet answered it on MNIST's background
    (away from the canvas's border). The projection to regions and the vector stay random,
    as in :func:`new_encoder` with the same ``seed``.
    """
    if not isinstance(digitnet, DigitNet):
        raise TypeError(
            f"digitnet must be a DigitNet (mmcourse.models.image), got {type(digitnet).__name__}"
        )
    encoder = new_encoder(seed)
    mine, theirs = encoder.encoder.blocks.state_dict(), digitnet.blocks.state_dict()
    shapes = {name: tuple(value.shape) for name, value in mine.items()}
    if {name: tuple(value.shape) for name, value in theirs.items()} != shapes:
        raise ValueError(
            "digitnet's conv blocks must have the encoder's shapes: DigitNet(channels=(16, 32, 64)) "
            "reading one channel"
        )
    encoder.encoder.blocks.load_state_dict(theirs)
    conv, norm = encoder.encoder.blocks[0][0], encoder.encoder.blocks[0][1]
    with torch.no_grad():
        norm.running_mean -= (CANVAS_MEAN - mnist.MEAN) / mnist.STD * conv.weight.sum((1, 2, 3))
        conv.weight *= CANVAS_STD / mnist.STD
    return encoder


def pretrain_encoder(
    train: MNISTCaptions,
    epochs: int,
    *,
    lr: float = 5e-3,
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
    start: CanvasBackbone | None = None,
    checkpoint: Path | None = None,
) -> tuple[CanvasBackbone, SlotAttributeHead, History]:
    """Teach an encoder to name what stands in each slot (digit, size, thickness, slant;
    chapter 06's pretraining task), Adam with a one-cycle learning rate up to ``lr``. It
    starts from ``start`` (e.g. :func:`digitnet_encoder`, trained further in place) or, when
    that is ``None``, from :func:`new_encoder`.

    Under torchrun it trains data-parallel, as :func:`~mmcourse.train.fit` does;
    ``checkpoint`` is a file to save the run to after every epoch, and to go on from if it
    exists (``Loop(checkpoint=...)``).

    Returns the encoder and its slot head, frozen and in eval mode, and the history.
    """
    check_int(epochs, "epochs")
    check_positive(lr, "lr")
    check_int(batch_size, "batch_size")
    if start is not None and not isinstance(start, CanvasBackbone):
        raise TypeError(f"start must be a CanvasBackbone, got {type(start).__name__}")
    encoder = new_encoder(seed) if start is None else start.requires_grad_(True).train()
    head = SlotAttributeHead(encoder.out_dim)
    model = nn.Sequential(encoder, head)
    history = fit(
        model if device is None else model.to(device),
        (train.float_images(), questions.slot_targets(train)),
        loss_fn=slot_attribute_loss,
        optimizer=torch.optim.Adam(model.parameters(), lr=lr),
        epochs=epochs,
        batch_size=batch_size,
        callbacks=[OneCycle(max_lr=lr), PrintEpochs(lines=False, bar=progress)],
        loop=Loop(seed=seed, checkpoint=checkpoint),
    )
    model.cpu().requires_grad_(False).eval()
    return encoder, head, history


def fit_slot_head(
    encoder: CanvasBackbone, train: MNISTCaptions, epochs: int = 10, *, seed: int = 0
) -> SlotAttributeHead:
    """A slot head fitted again on the *frozen* encoder's canvas vectors (Adam, lr 1e-2,
    batches of 256): what the encoder's vector says about each slot, read by one linear
    layer with no decoder in between. (The head trained with the encoder was not kept; a
    linear layer on fixed features converges to nearly the same answer.)"""
    check_int(epochs, "epochs")
    with torch.no_grad():
        vectors = encoder.eval().vector(store_regions(encoder, train.float_images()))
    head = SlotAttributeHead(encoder.out_dim)
    fit(
        head,
        (vectors, questions.slot_targets(train)),
        loss_fn=slot_attribute_loss,
        optimizer=torch.optim.Adam(head.parameters(), lr=1e-2),
        epochs=epochs,
        batch_size=256,
        loop=Loop(seed=seed),
    )
    return head.requires_grad_(False).eval()


def slot_head_captions(logits: torch.Tensor, data: MNISTCaptions) -> list[str]:
    """Captions a slot head writes: a caption built from per-slot predictions, with no
    language model in between. A slot holds a digit where the head's most probable digit
    class is not "empty" (if it calls every slot empty, the slot it finds least empty); each
    such slot is described with the head's most probable digit, size, thickness and slant,
    in the first template. ``logits``: the head's ``(N, 3, 22)`` output for ``data``'s
    canvases (``data`` only checks their number). So the head's captions can be scored
    exactly as a decoder's are, count and places included."""
    targets = questions.slot_targets(data)
    parts = questions.split_slot_logits(logits, targets)
    occupied = parts[0].argmax(dim=-1) > 0
    least_empty = (parts[0][..., 1:].amax(dim=-1) - parts[0][..., 0]).argmax(dim=1)
    occupied[torch.arange(len(occupied)), least_empty] |= ~occupied.any(dim=1)
    values = [part[..., 1:].argmax(dim=-1) for part in parts]
    texts = []
    for row in range(len(occupied)):
        items = [
            (slot, *(int(value[row, slot]) for value in values))
            for slot in range(occupied.shape[1])
            if occupied[row, slot]
        ]
        texts.append(describe(items, template=0))
    return texts


@torch.no_grad()
def store_regions(encoder: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The frozen ``encoder``'s regions of ``images``: ``(N, 64, REGION_DIM)``."""
    encoder.eval()
    return torch.cat([encoder.forward_grid(part) for part in images.split(batch_size)])


def make_decoder(kind: str, vocab_size: int, image_encoder: nn.Module, seed: int = 0) -> nn.Module:
    """A fresh decoder of ``kind`` (one of :data:`DECODERS`) reading ``image_encoder``'s grid.

    With 35 words and a grid of 64 regions of 64 features, Show and Tell has about 890k
    parameters (its first layers read the whole flattened grid, 4,096 numbers), Show, Attend
    and Tell about 174k (an LSTM reading the attended region), the Transformer (two blocks of
    masked self-attention and cross-attention) about 116k.
    """
    check_choice(kind, "decoder", DECODERS)
    check_int(vocab_size, "vocab_size", minimum=5)
    torch.manual_seed(seed)
    if kind == "show_and_tell":
        return Captioner(vocab_size, image_encoder=ImageVector(image_encoder))
    if kind == "attention":
        return AttentionCaptioner(vocab_size, image_encoder)
    return TransformerCaptioner(vocab_size, image_encoder, max_len=MAX_CAPTION_LEN + 1)


def write_captions(
    model: nn.Module,
    inputs: torch.Tensor,
    vocab: Vocabulary,
    beam_width: int = 1,
    length_penalty: float = 0.0,
    batch_size: int = 500,
) -> list[str]:
    """Captions for ``inputs`` (canvases, or stored regions for a model trained on them):
    greedy decoding for ``beam_width=1``, else beam search, on the model's device."""
    check_int(beam_width, "beam_width")
    texts: list[str] = []
    device = device_of(model)
    for part in inputs.split(batch_size):
        part = part.to(device)
        if beam_width == 1:
            ids = greedy_decode(model, part, MAX_CAPTION_LEN)
        else:
            ids = beam_search(
                model, part, MAX_CAPTION_LEN, beam_width=beam_width, length_penalty=length_penalty
            )
        texts += vocab.decode_batch(ids)
    return texts


DECODER_BATCH = 128
"""Canvases per batch when :func:`train_decoder` trains a captioner."""


class BestOnValidation(Callback):
    """After each epoch, caption the validation canvases greedily and record ``val_exact``
    and ``val_bleu4``; keep the weights of the epoch whose captions are exactly right most
    often and put them back when training ends (``history.best_epoch`` says which)."""

    def __init__(
        self, model: nn.Module, val: tuple[torch.Tensor, MNISTCaptions], vocab: Vocabulary
    ):
        inputs, data = val
        if len(inputs) != len(data):
            raise ValueError(f"val inputs ({len(inputs)}) and val data ({len(data)}) must match")
        self.model, self.inputs, self.data, self.vocab = model, inputs, data, vocab
        self.exact, self.epoch, self.weights = -1.0, 0, None

    def on_epoch_end(self, state: FitState, record: dict[str, float]) -> None:
        texts = write_captions(self.model, self.inputs.to(device_of(self.model)), self.vocab)
        report = caption_report_for(texts, self.data)
        record["val_exact"], record["val_bleu4"] = report["exact"], report["bleu4"]
        if report["exact"] > self.exact:  # keep the best epoch's weights, on the CPU
            self.exact, self.epoch = report["exact"], state.epoch
            self.weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        self.model.train()

    def on_fit_end(self, state: FitState, history: History) -> None:
        self.model.cpu().load_state_dict(self.weights)
        history.best_epoch = self.epoch

    def state_dict(self) -> dict[str, object]:
        """The best epoch so far and its weights, for a run that must go on."""
        return {"exact": self.exact, "epoch": self.epoch, "weights": self.weights}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Put back a :meth:`state_dict`."""
        self.exact, self.epoch, self.weights = state["exact"], state["epoch"], state["weights"]


def train_decoder(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    val: tuple[torch.Tensor, MNISTCaptions],
    vocab: Vocabulary,
    lr: float = 3e-3,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
    checkpoint: Path | None = None,
) -> History:
    """Train a captioner with teacher forcing (Adam, a one-cycle learning rate up to ``lr``)
    and keep the epoch whose greedy captions of the validation canvases are exactly right
    most often (:class:`BestOnValidation`). Under torchrun it trains data-parallel, as
    :func:`~mmcourse.train.fit` does.

    Args:
        train: the training canvases (or stored regions) and their reference ids
            ``(N, references, T)``; each batch reads one paraphrase per canvas.
        val: the validation inputs and their :class:`MNISTCaptions` (ground truth).
        checkpoint: a file to save the run to after every epoch, and to go on from if it
            exists (``Loop(checkpoint=...)``).
    """
    check_int(epochs, "epochs")
    check_positive(lr, "lr")
    history = fit(
        model if device is None else model.to(device),
        train,
        loss_fn=sequence_loss,
        optimizer=torch.optim.Adam(model.parameters(), lr=lr),
        epochs=epochs,
        batch_size=DECODER_BATCH,
        callbacks=[
            OneCycle(max_lr=lr),
            BestOnValidation(model, val, vocab),
            PrintEpochs(False, progress),
        ],
        loop=Loop(seed=seed, forward=caption_forward, checkpoint=checkpoint),
    )
    return history  # the best epoch's weights, on the CPU, in eval mode


@torch.no_grad()
def _attention_start(model: nn.Module, image: torch.Tensor) -> object:
    """The decoder's first state for one canvas ``(1, 1, 64, 64)``, in eval mode, checked to
    keep ``attention`` (what :func:`attention_for` and :func:`caption_with_attention` read)."""
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[0] != 1:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be one canvas of shape (1, 1, 64, 64), got {shape}")
    model.eval()
    state = model.init_state(image)
    if not hasattr(state, "attention"):
        raise ValueError(f"{type(model).__name__} keeps no attention weights to show")
    return state


def attention_for(model: nn.Module, image: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
    """Where each word of a given caption looked: feed ``tokens`` (the generated words, no
    ``<bos>``, e.g. a beam search's answer) to the decoder one by one, as when it wrote them,
    and keep its attention over the regions at each step, ``(len(tokens), regions)``.
    ``image`` is one canvas ``(1, 1, 64, 64)``; the model must keep ``state.attention``."""
    if isinstance(tokens, str) or len(tokens) == 0:
        raise ValueError("tokens must be a non-empty list of token ids")
    with torch.no_grad():
        state = _attention_start(model, image)
        fed = [BOS_ID, *tokens[:-1]]  # the word before each generated one
        weights = []
        for token in fed:
            _, state = model.step(torch.tensor([int(token)]), state)
            weights.append(state.attention[0])
    return torch.stack(weights)


def caption_with_attention(
    model: nn.Module, image: torch.Tensor, vocab: Vocabulary, max_len: int = MAX_CAPTION_LEN
) -> tuple[list[str], torch.Tensor]:
    """Caption one canvas ``(1, 1, 64, 64)`` greedily and keep where each word looked.

    Returns the words (``<eos>`` included) and their attention ``(words, regions)``; the model
    must keep ``state.attention`` (the two attention decoders do).
    """
    state = _attention_start(model, image)
    token = torch.tensor([vocab[BOS]])
    words, weights = [], []
    for _ in range(max_len):
        logits, state = model.step(token, state)
        token = logits.argmax(dim=-1)
        words.append(vocab.itos[int(token)])
        weights.append(state.attention[0])
        if words[-1] == EOS:
            break
    return words, torch.stack(weights)
