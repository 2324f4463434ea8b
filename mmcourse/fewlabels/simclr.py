"""Self-supervised pretraining with SimCLR (Chen, Kornblith, Norouzi and Hinton, 2020).

No labels: each image is augmented twice (:func:`augment`), an encoder and a small projection
head map both views to vectors, and the NT-Xent loss (:func:`nt_xent`) asks each view to pick
its twin out of the batch's ``2N - 1`` other views. What stays the same under the
augmentations (which digit it is, not where, how large or how tilted) is what the encoder
learns to keep.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import Dims, check_float, check_int, check_positive, require
from mmcourse.models.image import DigitNet

__all__ = ["SimCLR", "augment", "nt_xent", "pretrain"]

MAX_DEGREES = 20.0
"""Largest rotation of :func:`augment`, either way."""
SCALE_RANGE = (0.8, 1.2)
"""Zoom of :func:`augment`."""
MAX_SHIFT = 3.0
"""Largest shift of :func:`augment`, in pixels of a 28x28 digit, along each axis."""
ERASE_SIDE = 8
"""Side of the square :func:`augment` blanks out, in pixels (on half the images)."""


def augment(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random view of each image of ``pixels`` (float ``(B, 1, H, W)`` in [0, 1], ink
    bright on a dark background): rotated by up to :data:`MAX_DEGREES`, zoomed within
    :data:`SCALE_RANGE`, shifted by up to :data:`MAX_SHIFT` pixels (one random affine map per
    image, bilinear), and on half the images a square of side :data:`ERASE_SIDE` blanked out.
    ``generator`` draws everything, so a seeded generator gives the same views."""
    dims = Dims()
    dims.float(pixels, "pixels", "B C H W")
    require(dims["C"] == 1, f"pixels must have one channel, got {dims['C']}")
    batch, height, width = dims["B"], dims["H"], dims["W"]
    angle = (torch.rand(batch, generator=generator) * 2 - 1) * math.radians(MAX_DEGREES)
    low, high = SCALE_RANGE
    scale = low + torch.rand(batch, generator=generator) * (high - low)
    shift = (torch.rand(batch, 2, generator=generator) * 2 - 1) * MAX_SHIFT
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin, shift[:, 0] * 2 / width], dim=1),
            torch.stack([sin, cos, shift[:, 1] * 2 / height], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    views = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    erase = torch.rand(batch, generator=generator) < 0.5
    top = torch.randint(0, height - ERASE_SIDE + 1, (batch,), generator=generator)
    left = torch.randint(0, width - ERASE_SIDE + 1, (batch,), generator=generator)
    rows = torch.arange(height)[None, :, None]
    cols = torch.arange(width)[None, None, :]
    square = (
        (rows >= top[:, None, None])
        & (rows < top[:, None, None] + ERASE_SIDE)
        & (cols >= left[:, None, None])
        & (cols < left[:, None, None] + ERASE_SIDE)
    )
    return views.masked_fill((square & erase[:, None, None])[:, None], 0.0)


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """The NT-Xent loss of SimCLR: ``first[i]`` and ``second[i]`` ``(N, D)`` are two views of
    image ``i``. All ``2N`` vectors are normalised; each one's logits are its cosine
    similarities to the ``2N - 1`` others, divided by ``temperature``; the target is its
    twin. Returns the mean cross-entropy over the ``2N`` vectors (chapter 07's InfoNCE, with
    the other views of the same side as extra negatives)."""
    dims = Dims()
    dims.float(first, "first", "N D")
    dims.float(second, "second", "N D")
    require(dims["N"] >= 2, "nt_xent needs at least two images: the others are the negatives")
    check_positive(temperature, "temperature")
    n = dims["N"]
    z = F.normalize(torch.cat([first, second]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    twins = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, twins)


class SimCLR(nn.Module):
    """An encoder -- :class:`~mmcourse.models.image.DigitNet`'s convolution blocks, the same
    network the labelled models use -- and a projection head (linear, ReLU, linear) that
    the loss sees. After pretraining the head is dropped: :meth:`features` is what a probe
    or fine-tuning starts from (Chen et al. found the layer before the head keeps more)."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64), projection_dim: int = 64) -> None:
        super().__init__()
        self.encoder = DigitNet(channels)
        width = self.encoder.head.in_features
        check_int(projection_dim, "projection_dim")
        self.projector = nn.Sequential(
            nn.Linear(width, 128), nn.ReLU(), nn.Linear(128, projection_dim)
        )

    @property
    def feature_dim(self) -> int:
        return self.encoder.head.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 28, 28)`` standardised digits -> ``(B, feature_dim)``."""
        return self.encoder.flatten(self.encoder.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.features(x))


def pretrain(
    model: SimCLR,
    pixels: torch.Tensor,
    epochs: int,
    normalize: tuple[float, float],
    batch_size: int = 256,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` with NT-Xent (temperature 0.5, Adam at 1e-3) on unlabelled ``pixels``
    (float ``(N, 1, 28, 28)`` in [0, 1]); ``normalize`` is the ``(mean, std)`` the views are
    standardised with. Returns the mean loss of each epoch. The model is left in eval mode."""
    check_float(pixels, "pixels", ("N", 1, "H", "W"))
    check_int(epochs, "epochs")
    check_int(batch_size, "batch_size", minimum=2)
    require(len(pixels) >= batch_size, f"need at least batch_size={batch_size} images")
    mean, std = normalize
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(pixels), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(order) - batch_size + 1, batch_size):  # full batches only
            batch = pixels[order[start : start + batch_size]]
            first = (augment(batch, generator) - mean) / std
            second = (augment(batch, generator) - mean) / std
            loss = nt_xent(model(first), model(second))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, count = total + loss.item(), count + 1
        losses.append(total / count)
    model.eval()
    return losses
