"""Joint representations: one vector space shared by images and text.

Chapter 01 makes the idea tangible, chapter 02 does its maths:

- :func:`cosine_similarity_matrix`, :func:`nearest`  -- the geometry of a shared space
- :class:`DigitWordSpace` -- MNIST digits and the ten number words embedded in one small space;
  a cross-entropy on its logits is a contrastive objective (chapter 01 trains it with
  :func:`mmcourse.train.fit`)
- :class:`JointLinear`, :func:`split_concat_weight`  -- the joint layer
  ``Z = W_X X' + W_Y Y' + b`` and its equivalence with "concatenate, then one linear layer"
- :func:`joint_linear_backward`, :func:`squared_error_grad`, :func:`softmax_cross_entropy_grad`
  -- the joint layer's gradients derived by hand (chapter 02 checks them against autograd)
- :func:`make_toy_pairs`, :func:`align_pairs`, :func:`pair_alignment_loss` -- a 2-D toy with two
  "modalities" whose paired points a learned ``W_X``, ``W_Y`` bring together
- :func:`plot_shared_space`, :func:`plot_pairs` -- pictures of a 2-D shared space

Shapes follow PyTorch's row convention: a batch of ``B`` feature vectors is a ``(B, d)`` tensor
and a weight matrix ``W`` of shape ``(k, d)`` maps it to ``x @ W.T`` of shape ``(B, k)``; for one
column vector this is the textbook ``W x``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import Tensor, nn

from mmcourse._validate import (
    Dims,
    check_float,
    check_index_range,
    check_int,
    check_nonnegative,
    check_positive,
    is_int,
    require,
)
from mmcourse.data.captions import NUMBER_WORDS
from mmcourse.losses import clip_loss

__all__ = [
    "DigitWordSpace",
    "JointGradients",
    "JointLinear",
    "ToyPairs",
    "align_pairs",
    "cosine_similarity_matrix",
    "joint_linear_backward",
    "make_toy_pairs",
    "nearest",
    "pair_alignment_loss",
    "plot_pairs",
    "plot_shared_space",
    "softmax_cross_entropy_grad",
    "split_concat_weight",
    "squared_error_grad",
]


# ----------------------------------------------------------------------------- geometry


def cosine_similarity_matrix(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """All pairwise cosine similarities between the rows of ``a`` and the rows of ``b``.

    ``a`` is ``(N, d)``, ``b`` is ``(M, d)``; the result ``S`` is ``(N, M)`` with
    ``S[i, j] = a_i . b_j / (|a_i| |b_j|)``, a number in ``[-1, 1]``: the cosine of the angle
    between the two vectors. Each row is divided by ``max(|row|, eps)``, so a zero row gives
    similarity 0 rather than a division by zero.

    >>> cosine_similarity_matrix(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0], [3.0, 0.0]]))
    tensor([[0., 1.]])
    """
    dims = Dims()
    dims.float(a, "a", "N D")
    dims.float(b, "b", "M D")
    check_positive(eps, "eps")
    a_unit = a / a.norm(dim=1, keepdim=True).clamp_min(eps)
    b_unit = b / b.norm(dim=1, keepdim=True).clamp_min(eps)
    return a_unit @ b_unit.T


def nearest(queries: Tensor, keys: Tensor, k: int = 1) -> Tensor:
    """Indices ``(N, k)`` of the ``k`` rows of ``keys`` (``(M, d)``) most cosine-similar to
    each row of ``queries`` (``(N, d)``), most similar first. This is retrieval in a shared
    space: words as queries and images as keys find images for a word, and vice versa."""
    similarity = cosine_similarity_matrix(queries, keys)
    if not is_int(k) or not 1 <= k <= keys.shape[0]:
        raise ValueError(
            f"k must be an int between 1 and the number of keys {keys.shape[0]}, got {k!r}"
        )
    return similarity.topk(k, dim=1).indices


# ----------------------------------------------------------------------------- chapter 01


class DigitWordSpace(nn.Module):
    """Digits and number words in one ``dim``-dimensional space.

    - the image encoder maps a digit ``(B, 1, 28, 28)`` (or ``(B, 28, 28)``) to a point
      ``(B, dim)``: a linear map of the pixels if ``hidden == 0``, else a small MLP
      (pixels -> ``hidden`` ReLU units -> ``dim``);
    - the word encoder is a table: one learned ``dim``-vector per word of ``words``.

    :meth:`forward` returns the logits ``cos(image, word) / temperature`` of every image
    against every word, ``(B, len(words))``, so a cross-entropy on them is a contrastive loss:
    it pulls each image towards its own word and pushes it away from the others.
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 64,
        words: Sequence[str] = NUMBER_WORDS,
        temperature: float = 0.1,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        check_int(dim, "dim")
        if not is_int(hidden) or hidden < 0:
            raise ValueError(f"hidden must be an int >= 0 (0 = a linear encoder), got {hidden!r}")
        words = tuple(words)
        if len(words) < 2 or len(set(words)) != len(words):
            raise ValueError(f"words must hold at least two distinct words, got {words!r}")
        check_positive(temperature, "temperature")
        check_int(image_size, "image_size")
        pixels = image_size * image_size
        self.dim, self.hidden, self.words = dim, hidden, words
        self.temperature, self.image_size = float(temperature), image_size
        if hidden == 0:
            self.image_encoder: nn.Module = nn.Linear(pixels, dim)
        else:
            self.image_encoder = nn.Sequential(
                nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, dim)
            )
        self.word_embedding = nn.Embedding(len(words), dim)

    def word_ids(self, words: str | Sequence[str]) -> Tensor:
        """The ids ``(n,)`` of some words (a single word gives ``(1,)``)."""
        words = [words] if isinstance(words, str) else list(words)
        unknown = [w for w in words if w not in self.words]
        require(not unknown, f"unknown word(s) {unknown}; this space knows {list(self.words)}")
        return torch.tensor([self.words.index(w) for w in words], dtype=torch.long)

    def encode_images(self, images: Tensor) -> Tensor:
        """Float images ``(B, 1, S, S)`` or ``(B, S, S)`` -> points ``(B, dim)``."""
        if not isinstance(images, Tensor) or not images.is_floating_point():
            got = images.dtype if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(
                f"images must be a float tensor, got {got}; convert uint8 digits with "
                "mmcourse.data.mnist.to_float"
            )
        size = self.image_size
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, size, size):
            raise ValueError(
                f"images must have shape (B, 1, {size}, {size}) or (B, {size}, {size}), "
                f"got {tuple(images.shape)}"
            )
        return self.image_encoder(images.flatten(1))

    def encode_words(self, words: str | Sequence[str] | Tensor | None = None) -> Tensor:
        """Word ids ``(n,)`` or the words themselves -> points ``(n, dim)`` (all words if None)."""
        if words is None:
            return self.word_embedding.weight
        ids = words if isinstance(words, Tensor) else self.word_ids(words)
        if ids.dtype != torch.long or ids.dim() != 1:
            raise ValueError(
                f"word ids must be a 1-D long tensor, got {ids.dtype} {tuple(ids.shape)}"
            )
        if ids.numel() and not 0 <= int(ids.min()) <= int(ids.max()) < len(self.words):
            raise ValueError(f"word ids must lie in [0, {len(self.words)}), got {ids.tolist()}")
        return self.word_embedding(ids)

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B, n_words)``: cosine similarity of each image to each word / temperature."""
        return cosine_similarity_matrix(self.encode_images(images), self.encode_words()) / (
            self.temperature
        )

    @torch.no_grad()
    def nearest_words(self, images: Tensor) -> Tensor:
        """The id ``(B,)`` of the word closest (by cosine) to each image."""
        return self(images).argmax(dim=1)


# ----------------------------------------------------------------------------- joint layer


def split_concat_weight(weight: Tensor, image_dim: int) -> tuple[Tensor, Tensor]:
    """Split the ``(k, d_x + d_y)`` weight of a layer applied to ``cat([x, y])`` into
    ``W_X`` ``(k, d_x)`` (its first ``image_dim`` columns) and ``W_Y`` ``(k, d_y)`` (the rest),
    because ``[W_X  W_Y] [x; y] = W_X x + W_Y y``."""
    check_float(weight, "weight", ("K", "D"))
    if not is_int(image_dim) or not 0 < image_dim < weight.shape[1]:
        raise ValueError(
            f"image_dim must be an int between 1 and {weight.shape[1] - 1} (the weight has "
            f"{weight.shape[1]} input columns), got {image_dim!r}"
        )
    return weight[:, :image_dim], weight[:, image_dim:]


class JointLinear(nn.Module):
    """The joint layer ``Z = W_X X' + W_Y Y' + b``.

    ``image_proj`` holds ``W_X`` ``(joint_dim, image_dim)``, ``text_proj`` holds ``W_Y``
    ``(joint_dim, text_dim)`` (both without bias) and ``bias`` holds ``b`` ``(joint_dim,)``.
    ``forward(x, y)`` with ``x`` ``(B, image_dim)`` and ``y`` ``(B, text_dim)`` returns
    ``(B, joint_dim)``; it equals ``nn.Linear(image_dim + text_dim, joint_dim)`` applied to
    ``torch.cat([x, y], dim=1)`` when the weights are split (see :meth:`from_concat`).
    :meth:`project_image` and :meth:`project_text` give the two terms on their own: two
    points of the same ``joint_dim``-dimensional space, which an alignment loss compares.
    """

    def __init__(self, image_dim: int, text_dim: int, joint_dim: int, bias: bool = True) -> None:
        super().__init__()
        for value, name in (
            (image_dim, "image_dim"),
            (text_dim, "text_dim"),
            (joint_dim, "joint_dim"),
        ):
            check_int(value, name)
        self.image_dim, self.text_dim, self.joint_dim = image_dim, text_dim, joint_dim
        self.image_proj = nn.Linear(image_dim, joint_dim, bias=False)
        self.text_proj = nn.Linear(text_dim, joint_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(joint_dim)) if bias else None

    def extra_repr(self) -> str:
        return (
            f"image_dim={self.image_dim}, text_dim={self.text_dim}, joint_dim={self.joint_dim}, "
            f"bias={self.bias is not None}"
        )

    @property
    def weight_x(self) -> Tensor:
        """``W_X``, shape ``(joint_dim, image_dim)``."""
        return self.image_proj.weight

    @property
    def weight_y(self) -> Tensor:
        """``W_Y``, shape ``(joint_dim, text_dim)``."""
        return self.text_proj.weight

    def project_image(self, x: Tensor) -> Tensor:
        """``W_X x`` for a batch ``(B, image_dim)`` -> ``(B, joint_dim)``."""
        return self.image_proj(check_float(x, "image features", ("N", self.image_dim)))

    def project_text(self, y: Tensor) -> Tensor:
        """``W_Y y`` for a batch ``(B, text_dim)`` -> ``(B, joint_dim)``."""
        return self.text_proj(check_float(y, "text features", ("N", self.text_dim)))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        dims = Dims()
        dims.float(x, "image features", f"N {self.image_dim}")
        dims.float(y, "text features", f"N {self.text_dim}")
        z = self.project_image(x) + self.project_text(y)
        return z + self.bias if self.bias is not None else z

    @classmethod
    def from_concat(cls, linear: nn.Linear, image_dim: int) -> JointLinear:
        """A :class:`JointLinear` computing exactly what ``linear`` computes on
        ``torch.cat([x, y], dim=1)``, where ``x`` has ``image_dim`` features."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        weight_x, weight_y = split_concat_weight(linear.weight.detach(), image_dim)
        layer = cls(image_dim, weight_y.shape[1], linear.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            layer.image_proj.weight.copy_(weight_x)
            layer.text_proj.weight.copy_(weight_y)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer.to(linear.weight.dtype)

    def to_concat(self) -> nn.Linear:
        """The equivalent ``nn.Linear(image_dim + text_dim, joint_dim)`` on concatenated input."""
        linear = nn.Linear(
            self.image_dim + self.text_dim, self.joint_dim, bias=self.bias is not None
        )
        with torch.no_grad():
            linear.weight.copy_(torch.cat([self.weight_x, self.weight_y], dim=1))
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear.to(self.weight_x.dtype)


# ----------------------------------------------------------------------------- gradients


@dataclass(frozen=True)
class JointGradients:
    """The gradients of a loss with respect to everything the joint layer touches."""

    weight_x: Tensor
    """dL/dW_X, ``(k, d_x)``"""
    weight_y: Tensor
    """dL/dW_Y, ``(k, d_y)``"""
    bias: Tensor
    """dL/db, ``(k,)``"""
    image_features: Tensor
    """dL/dX', ``(B, d_x)`` -- what flows back into the image encoder"""
    text_features: Tensor
    """dL/dY', ``(B, d_y)`` -- what flows back into the text encoder"""


def joint_linear_backward(
    image_features: Tensor,
    text_features: Tensor,
    weight_x: Tensor,
    weight_y: Tensor,
    grad_z: Tensor,
) -> JointGradients:
    """Backpropagate ``grad_z = dL/dZ`` ``(B, k)`` through ``Z = X' W_X^T + Y' W_Y^T + b``.

    Derived by hand (the chain rule on ``Z_bi = sum_j W_X[i, j] X'_bj + ...``):

    - ``dL/dW_X = grad_z^T X'``  ``(k, d_x)``  -- for one sample, ``(dL/dZ) X'^T``
    - ``dL/dW_Y = grad_z^T Y'``  ``(k, d_y)``
    - ``dL/db   = sum over the batch of grad_z``  ``(k,)``
    - ``dL/dX'  = grad_z W_X``   ``(B, d_x)``  and  ``dL/dY' = grad_z W_Y``  ``(B, d_y)``
    """
    dims = Dims()
    dims.float(image_features, "image_features", "N Dx")
    dims.float(text_features, "text_features", "N Dy")
    dims.float(weight_x, "weight_x", "K Dx")  # K: the joint space's size
    dims.float(weight_y, "weight_y", "K Dy")
    dims.float(grad_z, "grad_z", "N K")
    return JointGradients(
        weight_x=grad_z.T @ image_features,
        weight_y=grad_z.T @ text_features,
        bias=grad_z.sum(dim=0),
        image_features=grad_z @ weight_x,
        text_features=grad_z @ weight_y,
    )


def squared_error_grad(z: Tensor, target: Tensor) -> Tensor:
    """dL/dZ ``(B, k)`` for ``L = 1/(2B) sum_b |Z_b - T_b|^2`` (half the mean squared
    distance): ``(Z - T) / B``."""
    check_float(z, "z", ("N", "D"))
    if not isinstance(target, Tensor) or target.shape != z.shape:
        got = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"target must have the shape of z {tuple(z.shape)}, got {got}")
    return (z - target) / z.shape[0]


