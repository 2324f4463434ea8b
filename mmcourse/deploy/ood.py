"""Inputs a deployed captioner was never trained on, made from a split of MNIST-Captions.

:func:`unusual_canvases` turns the canvases of a split into one of :data:`UNUSUAL_KINDS`:

- ``"blank"``: nothing drawn;
- ``"noise"``: every pixel drawn uniformly from 0..255;
- ``"inverted"``: dark ink on a white canvas (``255 - canvas``);
- ``"rotated"``: the canvas turned a quarter turn anticlockwise (digits lie on their side,
  slots run from bottom to top);
- ``"oversized"``: one digit of the canvas drawn again in the middle, with its own pen but
  :data:`OVERSIZE` times the size of a "large" digit (no training digit is that tall);
- ``"letters"``: every digit replaced by a capital letter (:data:`LETTERS`) drawn at the same
  place, with the same pen, size and slant (:func:`letter_glyphs`).

Every kind keeps the canvas format (uint8 ``(N, 64, 64)``), so a service accepts it: nothing
in the request's type or shape says it is unusual, only its content does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mmcourse._validate import check_choice, check_int, require
from mmcourse.data.captions.layout import CANVAS, MAX_DIGITS
from mmcourse.data.captions.render import compose, paste_windows
from mmcourse.data.pen import draw_with_pen

if TYPE_CHECKING:
    from mmcourse.data.captions.dataset import MNISTCaptions

__all__ = ["LETTERS", "OVERSIZE", "UNUSUAL_KINDS", "letter_glyphs", "unusual_canvases"]

UNUSUAL_KINDS = ("blank", "noise", "inverted", "rotated", "oversized", "letters")
"""The kinds of :func:`unusual_canvases`, from the plainest to the most digit-like."""

LETTERS = "ACEFHKMNPRTUVWXY"
"""Capital letters unlike any digit (no O, I, Z, S, B, G, ...)."""

OVERSIZE = 1.4
"""The oversized digits' scale: 1.4 times a "large" digit, the largest that still fits the
pen's drawing window."""


def letter_glyphs(letters: str = LETTERS) -> torch.Tensor:
    """uint8 ``(L, 28, 28)``: each letter in MNIST's format, white on black, its longer side
    20 pixels and its centre of mass in the middle of the 28x28 frame (as LeCun et al.
    prepared the digits). Drawn with Pillow in matplotlib's DejaVu Sans, the font that ships
    with matplotlib, so the glyphs are the same on every machine with the same versions."""
    require(
        isinstance(letters, str) and len(letters) > 0 and letters.isalpha(),
        f"letters must be a non-empty string of letters, got {letters!r}",
    )
    return torch.stack([_glyph(letter) for letter in letters])


def _glyph(letter: str) -> torch.Tensor:
    import matplotlib
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf", 40)
    picture = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(picture).text((32, 32), letter, fill=255, font=font, anchor="mm")
    ink = torch.tensor(np.array(picture), dtype=torch.float32)
    rows, cols = (ink > 0).nonzero(as_tuple=True)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = 20 / max(ink.shape)
    size = [max(1, round(side * scale)) for side in ink.shape]
    ink = torch.nn.functional.interpolate(
        ink[None, None], size=size, mode="bilinear", antialias=True, align_corners=False
    )[0, 0]
    return _centre_of_mass_in_frame(ink)


def _centre_of_mass_in_frame(ink: torch.Tensor) -> torch.Tensor:
    height, width = ink.shape
    y = torch.arange(height, dtype=torch.float32)[:, None]
    x = torch.arange(width, dtype=torch.float32)[None, :]
    total = ink.sum()
    top = min(max(round(14 - float((ink * y).sum() / total)), 0), 28 - height)
    left = min(max(round(14 - float((ink * x).sum() / total)), 0), 28 - width)
    frame = torch.zeros(28, 28)
    frame[top : top + height, left : left + width] = ink
    return frame.clamp(0, 255).round().to(torch.uint8)


def unusual_canvases(
    data: MNISTCaptions, kind: str, pool_images: torch.Tensor | None = None, seed: int = 0
) -> torch.Tensor:
    """uint8 ``(N, 64, 64)``: the canvases of ``data`` made into ``kind`` (see the module
    docstring). ``pool_images`` is the split's digit pool
    (:func:`~mmcourse.data.captions.dataset.digit_pool`), needed for ``"oversized"`` only;
    ``seed`` draws the noise and the letters."""
    check_choice(kind, "kind", UNUSUAL_KINDS)
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    canvases = data.images
    if kind == "blank":
        return torch.zeros_like(canvases)
    if kind == "noise":
        return torch.randint(0, 256, canvases.shape, generator=generator, dtype=torch.uint8)
    if kind == "inverted":
        return 255 - canvases
    if kind == "rotated":
        return torch.rot90(canvases, 1, dims=(1, 2)).contiguous()
    if kind == "oversized":
        require(pool_images is not None, "oversized canvases need the split's pool_images")
        return _oversized(data, pool_images)
    glyphs = letter_glyphs()
    picks = torch.randint(len(glyphs), (len(data), MAX_DIGITS), generator=generator)
    centres = data.centers.nan_to_num(CANVAS / 2)
    return compose(data.layout, glyphs[picks], centres, data.pen_width.nan_to_num(1.0))


def _oversized(data: MNISTCaptions, pool_images: torch.Tensor) -> torch.Tensor:
    """The first digit of each canvas, alone in the middle, upright, OVERSIZE times large."""
    n = len(data)
    require(
        isinstance(pool_images, torch.Tensor) and pool_images.shape[1:] == (28, 28),
        "pool_images must be the split's (M, 28, 28) digit pool",
    )
    first_slot = (data.source >= 0).float().argmax(dim=1)
    rows = torch.arange(n)
    digits = pool_images[data.source[rows, first_slot]]
    middle = torch.full((n, 2), CANVAS / 2)
    windows, corner = draw_with_pen(
        digits, torch.full((n,), OVERSIZE), torch.zeros(n), middle, data.pen_width[rows, first_slot]
    )
    return paste_windows(n, windows, corner, rows)
