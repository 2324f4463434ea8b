"""Digits drawn again with a pen whose width is set in canvas pixels.

A caption's thickness word must name something the canvas shows. Thinning or thickening a
digit *relative to its own stroke* (Morpho-MNIST's perturbations) does not: MNIST's writers
used pens of many widths, so a bold digit made "thin" can be as wide on the canvas as a fine
one left "normal". Here every digit goes through the same steps, whatever its word:

1. its **centre line**: the skeleton of the MNIST digit (``skimage.morphology.skeletonize``,
   Zhang and Suen's thinning, with specks of background filled first), each point moved to the
   mean of its skeleton neighbours (a smoother line), plus the midpoint of every pair of
   neighbouring points (no gaps wider than half a pixel);
2. the line is mapped onto the canvas: deslanted by its own slant (second moments),
   sheared by the slant the caption names, scaled by its size and put at its place;
3. a round **pen** of width ``w`` canvas pixels traces it: a pixel at distance ``d`` from the
   line gets ink ``clip(w / 2 + 1/2 - d, 0, 1)``, so the edge is anti-aliased over one pixel
   and the half-ink outline is ``w`` wide.

The word then names a band of pen widths (:data:`PEN_BANDS`, the same for every size, with
empty margins between them), and a measurement of the canvas alone can read it.

A drawing can also lose what made the digit readable: a wide pen fills the small loops of a
small 8, and a centre line can close a gap the writer left open. :func:`drawing_faults`
compares a drawing's pieces and loops with those of its MNIST digit, so that a generator can
draw another digit of the same class instead.

A vertical bar drawn with a pen 2 pixels wide holds 2 pixels' worth of ink across each row:

>>> digits = torch.zeros(1, 28, 28, dtype=torch.uint8); digits[0, 6:22, 13:15] = 255  # a "1"
>>> windows, corner = draw_with_pen(digits, torch.tensor([0.9]), torch.tensor([0.0]),
...                                 torch.tensor([[32.0, 32.0]]), torch.tensor([2.0]))
>>> windows.shape, corner.tolist(), round(float(windows[0, 16].sum()), 2)
(torch.Size([1, 32, 32]), [[16, 16]], 2.0)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from skimage.morphology import skeletonize

from mmcourse._validate import describe_tensor, require
from mmcourse.data.shapes import (
    count_loops,
    count_pieces,
    drop_specks,
    fill_specks,
    widest_over_typical,
)

__all__ = [
    "MIN_LOOP_AREA",
    "PEN_BANDS",
    "WINDOW",
    "centre_lines",
    "draw_with_pen",
    "draw_legibly",
    "drawing_faults",
    "move_to_band",
    "pen_widths",
    "pool_kinds",
    "to_mnist_frame",
]

PEN_BANDS = {"thin": (1.0, 1.4), "normal": (1.9, 2.5), "thick": (3.3, 3.9)}
"""Pen width in canvas pixels for each thickness word, the same for small and large digits.
The gaps between bands (1.4-1.9 and 2.5-3.3) hold no digit, so that a measurement with its
own errors still reads the word."""
WINDOW = 32
"""Each digit is drawn into a square window of this many canvas pixels around its centre: a
large digit (MNIST's 20-pixel box, leaning, with the widest pen) fits, all but about one in a
thousand, which :func:`drawing_faults` finds and the dataset draws again."""
MAX_REDRAWS = 255
"""How many other digits :func:`draw_legibly` tries in place of a faulty drawing, at most."""
_CANDIDATES_PER_ROUND = (1, 2, 4, 8, 16, 32, 64, 128)  # one try first: most succeed at once
MIN_LOOP_AREA = 3
"""A hole in an MNIST digit counts as a loop from this many pixels (smaller ones are specks)."""
MIN_SPECK_AREA = 4
"""A piece of ink in an MNIST digit counts as a stroke from this many pixels (smaller ones are
specks, left out of the centre line, or the pen would draw them as dots)."""
MAX_BLOB = 2.5
"""A digit whose widest spot is more than this many times its typical stroke's width
(:func:`~mmcourse.data.shapes.widest_over_typical`) has a loop filled with ink: its centre
line cannot draw that blob, so the drawing counts as faulty."""
_FRAME = 2  # empty MNIST pixels around a digit while its skeleton is found
_REACH = 3  # a point of the line inks pixels up to this far (the widest pen's half + the edge)
_NEIGHBOUR_STEPS = ((0, 1), (1, 0), (1, 1), (1, -1))  # each pair of 8-neighbours once


def _check_digits(digits: object) -> torch.Tensor:
    if (
        not isinstance(digits, torch.Tensor)
        or digits.dtype != torch.uint8
        or digits.dim() != 3
        or digits.shape[1:] != (28, 28)
    ):
        raise ValueError(
            f"digits must be uint8 MNIST digits (M, 28, 28), got {describe_tensor(digits)}"
        )
    return digits


def _shape(digits: torch.Tensor, level: int = 128) -> torch.Tensor:
    """The ink of MNIST digits at ``level`` (half of 255), specks of background filled and
    specks of ink dropped (both are scanning noise, not loops or strokes): the shape that is
    drawn again and that a drawing is compared with."""
    return drop_specks(fill_specks(digits >= level, MIN_LOOP_AREA), MIN_SPECK_AREA)


def _check_per_digit(value: object, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise ValueError(f"{name} must be a float tensor of shape {shape}, got {value!r:.60}")
    if tuple(value.shape) != shape:
        raise ValueError(
            f"{name} must have shape {shape} (one per digit), got {tuple(value.shape)}"
        )
    require(torch.isfinite(value).all(), f"{name} holds NaN or infinity")
    return value.float()


def _band_ends() -> tuple[torch.Tensor, torch.Tensor]:
    """The low and high ends of each word's band, ``(3,)`` each, thin to thick."""
    low, high = torch.tensor(list(PEN_BANDS.values())).T
    return low, high


def _check_words(words: object, name: str, one_dim: bool) -> torch.Tensor:
    """``words`` as word indices (long, 0..2), or a clear error naming ``name``."""
    shape_ok = not one_dim or (isinstance(words, torch.Tensor) and words.dim() == 1)
    if not isinstance(words, torch.Tensor) or words.dtype != torch.long or not shape_ok:
        kind = "a 1-D long tensor" if one_dim else "a long tensor"
        raise ValueError(f"{name} must be {kind} of word indices, got {words!r:.60}")
    if words.numel() and not (0 <= int(words.min()) and int(words.max()) < len(PEN_BANDS)):
        raise ValueError(f"{name} must be indices 0..{len(PEN_BANDS) - 1} (thin, normal, thick)")
    return words


def pen_widths(words: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A pen width for each thickness word (``(M,)`` indices into :data:`PEN_BANDS`' order:
    thin, normal, thick), drawn uniformly from its band."""
    _check_words(words, "words", one_dim=True)
    low, high = _band_ends()
    return low[words] + torch.rand(len(words), generator=generator) * (high - low)[words]


def move_to_band(width: torch.Tensor, word: torch.Tensor, new_word: torch.Tensor) -> torch.Tensor:
    """Pen widths moved from the band of ``word`` to the band of ``new_word`` (word indices as
    :func:`pen_widths` takes them), each at the same relative place in its new band: the
    widest thin pen becomes the widest thick one.

    >>> moved = move_to_band(torch.tensor([1.2, 3.3]), torch.tensor([0, 2]), torch.tensor([2, 1]))
    >>> [round(width, 3) for width in moved.tolist()]  # mid-thin to mid-thick; bottom of thick to bottom of normal
    [3.6, 1.9]
    """
    _check_words(word, "word", one_dim=False)
    _check_words(new_word, "new_word", one_dim=False)
    low, high = _band_ends()
    where = (width - low[word]) / (high - low)[word]
    return low[new_word] + where * (high - low)[new_word]


def to_mnist_frame(images: torch.Tensor, centre: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``(M, 28, 28)`` floats: each drawing of ``images`` (float ``(M, H, W)`` in [0, 1])
    resampled around its ``centre`` (``(M, 2)``, x and y in pixels) by ``1 / scale``
    (``(M,)``), bilinear: the digit back at MNIST's size and in MNIST's 28x28 frame."""
    height, width = images.shape[1:]
    steps = torch.arange(28, dtype=torch.float32) - 13.5
    xs = centre[:, 0, None, None] + scale[:, None, None] * steps[None, None, :]
    ys = centre[:, 1, None, None] + scale[:, None, None] * steps[None, :, None]
    # pixel centres 0 .. side-1 become -1 .. 1 (align_corners=True)
    to_x, to_y = 2 / (width - 1), 2 / (height - 1)
    grid = torch.stack(torch.broadcast_tensors(xs * to_x - 1, ys * to_y - 1), dim=-1)
    return F.grid_sample(images[:, None], grid, align_corners=True)[:, 0].clamp(0, 1)


def centre_lines(digits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The centre line of each MNIST digit as points in its 28x28 image: ``points`` ``(K, 2)``
    (x, y) and ``owner`` ``(K,)``, the digit each point belongs to. Each skeleton pixel moves
    to the mean of the skeleton pixels around it, and the midpoint of every pair of
    neighbouring skeleton pixels is added."""
    _check_digits(digits)
    shapes = F.pad(_shape(digits), (_FRAME,) * 4).numpy()
    skeletons = torch.from_numpy(np.stack([skeletonize(shape) for shape in shapes]))
    height, width = skeletons.shape[1:]
    ink = skeletons.float()[:, None]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing="ij",
    )

    def box_sum(x: torch.Tensor) -> torch.Tensor:  # the sum over each pixel's 3x3 block
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)[:, 0] * 9

    around = box_sum(ink).clamp_min(1)
    smooth = torch.stack([box_sum(ink * xs) / around, box_sum(ink * ys) / around], dim=-1)
    smooth = smooth - _FRAME  # (M, H, W, 2), in the 28x28 image's pixels
    points, owners = [smooth[skeletons]], [skeletons.nonzero()[:, 0]]
    for dy, dx in _NEIGHBOUR_STEPS:
        first = (slice(None), slice(0, height - dy), slice(max(0, -dx), width - max(0, dx)))
        second = (slice(None), slice(dy, height), slice(max(0, dx), width + min(0, dx)))
        pairs = skeletons[first] & skeletons[second]
        points.append((smooth[first][pairs] + smooth[second][pairs]) / 2)
        owners.append(pairs.nonzero()[:, 0])
    return torch.cat(points), torch.cat(owners)


def draw_with_pen(
    digits: torch.Tensor,
    scale: torch.Tensor,
    shear: torch.Tensor,
    centre: torch.Tensor,
    pen_width: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw each MNIST digit's centre line on the canvas with a round pen.

    Args:
        digits: ``(M, 28, 28)`` uint8 MNIST digits.
        scale, shear: ``(M,)`` size factor and the slant's shear (x moves by ``shear`` times
            the height above the centre; the digit's own slant is removed first).
        centre: ``(M, 2)`` where the digit's centre of mass lands, in canvas pixels (x, y).
        pen_width: ``(M,)`` in canvas pixels.

    Returns:
        ``windows`` ``(M, WINDOW, WINDOW)`` float ink in [0, 1], and ``corner`` ``(M, 2)``
        long, the canvas pixel (x, y) of each window's top-left pixel.
    """
    _check_digits(digits)
    m = len(digits)
    scale = _check_per_digit(scale, "scale", (m,))
    shear = _check_per_digit(shear, "shear", (m,))
    centre = _check_per_digit(centre, "centre", (m, 2))
    pen_width = _check_per_digit(pen_width, "pen_width", (m,))
    if (scale <= 0).any() or (pen_width <= 0).any() or (pen_width > 2 * _REACH - 1).any():
        raise ValueError(f"scale must be > 0 and pen_width in (0, {2 * _REACH - 1}] pixels")
    points, owner = centre_lines(digits)
    u, v, slant = _centred(points, owner, m)
    lean = (slant + shear)[owner]  # deslant, then shear
    corner = torch.floor(centre) - WINDOW // 2
    x = (centre[:, 0] - corner[:, 0])[owner] + scale[owner] * (u - lean * v)
    y = (centre[:, 1] - corner[:, 1])[owner] + scale[owner] * v
    distance = _distance_to_points(x, y, owner, m)
    windows = (pen_width[:, None, None] / 2 + 0.5 - distance).clamp(0, 1)
    return windows, corner.long()


def _centred(
    points: torch.Tensor, owner: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each point about its centre line's centre of mass (``u`` right, ``v`` down, ``(K,)``)
    and each line's slant ``mu11 / mu02`` ``(m,)``: how far x moves per pixel of y (a pen of
    even width puts its ink where its line is, so the drawing's centre and slant are the
    line's)."""

    def per_digit(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(m).index_add_(0, owner, values)

    count = per_digit(torch.ones(len(owner))).clamp_min(1)
    u = points[:, 0] - (per_digit(points[:, 0]) / count)[owner]
    v = points[:, 1] - (per_digit(points[:, 1]) / count)[owner]
    return u, v, per_digit(u * v) / per_digit(v * v).clamp_min(1e-6)


def _distance_to_points(
    x: torch.Tensor, y: torch.Tensor, owner: torch.Tensor, m: int
) -> torch.Tensor:
    """``(m, WINDOW, WINDOW)``: each window pixel's distance to the nearest of its digit's
    points (``x``, ``y`` in window pixels, ``owner`` the digit of each), looked up only within
    :data:`_REACH` of each point (farther pixels get ink 0 anyway)."""
    side = WINDOW + 2 * _REACH  # the window with a margin, so that no lookup falls outside
    near = (x > -_REACH) & (x < WINDOW + _REACH - 1) & (y > -_REACH) & (y < WINDOW + _REACH - 1)
    x, y, owner = x[near], y[near], owner[near]
    steps = torch.arange(1 - _REACH, _REACH + 1)
    column, row = torch.floor(x), torch.floor(y)
    across = (column[:, None] + steps - x[:, None]) ** 2  # (K, 2R): squared x-distances
    down = (row[:, None] + steps - y[:, None]) ** 2
    squared = down[:, :, None] + across[:, None, :]  # (K, 2R, 2R)
    corner = owner * side * side + (row.long() + _REACH) * side + column.long() + _REACH
    flat = corner[:, None, None] + (steps[:, None] * side + steps[None, :])
    nearest = torch.full((m * side * side,), float(WINDOW) ** 2)
    nearest.scatter_reduce_(0, flat.flatten(), squared.flatten(), "amin")
    inner = nearest.view(m, side, side)[:, _REACH : _REACH + WINDOW, _REACH : _REACH + WINDOW]
    return inner.sqrt()  # the square root of the least square: the least distance


def drawing_faults(windows: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """``(M,)`` bool: which drawings lost the shape of their MNIST digit:

    - more **pieces** than the digit (ink at half of the drawing's peak; the digit's at half
      of 255, holes smaller than :data:`MIN_LOOP_AREA` pixels filled as scanning specks), so
      a stroke broke;
    - another number of **loops** at half the peak: a loop filled, opened, or a gap closed;
    - fewer loops at a *quarter* of the peak: a loop the pen nearly filled;
    - any ink on the window's edge: the drawing is cut off (a tall digit, leaning, with a
      wide pen, about one in a thousand of the largest drawings).
    """
    _check_digits(digits)
    if (
        not isinstance(windows, torch.Tensor)
        or not windows.is_floating_point()
        or windows.dim() != 3
        or windows.shape[:1] != digits.shape[:1]
    ):
        raise ValueError(
            "windows must be float drawings (M, H, W), one per digit, as draw_with_pen returns"
        )
    peak = windows.flatten(1).amax(dim=1).clamp_min(1e-6)[:, None, None]
    drawn, faint = windows >= peak / 2, windows >= peak / 4
    source, source_faint = _shape(digits), _shape(digits, level=64)
    loops, drawn_loops = count_loops(source), count_loops(drawn)
    # more pieces than the digit has even at a quarter of full ink: a faint stroke broke
    broken = count_pieces(drawn) > count_pieces(source_faint)
    blob = widest_over_typical(source) > MAX_BLOB
    lost_or_made = (count_loops(faint) < loops) | (drawn_loops != loops)
    border = torch.cat([windows[:, 0], windows[:, -1], windows[:, :, 0], windows[:, :, -1]], 1)
    cut = border.amax(dim=1) > 0  # the digit runs past its window's edge
    return broken | lost_or_made | cut | blob


def pool_kinds(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(N,)``: which pool digits may stand in for one another in :func:`draw_legibly`: the
    same class and the same number of loops (holes of at least :data:`MIN_LOOP_AREA` pixels
    at half ink)."""
    _check_digits(images)
    if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1]:
        raise ValueError(f"labels must be a tensor of shape ({len(images)},), one per digit")
    return labels.long() * 16 + count_loops(_shape(images)).clamp_max(15)


def draw_legibly(
    images: torch.Tensor,
    kinds: torch.Tensor,
    picks: torch.Tensor,
    placement: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw the pool digits ``images[picks]`` with :func:`draw_with_pen`, and replace each
    faulty drawing (:func:`drawing_faults`) by another pool digit of the same kind
    (:func:`pool_kinds`: the same class and number of loops, so redrawing keeps MNIST's share
    of closed 0s, 6s, 8s and 9s), drawn at the same place with the same pen, up to
    :data:`MAX_REDRAWS` times.

    Args:
        images: ``(N, 28, 28)`` uint8, the pool; ``kinds``: ``(N,)`` from :func:`pool_kinds`.
        picks: ``(M,)`` long indices into the pool.
        placement: ``(scale, shear, centre, pen_width)``, as :func:`draw_with_pen` takes them.
        generator: draws the replacements.

    Returns:
        ``windows`` and ``corner`` as :func:`draw_with_pen` gives them, and the final ``picks``.
        A drawing still faulty after every redraw is kept as it is.
    """
    if not isinstance(picks, torch.Tensor) or picks.dtype != torch.long or picks.dim() != 1:
        raise ValueError(f"picks must be a 1-D long tensor of pool indices, got {picks!r:.60}")
    if len(picks) and not (0 <= int(picks.min()) and int(picks.max()) < len(images)):
        raise ValueError(f"picks must index the pool of {len(images)} digits")
    order = torch.argsort(kinds, stable=True)
    first = torch.searchsorted(kinds[order], kinds)  # where each digit's kind starts
    count = torch.searchsorted(kinds[order], kinds, right=True) - first
    picks = picks.clone()
    windows, corner = draw_with_pen(images[picks], *placement)
    redo = drawing_faults(windows, images[picks]).nonzero().squeeze(1)
    tried_so_far = 0
    for tries in _CANDIDATES_PER_ROUND:
        if len(redo) == 0 or tried_so_far >= MAX_REDRAWS:
            break
        tried_so_far += tries
        rows = redo.repeat_interleave(tries)
        offset = (torch.rand(len(rows), generator=generator) * count[picks[rows]]).long()
        candidates = order[first[picks[rows]] + offset]
        tried, _ = draw_with_pen(images[candidates], *(value[rows] for value in placement))
        good = ~drawing_faults(tried, images[candidates]).view(-1, tries)
        found = good.any(dim=1)
        chosen = torch.arange(len(redo)) * tries + good.float().argmax(dim=1)
        picks[redo[found]] = candidates[chosen[found]]
        windows[redo[found]] = tried[chosen[found]]
        redo = redo[~found]
    return windows, corner, picks
