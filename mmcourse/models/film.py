"""FiLM: the question rescales and shifts the image's feature maps (Perez et al., AAAI 2018).

- :class:`FiLM` -- ``gamma(c) * F + beta(c)`` per channel of feature maps ``F``;
- :class:`FiLMBlock` -- a residual block whose maps the question modulates;
- :class:`FiLMFusion` -- a :class:`~mmcourse.models.fusion.Fusion` that runs FiLM blocks over
  the image's grid of regions and pools them into one vector.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse._validate import check_float, check_int, check_same_batch, check_sizes, require
from mmcourse.models.fusion import Fusion
from mmcourse.models.image import coordinate_maps


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
        check_int(cond_dim, "cond_dim")
        check_int(channels, "channels")
        self.cond_dim, self.channels = cond_dim, channels
        self.to_scale_shift = nn.Linear(cond_dim, 2 * channels)
        with torch.no_grad():
            self.to_scale_shift.bias[:channels].fill_(1.0)
            self.to_scale_shift.bias[channels:].zero_()

    def scale_shift(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``gamma, beta``: two ``(B, channels)`` tensors."""
        check_float(cond, "cond", ("B", self.cond_dim))
        gamma, beta = self.to_scale_shift(cond).chunk(2, dim=1)
        return gamma, beta

    def forward(self, maps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        check_float(maps, "maps", ("B", self.channels, "H", "W"))
        gamma, beta = self.scale_shift(cond)
        check_same_batch(maps, cond, "maps", "cond")
        return gamma[:, :, None, None] * maps + beta[:, :, None, None]

    def extra_repr(self) -> str:
        return f"cond_dim={self.cond_dim}, channels={self.channels}"


class FiLMBlock(nn.Module):
    """A residual block whose feature maps the question modulates (Perez et al.'s ResBlock)::

        x1 = relu(conv1x1([x, coords]));  x2 = FiLM(batchnorm(conv(x1)), q);  out = x + relu(x2)

    The batch norm has no scale and shift of its own: FiLM provides them.
    """

    def __init__(self, channels: int, cond_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        check_int(channels, "channels")
        check_int(cond_dim, "cond_dim")
        check_int(kernel_size, "kernel_size")
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
        check_int(blocks, "blocks")
        self.grid_size = tuple(check_sizes(grid_size, "grid_size", length=2))
        self.stem = nn.Conv2d(image_dim + 2, channels, kernel_size=1)
        self.blocks = nn.ModuleList(
            FiLMBlock(channels, text_dim, kernel_size) for _ in range(blocks)
        )

    def forward(self, regions: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.check(regions, text)
        b, r, d = regions.shape
        h, w = self.grid_size
        require(r == h * w, f"expected {h}x{w} = {h * w} regions, got {r}")
        maps = regions.transpose(1, 2).reshape(b, d, h, w)
        x = torch.relu(self.stem(torch.cat([maps, coordinate_maps(b, h, w, maps.device)], 1)))
        for block in self.blocks:
            x = block(x, text)
        return x.amax(dim=(2, 3))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", grid_size={self.grid_size}"
