"""Image encoders: from pixels to feature vectors (or a grid of feature vectors).

- :class:`ArticleCNN` -- the reference article's three-block CNN (1x28x28 -> 2,304 features).
- :class:`CanvasEncoder` -- a small CNN for MNIST-Captions canvases (1x64x64); it returns one
  vector per image (:meth:`CanvasEncoder.forward`) or a grid of region vectors for attention
  (:meth:`CanvasEncoder.forward_grid`).
- :class:`VGGStyle` -- VGG's recipe at digit scale: stages of 3x3 convolutions, each stage closed
  by a 2x2 max-pool.
- :class:`DigitNet` -- a narrow three-block CNN with batch norm that passes 99 % on MNIST in one
  epoch (:mod:`mmcourse.digits` holds its training recipe).
- :func:`resnet18_mnist` -- torchvision's ResNet-18 with its stem adapted to 1x28x28 digits.
- :func:`check_images`, :func:`conv_block`, :func:`coordinate_maps` -- building blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse._validate import check_int, check_probability, check_sizes, check_tensor, require


def check_images(x: torch.Tensor, channels: int, name: str = "images") -> None:
    """Raise a clear ``TypeError``/``ValueError`` unless ``x`` is a float batch
    ``(B, channels, H, W)``."""
    check_tensor(x, name)
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
    check_int(in_channels, "in_channels")
    check_int(out_channels, "out_channels")
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


def coordinate_maps(
    batch: int, height: int, width: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """``(batch, 2, height, width)``: the x and y coordinate of every position, in [-1, 1].

    Convolutions do not know *where* they are; appending these two maps (as FiLM and
    "CoordConv" do) lets a layer tell the left of the canvas from its right.
    """
    check_int(batch, "batch")
    check_int(height, "height")
    check_int(width, "width")
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y])[None].expand(batch, -1, -1, -1)


class ArticleCNN(nn.Module):
    """The article's image encoder: three conv blocks (64, 128, 256 channels) and a flatten.

    On a 1x28x28 digit the feature maps go 28 -> 14 -> 7 -> 3 pixels wide, so the output has
    256 * 3 * 3 = 2,304 features.
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (64, 128, 256)) -> None:
        super().__init__()
        check_int(in_channels, "in_channels")
        check_sizes(channels, "channels")
        self.in_channels = in_channels
        widths = (in_channels, *channels)
        self.blocks = nn.Sequential(*(conv_block(a, b) for a, b in zip(widths, widths[1:])))
        self.flatten = nn.Flatten()

    def feature_dim(self, height: int = 28, width: int = 28) -> int:
        """How many features an image of ``height`` x ``width`` becomes."""
        for _ in self.blocks:
            height, width = height // 2, width // 2
        require(height >= 1 and width >= 1, "the image is too small for this many pooling blocks")
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
        check_int(out_dim, "out_dim")
        check_sizes(channels, "channels")
        check_int(in_channels, "in_channels")
        check_probability(dropout, "dropout")
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


