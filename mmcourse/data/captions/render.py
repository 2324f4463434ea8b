"""Drawing a layout: each digit redrawn by the pen (:mod:`mmcourse.data.pen`) and pasted into
its slot of a 64x64 canvas (:func:`render_layout`, :func:`compose`), or drawn alone
(:func:`draw_alone`, :func:`cut_out`) to check what the canvas shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmcourse.data.captions.layout import (
    CANVAS,
    CENTER_Y_RANGE,
    JITTER_X,
    MAX_DIGITS,
    SCALES,
    SHEARS,
    SLOT_X,
    Layout,
)

if TYPE_CHECKING:
    from mmcourse.data.captions.dataset import MNISTCaptions

import torch

from mmcourse._validate import describe_tensor, require
from mmcourse.data.pen import (
    WINDOW,
    draw_legibly,
    draw_with_pen,
    pen_widths,
    pool_kinds,
    to_mnist_frame,
)

__all__ = ["compose", "cut_out", "draw_alone", "paste_windows", "render_layout"]


def paste_windows(
    n: int, windows: torch.Tensor, corner: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """uint8 ``(n, 64, 64)`` canvases: each pen window ``(M, WINDOW, WINDOW)`` laid on canvas
    ``rows[i]`` with its top-left pixel at ``corner[i]`` (x, y); where windows overlap, the
    darker ink wins. Windows may hang over the canvas's edges."""
    m = len(rows) if isinstance(rows, torch.Tensor) else -1
    require(
        isinstance(windows, torch.Tensor) and windows.shape == (m, WINDOW, WINDOW),
        f"windows must be ({m}, {WINDOW}, {WINDOW}), one per row index, got "
        f"{describe_tensor(windows)}",
    )
    require(
        isinstance(corner, torch.Tensor) and corner.shape == (m, 2),
        f"corner must be ({m}, 2), got {describe_tensor(corner)}",
    )
    require(m == 0 or 0 <= int(rows.min()) <= int(rows.max()) < n, f"rows must lie in 0..{n - 1}")
    side = CANVAS + 2 * WINDOW  # the canvas with a window's margin all round
    steps = torch.arange(WINDOW)
    y = corner[:, 1, None, None] + WINDOW + steps[None, :, None]
    x = corner[:, 0, None, None] + WINDOW + steps[None, None, :]
    flat = rows[:, None, None] * side * side + y * side + x
    canvas = torch.zeros(n * side * side)
    canvas.scatter_reduce_(0, flat.flatten(), windows.flatten(), "amax")
    inner = canvas.view(n, side, side)[:, WINDOW : WINDOW + CANVAS, WINDOW : WINDOW + CANVAS]
    return (inner.clamp(0, 1) * 255).round().to(torch.uint8)


