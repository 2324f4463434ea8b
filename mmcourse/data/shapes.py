"""Shapes of drawn digits: moments, pieces and loops.

Small measurements of binary or grey digit images, each batched over ``(M, H, W)``:

- :func:`image_moments`: centre of mass and the second moments that give a digit's slant;
- :func:`count_pieces` and :func:`count_loops`: how many separate strokes a digit has, and how
  many closed loops (the holes of a 0, 6, 8 or 9), with ``scipy.ndimage.label``;
- :func:`fill_specks`: holes too small to be loops (specks in a scan) filled in;
- :func:`stroke_width`: how wide a digit's strokes are (Morpho-MNIST's thickness measure).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.morphology import skeletonize

from mmcourse._validate import describe_tensor, is_int, require

__all__ = [
    "count_loops",
    "count_pieces",
    "drop_specks",
    "fill_specks",
    "image_moments",
    "stroke_width",
    "widest_over_typical",
]


def image_moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centroid ``(M, 2)`` as (x, y), second central moments ``mu11`` and ``mu02`` of images
    ``(M, H, W)`` (pixel centres at integer coordinates; x right, y down)."""
    require(images.dim() == 3, f"image_moments expects (M, H, W), got {tuple(images.shape)}")
    images = images.float()
    height, width = images.shape[-2:]
    ys = torch.arange(height, dtype=torch.float32)
    xs = torch.arange(width, dtype=torch.float32)
    rows = images.sum(dim=2).double()  # (M, H): ink in each row
    cols = images.sum(dim=1).double()  # (M, W): ink in each column
    xy = ((images @ xs) @ ys).double()  # (M,): sum of x * y * ink
    mass = rows.sum(dim=1).clamp_min(1e-12)
    cx = cols @ xs.double() / mass
    cy = rows @ ys.double() / mass
    mu11 = xy / mass - cx * cy
    mu02 = rows @ (ys.double() ** 2) / mass - cy**2
    return torch.stack([cx, cy], dim=1), mu11, mu02


# In-plane neighbourhoods for a stack of images: nothing connects one image to the next.
_EIGHT_CONNECTED = np.zeros((3, 3, 3), dtype=bool)
_EIGHT_CONNECTED[1] = True
_FOUR_CONNECTED = np.zeros((3, 3, 3), dtype=bool)
_FOUR_CONNECTED[1, 1, :] = _FOUR_CONNECTED[1, :, 1] = True


