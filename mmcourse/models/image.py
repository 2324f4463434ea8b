"""Image encoders: from pixels to feature vectors (or a grid of feature vectors).

- :class:`ArticleCNN` -- the reference article's three-block CNN (1x28x28 -> 2,304 features).
- :class:`CanvasEncoder` -- a small CNN for MNIST-Captions canvases (1x64x64); it returns one
  vector per image (:meth:`CanvasEncoder.forward`) or a grid of region vectors for attention
  (:meth:`CanvasEncoder.forward_grid`).

More encoders (VGG-style, ResNet-style) are added by the image-encoder chapter.
"""

from __future__ import annotations

import torch
from torch import nn


def check_images(x: torch.Tensor, channels: int, name: str = "images") -> None:
    """Raise a clear ``ValueError`` unless ``x`` is a float batch ``(B, channels, H, W)``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{name} must have shape (B, {channels}, H, W), got {tuple(x.shape)}; "
            "add the channel dimension with x.unsqueeze(1)"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor, got {x.dtype}; scale uint8 pixels with "
            "mmcourse.data.mnist.to_float"
        )


def conv_block(in_channels: int, out_channels: int, batch_norm: bool = False) -> nn.Sequential:
    """3x3 convolution (padding 1, keeps H and W) -> [BatchNorm] -> ReLU -> 2x2 max-pool
    (halves H and W, rounding down)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


class ArticleCNN(nn.Module):
    """The article's image encoder: three conv blocks (64, 128, 256 channels) and a flatten.

    On a 1x28x28 digit the feature maps go 28 -> 14 -> 7 -> 3 pixels wide, so the output has
    256 * 3 * 3 = 2,304 features.
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (64, 128, 256)) -> None:
        super().__init__()
        if not channels:
            raise ValueError("channels must name at least one block")
        self.in_channels = in_channels
        widths = (in_channels, *channels)
        self.blocks = nn.Sequential(*(conv_block(a, b) for a, b in zip(widths, widths[1:])))
        self.flatten = nn.Flatten()

    def feature_dim(self, height: int = 28, width: int = 28) -> int:
        """How many features an image of ``height`` x ``width`` becomes."""
        for _ in self.blocks:
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError("the image is too small for this many pooling blocks")
        return self.blocks[-1][0].out_channels * height * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, feature_dim(H, W))``."""
        check_images(x, self.in_channels)
        return self.flatten(self.blocks(x))


class CanvasEncoder(nn.Module):
    """A compact CNN for 1x64x64 MNIST-Captions canvases.

    Three conv blocks with batch norm take 64x64 to an 8x8 grid of ``channels[-1]`` features.
    :meth:`forward_grid` returns that grid as ``(B, 64, out_dim)`` region vectors (what an
    attention layer looks at); :meth:`forward` averages them into one ``(B, out_dim)`` vector.
    """

    def __init__(
        self,
        out_dim: int = 128,
        channels: tuple[int, ...] = (32, 64, 128),
        in_channels: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if out_dim < 1 or not channels:
            raise ValueError("out_dim must be positive and channels non-empty")
        self.in_channels = in_channels
        self.out_dim = out_dim
        widths = (in_channels, *channels)
        self.blocks = nn.Sequential(
            *(conv_block(a, b, batch_norm=True) for a, b in zip(widths, widths[1:]))
        )
        self.project = nn.Sequential(
            nn.Dropout(dropout), nn.Conv2d(channels[-1], out_dim, kernel_size=1)
        )

    def forward_grid(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, (H/8)*(W/8), out_dim)``: one vector per image region,
        regions in row-major order (top-left first)."""
        check_images(x, self.in_channels)
        grid = self.project(self.blocks(x))  # (B, D, h, w)
        return grid.flatten(2).transpose(1, 2)

    def grid_size(self, height: int = 64, width: int = 64) -> tuple[int, int]:
        """The (h, w) of the region grid for an input of ``height`` x ``width``."""
        for _ in self.blocks:
            height, width = height // 2, width // 2
        return height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> ``(B, out_dim)``: the mean of the region vectors."""
        return self.forward_grid(x).mean(dim=1)
