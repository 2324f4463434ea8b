"""Image encoders: shapes against the hand formula, parameter counts against torchvision."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from mmcourse.models.image import (
    ArticleCNN,
    CanvasEncoder,
    DigitNet,
    VGGStyle,
    check_images,
    conv_block,
    coordinate_maps,
    resnet18_mnist,
)


def by_hand(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """floor((size + 2p - k) / s) + 1, written out independently of the library."""
    return (size + 2 * padding - kernel) // stride + 1


def stage_outputs(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, tuple]:
    """Output shapes of named sub-modules, recorded with plain forward hooks."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple] = {}
    handles = [
        modules[n].register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, o.shape))
        for n in names
    ]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return {n: tuple(s) for n, s in shapes.items()}


# ----------------------------------------------------------------------------- check_images


def test_check_images_accepts_a_float_batch():
    check_images(torch.zeros(2, 1, 28, 28), 1)


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.zeros(1, 28, 28), r"shape \(B, 1, H, W\), got \(1, 28, 28\)"),
        (torch.zeros(2, 3, 28, 28), r"shape \(B, 1, H, W\), got \(2, 3, 28, 28\)"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "must be a float tensor, got torch.uint8"),
    ],
)
def test_check_images_rejects(x, match):
    with pytest.raises(ValueError, match=match):
        check_images(x, 1)


def test_check_images_rejects_a_list():
    with pytest.raises(TypeError, match=r"images must be a torch.Tensor, got list \[\[0.0\]\]"):
        check_images([[0.0]], 1)


def test_conv_block_keeps_then_halves():
    block = conv_block(3, 5, batch_norm=True)
    assert [type(m).__name__ for m in block] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert block[0].bias is None  # BN makes a conv bias redundant
    assert block(torch.zeros(2, 3, 9, 9)).shape == (2, 5, 4, 4)
    assert conv_block(3, 5)[0].bias is not None


# ----------------------------------------------------------------------------- ArticleCNN


@pytest.mark.parametrize("side", [28, 32, 29, 64, 8])
def test_article_cnn_every_block_follows_the_formula(side):
    model = ArticleCNN()
    names = ["blocks.0.0", "blocks.0.2", "blocks.1.0", "blocks.1.2", "blocks.2.0", "blocks.2.2"]
    shapes = stage_outputs(model, torch.zeros(1, 1, side, side), names)
    expected_side = side
    for block, channels in enumerate((64, 128, 256)):
        expected_side = by_hand(expected_side, kernel=3, padding=1)  # conv keeps the size
        assert shapes[f"blocks.{block}.0"] == (1, channels, expected_side, expected_side)
        expected_side = by_hand(expected_side, kernel=2, stride=2)  # pool halves, rounding down
        assert shapes[f"blocks.{block}.2"] == (1, channels, expected_side, expected_side)
    assert model.feature_dim(side, side) == 256 * expected_side**2


def test_article_cnn_makes_2304_features_from_a_digit():
    out = ArticleCNN()(torch.zeros(3, 1, 28, 28))
    assert out.shape == (3, 2304) and 2304 == 256 * 3 * 3


def test_article_cnn_sides_are_28_14_7_3():
    names = ["blocks.0", "blocks.1", "blocks.2"]
    shapes = stage_outputs(ArticleCNN(), torch.zeros(1, 1, 28, 28), names)
    assert [shapes[n][-1] for n in names] == [14, 7, 3]


def test_article_cnn_parameters_by_hand():
    expected = (1 * 64 * 9 + 64) + (64 * 128 * 9 + 128) + (128 * 256 * 9 + 256)
    assert sum(p.numel() for p in ArticleCNN().parameters()) == expected == 369_664


def test_article_cnn_errors():
    with pytest.raises(
        ValueError, match=r"channels must be a non-empty tuple of positive ints, got \(\)"
    ):
        ArticleCNN(channels=())
    with pytest.raises(ValueError, match="too small"):
        ArticleCNN().feature_dim(7, 7)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        ArticleCNN()(torch.zeros(2, 28, 28))


# ----------------------------------------------------------------------------- CanvasEncoder


