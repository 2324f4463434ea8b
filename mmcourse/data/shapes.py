"""Shapes of drawn digits: centre lines, moments, pieces and loops.

Small measurements of binary or grey digit images, each batched over ``(M, H, W)``:

- :func:`skeleton`: one-pixel-wide centre lines (Guo and Hall's parallel thinning);
- :func:`image_moments`: centre of mass and the second moments that give a digit's slant;
- :func:`count_pieces` and :func:`count_loops`: how many separate strokes a digit has, and how
  many closed loops (the holes of a 0, 6, 8 or 9), with ``scipy.ndimage.label``;
- :func:`fill_specks`: holes too small to be loops (specks in a scan) filled in.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from mmcourse._validate import describe_tensor, is_int

__all__ = ["count_loops", "count_pieces", "fill_specks", "image_moments", "skeleton"]


# The eight neighbours of a pixel, as (dy, dx), and the bit each one sets in its pattern code.
_NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _guo_hall_deletable(side: int) -> torch.Tensor:
    """For each of the 256 neighbourhood patterns: may a stroke pixel with these neighbours be
    deleted in Guo and Hall's sub-iteration ``side`` (0 or 1)? A lookup table of 256 bools."""
    codes = torch.arange(256)
    n, ne, e, se, s, sw, w, nw = ((codes >> bit) & 1 == 1 for bit in range(8))
    bridges = (
        (~n & (ne | e)).int()
        + (~e & (se | s)).int()
        + (~s & (sw | w)).int()
        + (~w & (nw | n)).int()
    )
    n1 = (nw | n).int() + (ne | e).int() + (se | s).int() + (sw | w).int()
    n2 = (n | ne).int() + (e | se).int() + (s | sw).int() + (w | nw).int()
    neighbours = torch.minimum(n1, n2)
    facing = ((n | ne | ~se) & e) if side == 0 else ((s | sw | ~nw) & w)
    return (bridges == 1) & (neighbours >= 2) & (neighbours <= 3) & ~facing


_DELETABLE = (_guo_hall_deletable(0), _guo_hall_deletable(1))


def _neighbour_codes(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's eight neighbours in ``(M, H, W)`` bool images as one code 0..255 (bit ``k``
    set when neighbour ``_NEIGHBOURS[k]`` is ink; beyond the border is empty)."""
    height, width = x.shape[1:]
    padded = F.pad(x.view(torch.uint8), (1, 1, 1, 1))
    code = torch.zeros_like(padded[:, 1:-1, 1:-1])
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        code |= padded[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] << bit
    return code.long()


def skeleton(mask: torch.Tensor, max_iterations: int = 20) -> torch.Tensor:
    """One-pixel-wide skeletons of binary images ``(M, H, W)`` (Guo and Hall's parallel
    thinning, 1989): strokes are peeled from alternate sides until only their centre lines are
    left. It never splits a shape or removes a stroke's end, so the skeleton has the pieces of
    the shape. Each pixel's neighbourhood is read as one 8-bit code, and a 256-entry table says
    whether that pattern may be deleted."""
    x = mask.clone()
    for _ in range(max_iterations):
        changed = False
        for side in (0, 1):
            delete = x & _DELETABLE[side][_neighbour_codes(x)]
            if delete.any():
                x &= ~delete
                changed = True
        if not changed:
            break
    return x


def image_moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centroid ``(M, 2)`` as (x, y), second central moments ``mu11`` and ``mu02`` of images
    ``(M, H, W)`` (pixel centres at integer coordinates; x right, y down)."""
    if images.dim() != 3:
        raise ValueError(f"image_moments expects (M, H, W), got {tuple(images.shape)}")
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