def softmax_cross_entropy_grad(z: Tensor, labels: Tensor) -> Tensor:
    """dL/dZ ``(B, k)`` for the mean softmax cross-entropy ``L = -1/B sum_b log softmax(Z_b)[y_b]``
    (what ``F.cross_entropy(z, labels)`` computes): ``(softmax(Z) - onehot(y)) / B``."""
    dims = Dims()
    dims.float(z, "z", "N K")
    check_index_range(dims.indices(labels, "labels", "N"), "labels", z.shape[1])
    onehot = F.one_hot(labels.long(), z.shape[1]).to(z.dtype)
    return (z.softmax(dim=1) - onehot) / z.shape[0]


# ----------------------------------------------------------------------------- the 2-D toy


@dataclass(frozen=True)
class ToyPairs:
    """Paired 2-D points of two "modalities": row ``i`` of ``image_features`` and row ``i`` of
    ``text_features`` describe the same thing, whose concept is ``labels[i]``."""

    image_features: Tensor
    """``(N, 2)``"""
    text_features: Tensor
    """``(N, 2)``"""
    labels: Tensor
    """``(N,)`` long, the concept of each pair"""


def _rotation(degrees: float) -> Tensor:
    t = math.radians(degrees)
    return torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def make_toy_pairs(n: int = 60, n_concepts: int = 3, noise: float = 0.1, seed: int = 0) -> ToyPairs:
    """``n`` pairs of 2-D points: each pair comes from one hidden 2-D "meaning" (a concept's
    direction on the unit circle plus a little jitter), seen through two different linear
    "sensors": the image features are the meaning rotated by 70 degrees and stretched, the text
    features are it reflected, rotated by -100 degrees and squashed, each plus Gaussian noise of
    standard deviation ``noise``. So the two modalities disagree on where a concept lies, and a
    linear map per modality can bring them back together."""
    check_int(n, "n")
    check_int(n_concepts, "n_concepts")
    require(n_concepts <= n, f"n_concepts must be at most n={n}, got {n_concepts}")
    check_nonnegative(noise, "noise")
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % n_concepts
    angles = 2 * math.pi * labels / n_concepts + 0.25 * torch.randn(n, generator=generator)
    radius = 1 + 0.15 * torch.randn(n, generator=generator)
    meaning = radius[:, None] * torch.stack([angles.cos(), angles.sin()], dim=1)
    image_sensor = _rotation(70) @ torch.diag(torch.tensor([1.6, 0.7]))
    text_sensor = _rotation(-100) @ torch.diag(torch.tensor([0.8, -1.2]))
    image = meaning @ image_sensor.T + noise * torch.randn(n, 2, generator=generator)
    text = meaning @ text_sensor.T + noise * torch.randn(n, 2, generator=generator)
    return ToyPairs(image_features=image, text_features=text, labels=labels)