def test_canvas_encoder_grid_and_vector():
    enc = CanvasEncoder(out_dim=24)
    x = torch.randn(2, 1, 64, 64)
    grid = enc.forward_grid(x)
    assert grid.shape == (2, 64, 24) and enc.grid_size() == (8, 8)
    torch.testing.assert_close(enc(x), grid.mean(dim=1))
    with pytest.raises(ValueError, match="out_dim must be a positive int, got 0"):
        CanvasEncoder(out_dim=0)


# ----------------------------------------------------------------------------- VGGStyle


def test_vgg_style_shapes_and_head():
    x = torch.randn(4, 1, 28, 28)
    model = VGGStyle()
    assert model(x).shape == (4, 10)
    assert model.forward_features(x).shape == (4, 128, 3, 3)
    encoder = VGGStyle(num_classes=None, widths=(8, 16))
    assert encoder(x).shape == (4, 16 * 7 * 7) == (4, encoder.feature_dim())


def test_vgg_style_stacks_convs_per_stage():
    model = VGGStyle(widths=(8, 16), convs_per_stage=3, batch_norm=False)
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_vgg_style_parameters_by_hand():
    widths, hidden = (32, 64, 128), 128
    convs = [(1, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128)]
    conv_params = sum(9 * a * b for a, b in convs)  # no conv bias with batch norm
    bn_params = sum(2 * b for _, b in convs)
    head = (widths[-1] * 3 * 3 + 1) * hidden + (hidden + 1) * 10
    total = sum(p.numel() for p in VGGStyle().parameters())
    assert total == conv_params + bn_params + head


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"widths": ()}, "widths must be a non-empty tuple"),
        ({"widths": (8, 0)}, "widths must be a non-empty tuple"),
        ({"convs_per_stage": 0}, "convs_per_stage must be a positive int, got 0"),
        ({"num_classes": 0}, "num_classes must be a positive int, got 0"),
        ({"hidden": 0}, "hidden must be a positive int, got 0"),
        ({"in_channels": -1}, "in_channels must be a positive int, got -1"),
    ],
)
def test_vgg_style_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VGGStyle(**kwargs)


def test_vgg_style_rejects_small_or_wrong_images():
    with pytest.raises(ValueError, match="at least 8 pixels"):
        VGGStyle(num_classes=None).feature_dim(6, 6)
    with pytest.raises(ValueError, match="too small"):
        VGGStyle(widths=(8,) * 6)  # 28 px cannot be halved six times
    with pytest.raises(ValueError, match="float tensor"):
        VGGStyle()(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))


# ----------------------------------------------------------------------------- ResNet-18


def test_resnet18_mnist_parameter_count_from_torchvision_by_hand():
    reference = torchvision.models.resnet18(weights=None)  # 3-channel 7x7 stem, 1000 classes
    ref_params = sum(p.numel() for p in reference.parameters())
    old_stem = 64 * 3 * 7 * 7  # conv1 has no bias
    new_stem = 64 * 1 * 3 * 3
    old_fc = 512 * 1000 + 1000
    new_fc = 512 * 10 + 10
    expected = ref_params - old_stem + new_stem - old_fc + new_fc
    assert sum(p.numel() for p in resnet18_mnist().parameters()) == expected == 11_172_810


def test_resnet18_mnist_stem_and_stage_shapes():
    model = resnet18_mnist(num_classes=7, in_channels=3)
    assert isinstance(model.maxpool, nn.Identity)
    conv1 = model.conv1
    assert (conv1.in_channels, conv1.kernel_size, conv1.stride, conv1.padding) == (
        3,
        (3, 3),
        (1, 1),
        (1, 1),
    )
    names = ["layer1", "layer2", "layer3", "layer4", "fc"]
    shapes = stage_outputs(model, torch.zeros(2, 3, 28, 28), names)
    assert shapes == {
        "layer1": (2, 64, 28, 28),
        "layer2": (2, 128, 14, 14),
        "layer3": (2, 256, 7, 7),
        "layer4": (2, 512, by_hand(7, kernel=3, stride=2, padding=1), 4),
        "fc": (2, 7),
    }


