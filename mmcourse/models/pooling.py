"""One vector per image from a grid of region vectors, keeping -- or dropping -- *where*.

:class:`~mmcourse.models.image.CanvasEncoder` turns a 64x64 canvas into an 8x8 grid of region
vectors. A captioner or a dual encoder wants one vector per image, and how the grid is pooled
decides what that vector can know:

- ``"mean"`` averages the regions: a seven on the left and a seven on the right give almost
  the same vector, so "on the left" cannot be read back from it;
- ``"flatten"`` concatenates the regions in row-major order: region ``r`` always lands in
  the same slice of the vector, so the position of every digit survives. MNIST-Captions
  names positions in every caption, so the models of the course default to it.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse._validate import require

POOLINGS = ("flatten", "mean")


class ImageVector(nn.Module):
    """Wrap a grid encoder into an image -> vector encoder.

    Args:
        encoder: has ``forward_grid(images) -> (B, R, D)``, ``grid_size(height, width)`` and
            ``out_dim`` (``D``), as :class:`~mmcourse.models.image.CanvasEncoder` does.
        pooling: ``"flatten"`` (``out_dim = R * D``, positions kept) or ``"mean"``
            (``out_dim = D``, positions averaged away).
        image_size: ``(height, width)`` of the inputs; ``"flatten"`` accepts only this size
            (it fixes ``R``), ``"mean"`` any size.

    ``forward(images (B, C, H, W)) -> (B, out_dim)``; the grid itself stays available as
    ``self.encoder.forward_grid(images)`` (what an attention decoder looks at).
    """

    def __init__(
        self,
        encoder: nn.Module,
        pooling: str = "flatten",
        image_size: tuple[int, int] = (64, 64),
    ) -> None:
        super().__init__()
        require(pooling in POOLINGS, f"pooling must be one of {POOLINGS}, got {pooling!r}")
        for name in ("forward_grid", "grid_size"):
            if not callable(getattr(encoder, name, None)):
                raise ValueError(
                    f"encoder must offer {name}() like CanvasEncoder, got {type(encoder).__name__}"
                )
        if not isinstance(getattr(encoder, "out_dim", None), int):
            raise ValueError("encoder must have an int attribute out_dim")
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be (height, width), got {image_size!r}")
        self.encoder, self.pooling = encoder, pooling
        self.image_size = (int(image_size[0]), int(image_size[1]))
        height, width = encoder.grid_size(*self.image_size)
        if height < 1 or width < 1:
            raise ValueError(f"images of {self.image_size} are too small for this encoder")
        self.regions = height * width
        self.out_dim = encoder.out_dim * (self.regions if pooling == "flatten" else 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, out_dim)``."""
        if self.pooling == "flatten" and isinstance(images, torch.Tensor) and images.dim() == 4:
            if tuple(images.shape[-2:]) != self.image_size:
                raise ValueError(
                    f"expected images of size {self.image_size}, got {tuple(images.shape[-2:])}"
                )
        grid = self.encoder.forward_grid(images)  # (B, R, D), checks the images
        return grid.flatten(1) if self.pooling == "flatten" else grid.mean(dim=1)

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}, regions={self.regions}, out_dim={self.out_dim}"