def pair_alignment_loss(
    image_points: Tensor, text_points: Tensor, kind: str = "contrastive", temperature: float = 0.1
) -> Tensor:
    """How badly paired points ``(B, k)`` disagree, as a scalar.

    - ``"squared"``: the mean squared distance ``1/B sum_b |u_b - v_b|^2`` between partners;
      it only pulls partners together, so mapping everything to 0 makes it 0 (collapse).
    - ``"contrastive"``: the symmetric InfoNCE loss on cosine similarities: each image point
      must pick its own partner among all text points of the batch (a softmax over
      ``cos / temperature``) and each text point its image partner
      (:func:`mmcourse.losses.clip_loss`); it also pushes non-partners apart, and cosine
      ignores length, so it cannot collapse.
    """
    dims = Dims()
    dims.float(image_points, "image_points", "N D")
    dims.float(text_points, "text_points", "N D")  # they pair up row by row
    if kind == "squared":
        return (image_points - text_points).pow(2).sum(dim=1).mean()
    require(kind == "contrastive", f"kind must be 'contrastive' or 'squared', got {kind!r}")
    check_positive(temperature, "temperature")
    return clip_loss(image_points, text_points, logit_scale=1.0 / temperature)


def align_pairs(
    pairs: ToyPairs,
    kind: str = "contrastive",
    joint_dim: int = 2,
    steps: int = 300,
    lr: float = 0.05,
    temperature: float = 0.1,
    seed: int = 0,
) -> tuple[JointLinear, list[float]]:
    """Learn ``W_X`` and ``W_Y`` of a :class:`JointLinear` so that ``W_X x_i`` and ``W_Y y_i``
    agree for each pair (full-batch Adam on :func:`pair_alignment_loss`); return the layer and
    the loss at every step."""
    if not isinstance(pairs, ToyPairs):
        raise TypeError(
            f"pairs must be a ToyPairs (see make_toy_pairs), got {type(pairs).__name__}"
        )
    check_int(steps, "steps")
    check_positive(lr, "lr")
    torch.manual_seed(seed)
    x, y = pairs.image_features, pairs.text_features
    layer = JointLinear(x.shape[1], y.shape[1], joint_dim)
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = pair_alignment_loss(layer.project_image(x), layer.project_text(y), kind, temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return layer, losses


# ----------------------------------------------------------------------------- pictures

_COLORS = plt.get_cmap("tab10").colors


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax  # type: ignore[return-value]


def plot_shared_space(
    image_points: Tensor,
    labels: Tensor,
    word_points: Tensor,
    words: Sequence[str],
    ax: Axes | None = None,
    title: str = "Images and words in one 2-D space",
) -> Figure:
    """Scatter 2-D image points ``(N, 2)`` coloured by ``labels`` ``(N,)`` and mark each word
    ``(W, 2)`` as a labelled star with a ray from the origin in its direction. The words are
    drawn at their own direction but at the typical image radius, because cosine similarity
    only looks at directions."""
    dims = Dims()
    dims.float(image_points, "image_points", "N 2")
    dims.indices(labels, "labels", "N")
    dims.float(word_points, "word_points", "W 2")
    require(len(words) == dims["W"], f"got {len(words)} words for {dims['W']} word points")
    fig, ax = _axes(ax, (5.5, 5.5))
    points, word_points = image_points.detach().cpu(), word_points.detach().cpu()
    labels = labels.cpu()
    for c in range(len(words)):
        mine = points[labels == c]
        ax.scatter(mine[:, 0], mine[:, 1], s=6, alpha=0.45, color=_COLORS[c % 10])
    radius = points.norm(dim=1).quantile(0.9).item() if len(points) else 1.0
    directions = word_points / word_points.norm(dim=1, keepdim=True).clamp_min(1e-8)
    for c, (word, (u, v)) in enumerate(zip(words, directions.tolist())):
        color = _COLORS[c % 10]
        ax.plot([0, u * radius], [0, v * radius], color=color, lw=1, alpha=0.8)
        ax.scatter([u * radius], [v * radius], marker="*", s=180, color=color, edgecolor="black")
        ax.annotate(word, (u * radius * 1.16, v * radius * 1.16), ha="center", va="center",
                    fontsize=9, fontweight="bold")  # fmt: skip
    ax.set_aspect("equal")
    lim = 1.3 * radius
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="dimension 1", ylabel="dimension 2")
    ax.set_title(title)
    return fig


