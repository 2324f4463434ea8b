"""Tests for mmcourse.models.pooling: grid -> vector, with and without positions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmcourse.models.image import CanvasEncoder
from mmcourse.models.pooling import ImageVector


def encoder() -> CanvasEncoder:
    return CanvasEncoder(out_dim=5, channels=(4, 6, 8)).eval()


def test_flatten_concatenates_regions_in_row_major_order() -> None:
    grid_encoder = encoder()
    pooled = ImageVector(grid_encoder, "flatten").eval()
    images = torch.randn(3, 1, 64, 64)
    grid = grid_encoder.forward_grid(images)  # (3, 64, 5)
    out = pooled(images)
    assert pooled.regions == 64 and pooled.out_dim == 64 * 5
    assert out.shape == (3, 320)
    # region r occupies features r*5 .. r*5+4
    for r in (0, 7, 63):
        torch.testing.assert_close(out[:, r * 5 : (r + 1) * 5], grid[:, r])


def test_mean_averages_regions_and_matches_canvas_encoder() -> None:
    grid_encoder = encoder()
    pooled = ImageVector(grid_encoder, "mean").eval()
    images = torch.randn(2, 1, 64, 64)
    assert pooled.out_dim == 5
    torch.testing.assert_close(pooled(images), grid_encoder(images))
    # mean pooling accepts any size; flatten only the size it was built for
    assert pooled(torch.randn(2, 1, 32, 32)).shape == (2, 5)


def test_flatten_sees_where_mean_does_not() -> None:
    """Moving a blob from the left to the right half changes *which* features are active."""
    pooled = ImageVector(encoder(), "flatten").eval()
    left = torch.zeros(1, 1, 64, 64)
    left[..., 28:36, 4:12] = 3.0
    right = left.flip(-1)
    a, b = pooled(left)[0].view(64, 5), pooled(right)[0].view(64, 5)
    background = pooled(torch.zeros(1, 1, 64, 64))[0].view(64, 5)
    changed_a = (a - background).abs().sum(1) > 1e-4
    changed_b = (b - background).abs().sum(1) > 1e-4
    columns = torch.arange(64) % 8
    assert columns[changed_a].max() < 4  # the left blob only touches left regions
    assert columns[changed_b].min() >= 4


def test_image_size_is_used_for_the_region_count() -> None:
    pooled = ImageVector(encoder(), "flatten", image_size=(32, 48))
    assert pooled.regions == 4 * 6
    assert pooled(torch.randn(2, 1, 32, 48)).shape == (2, 24 * 5)
    assert "regions=24" in repr(pooled)


def test_errors() -> None:
    with pytest.raises(ValueError, match="pooling must be one of"):
        ImageVector(encoder(), "max")
    with pytest.raises(ValueError, match="forward_grid"):
        ImageVector(nn.Linear(3, 3))
    no_dim = encoder()
    no_dim.out_dim = "five"
    with pytest.raises(ValueError, match="out_dim"):
        ImageVector(no_dim)
    with pytest.raises(ValueError, match="image_size"):
        ImageVector(encoder(), image_size=(64,))
    with pytest.raises(ValueError, match="too small"):
        ImageVector(encoder(), image_size=(4, 4))
    with pytest.raises(ValueError, match=r"expected images of size \(64, 64\)"):
        ImageVector(encoder())(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="shape"):
        ImageVector(encoder())(torch.randn(1, 64, 64))
