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

from mmcourse._validate import check_int
from mmcourse.losses import LearnableTemperature
from mmcourse.models.image import CanvasEncoder
from mmcourse.models.pooling import ImageVector
from mmcourse.models.text import TEXT_ENCODERS, build_text_encoder
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
        self.embed_dim = embed_dim
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
        if isinstance(images, torch.Tensor) and isinstance(ids, torch.Tensor):
            if images.shape[:1] != ids.shape[:1]:
                raise ValueError(
                    f"images and ids must hold the same number of pairs, got "
                    f"{images.shape[0] if images.dim() else 0} and {ids.shape[0] if ids.dim() else 0}"
                )
        return self.encode_image(images), self.encode_text(ids), self.logit_scale()

    @staticmethod
    def similarity(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Cosine similarities ``(N_images, N_texts)`` of unit embeddings (``u @ v.T``)."""
        for name, emb in (("image_emb", image_emb), ("text_emb", text_emb)):
            if not isinstance(emb, torch.Tensor) or emb.dim() != 2:
                raise ValueError(f"{name} must be a (N, embed_dim) tensor")
        if image_emb.shape[1] != text_emb.shape[1]:
            raise ValueError(
                f"embeddings must have the same size, got {image_emb.shape[1]} and "
                f"{text_emb.shape[1]}"
            )
        return image_emb @ text_emb.T
