"""Thin, normal and thick digits, measured independently of the generator's own code.

Each test digit's class is drawn alone, three times -- thin, normal and thick -- with the same
size, slant and place, through the dataset's :func:`mmcourse.data.captions.render_layout`.
Everything after that is measured here with NumPy and SciPy, never with the generator's helpers:

- ink: the binarised image (``> 0.35``);
- pieces: connected components of the ink (8-connected), ``scipy.ndimage.label``;
- height and width: the ink's bounding box;
- stroke thickness: twice the mean Euclidean distance to the background
  (``scipy.ndimage.distance_transform_edt``) along the ink's medial ridge (the pixels whose
  distance is a local maximum), as Morpho-MNIST measures it (2 * mean distance on the skeleton);
- slant: ``mu11 / mu02`` of the grey image's moments (negative for a top leaning right).

The original digit (the 28x28 MNIST image) is measured the same way, so "stays in one piece as
often as the original" and "as tall as its stated size" compare against the real handwriting.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
import torch
from scipy import ndimage

from mmcourse.data import captions as C
from mmcourse.data import mnist

EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity: a diagonal touch is still one piece


INK = 0.35
"""A pixel is ink above this (out of 1). At 0.5, bilinear downscaling alone already breaks 8% of
small *normal* digits into pieces (a faint pixel where a stroke falls between two samples)."""
UP = 4  # stroke thickness is measured on a 4x bilinear upsampling of the image


def binarise(image: np.ndarray) -> np.ndarray:
    return image > INK


def pieces(binary: np.ndarray) -> int:
    return ndimage.label(binary, structure=EIGHT)[1]


def extent(binary: np.ndarray) -> tuple[int, int]:
    """Height and width of the ink's bounding box, in pixels."""
    rows, cols = binary.any(axis=1).nonzero()[0], binary.any(axis=0).nonzero()[0]
    if len(rows) == 0:
        return 0, 0
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def stroke_thickness(image: np.ndarray) -> float:
    """2 * mean distance to the background on the medial ridge (local maxima of the EDT), on
    the image upsampled 4x (so that a stroke's width is not rounded to whole pixels)."""
    binary = binarise(ndimage.zoom(image.astype(np.float64), UP, order=1))
    if not binary.any():
        return 0.0
    distance = ndimage.distance_transform_edt(binary)
    ridge = binary & (distance >= ndimage.maximum_filter(distance, size=3))
    return 2.0 * float(distance[ridge].mean()) / UP


def skew(image: np.ndarray) -> float:
    """``mu11 / mu02`` of the grey image: x moves by this much per pixel of y (y down)."""
    image = image.astype(np.float64)
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    mass = image.sum()
    cx, cy = (image * xs).sum() / mass, (image * ys).sum() / mass
    return float((image * (xs - cx) * (ys - cy)).sum() / (image * (ys - cy) ** 2).sum())


def single_digits(labels: torch.Tensor, size: torch.Tensor, word: int, slant: torch.Tensor):
    """A layout with one digit per canvas, in the middle slot."""
    n = len(labels)
    empty = torch.full((n, 3), -1)
    columns = [empty.clone() for _ in C.Layout.fields()]
    for column, value in zip(columns, (labels, size, torch.full((n,), word), slant)):
        column[:, 1] = value
    return C.Layout(*columns)


def measure(module: ModuleType, digits: torch.Tensor, labels: torch.Tensor, seed: int = 0):
    """Draw each of ``digits``' classes thin, normal and thick, alone on a canvas, with random
    size and slant, as the dataset draws them (``render_layout``: a digit of the class from the
    pool ``digits``, redrawn from another where the pen broke or filled it); measure each, and
    the MNIST digit it was drawn from."""
    n = len(digits)
    g = torch.Generator().manual_seed(seed)
    size = torch.randint(0, len(module.SIZES), (n,), generator=g)
    slant = torch.randint(0, len(module.SLANTS), (n,), generator=g)
    scale = torch.tensor(module.SCALES)[size].numpy()
    out: dict[str, np.ndarray] = {"size": size.numpy(), "slant": slant.numpy()}
    originals = [binarise(d.numpy() / 255.0) for d in digits]
    out["pieces_original"] = np.array([pieces(b) for b in originals])
    height_original = np.array([extent(b)[0] for b in originals], dtype=float)
    out["thickness_original"] = np.array([stroke_thickness(d.numpy() / 255.0) for d in digits])
    small = torch.zeros_like(size)  # the same classes drawn small and normal
    layout = single_digits(labels, small, 1, slant)
    drawn, _, _, _ = module.render_layout(layout, digits, labels, g)
    out["height_small"] = np.array([extent(binarise(im / 255))[0] for im in drawn.numpy()], float)
    for index, name in enumerate(module.THICKNESSES):
        layout = single_digits(labels, size, index, slant)
        drawn, _, source, _ = module.render_layout(layout, digits, labels, g)
        drawn = drawn.numpy() / 255.0
        binary = [binarise(im) for im in drawn]
        sizes = np.array([extent(b) for b in binary], dtype=float)
        out[f"ink_{name}"] = np.array([b.sum() for b in binary])
        out[f"pieces_{name}"] = np.array([pieces(b) for b in binary])
        out[f"height_{name}"] = sizes[:, 0]
        out[f"width_{name}"] = sizes[:, 1]
        out[f"thickness_{name}"] = np.array([stroke_thickness(im) for im in drawn])
        out[f"skew_{name}"] = np.array([skew(im) for im in drawn])
        drawn_from = source[:, 1].numpy()
        out[f"height_ratio_{name}"] = sizes[:, 0] / (scale * height_original[drawn_from])
    return out


