"""The schematic diagrams: what each draws, and clear errors for bad input."""

import matplotlib.pyplot as plt
import pytest

from mmcourse import diagrams


def _texts(figure) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.texts]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_draw_graph_draws_one_box_per_label_and_one_arrow_per_edge():
    figure, ax = plt.subplots()
    boxes = [("a", 0.1, 0.1, "data"), ("b", 0.5, 0.5, "op"), ("c", 0.9, 0.9, "fuse")]
    artists = diagrams.draw_graph(ax, boxes, [(0, 1), (1, 2)], title="t")
    assert [a.get_text() for a in artists] == ["a", "b", "c"]
    arrows = [t for t in ax.texts if t.get_text() == "" and t.arrow_patch is not None]
    assert len(arrows) == 2
    assert ax.get_title() == "t"


@pytest.mark.parametrize(
    ("boxes", "edges", "match"),
    [
        ([("a", 0.1, 0.1, "nonsense")], [], "unknown box kind"),
        ([("a", 0.1, 0.1)], [], r"\(label, x, y, kind\)"),
        ([("a", 0.1, 0.1, "data")], [(0, 1)], "two of the 1 boxes"),
    ],
)
def test_draw_graph_rejects_bad_boxes(boxes, edges, match):
    figure, ax = plt.subplots()
    with pytest.raises(ValueError, match=match):
        diagrams.draw_graph(ax, boxes, edges)


def test_unrolled_rnn_has_one_cell_and_one_word_per_token():
    texts = _texts(diagrams.unrolled_rnn(["a", "large", "seven"]))
    assert sum(t.startswith("cell") for t in texts) == 3
    for t, word in enumerate(["a", "large", "seven"], start=1):
        assert f"{word}\n$e_{t}$" in texts


@pytest.mark.parametrize("words", ["a seven", [], ["a", 7]])
def test_unrolled_rnn_rejects_anything_but_a_list_of_words(words):
    with pytest.raises(ValueError, match="non-empty list of strings"):
        diagrams.unrolled_rnn(words)


def test_joint_weight_blocks_draws_the_matrices_to_scale():
    figure = diagrams.joint_weight_blocks(64, 32, 16)
    ax = figure.axes[0]
    widths = sorted(round(p.get_width()) for p in ax.patches)
    heights = sorted(round(p.get_height()) for p in ax.patches)
    assert 64 in widths and 32 in widths  # W_X and W_Y: one column per input feature
    assert heights.count(16) == 2  # both have one row per output
    assert "$W_X$\n16×64" in _texts(figure)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((64, 32, 0), ValueError, "out_dim must be at least 1"),
        ((64.0, 32, 8), TypeError, "image_dim"),
    ],
)
def test_joint_weight_blocks_rejects_bad_sizes(args, error, match):
    with pytest.raises(error, match=match):
        diagrams.joint_weight_blocks(*args)


@pytest.mark.parametrize(
    ("draw", "panels", "words"),
    [
        (diagrams.residual_vs_plain, 2, ["$F(x) + x$"]),
        (diagrams.fusion_vs_alignment, 2, ["$Z = W_X X' + W_Y Y'$"]),
        (diagrams.fusion_operators, 3, ["$\\gamma \\odot F + \\beta$"]),
    ],
)
def test_each_diagram_has_its_panels_and_key_box(draw, panels, words):
    figure = draw()
    assert len(figure.axes) == panels
    for word in words:
        assert word in _texts(figure)


def test_fusion_stages_draws_the_three_places() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = diagrams.fusion_stages()
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == ["early fusion", "intermediate fusion", "late fusion"]
    for axis, boxes in zip(figure.axes, diagrams._STAGES.values()):
        labels = [t.get_text() for t in axis.texts if t.get_text()]
        assert labels == [box[0] for box in boxes]
        arrows = [t for t in axis.texts if not t.get_text()]
        assert len(arrows) == len(diagrams._EDGES[axis.get_title()])
        assert all(box[3] in ("data", "image", "fuse") for box in boxes)
        # every box but the inputs has an arrow coming in; only "answer" has none going out
        edges = diagrams._EDGES[axis.get_title()]
        targets = {b for _, b in edges}
        sources = {a for a, _ in edges}
        assert targets == set(range(2, len(boxes)))
        assert sources == set(range(len(boxes) - 1))
    plt.close(figure)