def _placement(
    layout: Layout, present: torch.Tensor, centers: torch.Tensor, pen_width: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(scale, shear, centre, pen_width)`` of every present digit, in row-major slot order,
    as :func:`mmcourse.data.pen.draw_with_pen` takes them."""
    scale = torch.tensor(SCALES)[layout.size[present]]
    shear = torch.tensor(SHEARS)[layout.slant[present]]
    return scale, shear, centers[present].float(), pen_width[present].float()


def render_layout(
    layout: Layout,
    pool_images: torch.Tensor,
    pool_labels: torch.Tensor,
    generator: torch.Generator,
    kinds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw canvases for ``layout`` from a pool of MNIST digits.

    Each digit is picked at random among the pool's digits of its class, placed in its slot
    (jittered), and drawn with a pen whose width is drawn from its thickness word's band
    (:data:`mmcourse.data.pen.PEN_BANDS`). A drawing that lost its digit's shape (a broken
    stroke, a loop filled or made: :func:`mmcourse.data.pen.drawing_faults`) is drawn again
    with another pool digit of the same class and number of loops. ``kinds`` is
    :func:`mmcourse.data.pen.pool_kinds` of the pool, computed here when not given.

    Returns ``images`` uint8 ``(N, 64, 64)``, ``centers`` float ``(N, 3, 2)`` (x, y of the
    centre of mass of each digit's centre line, which the pen's ink keeps to within about a
    pixel; NaN for an empty slot), ``source`` long ``(N, 3)`` (the index in
    the pool of each digit drawn, ``-1`` if empty) and ``pen_width`` float ``(N, 3)`` (in
    canvas pixels; NaN if empty).
    """
    n = len(layout)
    order = torch.argsort(pool_labels, stable=True)
    counts = torch.bincount(pool_labels, minlength=10)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().squeeze(1).tolist()
        raise ValueError(f"the digit pool has no example of digit(s) {missing}")
    if kinds is None:
        kinds = pool_kinds(pool_images, pool_labels)
    starts = torch.cumsum(counts, 0) - counts
    present = layout.digits >= 0
    safe_digits = layout.digits.clamp_min(0)
    pick = (torch.rand(n, MAX_DIGITS, generator=generator) * counts[safe_digits]).long()
    source = torch.where(present, order[starts[safe_digits] + pick], torch.full_like(pick, -1))
    jitter_x = (torch.rand(n, MAX_DIGITS, generator=generator) * 2 - 1) * JITTER_X
    low, high = CENTER_Y_RANGE
    center_y = low + torch.rand(n, MAX_DIGITS, generator=generator) * (high - low)
    center_x = torch.tensor(SLOT_X)[None, :] + jitter_x
    centers = torch.stack([center_x, center_y], dim=-1)
    centers[~present] = float("nan")
    pen_width = torch.full((n, MAX_DIGITS), float("nan"))
    pen_width[present] = pen_widths(layout.thickness[present], generator)
    placement = _placement(layout, present, centers, pen_width)
    windows, corner, picks = draw_legibly(pool_images, kinds, source[present], placement, generator)
    source[present] = picks
    rows = present.nonzero()[:, 0]
    return paste_windows(n, windows, corner, rows), centers, source, pen_width


def compose(
    layout: Layout, digits: torch.Tensor, centers: torch.Tensor, pen_width: torch.Tensor
) -> torch.Tensor:
    """Draw canvases from what :func:`render_layout` chose, with no randomness left: uint8
    ``(N, 64, 64)`` for ``layout``, the MNIST ``digits`` ``(N, 3, 28, 28)`` of each slot,
    their ``centers`` ``(N, 3, 2)`` and ``pen_width`` ``(N, 3)`` (both ignored where a slot
    is empty). Change a digit's size or slant in ``layout`` (or its pen width) and the same
    digit is drawn again, changed, at the same place; nothing is redrawn if the change breaks
    a stroke or fills a loop."""
    n = len(layout)
    if digits.dtype != torch.uint8 or digits.shape != (n, MAX_DIGITS, 28, 28):
        raise ValueError(
            f"digits must be uint8 ({n}, {MAX_DIGITS}, 28, 28), got {digits.dtype} "
            f"{tuple(digits.shape)}"
        )
    present = layout.digits >= 0
    for name, value, shape in (
        ("centers", centers, (n, MAX_DIGITS, 2)),
        ("pen_width", pen_width, (n, MAX_DIGITS)),
    ):
        if not value.is_floating_point() or tuple(value.shape) != shape:
            raise ValueError(f"{name} must be float {shape}, got {describe_tensor(value)}")
    on_canvas = (centers[present] >= 0) & (centers[present] <= CANVAS - 1)
    require(on_canvas.all(), f"every digit's centre must lie on the canvas, 0..{CANVAS - 1} pixels")
    windows, corner = draw_with_pen(
        digits[present], *_placement(layout, present, centers, pen_width)
    )
    return paste_windows(n, windows, corner, present.nonzero()[:, 0])


def draw_alone(data: MNISTCaptions, pool_images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(M, 64, 64)``: every digit of ``data`` (row by row, slot by slot, as
    ``data.layout.digits >= 0`` lists them) drawn alone on an empty canvas, exactly as it
    stands on its own canvas, so that one digit can be measured without its neighbours.
    ``pool_images`` is the pool the split was drawn from (:func:`digit_pool`)."""
    present = data.layout.digits >= 0
    rows, slots = present.nonzero().unbind(1)
    keep = torch.zeros(len(rows), MAX_DIGITS, dtype=torch.bool)
    keep[torch.arange(len(rows)), slots] = True
    fields = (getattr(data.layout, name)[rows] for name in Layout.fields())
    alone = Layout(*(torch.where(keep, field, -1) for field in fields))
    digits = pool_images[data.source[rows].clamp_min(0)]
    centers = data.centers[rows].nan_to_num(CANVAS / 2)
    return compose(alone, digits, centers, data.pen_width[rows].nan_to_num(1.0))


def cut_out(data: MNISTCaptions, pool_images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(M, 28, 28)``: every digit of ``data`` (in :func:`draw_alone`'s order) drawn
    alone and resampled around its centre by ``1 / scale`` (bilinear), so that it has MNIST's
    size and frame again and a classifier of plain MNIST digits can read it."""
    alone = draw_alone(data, pool_images).float() / 255
    present = data.layout.digits >= 0
    scale = torch.tensor(SCALES)[data.layout.size[present]]
    digits = to_mnist_frame(alone, data.centers[present], scale)
    return (digits * 255).round().clamp(0, 255).to(torch.uint8)
