"""Fusion: where and how an image vector and a text vector become one.

*Where* the two modalities meet:

- **early fusion** mixes them at the input: :class:`EarlyFusion` paints the question into extra
  channels of the pixels and runs one CNN over both;
- **intermediate fusion** encodes each modality separately and combines the two vectors (or
  the question and a grid of image regions) in the middle of the network -- most modules;
- **late fusion** lets each modality reach its own decision and combines the decisions:
  :class:`LateFusion` adds the answer scores of an image-only and a question-only head.

*How* two vectors meet -- every module is a :class:`Fusion`, an ``nn.Module`` with the same
interface::

    fused = fusion(image, text)   # image (B, image_dim), text (B, text_dim) -> (B, out_dim)

- :class:`ConcatFusion`: ``[x; y]`` -- no weights;
- :class:`SumFusion`: ``W_x x + W_y y + b``, the joint layer -- ``(Dx + Dy) D`` weights;
- :class:`ProductFusion`: ``(W_x x + b_x) * (W_y y + b_y)`` -- ``(Dx + Dy) D`` weights;
- :class:`BilinearFusion`: ``z_k = x^T W_k y + b_k`` (optionally with ``[x; 1]``,
  ``[y; 1]``) -- ``Dx Dy D`` weights;
- :class:`LowRankBilinearFusion`: ``P (s(U x) * s(V y))`` of rank ``r`` --
  ``(Dx + Dy + D) r`` weights;
- :class:`GatedFusion`: ``g * tanh(W_x x) + (1 - g) * tanh(W_y y)`` -- ``2 (Dx + Dy) D``
  weights;
- :class:`ImageOnly`, :class:`TextOnly`: baselines that ignore one input.

(Biases aside; ``Dx``, ``Dy``, ``D``: image, text and output sizes.) Two fusions look at the
image's *grid of regions* ``(B, R, image_dim)`` instead of one vector:
:class:`~mmcourse.models.film.FiLMFusion` and
:class:`~mmcourse.models.cross_attention.CrossAttentionFusion`.
:class:`~mmcourse.models.vqa.VQAModel` puts an image encoder, a question encoder, a fusion and
an answer classifier together.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import check_float, check_int, check_same_batch
from mmcourse.models.image import CanvasEncoder, coordinate_maps


class Fusion(nn.Module):
    """Base class: ``forward(image, text) -> (B, out_dim)``.

    Attributes:
        image_dim, text_dim: sizes of the inputs' last dimension.
        out_dim: size of the fused vector.
        input: what the image side is -- ``"vector"`` ``(B, image_dim)``, ``"regions"``
            ``(B, R, image_dim)`` or ``"pixels"`` ``(B, 1, H, W)``.
        produces_logits: ``True`` when the output already is the answer scores (late fusion),
            so :class:`VQAModel` puts no classifier after it.
    """

    input = "vector"
    produces_logits = False

    def __init__(self, image_dim: int, text_dim: int, out_dim: int) -> None:
        super().__init__()
        check_int(image_dim, "image_dim")
        check_int(text_dim, "text_dim")
        check_int(out_dim, "out_dim")
        self.image_dim, self.text_dim, self.out_dim = image_dim, text_dim, out_dim

    def check(self, image: torch.Tensor, text: torch.Tensor) -> None:
        """Raise a clear ``ValueError`` unless the inputs fit this module."""
        if self.input == "vector":
            check_float(image, "image", ("B", self.image_dim))
        elif self.input == "regions":
            check_float(image, "regions", ("B", "R", self.image_dim))
        check_float(text, "text", ("B", self.text_dim))
        check_same_batch(image, text, "image", "text")

    def extra_repr(self) -> str:
        return f"image_dim={self.image_dim}, text_dim={self.text_dim}, out_dim={self.out_dim}"


# ----------------------------------------------------------------------------- baselines


class ImageOnly(Fusion):
    """A baseline that ignores the question: returns the image vector."""

    def __init__(self, image_dim: int, text_dim: int) -> None:
        super().__init__(image_dim, text_dim, image_dim)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(image, text)
        return image


class TextOnly(Fusion):
    """A baseline that ignores the image: returns the question vector."""

    def __init__(self, image_dim: int, text_dim: int) -> None:
        super().__init__(image_dim, text_dim, text_dim)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(image, text)
        return text


# ----------------------------------------------------------------------------- vector fusions


class ConcatFusion(Fusion):
    """``[x; y]``: the two vectors side by side (``out_dim = image_dim + text_dim``).

    No parameters of its own: whatever comes next (a linear layer) mixes the two.
    """

    def __init__(self, image_dim: int, text_dim: int) -> None:
        super().__init__(image_dim, text_dim, image_dim + text_dim)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(image, text)
        return torch.cat([image, text], dim=1)


class SumFusion(Fusion):
    """The joint layer ``Z = W_x X' + W_y Y' + b``: project both vectors to ``out_dim``, add.

    It *is* a linear layer on the concatenation: ``W [x; y] = W_x x + W_y y`` with
    ``W = [W_x | W_y]``. Sums cannot multiply an image feature by a question feature; only
    layers after it can build such interactions.
    """

    def __init__(self, image_dim: int, text_dim: int, out_dim: int) -> None:
        super().__init__(image_dim, text_dim, out_dim)
        self.image_proj = nn.Linear(image_dim, out_dim)
        self.text_proj = nn.Linear(text_dim, out_dim, bias=False)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(image, text)
        return self.image_proj(image) + self.text_proj(text)


class ProductFusion(Fusion):
    """``(W_x x + b_x) * (W_y y + b_y)``: element-wise (Hadamard) product of two projections.

    Each output multiplies an image feature with a question feature, so the question can
    switch image features on and off.
    """

    def __init__(self, image_dim: int, text_dim: int, out_dim: int) -> None:
        super().__init__(image_dim, text_dim, out_dim)
        self.image_proj = nn.Linear(image_dim, out_dim)
        self.text_proj = nn.Linear(text_dim, out_dim)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(image, text)
        return self.image_proj(image) * self.text_proj(text)


class BilinearFusion(Fusion):
    """Every image feature times every question feature: ``z_k = x^T W_k y + b_k``.

    With ``append_ones=True`` a constant 1 is appended to both vectors first (Tensor Fusion
    Network, Zadeh et al., EMNLP 2017): the outer product ``[x; 1] [y; 1]^T`` then also holds
    ``x``, ``y`` and 1, so the layer learns the linear terms of :class:`SumFusion` as well.

    Computed as TFN does -- flatten the outer product ``x y^T``, then a linear layer -- which
    gives the same numbers as ``nn.Bilinear`` and is faster on a CPU. ``weight`` has shape
    ``(out_dim, image_dim [+1], text_dim [+1])``: the most expressive and by far the largest
    module here.
    """

    def __init__(
        self, image_dim: int, text_dim: int, out_dim: int, append_ones: bool = False
    ) -> None:
        super().__init__(image_dim, text_dim, out_dim)
        self.append_ones = append_ones
        extra = 1 if append_ones else 0
        self.weight = nn.Parameter(torch.empty(out_dim, image_dim + extra, text_dim + extra))
        self.bias = nn.Parameter(torch.empty(out_dim))
        bound = 1.0 / math.sqrt(image_dim + extra)  # nn.Bilinear's initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(image, text)
        if self.append_ones:
            image = F.pad(image, (0, 1), value=1.0)
            text = F.pad(text, (0, 1), value=1.0)
        outer = (image[:, :, None] * text[:, None, :]).flatten(1)  # (B, Dx * Dy)
        return F.linear(outer, self.weight.flatten(1), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", append_ones={self.append_ones}"


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "none": lambda x: x,
}


class LowRankBilinearFusion(Fusion):
    """Low-rank bilinear pooling (MLB, Kim et al., ICLR 2017): ``P (s(U x) * s(V y)) + c``.

    ``U`` and ``V`` project both vectors to ``rank`` dimensions, ``s`` is an activation
    (``"none"`` by default; MLB uses ``"tanh"``), ``*`` the element-wise product and ``P``
    maps the product to ``out_dim``. Without the activation and biases this is exactly a
    bilinear form
    whose weight ``W_k = sum_j P_kj u_j v_j^T`` has rank at most ``rank``: with
    ``rank = image_dim * text_dim`` it can represent *any* bilinear form, with a small rank it
    costs ``(image_dim + text_dim + out_dim) * rank`` parameters instead of
    ``image_dim * text_dim * out_dim``.
    """

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        out_dim: int,
        rank: int = 64,
        activation: str = "none",
        bias: bool = True,
    ) -> None:
        super().__init__(image_dim, text_dim, out_dim)
        check_int(rank, "rank")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(_ACTIVATIONS)}, got {activation!r}")
        self.rank, self.activation = rank, activation
        self.image_proj = nn.Linear(image_dim, rank, bias=bias)
        self.text_proj = nn.Linear(text_dim, rank, bias=bias)
        self.out_proj = nn.Linear(rank, out_dim, bias=bias)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(image, text)
        act = _ACTIVATIONS[self.activation]
        return self.out_proj(act(self.image_proj(image)) * act(self.text_proj(text)))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", rank={self.rank}, activation={self.activation!r}"


class GatedFusion(Fusion):
    """A learned gate chooses, feature by feature, how much comes from each modality.

    Gated Multimodal Unit (Arevalo et al., ICLR workshop 2017)::

        h_x = tanh(W_x x),  h_y = tanh(W_y y),  g = sigmoid(W_g [x; y])
        z   = g * h_x + (1 - g) * h_y

    Each output is a convex combination of an image feature and a question feature;
    :meth:`gate` returns ``g`` so one can see which modality each example leans on.
    """

    def __init__(self, image_dim: int, text_dim: int, out_dim: int) -> None:
        super().__init__(image_dim, text_dim, out_dim)
        self.image_proj = nn.Linear(image_dim, out_dim)
        self.text_proj = nn.Linear(text_dim, out_dim)
        self.gate_proj = nn.Linear(image_dim + text_dim, out_dim)

    def gate(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``(B, out_dim)`` in (0, 1): the weight of the image side of each output."""
        self.check(image, text)
        return torch.sigmoid(self.gate_proj(torch.cat([image, text], dim=1)))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        g = self.gate(image, text)
        return g * torch.tanh(self.image_proj(image)) + (1 - g) * torch.tanh(self.text_proj(text))