class VGGStyle(nn.Module):
    """VGG's idea at MNIST scale: stacks of 3x3 convolutions that keep the size, then a pool.

    Each of the ``len(widths)`` stages is ``convs_per_stage`` times (3x3 conv, padding 1 ->
    [BatchNorm] -> ReLU), then a 2x2 max-pool. With the defaults a 1x28x28 digit goes
    28 -> 14 -> 7 -> 3 pixels wide and ends as 128 * 3 * 3 = 1,152 features; a classifier of
    two linear layers (as in VGG, only far smaller) turns them into ``num_classes`` logits.

    Args:
        num_classes: logits to output; ``None`` makes :meth:`forward` return the flattened
            features ``(B, feature_dim())`` instead (an encoder without a head).
        widths: output channels of each stage.
        convs_per_stage: 3x3 convolutions per stage (VGG-16 uses 2 or 3).
        in_channels: channels of the input images.
        hidden: width of the hidden linear layer of the classifier.
        batch_norm: put a BatchNorm after every convolution (VGG-BN); it makes training far
            less sensitive to the learning rate.
    """

    def __init__(
        self,
        num_classes: int | None = 10,
        widths: tuple[int, ...] = (32, 64, 128),
        convs_per_stage: int = 2,
        in_channels: int = 1,
        hidden: int = 128,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        check_sizes(widths, "widths")
        check_int(convs_per_stage, "convs_per_stage")
        if num_classes is not None:
            check_int(num_classes, "num_classes")
        check_int(in_channels, "in_channels")
        check_int(hidden, "hidden")
        self.in_channels = in_channels
        self.widths = tuple(widths)
        stages: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers: list[nn.Module] = []
            for _ in range(convs_per_stage):
                layers.append(nn.Conv2d(channels, width, 3, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                channels = width
            layers.append(nn.MaxPool2d(2))
            stages.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*stages)
        self.flatten = nn.Flatten()
        self.classifier: nn.Module | None = None
        if num_classes is not None:
            self.classifier = nn.Sequential(
                nn.Linear(self.feature_dim(), hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(0.3),
                nn.Linear(hidden, num_classes),
            )

    def feature_dim(self, height: int = 28, width: int = 28) -> int:
        """How many features the conv stages make of an image of ``height`` x ``width``."""
        for _ in self.widths:
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(
                f"the image is too small for {len(self.widths)} pooling stages: it must be at "
                f"least {2 ** len(self.widths)} pixels on each side"
            )
        return self.widths[-1] * height * width

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> feature maps ``(B, widths[-1], H / 2^S, W / 2^S)``
        (S = number of stages, each division rounding down)."""
        check_images(x, self.in_channels)
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> logits ``(B, num_classes)``, or the flattened features
        ``(B, feature_dim(H, W))`` when the model has no classifier."""
        features = self.flatten(self.forward_features(x))
        return features if self.classifier is None else self.classifier(features)


class DigitNet(nn.Module):
    """A fast digit classifier: ``len(channels)`` conv blocks with batch norm, flatten, one
    linear layer (the network of the recipe in :mod:`mmcourse.digits`).

    Each block is 3x3 conv (padding 1, no bias) -> BatchNorm -> ReLU -> 2x2 max-pool
    (:func:`mmcourse.models.image.conv_block`), so with three blocks a 1x28x28 digit becomes
    ``channels[-1] x 3 x 3`` feature maps. ``blocks.0``, ``blocks.1``, ... name the blocks
    (handy for :func:`mmcourse.models.introspect.capture_output`).
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32, 64),
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
    ) -> None:
        super().__init__()
        check_sizes(channels, "channels")
        check_int(num_classes, "num_classes", minimum=2)
        side = image_size
        for _ in channels:
            side //= 2
        if side < 1:
            raise ValueError(
                f"image_size {image_size} is too small for {len(channels)} pooling blocks "
                f"(each halves the side); it must be at least {2 ** len(channels)}"
            )
        self.in_channels = in_channels
        self.image_size = image_size
        widths = (in_channels, *channels)
        self.blocks = nn.Sequential(
            *(conv_block(a, b, batch_norm=True) for a, b in zip(widths, widths[1:]))
        )
        self.flatten = nn.Flatten()
        self.head = nn.Linear(channels[-1] * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, image_size, image_size)`` -> logits ``(B, num_classes)``."""
        check_images(x, self.in_channels)
        return self.head(self.flatten(self.blocks(x)))


def resnet18_mnist(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """torchvision's ResNet-18 (randomly initialised) adapted to small grey 28x28 digits.

    ImageNet's stem (7x7 conv with stride 2, then a 3x3 max-pool with stride 2) shrinks a
    224-pixel photo by 4 at once; on a 28-pixel digit it would leave 7x7 maps before the first
    residual stage. So the stem becomes a 3x3 conv with stride 1 and ``in_channels`` inputs,
    and the max-pool is removed: the four stages then see 28 -> 28 -> 14 -> 7 -> 4 pixels, and
    global average pooling gives 512 features for the final linear layer.

    Returns:
        a :class:`torchvision.models.ResNet`; ``model(x)`` maps ``(B, in_channels, 28, 28)``
        to logits ``(B, num_classes)``.
    """
    import torchvision  # imported here: only this encoder needs it

    check_int(num_classes, "num_classes")
    check_int(in_channels, "in_channels")
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model
