"""Figures for the chapters: images, training curves, confusion matrices, embeddings, attention.

Every function draws with matplotlib's object API and returns the ``Figure``; in a notebook,
call ``plt.show()`` on the next line so the figure is shown once and no ``<Figure ...>`` text
is stored::

    viz.show_images(images[:16], titles=captions[:16])
    plt.show()

Inputs may be torch tensors, NumPy arrays or lists. Nothing here is random, so a figure is the
same on every run.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mmcourse._validate import require

if TYPE_CHECKING:
    from mmcourse.callbacks import History

__all__ = [
    "pca_project",
    "plot_bars",
    "plot_confusion",
    "plot_history",
    "plot_scatter_labeled",
    "show_attention",
    "show_feature_maps",
    "show_images",
]

TITLE_FONT = 7
"""Font size of per-panel titles (points)."""
MAX_WRAP = 30
"""Long titles are wrapped to at most this many characters per line."""


# ----------------------------------------------------------------------------- helpers


def _tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` (tensor, array or nested list) as a detached CPU tensor."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a tensor, array or list of numbers: {error}") from error


def _floats(x: Any, name: str) -> np.ndarray:
    """``x`` as a float64 NumPy array."""
    t = _tensor(x, name)
    require(not t.is_complex(), f"{name} must hold real numbers, got {t.dtype}")
    return t.to(torch.float64).numpy()


def _grid(n: int, ncols: int) -> tuple[int, int]:
    if not isinstance(ncols, int) or isinstance(ncols, bool) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    ncols = min(ncols, n)
    return math.ceil(n / ncols), ncols


def _panels(
    n: int, ncols: int, height: int, width: int, title_lines: int = 0
) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` image panels in rows of ``ncols`` (extra grid cells removed)."""
    nrows, ncols = _grid(n, ncols)
    fig_width = _figure_width(ncols)
    panel = fig_width / ncols
    row = panel * height / width + 0.13 * title_lines + 0.05
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(fig_width, row * nrows + 0.1), squeeze=False, layout="constrained"
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    for ax in flat[:n]:
        ax.set_axis_off()
    return fig, flat[:n]


def _figure_width(ncols: int) -> float:
    """Inches: 2 per panel, at most 8 in all (so 1 inch per panel with 8 columns)."""
    return min(8.0, 2.0 * ncols)


def _wrap_width(ncols: int) -> int:
    """Characters of a title line that fit a panel (about 17 per inch at 7 pt), at most 30."""
    panel_inches = _figure_width(ncols) / ncols
    return max(8, min(MAX_WRAP, int(panel_inches * 72 / (TITLE_FONT * 0.6))))


def _check_titles(titles: Sequence[str] | None, n: int, name: str = "titles") -> list[str] | None:
    if titles is None:
        return None
    if isinstance(titles, str):
        raise ValueError(f"{name} must be a list of strings, one per panel, not one string")
    titles = [str(t) for t in titles]
    if len(titles) != n:
        raise ValueError(f"{name} must have one entry per panel: expected {n}, got {len(titles)}")
    return titles


# ----------------------------------------------------------------------------- images


