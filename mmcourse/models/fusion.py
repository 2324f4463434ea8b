"""Fusion: where and how an image vector and a text vector become one.

*Where* the two modalities meet:

- **early fusion** mixes them at the input: :class:`EarlyFusion` paints the question into extra
  channels of the pixels and runs one CNN over both;
- **intermediate fusion** encodes each modality separately and combines the two vectors (or
  the question and a grid of image regions) in the middle of the network -- most modules here;
- **late fusion** lets each modality reach its own decision and combines the decisions:
  :class:`LateFusion` adds the answer scores of an image-only and a question-only head.

*How* two vectors meet -- every module here is an ``nn.Module`` with the same interface::

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

(Biases aside; ``Dx``, ``Dy``, ``D``: image, text and output sizes.)

Two modules look at the image's *grid of regions* ``(B, R, image_dim)`` (what
:meth:`~mmcourse.models.image.CanvasEncoder.forward_grid` returns) instead of one vector:

- :class:`FiLMFusion` -- the question predicts a per-channel scale and shift of the image's
  feature maps (:class:`FiLM`, Perez et al., AAAI 2018);
- :class:`CrossAttentionFusion` -- the question attends over the regions and reads a weighted
  mean of them.

:class:`VQAModel` puts an image encoder, a question encoder, a fusion module and an answer
classifier together; :class:`CanvasBackbone` is the image encoder it expects, and
:class:`CanvasLookup` lets it read stored features by canvas index.
:func:`find_unregistered_modules` finds layers hidden in plain Python lists, which PyTorch
never registers (so they are never trained). :func:`plot_fusion_stages` draws the three
places where modalities can meet.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import check_int, check_no_nan, check_probability, check_tensor
from mmcourse.data.vqa import ATTRIBUTE_CLASSES
from mmcourse.models.image import CanvasEncoder

INPUTS = ("vector", "regions", "pixels")
"""What a fusion module takes from the image side: one vector, a grid of regions, or pixels."""


# ----------------------------------------------------------------------------- checks


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        check_int(value, name)


def _check_matrix(x: object, dim: int, name: str) -> torch.Tensor:
    check_tensor(x, name)
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (B, {dim}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got {x.dtype}")
    return x


def _check_regions(x: object, dim: int, name: str = "regions") -> torch.Tensor:
    check_tensor(x, name)
    if x.dim() != 3 or x.shape[2] != dim:
        raise ValueError(
            f"{name} must have shape (B, R, {dim}) (one vector per image region), "
            f"got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got {x.dtype}")
    return x


def _check_batch(image: torch.Tensor, text: torch.Tensor) -> None:
    if image.shape[0] != text.shape[0]:
        raise ValueError(
            f"image and text must hold the same number of examples, got batch sizes "
            f"{image.shape[0]} and {text.shape[0]}"
        )


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
        _check_positive(image_dim=image_dim, text_dim=text_dim, out_dim=out_dim)
        self.image_dim, self.text_dim, self.out_dim = image_dim, text_dim, out_dim

    def check(self, image: torch.Tensor, text: torch.Tensor) -> None:
        """Raise a clear ``ValueError`` unless the inputs fit this module."""
        if self.input == "vector":
            _check_matrix(image, self.image_dim, "image")
        elif self.input == "regions":
            _check_regions(image, self.image_dim)
        _check_matrix(text, self.text_dim, "text")
        _check_batch(image, text)

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
        _check_positive(rank=rank)
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
        _check_positive(hidden=hidden)
        self.image_head = nn.Sequential(
            nn.Linear(image_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_answers)
        )
        self.text_head = nn.Sequential(
            nn.Linear(text_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_answers)
        )

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(image, text)
        return self.image_head(image) + self.text_head(text)


# ----------------------------------------------------------------------------- FiLM


class FiLM(nn.Module):
    """Feature-wise linear modulation: ``FiLM(F, c) = gamma(c) * F + beta(c)`` per channel.

    A linear layer turns the condition ``c`` (the question vector) into one scale ``gamma``
    and one shift ``beta`` per channel; every position of that channel's feature map is
    scaled and shifted alike. ``gamma`` starts near 1 (its bias is initialised to 1), so an
    untrained FiLM layer lets the features through almost unchanged.

    ``forward(maps (B, C, H, W), cond (B, cond_dim)) -> (B, C, H, W)``.
    """

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        _check_positive(cond_dim=cond_dim, channels=channels)
        self.cond_dim, self.channels = cond_dim, channels
        self.to_scale_shift = nn.Linear(cond_dim, 2 * channels)
        with torch.no_grad():
            self.to_scale_shift.bias[:channels].fill_(1.0)
            self.to_scale_shift.bias[channels:].zero_()

    def scale_shift(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``gamma, beta``: two ``(B, channels)`` tensors."""
        _check_matrix(cond, self.cond_dim, "cond")
        gamma, beta = self.to_scale_shift(cond).chunk(2, dim=1)
        return gamma, beta

    def forward(self, maps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if not isinstance(maps, torch.Tensor) or maps.dim() != 4 or maps.shape[1] != self.channels:
            shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
            raise ValueError(f"maps must have shape (B, {self.channels}, H, W), got {shape}")
        gamma, beta = self.scale_shift(cond)
        _check_batch(maps, cond)
        return gamma[:, :, None, None] * maps + beta[:, :, None, None]

    def extra_repr(self) -> str:
        return f"cond_dim={self.cond_dim}, channels={self.channels}"


def coordinate_maps(batch: int, height: int, width: int, device=None) -> torch.Tensor:
    """``(batch, 2, height, width)``: the x and y coordinate of every position, in [-1, 1].

    Convolutions do not know *where* they are; appending these two maps (as FiLM and
    "CoordConv" do) lets a layer tell the left of the canvas from its right.
    """
    _check_positive(batch=batch, height=height, width=width)
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y])[None].expand(batch, -1, -1, -1)


