"""Where a captioner's grid of image regions comes from: an encoder, or a store of regions.

The attention captioners (:mod:`mmcourse.models.attention_captioner`,
:mod:`mmcourse.models.transformer_captioner`) and Show and Tell read an image as a grid of
``R`` region vectors ``(B, R, D)``, through one method, ``forward_grid``. Two modules offer it:

- :class:`~mmcourse.models.image.CanvasEncoder` (or the case study's backbone): a CNN that
  computes the grid from the canvas, trained with the captioner or frozen;
- :class:`StoredGrid`: the identity on regions computed once before training. When the
  encoder is frozen, running it again every epoch computes the same numbers again; storing
  them turns an epoch of minutes into seconds. After training, the real encoder takes the
  stored grid's place (:func:`swap_encoder`) and the captioner reads canvases again.

>>> grid = StoredGrid(regions=64, dim=32)
>>> grid.forward_grid(torch.zeros(2, 64, 32)).shape
torch.Size([2, 64, 32])
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse._validate import check_float, check_int, check_probability, require
from mmcourse.models.pooling import ImageVector

__all__ = ["StoredGrid", "check_decoder_args", "check_grid_encoder", "swap_encoder"]


class StoredGrid(nn.Module):
    """Stands in for an image encoder when its regions were computed (and stored) earlier.

    ``forward_grid(regions (B, R, D)) -> regions``: the "images" it receives are the stored
    regions themselves. ``out_dim`` is ``D`` and :meth:`grid_size` gives the grid's shape, as a
    :class:`~mmcourse.models.image.CanvasEncoder` would.

    Args:
        regions: ``R``, regions per image (64 for an 8x8 grid).
        dim: ``D``, features per region.
        grid: ``(height, width)`` of the grid, ``height * width == regions``; default square.
    """

    def __init__(self, regions: int, dim: int, grid: tuple[int, int] | None = None) -> None:
        super().__init__()
        check_int(regions, "regions")
        check_int(dim, "dim")
        if grid is None:
            side = int(round(regions**0.5))
            grid = (side, side)
        require(grid[0] * grid[1] == regions, f"grid {grid} does not hold {regions} regions")
        self.regions, self.out_dim, self.grid = regions, dim, (int(grid[0]), int(grid[1]))

    def grid_size(self, height: int = 64, width: int = 64) -> tuple[int, int]:
        """The grid's ``(height, width)`` (the image size is not used: it is fixed)."""
        return self.grid

    def forward_grid(self, regions: torch.Tensor) -> torch.Tensor:
        """``(B, R, D)`` stored regions -> the same tensor (checked)."""
        return check_float(regions, "regions", ("B", self.regions, self.out_dim))

    def forward(self, regions: torch.Tensor) -> torch.Tensor:
        return self.forward_grid(regions)


def check_grid_encoder(encoder: object) -> tuple[int, int]:
    """Check ``encoder`` offers ``forward_grid`` and an int ``out_dim``; return ``(R, D)`` for a
    64x64 canvas."""
    if not callable(getattr(encoder, "forward_grid", None)) or not isinstance(
        getattr(encoder, "out_dim", None), int
    ):
        raise ValueError(
            "image_encoder must offer forward_grid(images) -> (B, R, D) and an int out_dim, "
            f"like CanvasEncoder or StoredGrid; got {type(encoder).__name__}"
        )
    grid_size = getattr(encoder, "grid_size", None)
    if callable(grid_size):
        height, width = grid_size(64, 64)
        return int(height * width), encoder.out_dim
    raise ValueError(f"image_encoder must offer grid_size(height, width), got {encoder!r}")


def check_decoder_args(
    image_encoder: object, vocab_size: int, dropout: float, pad_id: int, **sizes: int
) -> tuple[int, int]:
    """The checks every grid captioner's constructor makes: positive ``vocab_size`` and
    ``sizes`` (named in the message), ``dropout`` in [0, 1], ``pad_id`` a token of the
    vocabulary, and a grid encoder; returns its ``(regions, dim)``."""
    check_int(vocab_size, "vocab_size")
    for name, value in sizes.items():
        check_int(value, name)
    check_probability(dropout, "dropout")
    check_int(pad_id, "pad_id", minimum=0, maximum=vocab_size - 1)
    return check_grid_encoder(image_encoder)


def swap_encoder(captioner: nn.Module, encoder: nn.Module) -> nn.Module:
    """Put ``encoder`` where the captioner's grid comes from (e.g. the CNN whose regions a
    :class:`StoredGrid` stood for), after checking it gives a grid of the same shape.

    Works for the attention captioners (``captioner.image_encoder``) and for Show and Tell,
    whose grid sits inside an :class:`~mmcourse.models.pooling.ImageVector`
    (``captioner.image_encoder.encoder``). Returns the captioner, changed in place.
    """
    holder = getattr(captioner, "image_encoder", None)
    require(holder is not None, f"{type(captioner).__name__} has no image_encoder to replace")
    attribute = "encoder" if isinstance(holder, ImageVector) else "image_encoder"
    holder = holder if attribute == "encoder" else captioner
    old = getattr(holder, attribute)
    if check_grid_encoder(encoder) != check_grid_encoder(old):
        raise ValueError(
            f"the new encoder gives a grid of (regions, dim) = {check_grid_encoder(encoder)}, "
            f"the captioner was trained on {check_grid_encoder(old)}"
        )
    setattr(holder, attribute, encoder)
    return captioner