def show_images(
    images: Any,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    cmap: str = "gray",
    suptitle: str | None = None,
) -> Figure:
    """A grid of images with optional captions.

    Args:
        images: ``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, 3, H, W)``. ``uint8`` is shown on the
            0..255 scale; floats within [0, 1] on the 0..1 scale; other floats (e.g.
            normalised pixels) are stretched per image from their min to their max.
        titles: one caption per image; long ones are wrapped (at most 30 characters a line).
        ncols: images per row.
        cmap: colour map for one-channel images.
        suptitle: a title over the whole grid.

    Returns:
        the figure, with one axes per image.
    """
    x = _tensor(images, "images")
    if x.dim() == 4 and x.shape[1] in (1, 3):
        x = x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    elif x.dim() != 3:
        raise ValueError(
            f"images must have shape (N, H, W), (N, 1, H, W) or (N, 3, H, W), got {tuple(x.shape)}"
        )
    n = x.shape[0]
    require(n != 0, "images is empty: expected at least one image, got N = 0")
    titles = _check_titles(titles, n)
    if x.dtype == torch.uint8:
        limits: tuple[float | None, float | None] = (0, 255)
    else:
        x = x.to(torch.float32)
        inside = bool(((x >= 0) & (x <= 1)).all())
        limits = (0.0, 1.0) if inside else (None, None)
    lines = 0
    if titles is not None:
        wrap = _wrap_width(_grid(n, ncols)[1])
        titles = [textwrap.fill(t, wrap) for t in titles]
        lines = max(t.count("\n") + 1 for t in titles)
    fig, axes = _panels(n, ncols, x.shape[1], x.shape[2], lines)
    for i, ax in enumerate(axes):
        ax.imshow(x[i].numpy(), cmap=cmap, vmin=limits[0], vmax=limits[1])
        if titles is not None:
            ax.set_title(titles[i], fontsize=TITLE_FONT)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def show_feature_maps(maps: Any, ncols: int = 8, title: str | None = None) -> Figure:
    """One panel per channel of a feature map ``(C, H, W)`` (or ``(1, C, H, W)``), titled with
    its channel index; each panel has its own colour scale (viridis)."""
    x = _tensor(maps, "maps")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 3:
        raise ValueError(
            f"maps must have shape (C, H, W) for one image, got {tuple(x.shape)}; "
            "pass maps[0] for the first image of a batch"
        )
    require(x.shape[0] != 0, "maps has no channels (C = 0)")
    x = x.to(torch.float32)
    fig, axes = _panels(x.shape[0], ncols, x.shape[1], x.shape[2], title_lines=1)
    for i, ax in enumerate(axes):
        ax.imshow(x[i].numpy(), cmap="viridis")
        ax.set_title(f"ch {i}", fontsize=TITLE_FONT)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def show_attention(
    image: Any,
    weights: Any,
    tokens: Sequence[str],
    ncols: int = 6,
) -> Figure:
    """Where each token looks: the image with one upsampled attention map per token on top.

    Args:
        image: ``(H, W)`` (or ``(1, H, W)``) grey image.
        weights: ``(T, h, w)`` attention of each of the T tokens over an ``h x w`` grid of
            image regions (e.g. a CNN's 4x4 feature grid); bilinearly upsampled to ``(H, W)``.
            Each map is coloured from 0 to its own maximum.
        tokens: the T words, used as panel titles.
        ncols: panels per row.
    """
    img = _tensor(image, "image")
    if img.dim() == 3 and img.shape[0] == 1:
        img = img[0]
    require(img.dim() == 2, f"image must have shape (H, W), got {tuple(img.shape)}")
    att = _tensor(weights, "weights")
    require(att.dim() == 3, f"weights must have shape (T, h, w), got {tuple(att.shape)}")
    require(not isinstance(tokens, str), "tokens must be a list of strings, one per attention map")
    if len(tokens) != att.shape[0]:
        raise ValueError(
            f"tokens must have one entry per attention map: weights has T = {att.shape[0]}, "
            f"tokens has {len(tokens)}"
        )
    require(att.shape[0] != 0, "weights is empty: expected at least one attention map (T = 0)")
    height, width = img.shape
    up = F.interpolate(
        att.to(torch.float32)[None], size=(height, width), mode="bilinear", align_corners=False
    )[0]
    fig, axes = _panels(att.shape[0], ncols, height, width, title_lines=1)
    for i, ax in enumerate(axes):
        ax.imshow(img.to(torch.float32).numpy(), cmap="gray")
        ax.imshow(up[i].numpy(), cmap="inferno", alpha=0.55, vmin=0.0)
        ax.set_title(str(tokens[i]), fontsize=TITLE_FONT + 1)
    return fig


# ----------------------------------------------------------------------------- training curves


DEFAULT_HISTORY_KEYS = ("train_loss", "val_loss")


