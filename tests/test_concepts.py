"""The concept map: its data is consistent and the figure draws every concept and link."""

from __future__ import annotations

import itertools

import matplotlib
import pytest

from mmcourse import concepts

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

pytestmark = pytest.mark.usefixtures("close_figures")


def test_links_join_known_concepts_and_include_the_articles_graph() -> None:
    keys = {c.key for c in concepts.CONCEPTS}
    assert len(keys) == len(concepts.CONCEPTS) == 5
    for link in concepts.LINKS:
        assert link.source in keys and link.target in keys and link.source != link.target
        assert link.label.strip()
    article = {(link.source, link.target) for link in concepts.LINKS if link.from_article}
    # the article's mermaid graph: learning -> VLM, learning -> fusion, fusion -> transfer/joint
    assert article == {
        ("learning", "vlm"),
        ("learning", "fusion"),
        ("fusion", "transfer"),
        ("fusion", "joint"),
    }


def test_boxes_do_not_overlap() -> None:
    for a, b in itertools.combinations(concepts.CONCEPTS, 2):
        apart_x = abs(a.x - b.x) >= concepts.BOX_WIDTH + 0.1
        apart_y = abs(a.y - b.y) >= concepts.BOX_HEIGHT + 0.1
        assert apart_x or apart_y, (a.key, b.key)


def test_draw_concept_map_draws_every_box_arrow_and_label() -> None:
    fig = concepts.draw_concept_map()
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == len(concepts.CONCEPTS)
    texts = [t.get_text() for t in ax.texts]
    for concept in concepts.CONCEPTS:
        assert concept.name in texts
    for link in concepts.LINKS:
        assert link.label in texts
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == len(concepts.LINKS)
    dashed = [a for a in arrows if a.arrow_patch.get_linestyle() != "-"]
    assert len(dashed) == sum(not link.from_article for link in concepts.LINKS)
    assert ax.get_legend() is not None


def test_draw_concept_map_uses_a_given_axes() -> None:
    fig, ax = plt.subplots()
    assert concepts.draw_concept_map(ax=ax) is fig


def test_unknown_concept_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown concept 'audio'"):
        concepts._concept("audio")