def plot_pairs(
    image_points: Tensor,
    text_points: Tensor,
    labels: Tensor,
    ax: Axes | None = None,
    title: str = "Paired points",
    unit_circle: bool = False,
) -> Figure:
    """Image points ``(N, 2)`` as circles, text points ``(N, 2)`` as crosses, coloured by
    concept ``labels`` ``(N,)``, with a grey line joining each pair: short lines = aligned.
    ``unit_circle=True`` also draws the unit circle (for normalised points)."""
    dims = Dims()
    dims.float(image_points, "image_points", "N 2")
    dims.float(text_points, "text_points", "N 2")
    dims.indices(labels, "labels", "N")
    fig, ax = _axes(ax, (4.5, 4.5))
    a, b = image_points.detach().cpu(), text_points.detach().cpu()
    for (x0, y0), (x1, y1) in zip(a.tolist(), b.tolist()):
        ax.plot([x0, x1], [y0, y1], color="0.6", lw=0.8, zorder=1)
    colors = [_COLORS[int(c) % 10] for c in labels.tolist()]
    ax.scatter(a[:, 0], a[:, 1], c=colors, marker="o", s=22, zorder=2)
    ax.scatter(b[:, 0], b[:, 1], c=colors, marker="x", s=28, zorder=2)
    if unit_circle:
        t = torch.linspace(0, 2 * math.pi, 200)
        ax.plot(t.cos(), t.sin(), color="0.8", lw=1, zorder=0)
    ax.set_aspect("equal")
    ax.set(xlabel="dimension 1", ylabel="dimension 2")
    ax.set_title(title)
    ax.legend(
        handles=[
            Line2D([], [], color="0.3", marker="o", ls="", label="image"),
            Line2D([], [], color="0.3", marker="x", ls="", label="text"),
            Line2D([], [], color="0.6", lw=0.8, label="pair"),
        ],
        loc="upper right", fontsize=8,
    )  # fmt: skip
    return fig
