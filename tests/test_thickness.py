"""Thin, normal and thick digits, measured independently of the generator's own code.

Each test digit is rendered alone, three times -- thin, normal and thick -- with the same size,
slant and position, through :func:`mmcourse.data.captions.render_digits`. Everything after that
is measured here with NumPy and SciPy, never with the generator's helpers:

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


def measure(module: ModuleType, digits: torch.Tensor, seed: int = 0) -> dict[str, np.ndarray]:
    """Render ``digits`` thin, normal and thick with random size and slant; measure each."""
    n = len(digits)
    g = torch.Generator().manual_seed(seed)
    size = torch.randint(0, len(module.SIZES), (n,), generator=g)
    slant = torch.randint(0, len(module.SLANTS), (n,), generator=g)
    scale = torch.tensor(module.SCALES)[size]
    common = dict(
        scale=scale,
        shear=torch.tensor(module.SHEARS)[slant],
        offset=torch.full((n, 2), 20.0) + torch.rand(n, 2, generator=g),
        band=(48, 48),
    )
    out: dict[str, np.ndarray] = {"size": size.numpy(), "slant": slant.numpy()}
    originals = [binarise(d.numpy() / 255.0) for d in digits]
    out["pieces_original"] = np.array([pieces(b) for b in originals])
    out["height_original"] = np.array([extent(b)[0] for b in originals], dtype=float)
    out["thickness_original"] = np.array([stroke_thickness(d.numpy() / 255.0) for d in digits])
    # The same digits drawn small and normal: how tall a small digit is.
    small = module.render_digits(
        digits,
        **{**common, "scale": torch.full((n,), module.SCALES[0])},
        thickness=torch.ones(n, dtype=torch.long),
    )
    out["height_small"] = np.array([extent(binarise(im))[0] for im in small.numpy()], dtype=float)
    for index, name in enumerate(module.THICKNESSES):
        drawn = module.render_digits(
            digits, thickness=torch.full((n,), index, dtype=torch.long), **common
        ).numpy()
        binary = [binarise(im) for im in drawn]
        sizes = np.array([extent(b) for b in binary], dtype=float)
        out[f"ink_{name}"] = np.array([b.sum() for b in binary])
        out[f"pieces_{name}"] = np.array([pieces(b) for b in binary])
        out[f"height_{name}"] = sizes[:, 0]
        out[f"width_{name}"] = sizes[:, 1]
        out[f"thickness_{name}"] = np.array([stroke_thickness(im) for im in drawn])
        out[f"skew_{name}"] = np.array([skew(im) for im in drawn])
        out[f"height_ratio_{name}"] = sizes[:, 0] / (scale.numpy() * out["height_original"])
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
    images, _ = mnist.load_subset("test")
    return summary(measure(C, images[:600], seed=0))


pytestmark = pytest.mark.slow


def test_thin_digits_stay_in_one_piece_as_often_as_the_originals(stats) -> None:
    assert stats["split_thin"] <= stats["split_original"] + 2.0
    assert stats["split_normal"] <= stats["split_original"] + 2.0
    assert stats["split_thick"] <= stats["split_original"] + 2.0


def test_thin_digits_are_as_tall_and_wide_as_normal_ones(stats) -> None:
    # A thinner pen drawing the same strokes ends a little sooner: a few per cent shorter.
    assert abs(stats["height_ratio_thin"] - stats["height_ratio_normal"]) < 0.08
    assert stats["height_off_thin"] <= stats["height_off_normal"] + 3.0
    assert 0.0 <= stats["height_ratio_thick"] - stats["height_ratio_normal"] < 0.15
    assert 0.9 < stats["width_vs_normal_thin"] <= 1.0
    assert 1.0 <= stats["width_vs_normal_thick"] < 1.25
    assert (
        stats["large_thin_no_taller_than_small"] <= stats["large_normal_no_taller_than_small"] + 1
    )


def test_stroke_thickness_is_ordered(stats) -> None:
    thin, normal, thick = (stats[f"thickness_{t}"] for t in ("thin", "normal", "thick"))
    assert thin < 0.85 * normal and normal < 0.8 * thick
    assert thick < 2.2 * normal  # thicker, not a blob


def test_thin_digits_keep_their_slant(stats) -> None:
    for name in ("thin", "normal", "thick"):
        assert stats[f"slant_ok_{name}"] >= 97.0, name