class LateFusion(Fusion):
    """Decision-level fusion: an image-only head and a question-only head each score every
    answer; the scores are added (a product of the two softmax "experts").

    ``out_dim`` is the number of answers and :class:`VQAModel` uses the output as its logits.
    No score can depend on image *and* question together, so a question like "which digit is
    on the left?" is out of its reach.
    """

    produces_logits = True

    def __init__(self, image_dim: int, text_dim: int, n_answers: int, hidden: int = 64) -> None:
        super().__init__(image_dim, text_dim, n_answers)
        check_int(hidden, "hidden")
        self.image_head = nn.Sequential(
            nn.Linear(image_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_answers)
        )
        self.text_head = nn.Sequential(
            nn.Linear(text_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_answers)
        )

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(image, text)
        return self.image_head(image) + self.text_head(text)


# ----------------------------------------------------------------------------- early fusion


class EarlyFusion(Fusion):
    """Fuse before any vision happens: the question becomes extra input channels of the image.

    The question vector is mapped to ``question_channels`` numbers, each painted as a constant
    map over the canvas; with two coordinate maps and the pixels they form the input of a
    fresh :class:`~mmcourse.models.image.CanvasEncoder`, whose averaged region vectors are the
    fused vector. Every question needs its own pass through the CNN: nothing about the image
    can be computed once and reused.

    ``forward(images (B, 1, H, W), text (B, text_dim)) -> (B, out_dim)``.
    """

    input = "pixels"

    def __init__(
        self,
        text_dim: int,
        out_dim: int = 64,
        channels: tuple[int, ...] = (16, 32, 64),
        question_channels: int = 8,
    ) -> None:
        super().__init__(1, text_dim, out_dim)
        check_int(question_channels, "question_channels")
        self.question_channels = question_channels
        self.to_channels = nn.Linear(text_dim, question_channels)
        self.encoder = CanvasEncoder(
            out_dim=out_dim, channels=channels, in_channels=1 + 2 + question_channels
        )

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        check_float(images, "images", ("B", 1, "H", "W"))
        check_float(text, "text", ("B", self.text_dim))
        check_same_batch(images, text, "images", "text")
        b, _, h, w = images.shape
        painted = self.to_channels(text)[:, :, None, None].expand(-1, -1, h, w)
        coords = coordinate_maps(b, h, w, images.device)
        return self.encoder(torch.cat([images, coords, painted], dim=1))