def _check_masks(mask: object, name: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 3:
        raise ValueError(f"{name} must be a bool tensor (M, H, W), got {describe_tensor(mask)}")
    return mask


def _components_per_image(
    mask: np.ndarray, structure: np.ndarray, min_area: int = 1
) -> torch.Tensor:
    """Connected components of at least ``min_area`` pixels in each image of a stack."""
    labels, total = ndimage.label(mask, structure)
    if total == 0:
        return torch.zeros(len(mask), dtype=torch.long)
    area = np.bincount(labels.ravel(), minlength=total + 1)
    owner = np.zeros(total + 1, dtype=np.int64)
    # ``ndimage.label`` numbers components in the order it meets them, image after image, so
    # each image's labels follow the previous image's: the image of a label is found by search.
    last = np.maximum.accumulate(labels.reshape(len(labels), -1).max(axis=1))
    owner[1:] = np.searchsorted(last, np.arange(1, total + 1))
    big = area[1:] >= min_area
    return torch.from_numpy(np.bincount(owner[1:][big], minlength=len(mask))).long()


def count_pieces(mask: torch.Tensor) -> torch.Tensor:
    """``(M,)``: the pieces of each bool image ``(M, H, W)``, ink pixels joined through any of
    their eight neighbours (diagonal steps count, as the eye joins them).

    >>> count_pieces(torch.tensor([[[1, 0, 0], [0, 1, 0], [0, 0, 0]], [[1, 0, 1], [0, 0, 0], [1, 0, 1]]]).bool())
    tensor([1, 4])
    """
    _check_masks(mask, "mask")
    return _components_per_image(mask.numpy(), _EIGHT_CONNECTED)


def count_loops(mask: torch.Tensor, min_area: int = 1) -> torch.Tensor:
    """``(M,)``: the closed loops of each bool image ``(M, H, W)``: pockets of background that
    the ink surrounds, of at least ``min_area`` pixels. Background joins through its four side
    neighbours only (the dual of the ink's eight), so a loop closed by a diagonal step counts.

    >>> ring = torch.ones(1, 3, 3, dtype=torch.bool); ring[0, 1, 1] = False
    >>> count_loops(ring)
    tensor([1])
    """
    _check_masks(mask, "mask")
    if not is_int(min_area) or min_area < 1:
        raise ValueError(f"min_area must be a positive int, got {min_area!r}")
    background = np.pad(~mask.numpy(), ((0, 0), (1, 1), (1, 1)), constant_values=True)
    # the background around the digit (joined to the padded border) is one more component
    return _components_per_image(background, _FOUR_CONNECTED, min_area) - 1


def fill_specks(mask: torch.Tensor, min_area: int) -> torch.Tensor:
    """Bool images ``(M, H, W)`` with every hole of fewer than ``min_area`` pixels filled: a
    speck of background inside a stroke is scanning noise, not a loop.

    >>> ring = torch.ones(1, 4, 3, dtype=torch.bool); ring[0, 1, 1] = False
    >>> fill_specks(ring, min_area=2).all().item(), fill_specks(ring, min_area=1).all().item()
    (True, False)
    """
    _check_masks(mask, "mask")
    if not is_int(min_area) or min_area < 1:
        raise ValueError(f"min_area must be a positive int, got {min_area!r}")
    background = np.pad(~mask.numpy(), ((0, 0), (1, 1), (1, 1)), constant_values=True)
    labels, total = ndimage.label(background, _FOUR_CONNECTED)
    area = np.bincount(labels.ravel(), minlength=total + 1)
    speck = area < min_area
    speck[0] = False  # label 0 is the ink itself
    filled = mask.numpy() | speck[labels[:, 1:-1, 1:-1]]
    return torch.from_numpy(filled)


def drop_specks(mask: torch.Tensor, min_area: int) -> torch.Tensor:
    """Bool images ``(M, H, W)`` without the pieces of ink smaller than ``min_area`` pixels
    (eight-connected): a speck of ink beside a digit is scanning noise, not a stroke.

    >>> dots = torch.zeros(1, 5, 5, dtype=torch.bool); dots[0, 0, 0] = True; dots[0, 2:5, 2] = True
    >>> drop_specks(dots, min_area=2).sum().item()
    3
    """
    _check_masks(mask, "mask")
    if not is_int(min_area) or min_area < 1:
        raise ValueError(f"min_area must be a positive int, got {min_area!r}")
    labels, total = ndimage.label(mask.numpy(), _EIGHT_CONNECTED)
    area = np.bincount(labels.ravel(), minlength=total + 1)
    keep = area >= min_area
    keep[0] = False  # label 0 is the background
    return torch.from_numpy(keep[labels])


def widest_over_typical(mask: torch.Tensor) -> torch.Tensor:
    """``(M,)`` float: how much wider a digit's widest spot is than its typical stroke: the
    largest distance to the background over the median distance along the ridge (pixels no
    nearer the background than their neighbours). A loop filled with ink, a blob, stands out
    at 2 or more; a clean stroke stays near 1. An image without ink gets 0.

    >>> line = torch.zeros(1, 28, 28, dtype=torch.bool); line[0, 1:27, 13] = True  # 1 wide
    >>> blob = line.clone(); blob[0, 18:25, 10:17] = True  # a 7x7 square of ink on it
    >>> widest_over_typical(torch.cat([line, blob, torch.zeros_like(line)])).tolist()
    [1.0, 4.0, 0.0]
    """
    _check_masks(mask, "mask")
    padded = np.pad(mask.numpy(), ((0, 0), (1, 1), (1, 1)))
    # one image at a time: scipy's transform is faster on many small images than on a mosaic
    distance = np.stack([ndimage.distance_transform_edt(image) for image in padded])
    ridge = (distance >= ndimage.maximum_filter(distance, size=(1, 3, 3))) & (distance > 0)
    owner, rows, cols = np.nonzero(ridge)
    counts = np.bincount(owner, minlength=len(mask))
    values = distance[owner, rows, cols]
    ordered = values[np.lexsort((values, owner))]  # each image's ridge, ascending
    first = np.cumsum(counts) - counts
    low = ordered[np.minimum(first + (counts - 1) // 2, len(ordered) - 1)]
    high = ordered[np.minimum(first + counts // 2, len(ordered) - 1)]
    median = (low + high) / 2  # the middle value, or the mean of the two (as np.median)
    widest = distance.reshape(len(mask), -1).max(axis=1)
    ratios = np.divide(widest, median, out=np.zeros(len(mask)), where=counts > 0)
    return torch.from_numpy(ratios).float()


_UP = 4  # stroke widths are measured on a 4x upsampling, finer than whole pixels


def stroke_width(images: torch.Tensor) -> torch.Tensor:
    """``(M,)`` float: the stroke width of each grey image ``(M, H, W)`` (uint8 0..255), in its
    pixels, measured as Morpho-MNIST measures thickness: twice the mean distance to the
    background along the ink's skeleton, on a 4x bilinear upsampling binarised at half ink.
    An image without ink gets 0.

    >>> bar = torch.zeros(1, 20, 20, dtype=torch.uint8); bar[0, 4:16, 8:11] = 255
    >>> round(float(stroke_width(bar)[0]), 1)  # three pixels wide
    3.0
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 3:
        raise ValueError(f"images must be uint8 (M, H, W), got {describe_tensor(images)}")
    widths = torch.zeros(len(images))
    for index, image in enumerate(images):
        rows, cols = image.any(dim=1).nonzero(), image.any(dim=0).nonzero()
        if len(rows) == 0:
            continue
        # only the ink's bounding box, one empty pixel all round, is upsampled
        box = F.pad(image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], (1, 1, 1, 1))
        grey = F.interpolate(box[None, None].float() / 255, scale_factor=_UP, mode="bilinear")
        mask = (grey[0, 0] >= 0.5).numpy()
        if mask.any():
            distance = ndimage.distance_transform_edt(mask)
            widths[index] = 2 * float(distance[skeletonize(mask)].mean()) / _UP
    return widths
