"""A CLIP-style dual encoder: images and captions in one embedding space.

Two towers encode the two modalities separately; a linear projection takes each to the same
``embed_dim``, and L2 normalisation puts every embedding on the unit sphere, so the dot
product of an image and a caption embedding is their cosine similarity::

    image  (B, 1, 64, 64) -> image tower -> W_image -> normalise -> u  (B, embed_dim)
    ids    (B, T)         -> text tower  -> W_text  -> normalise -> v  (B, embed_dim)
    similarity[i, j] = u_i . v_j  in [-1, 1]

Training pulls matching pairs together with CLIP's symmetric InfoNCE loss
(:func:`mmcourse.losses.clip_loss`, Radford et al., 2021), whose logits are
``logit_scale * u @ v.T``; the scale (``1 / temperature``) is learned too
(:class:`mmcourse.losses.LearnableTemperature`).

Because the towers are independent, embeddings can be computed once and compared with one
matrix product, which is what makes retrieval (find the image for a caption, or the caption
for an image) and zero-shot recognition (embed one caption per class, pick the most similar)
cheap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import Dims, check_choice, check_int, check_module, check_sizes
from mmcourse.data.captions import CANVAS
from mmcourse.losses import LearnableTemperature
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.pooling import ImageVector
from mmcourse.models.text import TEXT_ENCODERS, RNNTextEncoder, build_text_encoder
from mmcourse.vocab import PAD_ID


def _check_out_dim(module: nn.Module, name: str) -> int:
    if not isinstance(module, nn.Module):
        raise ValueError(f"{name} must be an nn.Module, got {type(module).__name__}")
    out_dim = getattr(module, "out_dim", None)
    if not isinstance(out_dim, int) or out_dim < 1:
        raise ValueError(f"{name} must have a positive int attribute out_dim, got {out_dim!r}")
    return out_dim


class DualEncoder(nn.Module):
    """Image tower + text tower + projections + a learnable temperature.

    Args:
        vocab_size: size of the caption vocabulary (for the default text tower).
        embed_dim: size of the shared embedding space.
        image_encoder: a module mapping images ``(B, C, H, W)`` to ``(B, out_dim)`` (with an
            ``out_dim`` attribute). Default: a :class:`~mmcourse.models.image.CanvasEncoder`
            with ``image_dim`` features per region and conv widths ``image_channels``, pooled
            by :class:`~mmcourse.models.pooling.ImageVector` with ``pooling`` (``"flatten"``
            keeps where each digit stands, which the captions talk about).
        text_encoder: a module mapping ids ``(B, T)`` to ``(B, out_dim)``, or the name of one
            (:data:`mmcourse.models.text.TEXT_ENCODERS`) built with ``text_dim`` features.
        init_temperature: the starting temperature (CLIP: 0.07, a logit scale of ~14.3).
        learn_temperature: if ``False`` the temperature stays at ``init_temperature``.
        max_scale: cap on the logit scale (CLIP: 100).
        pad_id: padding token of the caption ids (for the default text tower).

    ``forward(images, ids) -> (image_emb (B, E), text_emb (B, E), logit_scale ())`` -- the
    three arguments of :func:`mmcourse.losses.clip_loss`, embeddings of unit length.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        image_encoder: nn.Module | None = None,
        text_encoder: nn.Module | str = "gru",
        image_dim: int = 32,
        image_channels: tuple[int, ...] = (16, 32, 64),
        pooling: str = "flatten",
        text_dim: int = 64,
        init_temperature: float = 0.07,
        learn_temperature: bool = True,
        max_scale: float = 100.0,
        pad_id: int = PAD_ID,
    ) -> None:
        super().__init__()
        check_int(vocab_size, "vocab_size")
        check_int(embed_dim, "embed_dim")
        if image_encoder is None:
            check_int(image_dim, "image_dim")
            image_encoder = ImageVector(CanvasEncoder(image_dim, image_channels), pooling)
        if isinstance(text_encoder, str):
            check_int(text_dim, "text_dim")
            if text_encoder not in TEXT_ENCODERS:
                raise ValueError(
                    f"text_encoder must be a module or one of {TEXT_ENCODERS}, got {text_encoder!r}"
                )
            text_encoder = build_text_encoder(text_encoder, vocab_size, text_dim, pad_id=pad_id)
        image_out = _check_out_dim(image_encoder, "image_encoder")
        text_out = _check_out_dim(text_encoder, "text_encoder")
        self.vocab_size, self.embed_dim = vocab_size, embed_dim
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        # CLIP's projections have no bias: only directions matter after normalisation
        self.image_projection = nn.Linear(image_out, embed_dim, bias=False)
        self.text_projection = nn.Linear(text_out, embed_dim, bias=False)
        # model.logit_scale() is 1 / temperature; model.logit_scale.temperature the temperature
        self.logit_scale = LearnableTemperature(init_temperature, max_scale)
        self.logit_scale.log_scale.requires_grad_(learn_temperature)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` -> unit-length embeddings ``(B, embed_dim)``."""
        return F.normalize(self.image_projection(self.image_encoder(images)), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, T)`` (right-padded) -> unit-length embeddings ``(B, embed_dim)``."""
        return F.normalize(self.text_projection(self.text_encoder(ids)), dim=-1)

    def forward(
        self, images: torch.Tensor, ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(image_emb (B, E), text_emb (B, E), logit_scale ())`` for ``B`` pairs."""
        dims = Dims()
        dims.float(images, "images", "B C H W")
        dims.indices(ids, "ids", "B T")
        return self.encode_image(images), self.encode_text(ids), self.logit_scale()

    @staticmethod
    def similarity(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Cosine similarities ``(N_images, N_texts)`` of unit embeddings (``u @ v.T``)."""
        dims = Dims()
        dims.float(image_emb, "image_emb", "N E")
        dims.float(text_emb, "text_emb", "M E")
        return image_emb @ text_emb.T


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