def test_resnet18_mnist_trains_one_step():
    model = resnet18_mnist()
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert model.conv1.weight.grad is not None and torch.isfinite(loss)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 0}, "num_classes must be a positive int, got 0"),
        ({"in_channels": 0}, "in_channels must be a positive int, got 0"),
    ],
)
def test_resnet18_mnist_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resnet18_mnist(**kwargs)


def test_resnet18_mnist_rejects_a_float_size():
    with pytest.raises(TypeError, match="num_classes must be a positive int, got float 2.5"):
        resnet18_mnist(num_classes=2.5)


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: CanvasEncoder(8, (4, -2)),
            r"channels must be a non-empty tuple of positive ints, got \(4, -2\)",
        ),
        (lambda: CanvasEncoder(-8), "out_dim must be a positive int, got -8"),
        (lambda: CanvasEncoder(8, in_channels=0), "in_channels must be a positive int, got 0"),
        (lambda: CanvasEncoder(8, dropout=1.0), r"dropout must be a number in \[0, 1\), got 1.0"),
        (lambda: CanvasEncoder(8, dropout=-0.1), r"dropout must be a number in \[0, 1\), got -0.1"),
        (
            lambda: CanvasEncoder(8, dropout=float("nan")),
            r"dropout must be a number in \[0, 1\), got nan",
        ),
        (
            lambda: ArticleCNN(channels=(64, 0)),
            r"channels must be a non-empty tuple.*got \(64, 0\)",
        ),
        (lambda: ArticleCNN(in_channels=0), "in_channels must be a positive int, got 0"),
        (lambda: VGGStyle(widths=(8, -1)), r"widths must be a non-empty tuple.*got \(8, -1\)"),
    ],
)
def test_image_encoders_refuse_bad_sizes(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: CanvasEncoder(8, 32),
            "channels must be a non-empty tuple of positive ints, got int 32",
        ),
        (
            lambda: CanvasEncoder(8, (4, 2.0)),
            r"channels must be a non-empty tuple.*got tuple \(4, 2.0\)",
        ),
        (lambda: CanvasEncoder(8.0), "out_dim must be a positive int, got float 8.0"),
        (
            lambda: CanvasEncoder(8, dropout="0.1"),
            r"dropout must be a number in \[0, 1\), got str '0.1'",
        ),
        (
            lambda: VGGStyle(convs_per_stage=2.0),
            "convs_per_stage must be a positive int, got float",
        ),
    ],
)
def test_image_encoders_refuse_sizes_of_the_wrong_type(make, match):
    with pytest.raises(TypeError, match=match):
        make()


def test_coordinate_maps() -> None:
    coords = coordinate_maps(2, 3, 5)
    assert coords.shape == (2, 2, 3, 5)
    torch.testing.assert_close(coords[0, 0, 1], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    torch.testing.assert_close(coords[1, 1, :, 2], torch.tensor([-1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="height must be a positive int"):
        coordinate_maps(1, 0, 3)


# ----------------------------------------------------------------------------- DigitNet


def test_digit_net_shapes_and_parameters_by_hand():
    model = DigitNet()
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    assert model.blocks(torch.zeros(2, 1, 28, 28)).shape == (2, 64, 3, 3)
    convs = 1 * 16 * 9 + 16 * 32 * 9 + 32 * 64 * 9  # no conv biases: batch norm follows
    norms = 2 * (16 + 32 + 64)
    head = 64 * 3 * 3 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == convs + norms + head
    assert DigitNet(channels=(8, 8), image_size=32)(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"channels": ()}, ValueError, "channels must be a non-empty tuple of positive ints"),
        ({"channels": (8, 0)}, ValueError, "channels must be a non-empty tuple of positive ints"),
        ({"channels": (8, 8.0)}, TypeError, "channels must be a non-empty tuple of positive ints"),
        ({"num_classes": 1}, ValueError, "num_classes must be an int >= 2, got 1"),
        ({"image_size": 4}, ValueError, "image_size 4 is too small for 3 pooling blocks"),
    ],
)
def test_digit_net_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        DigitNet(**kwargs)