class FiLMBlock(nn.Module):
    """A residual block whose feature maps the question modulates (Perez et al.'s ResBlock)::

        x1 = relu(conv1x1([x, coords]));  x2 = FiLM(batchnorm(conv(x1)), q);  out = x + relu(x2)

    The batch norm has no scale and shift of its own: FiLM provides them.
    """

    def __init__(self, channels: int, cond_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        _check_positive(channels=channels, cond_dim=cond_dim, kernel_size=kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (to keep the map size), got {kernel_size}")
        self.conv1 = nn.Conv2d(channels + 2, channels, kernel_size=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.film = FiLM(cond_dim, channels)

    def forward(self, maps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, _, h, w = maps.shape
        x = torch.relu(self.conv1(torch.cat([maps, coordinate_maps(b, h, w, maps.device)], 1)))
        return maps + torch.relu(self.film(self.norm(self.conv2(x)), cond))


def _check_grid(grid_size: tuple[int, int]) -> tuple[int, int]:
    if (
        not isinstance(grid_size, (tuple, list))
        or len(grid_size) != 2
        or not all(isinstance(s, int) and s > 0 for s in grid_size)
    ):
        raise ValueError(f"grid_size must be (height, width) of positive ints, got {grid_size!r}")
    return int(grid_size[0]), int(grid_size[1])


class FiLMFusion(Fusion):
    """FiLM on the image's region grid: the question rescales and shifts the feature maps.

    The regions ``(B, R, image_dim)`` are laid back out as maps ``(B, image_dim, h, w)``; a
    1x1 convolution (with the two coordinate maps appended) makes ``channels`` maps, then
    ``blocks`` :class:`FiLMBlock` s modulate them by the question, and a max over positions
    gives the fused vector ``(B, channels)``.
    """

    input = "regions"

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        grid_size: tuple[int, int] = (8, 8),
        channels: int = 32,
        blocks: int = 1,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(image_dim, text_dim, channels)
        _check_positive(blocks=blocks)
        self.grid_size = _check_grid(grid_size)
        self.stem = nn.Conv2d(image_dim + 2, channels, kernel_size=1)
        self.blocks = nn.ModuleList(
            FiLMBlock(channels, text_dim, kernel_size) for _ in range(blocks)
        )

    def forward(self, regions: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(regions, text)
        b, r, d = regions.shape
        h, w = self.grid_size
        if r != h * w:
            raise ValueError(f"expected {h}x{w} = {h * w} regions, got {r}")
        maps = regions.transpose(1, 2).reshape(b, d, h, w)
        x = torch.relu(self.stem(torch.cat([maps, coordinate_maps(b, h, w, maps.device)], 1)))
        for block in self.blocks:
            x = block(x, text)
        return x.amax(dim=(2, 3))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", grid_size={self.grid_size}"


# ----------------------------------------------------------------------------- cross-attention


class CrossAttentionFusion(Fusion):
    """The question looks over the image regions and reads what it needs.

    With a query from the question and a key and a value for each region ``i``::

        q = W_q y,  k_i = W_k (v_i + p_i),  a = softmax_i(q . k_i / sqrt(d))
        v = sum_i a_i v_i,   z = (W_v v) * (W_y y)

    ``p_i`` is a learned position embedding of region ``i`` (without it a region's vector says
    what it shows but not where, and "on the left" could not be found); the final product
    combines what was read with the question, as Anderson et al.'s bottom-up top-down model
    does (CVPR 2018). :meth:`attention` returns the weights ``a`` ``(B, R)``.

    Args:
        n_regions: the number of regions ``R`` (for the position embedding); ``None``: no
            position embedding.
        attn_dim: size ``d`` of queries and keys.
    """

    input = "regions"

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        out_dim: int,
        n_regions: int | None = 64,
        attn_dim: int = 32,
    ) -> None:
        super().__init__(image_dim, text_dim, out_dim)
        _check_positive(attn_dim=attn_dim)
        if n_regions is not None:
            _check_positive(n_regions=n_regions)
        self.n_regions, self.attn_dim = n_regions, attn_dim
        if n_regions is not None:
            self.positions = nn.Parameter(torch.randn(n_regions, image_dim) * 0.1)
        else:
            self.register_parameter("positions", None)
        self.query = nn.Linear(text_dim, attn_dim)
        self.key = nn.Linear(image_dim, attn_dim, bias=False)
        self.value_proj = nn.Linear(image_dim, out_dim)
        self.text_proj = nn.Linear(text_dim, out_dim)

    def attention(
        self, regions: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, R)`` attention weights, each row summing to 1.

        ``mask`` ``(B, R)`` bool, ``True`` where a region may be looked at; regions marked
        ``False`` get weight exactly 0 (each row needs at least one ``True``).
        """
        self.check(regions, text)
        keys_in = regions
        if self.positions is not None:
            if regions.shape[1] != self.n_regions:
                raise ValueError(
                    f"expected {self.n_regions} regions (the position embedding's size), "
                    f"got {regions.shape[1]}"
                )
            keys_in = regions + self.positions
        scores = torch.einsum("brd,bd->br", self.key(keys_in), self.query(text))
        scores = scores / math.sqrt(self.attn_dim)
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                raise ValueError("mask must be a bool tensor (True = region may be attended)")
            if mask.shape != scores.shape:
                raise ValueError(
                    f"mask must have shape {tuple(scores.shape)} (B, R), got {tuple(mask.shape)}"
                )
            if not mask.any(dim=1).all():
                raise ValueError("every row of mask needs at least one True region")
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.softmax(scores, dim=1)

    def forward(
        self, regions: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        weights = self.attention(regions, text, mask)
        read = torch.einsum("br,brd->bd", weights, regions)
        return self.value_proj(read) * self.text_proj(text)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_regions={self.n_regions}, attn_dim={self.attn_dim}"


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
        _check_positive(question_channels=question_channels)
        self.question_channels = question_channels
        self.to_channels = nn.Linear(text_dim, question_channels)
        self.encoder = CanvasEncoder(
            out_dim=out_dim, channels=channels, in_channels=1 + 2 + question_channels
        )

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
            raise ValueError(f"images must have shape (B, 1, H, W), got {shape}")
        _check_matrix(text, self.text_dim, "text")
        _check_batch(images, text)
        b, _, h, w = images.shape
        painted = self.to_channels(text)[:, :, None, None].expand(-1, -1, h, w)
        coords = coordinate_maps(b, h, w, images.device)
        return self.encoder(torch.cat([images, coords, painted], dim=1))


# ----------------------------------------------------------------------------- a backbone


class CanvasBackbone(nn.Module):
    """An image encoder that gives both a grid of regions and one vector per canvas.

    ``forward_grid(images) -> (B, R, region_dim)`` is the
    :class:`~mmcourse.models.image.CanvasEncoder` grid (what attention and FiLM look at);
    ``vector(regions) -> (B, out_dim)`` flattens the grid (so every region keeps its place)
    and projects it with a linear layer, as VGG's fully connected layers turn its last feature
    maps into one vector. ``forward(images) = vector(forward_grid(images))``.
    """

    def __init__(
        self,
        encoder: CanvasEncoder | None = None,
        out_dim: int = 64,
        image_size: tuple[int, int] = (64, 64),
    ) -> None:
        super().__init__()
        _check_positive(out_dim=out_dim)
        self.encoder = encoder if encoder is not None else CanvasEncoder(64, (16, 32, 64))
        self.image_size = _check_grid(image_size)
        self.grid_size = self.encoder.grid_size(*self.image_size)
        if min(self.grid_size) < 1:
            raise ValueError(f"images of {self.image_size} are too small for this encoder")
        self.n_regions = self.grid_size[0] * self.grid_size[1]
        self.region_dim, self.out_dim = self.encoder.out_dim, out_dim
        self.to_vector = nn.Sequential(
            nn.Flatten(), nn.Linear(self.n_regions * self.region_dim, out_dim)
        )

    def forward_grid(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> regions ``(B, R, region_dim)``, row-major (top-left first)."""
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            if tuple(images.shape[-2:]) != self.image_size:
                raise ValueError(
                    f"expected images of size {self.image_size}, got {tuple(images.shape[-2:])}"
                )
        return self.encoder.forward_grid(images)

    def vector(self, regions: torch.Tensor) -> torch.Tensor:
        """Regions ``(B, R, region_dim)`` -> one vector ``(B, out_dim)`` per canvas."""
        _check_regions(regions, self.region_dim)
        if regions.shape[1] != self.n_regions:
            raise ValueError(f"expected {self.n_regions} regions, got {regions.shape[1]}")
        return self.to_vector(regions)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.vector(self.forward_grid(images))

    @torch.no_grad()
    def store_regions(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """The regions ``(N, R, region_dim)`` of many canvases ``(N, 1, H, W)``, computed batch
        by batch in eval mode without gradients (on the backbone's device), returned on the
        CPU: run a frozen backbone once, reuse its output for every question and model."""
        _check_positive(batch_size=batch_size)
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            parts = [self.forward_grid(x.to(device)).cpu() for x in images.split(batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(parts)


class SlotAttributeHead(nn.Module):
    """Reads what stands in each slot from an image vector: for each of the 3 slots, logits
    over digit (11 classes: empty or 0-9), size, thickness and slant (each "empty" or a
    value), the targets of :func:`mmcourse.data.vqa.slot_targets`.

    ``forward(vector (B, in_dim)) -> (B, 3, 22)``; :func:`slot_attribute_loss` scores it.
    A backbone trained with it learns to *see* the canvas, as VQA backbones are pretrained to
    name objects and their attributes before any question is asked.
    """

    def __init__(self, in_dim: int, slots: int = 3) -> None:
        super().__init__()
        _check_positive(in_dim=in_dim, slots=slots)
        self.slots = slots
        self.linear = nn.Linear(in_dim, slots * sum(ATTRIBUTE_CLASSES))

    def forward(self, vector: torch.Tensor) -> torch.Tensor:
        _check_matrix(vector, self.linear.in_features, "vector")
        return self.linear(vector).view(len(vector), self.slots, sum(ATTRIBUTE_CLASSES))


def _split_attributes(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    width = sum(ATTRIBUTE_CLASSES)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or logits.shape[2] != width:
        raise ValueError(f"logits must have shape (B, slots, {width})")
    if not isinstance(targets, torch.Tensor) or targets.shape != (*logits.shape[:2], 4):
        raise ValueError(
            f"targets must have shape {(*logits.shape[:2], 4)} (B, slots, 4 attributes), got "
            f"{tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets)}"
        )
    check_no_nan(logits, "logits")
    return logits.split(ATTRIBUTE_CLASSES, dim=2)


def slot_attribute_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over the 4 attributes of the cross-entropy, averaged over slots and canvases."""
    parts = _split_attributes(logits, targets)
    return sum(
        F.cross_entropy(part.reshape(-1, part.shape[-1]), targets[..., i].reshape(-1))
        for i, part in enumerate(parts)
    )


def slot_attribute_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(4,)``: accuracy of digit, size, thickness and slant over all slots (empty included)."""
    parts = _split_attributes(logits, targets)
    return torch.stack(
        [(part.argmax(-1) == targets[..., i]).float().mean() for i, part in enumerate(parts)]
    )


# ----------------------------------------------------------------------------- the VQA model


class VQAModel(nn.Module):
    """Visual question answering: image encoder + question encoder + fusion + classifier.

    ``forward(images, questions) -> (B, n_answers)`` logits. ``images`` is either

    - raw canvases ``(B, 1, H, W)``: they go through ``image_encoder`` (a
      :class:`CanvasBackbone`), or
    - the regions ``(B, R, D)`` that ``image_encoder.forward_grid`` already returned (e.g.
      stored once per canvas when the encoder is frozen).

    A ``"vector"`` fusion gets ``image_encoder.vector(regions)``, a ``"regions"`` fusion the
    regions themselves, a ``"pixels"`` fusion (:class:`EarlyFusion`) the raw canvases (and
    then ``image_encoder`` must be ``None``).

    Args:
        question_encoder: ``ids (B, T) -> (B, text_dim)``, e.g. a bag of words or a GRU.
        fusion: a :class:`Fusion`.
        n_answers: size of the answer vocabulary.
        image_encoder: a :class:`CanvasBackbone`, or ``None`` for early fusion.
        hidden: width of the classifier's hidden layer (``0``: a single linear layer).
        freeze_image_encoder: keep the image encoder's weights (and batch-norm statistics)
            fixed, so only the question encoder, fusion and classifier learn.
    """

    def __init__(
        self,
        question_encoder: nn.Module,
        fusion: Fusion,
        n_answers: int,
        image_encoder: CanvasBackbone | None = None,
        hidden: int = 64,
        dropout: float = 0.0,
        freeze_image_encoder: bool = True,
    ) -> None:
        super().__init__()
        _check_positive(n_answers=n_answers)
        if not isinstance(fusion, Fusion):
            raise ValueError(f"fusion must be a Fusion module, got {type(fusion).__name__}")
        if fusion.input == "pixels" and image_encoder is not None:
            raise ValueError("early fusion reads the pixels itself: pass image_encoder=None")
        if fusion.input != "pixels" and image_encoder is None:
            raise ValueError(f"a {fusion.input!r} fusion needs an image_encoder (CanvasBackbone)")
        text_dim = getattr(question_encoder, "out_dim", None)
        if text_dim != fusion.text_dim:
            raise ValueError(
                f"the question encoder gives {text_dim}-d vectors, the fusion expects "
                f"text_dim={fusion.text_dim}"
            )
        if image_encoder is not None:
            want = image_encoder.region_dim if fusion.input == "regions" else image_encoder.out_dim
            if want != fusion.image_dim:
                raise ValueError(
                    f"the image encoder gives {want}-d {fusion.input}s, the fusion expects "
                    f"image_dim={fusion.image_dim}"
                )
        if fusion.produces_logits and fusion.out_dim != n_answers:
            raise ValueError(f"late fusion must output n_answers={n_answers} scores")
        check_int(hidden, "hidden", minimum=0)
        check_probability(dropout, "dropout")
        self.question_encoder, self.fusion, self.image_encoder = (
            question_encoder,
            fusion,
            image_encoder,
        )
        self.n_answers, self.freeze_image_encoder = n_answers, freeze_image_encoder
        if fusion.produces_logits:
            self.classifier: nn.Module = nn.Identity()
        elif hidden:
            self.classifier = nn.Sequential(
                nn.Linear(fusion.out_dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_answers),
            )
        else:
            self.classifier = nn.Linear(fusion.out_dim, n_answers)
        if image_encoder is not None and freeze_image_encoder:
            image_encoder.requires_grad_(False)
            image_encoder.eval()

    def train(self, mode: bool = True) -> VQAModel:
        super().train(mode)
        if self.image_encoder is not None and self.freeze_image_encoder:
            self.image_encoder.eval()  # a frozen encoder keeps its batch-norm statistics
        return self

    def image_input(self, images: torch.Tensor) -> torch.Tensor:
        """What the fusion gets on the image side (see the class docstring)."""
        if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
            raise ValueError(
                f"images must be canvases (B, 1, H, W) or regions (B, R, D), got {shape}"
            )
        if self.fusion.input == "pixels":
            if images.dim() != 4:
                raise ValueError("early fusion needs the raw canvases (B, 1, H, W), not regions")
            return images
        regions = images if images.dim() == 3 else self.image_encoder.forward_grid(images)
        return regions if self.fusion.input == "regions" else self.image_encoder.vector(regions)

    def forward(self, images: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        fused = self.fusion(self.image_input(images), self.question_encoder(questions))
        return self.classifier(fused)


class CanvasLookup(nn.Module):
    """A :class:`VQAModel` that takes canvas *indices*: ``lookup(canvas, questions) =
    model(table[canvas], questions)``.

    ``table`` holds one entry per canvas: the regions ``(N, R, D)`` a frozen image encoder
    gave once (:meth:`CanvasBackbone.store_regions`), or the canvases ``(N, 1, H, W)``
    themselves. Each canvas has about ten questions, so storing per canvas and looking up per
    question saves memory and, for regions, reruns of the encoder. ``table`` is a
    non-persistent buffer (it moves with ``.to(device)``, is not saved); the parameters are
    the model's.
    """

    def __init__(self, model: VQAModel, table: torch.Tensor) -> None:
        super().__init__()
        if not isinstance(model, VQAModel):
            raise ValueError(f"model must be a VQAModel, got {type(model).__name__}")
        if not isinstance(table, torch.Tensor) or not table.is_floating_point():
            raise ValueError("table must be a float tensor: regions (N, R, D) or canvases")
        if table.dim() == 3:
            if model.image_encoder is None:
                raise ValueError("early fusion reads pixels: give it canvases (N, 1, H, W)")
            _check_regions(table, model.image_encoder.region_dim, "table")
        elif table.dim() != 4:
            raise ValueError(
                f"table must hold regions (N, R, D) or canvases (N, 1, H, W), got "
                f"{tuple(table.shape)}"
            )
        self.model = model
        self.register_buffer("table", table, persistent=False)

    def forward(self, canvas: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        if not isinstance(canvas, torch.Tensor) or canvas.dim() != 1 or canvas.is_floating_point():
            raise ValueError("canvas must be a 1-D tensor of canvas indices")
        if len(canvas) and (canvas.min() < 0 or canvas.max() >= len(self.table)):
            raise ValueError(
                f"canvas indices must lie in 0..{len(self.table) - 1}, got "
                f"{int(canvas.min())}..{int(canvas.max())}"
            )
        return self.model(self.table[canvas], questions)


# ----------------------------------------------------------------------------- registration


def _hides_parameters(value: object, depth: int = 0) -> bool:
    if isinstance(value, (nn.Module, nn.Parameter)):
        return True
    if isinstance(value, torch.Tensor):
        return value.requires_grad
    if depth < 3 and isinstance(value, (list, tuple, set, dict)):
        items = value.values() if isinstance(value, dict) else value
        return any(_hides_parameters(item, depth + 1) for item in items)
    return False


def find_unregistered_modules(model: nn.Module) -> list[str]:
    """Names of attributes that hold layers or parameters PyTorch does not know about.

    ``self.heads = [nn.Linear(4, 4), ...]`` (a plain list, tuple or dict, also nested) hides
    its layers: they are missing from ``model.parameters()`` -- so no optimizer trains
    them -- from ``model.to(device)`` and from ``state_dict()``. The same holds for a plain
    tensor with ``requires_grad=True`` kept as an attribute. Use ``nn.ModuleList``,
    ``nn.ModuleDict``, ``nn.ParameterList`` or ``nn.Parameter`` instead.

    Returns dotted names such as ``["fusion.heads"]``; ``[]`` when everything is registered.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    found = []
    for prefix, module in model.named_modules():
        for key, value in vars(module).items():
            if key.startswith("_") or isinstance(value, nn.Module):
                continue
            if isinstance(value, (list, tuple, set, dict)) or isinstance(value, torch.Tensor):
                if _hides_parameters(value):
                    found.append(f"{prefix}.{key}" if prefix else key)
    return found


# ----------------------------------------------------------------------------- a diagram

_STAGES = {
    "early fusion": [
        ("image", 0.25, 0.92, "data"),
        ("question", 0.75, 0.92, "data"),
        ("pixels + question\nchannels", 0.5, 0.68, "fuse"),
        ("one CNN", 0.5, 0.46, "model"),
        ("answer", 0.5, 0.08, "data"),
    ],
    "intermediate fusion": [
        ("image", 0.25, 0.92, "data"),
        ("question", 0.75, 0.92, "data"),
        ("image\nencoder", 0.25, 0.68, "model"),
        ("question\nencoder", 0.75, 0.68, "model"),
        ("fusion", 0.5, 0.46, "fuse"),
        ("classifier", 0.5, 0.27, "model"),
        ("answer", 0.5, 0.08, "data"),
    ],
    "late fusion": [
        ("image", 0.25, 0.92, "data"),
        ("question", 0.75, 0.92, "data"),
        ("image\nmodel", 0.25, 0.68, "model"),
        ("question\nmodel", 0.75, 0.68, "model"),
        ("scores", 0.25, 0.46, "data"),
        ("scores", 0.75, 0.46, "data"),
        ("+", 0.5, 0.27, "fuse"),
        ("answer", 0.5, 0.08, "data"),
    ],
}
_EDGES = {
    "early fusion": [(0, 2), (1, 2), (2, 3), (3, 4)],
    "intermediate fusion": [(0, 2), (1, 3), (2, 4), (3, 4), (4, 5), (5, 6)],
    "late fusion": [(0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 6), (6, 7)],
}


def plot_fusion_stages():
    """A figure of the three places where two modalities can meet (early, intermediate,
    late); the fusion step is orange. Returns the ``matplotlib`` Figure."""
    import matplotlib.pyplot as plt  # only this diagram needs matplotlib

    colours = {"data": "#e8e8e8", "model": "#9ecae1", "fuse": "#fdae6b"}
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4), layout="constrained")
    for ax, (title, boxes) in zip(axes, _STAGES.items()):
        ax.set_title(title)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.axis("off")
        labels = [
            ax.text(
                x,
                y,
                text,
                ha="center",
                va="center",
                fontsize=8,
                bbox={"boxstyle": "round,pad=0.35", "fc": colours[kind], "ec": "0.4"},
            )
            for text, x, y, kind in boxes
        ]
        for a, b in _EDGES[title]:
            ax.annotate(
                "",
                xy=(0.5, 1.0),
                xycoords=labels[b],
                xytext=(0.5, 0.0),
                textcoords=labels[a],
                arrowprops={"arrowstyle": "->", "color": "0.3", "shrinkA": 4, "shrinkB": 4},
            )
    return fig
