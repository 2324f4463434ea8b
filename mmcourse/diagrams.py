"""Schematic diagrams for the chapters: boxes and arrows that show how a model is wired.

`viz` plots *data* (images, curves, embeddings); this module draws *structure*: an unrolled
RNN, a plain and a residual block, the joint layer's weight matrix ``W = [W_X | W_Y]``, fusion
against alignment, and three fusion operators. Every diagram is built from one small helper,
:func:`draw_graph`, and returns the ``Figure``; nothing is random, so a figure is the same on
every run.

>>> figure = unrolled_rnn(["a", "seven"])
>>> len(figure.axes)
1
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mmcourse._validate import require

__all__ = [
    "COLOURS",
    "data_parallel",
    "draw_graph",
    "fusion_operators",
    "fusion_stages",
    "fusion_vs_alignment",
    "joint_weight_blocks",
    "residual_vs_plain",
    "unrolled_rnn",
]

COLOURS = {
    "data": "#e8e8e8",
    "image": "#9ecae1",
    "text": "#a1d99b",
    "fuse": "#fdae6b",
    "op": "#ffffff",
    "loss": "#fcbba1",
}
"""Fill colour of a box by its kind: inputs, image path, text path, fusion, operations, losses."""

Box = tuple[str, float, float, str]
"""A box: (label, x, y, kind), with x and y in [0, 1] and kind a key of `COLOURS`."""


def _check_boxes(boxes: Sequence[Box], edges: Sequence[tuple[int, int]]) -> None:
    """Every box names a known kind; every edge joins two existing boxes."""
    for box in boxes:
        require(len(box) == 4, f"a box is (label, x, y, kind), got {box!r}")
        require(box[3] in COLOURS, f"unknown box kind {box[3]!r}; use one of {sorted(COLOURS)}")
    for edge in edges:
        if len(edge) != 2 or not all(0 <= i < len(boxes) for i in edge):
            raise ValueError(f"edge {edge!r} must join two of the {len(boxes)} boxes by index")


def draw_graph(
    ax: Axes,
    boxes: Sequence[Box],
    edges: Sequence[tuple[int, int]],
    title: str | None = None,
    fontsize: float = 8,
    downwards: bool = False,
) -> list:
    """Draw labelled boxes joined by arrows on ``ax`` (axes coordinates in [0, 1]).

    ``edges`` holds pairs of box indices ``(from, to)``; with ``downwards=True`` each arrow
    leaves the bottom of its box and enters the top of the next (for a flow drawn top to
    bottom), else it joins the boxes' centres. Returns the text artists of the boxes, so a
    caller can add more arrows between them.

    >>> figure, ax = plt.subplots()
    >>> artists = draw_graph(ax, [("x", 0.2, 0.5, "data"), ("f(x)", 0.8, 0.5, "op")], [(0, 1)])
    >>> [a.get_text() for a in artists]
    ['x', 'f(x)']
    >>> plt.close(figure)
    """
    _check_boxes(boxes, edges)
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=fontsize + 2)
    artists = [
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=fontsize,
            bbox={"boxstyle": "round,pad=0.35", "fc": COLOURS[kind], "ec": "0.4"},
        )
        for label, x, y, kind in boxes
    ]
    start, end = ((0.5, 0.0), (0.5, 1.0)) if downwards else ((0.5, 0.5), (0.5, 0.5))
    for a, b in edges:
        ax.annotate(
            "",
            xy=end,
            xycoords=artists[b],
            xytext=start,
            textcoords=artists[a],
            arrowprops={"arrowstyle": "->", "color": "0.3", "shrinkA": 9, "shrinkB": 9},
        )
    return artists


_STAGES = {
    "early fusion": [
        ("image", 0.25, 0.92, "data"),
        ("question", 0.75, 0.92, "data"),
        ("pixels + question\nchannels", 0.5, 0.68, "fuse"),
        ("one CNN", 0.5, 0.46, "image"),
        ("answer", 0.5, 0.08, "data"),
    ],
    "intermediate fusion": [
        ("image", 0.25, 0.92, "data"),
        ("question", 0.75, 0.92, "data"),
        ("image\nencoder", 0.25, 0.68, "image"),
        ("question\nencoder", 0.75, 0.68, "image"),
        ("fusion", 0.5, 0.46, "fuse"),
        ("classifier", 0.5, 0.27, "image"),
        ("answer", 0.5, 0.08, "data"),
    ],
    "late fusion": [
        ("image", 0.25, 0.92, "data"),
        ("question", 0.75, 0.92, "data"),
        ("image\nmodel", 0.25, 0.68, "image"),
        ("question\nmodel", 0.75, 0.68, "image"),
        ("scores", 0.25, 0.46, "data"),
        ("scores", 0.75, 0.46, "data"),
        ("+", 0.5, 0.27, "fuse"),
        ("answer", 0.5, 0.08, "data"),
    ],
}
_EDGES = {
    "early fusion": [(0, 2), (1, 2), (2, 3), (3, 4)],
    "intermediate fusion": [(0, 2), (1, 3), (2, 4), (3, 4), (4, 5), (5, 6)],
    "late fusion": [(0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 6), (6, 7)],
}


def fusion_stages() -> Figure:
    """The three places where two modalities can meet: early (raw inputs), intermediate
    (learned representations) and late (decisions); the fusion step is orange."""
    figure, axes = plt.subplots(1, 3, figsize=(9, 3.4), layout="constrained")
    for ax, (title, boxes) in zip(axes, _STAGES.items()):
        draw_graph(ax, boxes, _EDGES[title], title=title)
    return figure


def unrolled_rnn(words: Sequence[str]) -> Figure:
    """A recurrent network unrolled over ``words``: one copy of the cell per token, the state
    ``h_t`` passed from each copy to the next, the last state as the sentence vector."""
    if isinstance(words, str) or not words or not all(isinstance(w, str) for w in words):
        raise ValueError("words must be a non-empty list of strings, e.g. ['a', 'seven']")
    n = len(words)
    xs = [(t + 1) / (n + 2) for t in range(n)]
    boxes: list[Box] = [("$h_0$", 0.5 / (n + 2), 0.55, "data")]
    edges: list[tuple[int, int]] = []
    for t, (word, x) in enumerate(zip(words, xs), start=1):
        boxes += [(f"{word}\n$e_{t}$", x, 0.15, "text"), (f"cell\n$h_{t}$", x, 0.55, "op")]
        word_box, cell_box = len(boxes) - 2, len(boxes) - 1
        edges += [(word_box, cell_box), (cell_box - 2 if t > 1 else 0, cell_box)]
    boxes.append(("sentence\nvector $h_T$", (n + 1.3) / (n + 2), 0.9, "fuse"))
    edges.append((len(boxes) - 2, len(boxes) - 1))
    figure, ax = plt.subplots(figsize=(1.2 * n + 2.5, 2.6), layout="constrained")
    draw_graph(ax, boxes, edges, title="One cell, reused at every step: $h_t = f(h_{t-1}, e_t)$")
    return figure


def residual_vs_plain() -> Figure:
    """Two blocks side by side: a plain block ``relu(F(x))`` and a residual block
    ``relu(F(x) + x)`` whose skip connection carries ``x`` around the two convolutions."""
    plain: list[Box] = [
        ("$x$", 0.5, 0.05, "data"),
        ("conv 3x3 + BN", 0.5, 0.27, "image"),
        ("ReLU", 0.5, 0.45, "op"),
        ("conv 3x3 + BN", 0.5, 0.63, "image"),
        ("ReLU", 0.5, 0.83, "op"),
        ("out", 0.5, 0.97, "data"),
    ]
    residual: list[Box] = [*plain[:4], ("$F(x) + x$", 0.5, 0.78, "fuse"), ("ReLU", 0.5, 0.97, "op")]
    figure, axes = plt.subplots(1, 2, figsize=(6.5, 4), layout="constrained")
    draw_graph(axes[0], plain, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], "plain: relu(F(x))")
    artists = draw_graph(
        axes[1], residual, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], "residual: relu(F(x) + x)"
    )
    axes[1].text(0.93, 0.45, "identity\n(skip)", color="C3", fontsize=8, ha="center")
    axes[1].annotate(
        "",
        xy=(1.0, 0.5),
        xycoords=artists[4],
        xytext=(1.0, 0.5),
        textcoords=artists[0],
        fontsize=8,
        arrowprops={
            "arrowstyle": "->",
            "color": "C3",
            "connectionstyle": "arc,angleA=0,angleB=0,armA=60,armB=60,rad=8",
        },
    )
    return figure


def joint_weight_blocks(image_dim: int, text_dim: int, out_dim: int) -> Figure:
    """The joint layer's weight matrix ``W = [W_X | W_Y]`` drawn to scale, times the stacked
    input ``[X'; Y']``: the image columns meet the image features, the text columns the text
    features, and the two products are added."""
    for name, value in {"image_dim": image_dim, "text_dim": text_dim, "out_dim": out_dim}.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        require(value >= 1, f"{name} must be at least 1, got {value}")
    total = image_dim + text_dim
    gap, width = max(total // 12, 2), max(total // 24, 2)
    figure, ax = plt.subplots(figsize=(7, 3.4), layout="constrained")
    ax.set_aspect("equal")
    ax.axis("off")
    top = total / 2 + out_dim / 2  # W is vertically centred on the input column
    blocks = [
        (0, image_dim, "image", f"$W_X$\n{out_dim}×{image_dim}"),
        (image_dim, text_dim, "text", f"$W_Y$\n{out_dim}×{text_dim}"),
    ]
    for left, cols, kind, label in blocks:
        ax.add_patch(Rectangle((left, top - out_dim), cols, out_dim, fc=COLOURS[kind], ec="0.3"))
        ax.text(left + cols / 2, top - out_dim / 2, label, ha="center", va="center", fontsize=8)
    x_col = total + 2 * gap
    ax.text(total + gap, total / 2, "×", fontsize=14, ha="center", va="center")
    ax.add_patch(Rectangle((x_col, text_dim), width, image_dim, fc=COLOURS["image"], ec="0.3"))
    ax.add_patch(Rectangle((x_col, 0), width, text_dim, fc=COLOURS["text"], ec="0.3"))
    ax.text(x_col + width + 1, text_dim + image_dim / 2, f"$X'$ ({image_dim})", va="center")
    ax.text(x_col + width + 1, text_dim / 2, f"$Y'$ ({text_dim})", va="center")
    ax.text(x_col + width + 3 * gap, total / 2, f"$= W_X X' + W_Y Y' = Z$ ({out_dim})", va="center")
    ax.set(xlim=(-1, x_col + width + 10 * gap), ylim=(-1, total + 1))
    ax.set_title(
        "The joint layer is one matrix on the stacked input: $W = [W_X | W_Y]$", fontsize=9
    )
    return figure


def fusion_vs_alignment() -> Figure:
    """Fusion (add the two projections, one head, a task loss) beside alignment (keep the two
    projections apart, compare them by similarity, a contrastive loss)."""
    fusion: list[Box] = [
        ("image $X$", 0.2, 0.05, "data"),
        ("text $Y$", 0.8, 0.05, "data"),
        ("$W_X X'$", 0.2, 0.35, "image"),
        ("$W_Y Y'$", 0.8, 0.35, "text"),
        ("$Z = W_X X' + W_Y Y'$", 0.5, 0.62, "fuse"),
        ("task head → answer\nloss: cross-entropy", 0.5, 0.9, "loss"),
    ]
    alignment: list[Box] = [
        *fusion[:4],
        ("similarity $\\cos(W_X X', W_Y Y')$", 0.5, 0.62, "fuse"),
        ("matching pairs high,\nothers low: contrastive loss", 0.5, 0.9, "loss"),
    ]
    edges = [(0, 2), (1, 3), (2, 4), (3, 4), (4, 5)]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    draw_graph(axes[0], fusion, edges, "Fusion: one vector for a task")
    draw_graph(axes[1], alignment, edges, "Alignment: two vectors in one space")
    return figure


def fusion_operators() -> Figure:
    """Three ways two inputs meet: a bilinear map (every image feature times every text
    feature), FiLM (the text scales and shifts image feature maps) and cross-attention (the
    text queries image regions)."""
    bilinear: list[Box] = [
        ("$[x; 1]$", 0.2, 0.1, "image"),
        ("$[y; 1]$", 0.8, 0.1, "text"),
        ("outer product\n$[x;1][y;1]^\\top$", 0.5, 0.45, "fuse"),
        ("$z_k = [x;1]^\\top W_k [y;1]$", 0.5, 0.85, "op"),
    ]
    film: list[Box] = [
        ("feature maps $F$", 0.25, 0.1, "image"),
        ("question $y$", 0.8, 0.1, "text"),
        ("$\\gamma(y), \\beta(y)$", 0.8, 0.45, "op"),
        ("$\\gamma \\odot F + \\beta$", 0.4, 0.6, "fuse"),
        ("conv block → $z$", 0.4, 0.88, "image"),
    ]
    attention: list[Box] = [
        ("regions $v_1..v_R$", 0.22, 0.1, "image"),
        ("question $y$", 0.8, 0.1, "text"),
        ("keys $k_i$", 0.22, 0.4, "op"),
        ("query $q$", 0.8, 0.4, "op"),
        ("$a = \\mathrm{softmax}(q^\\top k_i/\\sqrt{d})$", 0.5, 0.65, "fuse"),
        ("$\\hat v = \\sum_i a_i v_i$", 0.5, 0.9, "image"),
    ]
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.6), layout="constrained")
    draw_graph(axes[0], bilinear, [(0, 2), (1, 2), (2, 3)], "bilinear")
    draw_graph(axes[1], film, [(0, 3), (1, 2), (2, 3), (3, 4)], "FiLM")
    draw_graph(
        axes[2], attention, [(0, 2), (1, 3), (2, 4), (3, 4), (4, 5), (0, 5)], "cross-attention"
    )
    return figure


def data_parallel(processes: int = 2) -> Figure:
    """DistributedDataParallel for ``processes`` ranks: one global batch split into equal
    parts, a replica of the model on every rank, the gradients averaged by an all-reduce, and
    the same update everywhere (left); CLIP's loss needs one more exchange, every rank's
    embeddings gathered before the loss (right)."""
    require(isinstance(processes, int) and 2 <= processes <= 4, "processes must be 2, 3 or 4")
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    xs = [(i + 0.5) / processes for i in range(processes)]
    boxes: list[Box] = [("global batch\n(the same on every rank)", 0.5, 0.93, "data")]
    for rank, x in enumerate(xs):
        boxes += [
            (f"rows of rank {rank}", x, 0.74, "data"),
            (f"replica {rank}\nforward, backward", x, 0.52, "image"),
        ]
    boxes += [("all-reduce:\naverage the gradients", 0.5, 0.29, "fuse"),
              ("the same update\non every replica", 0.5, 0.07, "op")]  # fmt: skip
    reduce = len(boxes) - 2
    edges = [(0, 1 + 2 * r) for r in range(processes)]
    edges += [(1 + 2 * r, 2 + 2 * r) for r in range(processes)]
    edges += [(2 + 2 * r, reduce) for r in range(processes)] + [(reduce, reduce + 1)]
    draw_graph(left, boxes, edges, title="data parallelism (DDP)", downwards=True)
    clip: list[Box] = []
    for rank, x in enumerate(xs):
        clip += [(f"embeddings\nof rank {rank}", x, 0.8, "image")]
    clip += [("all-gather, gradients kept:\nevery rank's embeddings", 0.5, 0.55, "fuse")]
    for rank, x in enumerate(xs):
        clip += [(f"loss of rank {rank}'s rows\nagainst all columns", x, 0.3, "loss")]
    gather = processes
    clip_edges = [(r, gather) for r in range(processes)]
    clip_edges += [(gather, gather + 1 + r) for r in range(processes)]
    draw_graph(right, clip, clip_edges, title="what CLIP's loss adds", downwards=True)
    return figure
