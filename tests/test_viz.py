"""mmcourse.viz: each figure has the expected axes and images; inputs are checked.

PCA is compared with NumPy's SVD, the normalised confusion matrix with scikit-learn.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from mmcourse import viz
from mmcourse.callbacks import History

# A layout or other warning would end up in a notebook's stored output: make it fail here.
pytestmark = [pytest.mark.usefixtures("close_figures"), pytest.mark.filterwarnings("error")]


# ----------------------------------------------------------------------------- images


def test_show_images_uint8_with_wrapped_titles() -> None:
    images = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    long = "a small red seven to the left of a big blue three"
    fig = viz.show_images(images, titles=[long] * 9 + ["short"], ncols=4, suptitle="digits")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10  # the two empty grid cells are removed
    for ax in fig.axes:
        (im,) = ax.images
        assert im.get_clim() == (0, 255)
        assert im.get_array().shape == (28, 28)
    title = fig.axes[0].get_title()
    assert "\n" in title and title.replace("\n", " ") == long
    assert all(len(line) <= viz.MAX_WRAP for line in title.splitlines())
    assert fig.axes[9].get_title() == "short"
    assert fig._suptitle.get_text() == "digits"


def test_show_images_scales_floats() -> None:
    unit = torch.rand(3, 8, 8)
    fig = viz.show_images(unit)
    assert len(fig.axes) == 3 and fig.axes[0].images[0].get_clim() == (0.0, 1.0)
    normalised = torch.randn(2, 1, 8, 8)
    fig = viz.show_images(normalised)
    low, high = fig.axes[0].images[0].get_clim()
    assert low == pytest.approx(normalised[0].min().item())
    assert high == pytest.approx(normalised[0].max().item())
    rgb = viz.show_images(torch.rand(2, 3, 8, 6))
    assert rgb.axes[0].images[0].get_array().shape == (8, 6, 3)


@pytest.mark.parametrize(
    ("images", "kwargs", "message"),
    [
        (torch.rand(2, 2, 8, 8), {}, r"\(N, H, W\), \(N, 1, H, W\) .* got \(2, 2, 8, 8\)"),
        (torch.rand(8, 8), {}, r"got \(8, 8\)"),
        (torch.rand(0, 8, 8), {}, "images is empty"),
        (torch.rand(3, 8, 8), {"titles": ["a", "b"]}, "one entry per panel: expected 3, got 2"),
        (torch.rand(3, 8, 8), {"titles": "abc"}, "list of strings"),
        (torch.rand(3, 8, 8), {"ncols": 0}, "ncols must be a positive int, got 0"),
    ],
)
def test_show_images_rejects(images: torch.Tensor, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        viz.show_images(images, **kwargs)


def test_show_feature_maps() -> None:
    fig = viz.show_feature_maps(torch.randn(1, 12, 7, 7), ncols=5, title="block 1")
    assert len(fig.axes) == 12
    assert [ax.get_title() for ax in fig.axes[:2]] == ["ch 0", "ch 1"]
    assert all(len(ax.images) == 1 for ax in fig.axes)
    with pytest.raises(ValueError, match=r"\(C, H, W\) for one image, got \(2, 12, 7, 7\)"):
        viz.show_feature_maps(torch.randn(2, 12, 7, 7))
    with pytest.raises(ValueError, match="no channels"):
        viz.show_feature_maps(torch.randn(0, 7, 7))


def test_show_attention_overlays_one_upsampled_map_per_token() -> None:
    image = torch.rand(32, 32)
    weights = torch.softmax(torch.randn(4, 16), 1).view(4, 4, 4)
    weights[2] = 1 / 16  # a uniform map stays uniform when upsampled
    fig = viz.show_attention(image, weights, ["a", "red", "seven", "left"], ncols=3)
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == ["a", "red", "seven", "left"]
    for ax in fig.axes:
        background, overlay = ax.images
        assert background.get_array().shape == overlay.get_array().shape == (32, 32)
    np.testing.assert_allclose(fig.axes[2].images[1].get_array(), 1 / 16, rtol=1e-6)


@pytest.mark.parametrize(
    ("image", "weights", "tokens", "message"),
    [
        (torch.rand(2, 8, 8), torch.rand(2, 2, 2), ["a", "b"], r"image must have shape \(H, W\)"),
        (torch.rand(8, 8), torch.rand(2, 4), ["a", "b"], r"weights must have shape \(T, h, w\)"),
        (torch.rand(8, 8), torch.rand(2, 2, 2), ["a"], "weights has T = 2, tokens has 1"),
        (torch.rand(8, 8), torch.rand(2, 2, 2), "ab", "list of strings"),
    ],
)
def test_show_attention_rejects(
    image: torch.Tensor, weights: torch.Tensor, tokens: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        viz.show_attention(image, weights, tokens)


# ----------------------------------------------------------------------------- history


def test_plot_history_from_history_and_dict() -> None:
    records = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.5 + e / 10}
        for e in (1, 2, 3)
    ]
    fig = viz.plot_history(History(records, best_epoch=2), title="curves")
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"train_loss", "val_loss", "best epoch 2"}
    assert list(lines["val_loss"].get_xdata()) == [1, 2, 3]
    assert list(lines["val_loss"].get_ydata()) == pytest.approx([1.2, 0.6, 0.4])
    assert ax.get_title() == "curves"

    # without validation data the default keys fall back to what exists
    fig = viz.plot_history({"train_loss": [0.9, 0.5]})
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["train_loss"]

    # on a given axes, with explicit keys
    fig, (left, right) = plt.subplots(1, 2)
    assert viz.plot_history(History(records), keys=["val_accuracy"], ax=right) is fig
    assert [line.get_label() for line in right.get_lines()] == ["val_accuracy"]


def test_plot_history_rejects() -> None:
    with pytest.raises(ValueError, match=r"history has no \['val_acc'\]; it has \['train_loss'\]"):
        viz.plot_history({"train_loss": [1.0]}, keys=["train_loss", "val_acc"])
    with pytest.raises(ValueError, match="neither 'train_loss' nor 'val_loss'"):
        viz.plot_history({"bleu": [1.0]})
    with pytest.raises(ValueError, match="History or a dict of lists, got list"):
        viz.plot_history([1.0, 2.0])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- confusion


def test_plot_confusion_counts_and_normalised_like_sklearn() -> None:
    g = torch.Generator().manual_seed(0)
    y_true = torch.randint(0, 4, (200,), generator=g)
    y_pred = torch.where(torch.rand(200, generator=g) < 0.7, y_true, torch.randint(0, 4, (200,)))
    cm = torch.zeros(4, 4, dtype=torch.long)
    cm.index_put_((y_true, y_pred), torch.ones(200, dtype=torch.long), accumulate=True)

    fig = viz.plot_confusion(cm, class_names=["0", "1", "2", "3"], title="digits")
    assert len(fig.axes) == 2  # heatmap and colour bar
    ax = fig.axes[0]
    reference = confusion_matrix(y_true.numpy(), y_pred.numpy())
    assert [t.get_text() for t in ax.texts] == [str(v) for v in reference.ravel()]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "true", "digits")

    fig = viz.plot_confusion(cm, normalize=True)
    normalised = confusion_matrix(y_true.numpy(), y_pred.numpy(), normalize="true")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [f"{v:.2f}" for v in normalised.ravel()]


def test_plot_confusion_empty_row_and_errors() -> None:
    fig = viz.plot_confusion(np.array([[3, 1], [0, 0]]), normalize=True)
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.75", "0.25", "0.00", "0.00"]
    with pytest.raises(ValueError, match=r"square \(K, K\) matrix, got shape \(2, 3\)"):
        viz.plot_confusion(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite counts >= 0"):
        viz.plot_confusion(np.array([[1, -1], [0, 1]]))
    with pytest.raises(ValueError, match="class_names must have K = 2 entries, got 3"):
        viz.plot_confusion(np.eye(2), class_names=["a", "b", "c"])


# ----------------------------------------------------------------------------- embeddings


def correlated_points() -> np.ndarray:
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(200, 2)) * [5.0, 1.0]
    mixing = np.array([[1.0, 0.5, -0.3, 0.2], [0.1, -0.4, 0.8, 0.6]])
    return latent @ mixing + rng.normal(scale=0.05, size=(200, 4)) + 3.0


def test_pca_matches_numpy_svd() -> None:
    points = correlated_points()
    centred = points - points.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    expected = u[:, :2] * s[:2]
    got = viz.pca_project(torch.tensor(points), 2).numpy()
    # principal axes are defined up to sign: align each column, then compare
    signs = np.sign((got * expected).sum(0))
    np.testing.assert_allclose(got * signs, expected, atol=1e-9)
    # variance of each projection = squared singular value / (N - 1), largest first
    np.testing.assert_allclose(got.var(0, ddof=1), s[:2] ** 2 / 199, rtol=1e-9)
    np.testing.assert_array_equal(got, viz.pca_project(points.tolist(), 2).numpy())


def test_pca_rejects() -> None:
    with pytest.raises(ValueError, match=r"points must have shape \(N, D\), got \(5,\)"):
        viz.pca_project(torch.zeros(5))
    with pytest.raises(ValueError, match="dim must be an int from 1 to D = 3, got 4"):
        viz.pca_project(torch.zeros(5, 3), dim=4)
    with pytest.raises(ValueError, match="at least 2 points"):
        viz.pca_project(torch.zeros(1, 3))


# ----------------------------------------------------------------------------- comparisons


def test_plot_bars() -> None:
    fig = viz.plot_bars(["concat", "sum", "film"], torch.tensor([0.9, 0.85, 0.95]), "accuracy")
    (ax,) = fig.axes
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.9, 0.85, 0.95])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["concat", "sum", "film"]
    assert [t.get_text() for t in ax.texts] == ["0.9", "0.85", "0.95"]
    _, given = plt.subplots()
    assert viz.plot_bars(["a"], [1.0], "y", ax=given) is given.figure
    with pytest.raises(ValueError, match="got 2 names but 3 values"):
        viz.plot_bars(["a", "b"], [1, 2, 3], "y")
    with pytest.raises(ValueError, match="nothing to plot"):
        viz.plot_bars([], [], "y")


def test_plot_scatter_labeled() -> None:
    fig = viz.plot_scatter_labeled(
        [1e3, 2e4, 5e5], [0.8, 0.9, 0.97], ["bow", "lstm", "transformer"], "parameters",
        "accuracy", title="size vs accuracy", logx=True,
    )  # fmt: skip
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.texts] == ["bow", "lstm", "transformer"]
    np.testing.assert_allclose(
        ax.collections[0].get_offsets(), [[1e3, 0.8], [2e4, 0.9], [5e5, 0.97]]
    )
    with pytest.raises(ValueError, match="logx=True needs every x > 0"):
        viz.plot_scatter_labeled([0, 1], [1, 2], ["a", "b"], "x", "y", logx=True)
    with pytest.raises(ValueError, match="got 2 names but 3 values"):
        viz.plot_scatter_labeled([1, 2, 3], [1, 2], ["a", "b"], "x", "y")
