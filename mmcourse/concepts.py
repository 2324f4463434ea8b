"""The core concepts of multimodal AI and how they relate, as data and as a picture.

Chapter 01 draws :func:`draw_concept_map`: five concepts (boxes) and labelled links (arrows).
The four solid links are the ones the course's source article draws; the dashed ones are links
the course adds because the later chapters rely on them.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch

__all__ = ["BOX_HEIGHT", "BOX_WIDTH", "CONCEPTS", "LINKS", "Concept", "Link", "draw_concept_map"]


@dataclass(frozen=True)
class Concept:
    """A box of the map: ``key`` (used by links), display ``name``, a one-line ``blurb`` and
    the box centre ``(x, y)`` in map units."""

    key: str
    name: str
    blurb: str
    x: float
    y: float


@dataclass(frozen=True)
class Link:
    """An arrow from concept ``source`` to concept ``target``, with a ``label`` saying how
    they relate; ``from_article`` marks the links of the source article (drawn solid)."""

    source: str
    target: str
    label: str
    from_article: bool


CONCEPTS = (
    Concept(
        "learning",
        "Multimodal learning",
        "learn from several kinds of data (images, text, audio, sensors) at once",
        6.0,
        6.0,
    ),
    Concept(
        "vlm",
        "Vision-language models",
        "models of images and text together: captioning, VQA, CLIP-style retrieval",
        2.1,
        3.3,
    ),
    Concept(
        "fusion",
        "Multimodal data fusion",
        "combine the modalities: early (inputs), intermediate (features) or late (decisions)",
        9.9,
        3.3,
    ),
    Concept(
        "joint",
        "Joint training",
        "train both encoders and the joint layer together, on one loss",
        5.6,
        0.6,
    ),
    Concept(
        "transfer",
        "Cross-modal transfer",
        "reuse what was learned on one modality (or in a shared space) for another",
        10.1,
        0.6,
    ),
)
"""The five concepts, placed on a 12 x 7 canvas."""

LINKS = (
    Link("learning", "vlm", "images + text:\nthe best-studied pair", True),
    Link("learning", "fusion", "needs a way to\ncombine modalities", True),
    Link("fusion", "joint", "learn the fused\nspace end to end", True),
    Link("fusion", "transfer", "a shared space lets\nknowledge cross over", True),
    Link("vlm", "fusion", "built from", False),
    Link("vlm", "joint", "e.g. CLIP trains both\nencoders jointly", False),
)
"""How the concepts relate: the article's four links plus two the course adds."""

BOX_WIDTH, BOX_HEIGHT = 3.9, 1.3
"""Size of every box, in map units."""

_FILL = {"learning": "#fde2c8", "vlm": "#dbe9f6", "fusion": "#dcefdc", "joint": "#ece0f4",
         "transfer": "#f6f0c8"}  # fmt: skip
_EDGE = "#3b4b5c"


def _concept(key: str) -> Concept:
    for concept in CONCEPTS:
        if concept.key == key:
            return concept
    raise ValueError(f"unknown concept {key!r}; known: {[c.key for c in CONCEPTS]}")


def _border_point(a: Concept, b: Concept) -> tuple[float, float]:
    """Where the straight line from the centre of ``a`` towards ``b`` leaves ``a``'s box."""
    dx, dy = b.x - a.x, b.y - a.y
    half_w, half_h = BOX_WIDTH / 2 + 0.08, BOX_HEIGHT / 2 + 0.08
    scale = min(half_w / abs(dx) if dx else float("inf"), half_h / abs(dy) if dy else float("inf"))
    return a.x + dx * scale, a.y + dy * scale


def draw_concept_map(ax: Axes | None = None) -> Figure:
    """Draw :data:`CONCEPTS` as boxes and :data:`LINKS` as labelled arrows (solid: the
    article's links; dashed: added by the course); returns the figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 5.8))
    else:
        fig = ax.figure  # type: ignore[assignment]
    for link in LINKS:
        source, target = _concept(link.source), _concept(link.target)
        start, end = _border_point(source, target), _border_point(target, source)
        ax.annotate(
            "", xy=end, xytext=start,
            arrowprops={"arrowstyle": "-|>", "color": _EDGE, "lw": 1.4, "mutation_scale": 14,
                        "linestyle": "-" if link.from_article else (0, (4, 3))},
        )  # fmt: skip
        mid_x, mid_y = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(mid_x, mid_y, link.label, ha="center", va="center", fontsize=8, style="italic",
                color="#222222", bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none",
                                       "alpha": 0.9})  # fmt: skip
    for concept in CONCEPTS:
        box = FancyBboxPatch(
            (concept.x - BOX_WIDTH / 2, concept.y - BOX_HEIGHT / 2), BOX_WIDTH, BOX_HEIGHT,
            boxstyle="round,pad=0.05", fc=_FILL.get(concept.key, "#eeeeee"), ec=_EDGE, lw=1.2,
        )  # fmt: skip
        ax.add_patch(box)
        ax.text(concept.x, concept.y + 0.3, concept.name, ha="center", va="center",
                fontsize=10, fontweight="bold")  # fmt: skip
        ax.text(concept.x, concept.y - 0.17, textwrap.fill(concept.blurb, 40), ha="center",
                va="center", fontsize=8, color="#333333")  # fmt: skip
    ax.set_xlim(0.0, 12.2)
    ax.set_ylim(-0.2, 6.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.legend(
        handles=[
            Line2D([], [], color=_EDGE, lw=1.4, label="link drawn in the article"),
            Line2D([], [], color=_EDGE, lw=1.4, linestyle=(0, (4, 3)), label="link added here"),
        ],
        loc="upper left", fontsize=8, frameon=False,
    )  # fmt: skip
    ax.set_title("Core concepts of multimodal AI and how they relate", fontsize=12)
    return fig