def summary(m: dict[str, np.ndarray]) -> dict[str, float]:
    """The numbers the tests check (and the report prints)."""
    s: dict[str, float] = {}
    for name in ("original", "thin", "normal", "thick"):
        s[f"split_{name}"] = 100.0 * float(np.mean(m[f"pieces_{name}"] >= 2))
        s[f"thickness_{name}"] = float(np.median(m[f"thickness_{name}"]))
    for name in ("thin", "normal", "thick"):
        s[f"ink_{name}"] = float(np.median(m[f"ink_{name}"]))
        ratio = m[f"height_ratio_{name}"]
        s[f"height_ratio_{name}"] = float(np.median(ratio))
        s[f"height_off_{name}"] = 100.0 * float(np.mean(np.abs(ratio - 1.0) > 0.15))
        s[f"width_vs_normal_{name}"] = float(np.median(m[f"width_{name}"] / m["width_normal"]))
        leaning = m["slant"] != 1
        sign = np.where(m["slant"] == 2, -1.0, 1.0)  # leaning right: x falls as y grows
        s[f"slant_ok_{name}"] = 100.0 * float(
            np.mean(m[f"skew_{name}"][leaning] * sign[leaning] > 0)
        )
    large = m["size"] == 1
    s["large_thin_no_taller_than_small"] = 100.0 * float(
        np.mean(m["height_thin"][large] <= m["height_small"][large])
    )
    s["large_normal_no_taller_than_small"] = 100.0 * float(
        np.mean(m["height_normal"][large] <= m["height_small"][large])
    )
    return s


@pytest.fixture(scope="module")
def stats() -> dict[str, float]:
    images, labels = mnist.load_subset("test")
    return summary(measure(C, images[:600], labels[:600], seed=0))


pytestmark = pytest.mark.slow


def test_thin_digits_stay_in_one_piece_as_often_as_the_originals(stats) -> None:
    assert stats["split_thin"] <= stats["split_original"] + 2.0
    assert stats["split_normal"] <= stats["split_original"] + 2.0
    assert stats["split_thick"] <= stats["split_original"] + 2.0


def test_a_wider_pen_draws_the_same_digit_a_little_taller_and_wider(stats) -> None:
    # The pen traces the centre line, so the ink reaches half a pen's width beyond its ends.
    assert stats["height_ratio_thin"] < stats["height_ratio_normal"] < stats["height_ratio_thick"]
    assert 0.85 < stats["height_ratio_thin"] and stats["height_ratio_thick"] < 1.15
    assert 0.8 < stats["width_vs_normal_thin"] < 1.0 < stats["width_vs_normal_thick"] < 1.25


def size_features(m: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every drawing's height less its stroke thickness (about the centre line's height), and
    whether it is large."""
    height = np.concatenate([m[f"height_{w}"] for w in C.THICKNESSES])
    thickness = np.concatenate([m[f"thickness_{w}"] for w in C.THICKNESSES])
    return height - thickness, np.tile(m["size"], len(C.THICKNESSES)) == 1


def test_the_size_word_is_read_from_the_pixels_alone() -> None:
    """One cut on the ink's height less its stroke thickness, chosen on drawings of training
    digits, reads small from large on drawings of test digits."""
    train_images, train_labels = mnist.load_subset("train")
    fit = measure(C, train_images[:600], train_labels[:600], seed=1)
    feature, large = size_features(fit)
    cuts = np.arange(5.0, 20.0, 0.25)
    cut = cuts[np.argmax([np.mean((feature > c) == large) for c in cuts])]
    test_images, test_labels = mnist.load_subset("test")
    feature, large = size_features(measure(C, test_images[600:1200], test_labels[600:1200], 2))
    assert np.mean((feature > cut) == large) >= 0.96


def test_stroke_thickness_is_ordered(stats) -> None:
    thin, normal, thick = (stats[f"thickness_{t}"] for t in ("thin", "normal", "thick"))
    assert thin < 0.85 * normal and normal < 0.8 * thick
    assert thick < 2.2 * normal  # thicker, not a blob


def test_thin_digits_keep_their_slant(stats) -> None:
    for name in ("thin", "normal", "thick"):
        assert stats[f"slant_ok_{name}"] >= 97.0, name