def plot_history(
    history: History | Mapping[str, Sequence[float]],
    keys: Sequence[str] = DEFAULT_HISTORY_KEYS,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Curves of ``keys`` per epoch, from a :class:`mmcourse.callbacks.History` or a dict of lists.

    With the default keys, those missing (e.g. ``val_loss`` without validation data) are
    skipped; keys passed explicitly must exist. A History's ``best_epoch`` is marked with a
    dashed line. Draws on ``ax`` if given.
    """
    if isinstance(history, Mapping):
        columns = {k: list(v) for k, v in history.items()}
        best = None
    elif hasattr(history, "records") and hasattr(history, "keys"):
        columns = {k: history[k] for k in history.keys()}
        best = getattr(history, "best_epoch", None)
    else:
        raise ValueError(
            f"history must be a History or a dict of lists, got {type(history).__name__}"
        )
    if isinstance(keys, str):
        keys = (keys,)
    available = [k for k in columns if k != "epoch"]
    if keys is DEFAULT_HISTORY_KEYS:
        keys = [k for k in keys if k in columns]
        require(keys, f"history has neither 'train_loss' nor 'val_loss'; it has {available}")
    missing = [k for k in keys if k not in columns]
    require(not missing, f"history has no {missing}; it has {available}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    else:
        fig = ax.figure
    for key in keys:
        values = columns[key]
        epochs = columns.get("epoch", list(range(1, len(values) + 1)))
        if len(epochs) != len(values):
            epochs = list(range(1, len(values) + 1))
        ax.plot(epochs, values, marker="o", markersize=3, label=key)
    if best is not None:
        ax.axvline(best, color="gray", linestyle="--", linewidth=1, label=f"best epoch {best}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------- confusion matrix


def plot_confusion(
    cm: Any,
    class_names: Sequence[str] | None = None,
    normalize: bool = False,
    title: str | None = None,
) -> Figure:
    """A confusion matrix as an annotated heatmap: rows are the true class, columns the
    predicted one (the layout of ``sklearn.metrics.confusion_matrix``).

    Args:
        cm: ``(K, K)`` counts.
        class_names: K labels for the axes (default ``0..K-1``).
        normalize: divide each row by its total, so a cell reads "share of true class i
            predicted as j" and the diagonal is the per-class recall (empty rows stay 0).
    """
    m = _floats(cm, "cm")
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"cm must be a square (K, K) matrix, got shape {m.shape}")
    require(not (m < 0).any() and np.isfinite(m).all(), "cm must hold finite counts >= 0")
    k = m.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    require(len(names) == k, f"class_names must have K = {k} entries, got {len(names)}")
    if normalize:
        totals = m.sum(axis=1, keepdims=True)
        m = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
        labels = np.vectorize(lambda v: f"{v:.2f}")(m)
    elif np.all(m == np.round(m)):
        labels = np.vectorize(lambda v: f"{int(v)}")(m)
    else:
        labels = np.vectorize(lambda v: f"{v:.2f}")(m)
    side = min(7.0, 1.5 + 0.35 * k)
    fig, ax = plt.subplots(figsize=(side + 1.0, side), layout="constrained")
    sns.heatmap(
        m,
        annot=labels if k <= 20 else False,
        fmt="",
        cmap="Blues",
        vmin=0,
        vmax=1 if normalize else None,
        square=True,
        xticklabels=names,
        yticklabels=names,
        annot_kws={"fontsize": 8},
        ax=ax,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.tick_params(axis="y", rotation=0)
    if title:
        ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------- embeddings


def pca_project(points: Any, dim: int = 2) -> torch.Tensor:
    """Project ``(N, D)`` points onto their first ``dim`` principal components: ``(N, dim)``.

    Centres the points and takes an exact SVD (``torch.linalg.svd``, float64, not the
    randomised ``torch.pca_lowrank``, so the result is the same on every run). Each component's
    sign is fixed so that its largest-magnitude coefficient is positive.
    """
    x = _tensor(points, "points")
    require(x.dim() == 2, f"points must have shape (N, D), got {tuple(x.shape)}")
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= x.shape[1]:
        raise ValueError(f"dim must be an int from 1 to D = {x.shape[1]}, got {dim!r}")
    require(x.shape[0] >= 2, f"PCA needs at least 2 points, got {x.shape[0]}")
    x = x.to(torch.float64)
    centred = x - x.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:dim]  # (dim, D)
    biggest = components.abs().argmax(1)
    signs = torch.sign(components[torch.arange(dim), biggest])
    return centred @ (components * signs[:, None]).T


# ----------------------------------------------------------------------------- comparisons


def _names_and_values(names: Sequence[str], values: Any, what: str) -> tuple[list[str], np.ndarray]:
    require(not isinstance(names, str), f"{what}: names must be a list of strings, not one string")
    names = [str(n) for n in names]
    v = _floats(values, "values").reshape(-1) if len(names) else np.zeros(0)
    require(len(names) == len(v), f"{what}: got {len(names)} names but {len(v)} values")
    require(names, f"{what}: nothing to plot (no names)")
    return names, v


def plot_bars(
    names: Sequence[str],
    values: Any,
    ylabel: str,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """A bar per name, each labelled with its value (3 significant digits)."""
    names, v = _names_and_values(names, values, "plot_bars")
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(max(4.0, min(8.0, 0.8 * len(names) + 2)), 3), layout="constrained"
        )
    else:
        fig = ax.figure
    bars = ax.bar(range(len(v)), v, color=sns.color_palette("tab10", 1)[0])
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_xticks(
        range(len(v)),
        names,
        rotation=30 if max(map(len, names)) > 8 else 0,
        ha="right" if max(map(len, names)) > 8 else "center",
    )
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)
    if title:
        ax.set_title(title)
    return fig


def plot_scatter_labeled(
    x: Any,
    y: Any,
    labels: Sequence[str],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logx: bool = False,
) -> Figure:
    """Points with a text label each, e.g. accuracy against parameter count per model."""
    names, xs = _names_and_values(labels, x, "plot_scatter_labeled (x)")
    _, ys = _names_and_values(labels, y, "plot_scatter_labeled (y)")
    require(not logx or not (xs <= 0).any(), "logx=True needs every x > 0")
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.scatter(xs, ys, s=25, color=sns.color_palette("tab10", 1)[0])
    for name, px, py in zip(names, xs, ys):
        ax.annotate(name, (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    if title:
        ax.set_title(title)
    return fig
