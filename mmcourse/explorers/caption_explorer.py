"""Chapter 10's explorer: change one digit of a canvas and watch the caption follow.

Pick a test canvas and a slot; change that digit's size, thickness or slant (the same MNIST
digit is drawn again, changed, at the same place, :func:`~mmcourse.data.captions.compose`);
the picture shows the canvas, its true caption, what the attention decoder writes with a beam
of the chosen width, the beam's other candidates with their probabilities, and where each word
of the winning caption looked.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import ipywidgets as widgets
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from mmcourse._validate import check_choice, check_int
from mmcourse.casestudy.recipe import MAX_CAPTION_LEN, attention_for
from mmcourse.data.captions import (
    SIZES,
    SLANTS,
    SLOTS,
    THICKNESSES,
    Layout,
    MNISTCaptions,
    compose,
    describe,
)
from mmcourse.data.pen import move_to_band
from mmcourse.decode import beam_candidates
from mmcourse.deploy.serve import prepare_canvases
from mmcourse.explorers._base import Explorer
from mmcourse.vocab import EOS, Vocabulary

AS_DRAWN = "as drawn"
"""The choice that leaves an attribute as the dataset drew it."""
MAX_WORD_MAPS = 24
"""At most this many words get an attention map (the caption's first ones; two-digit captions
run to about 20 words)."""
MAX_BEAM = 5
ATTRIBUTES = {"size": SIZES, "thickness": THICKNESSES, "slant": SLANTS}
INFERNO = matplotlib.colormaps["inferno"]


def attention_mosaic(
    image: torch.Tensor, attention: torch.Tensor, columns: int, gap: int = 2, label: int = 14
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The canvas ``(H, W)`` once per word with that word's attention ``(words, regions)`` on
    top (upsampled bilinearly, coloured 0 to its own maximum, blended as a 55 % overlay), tiled
    ``columns`` to a row with room for a label above each: an RGB array, and where each label
    goes (x, y in its pixels)."""
    height, width = image.shape
    side = int(round(attention.shape[1] ** 0.5))
    if side * side != attention.shape[1]:
        raise ValueError(f"{attention.shape[1]} regions do not form a square grid")
    up = F.interpolate(
        attention.view(-1, 1, side, side).float(), size=(height, width), mode="bilinear",
        align_corners=False,
    )[:, 0]  # fmt: skip
    peak = up.flatten(1).max(dim=1).values.clamp_min(1e-12)[:, None, None]
    heat = INFERNO((up / peak).clamp(0, 1).numpy())[..., :3]
    grey = (image.float() / 255.0).numpy()[None, :, :, None].repeat(3, axis=3)
    tiles = 0.55 * heat + 0.45 * grey
    rows = math.ceil(len(tiles) / columns)
    cell_h, cell_w = height + label + gap, width + gap
    mosaic = np.ones((rows * cell_h, columns * cell_w, 3))
    places = []
    for i, tile in enumerate(tiles):
        top, left = (i // columns) * cell_h + label, (i % columns) * cell_w
        mosaic[top : top + height, left : left + width] = tile
        places.append((left + width / 2, top - 1))
    return mosaic, places


class CaptionExplorer(Explorer):
    """A canvas, a change to one of its digits, and what a captioner says about it.

    Args:
        model: a trained attention captioner (it keeps ``state.attention``), e.g.
            ``pretrained.load_decoder("attention", vocab)``.
        vocab: its vocabulary.
        data: the split the canvases come from (its layout, centres and sources).
        pool_images: the MNIST digits that split was drawn from
            (:func:`~mmcourse.data.captions.digit_pool`), so a changed digit is the same one.
        start: the canvas shown first.
    """

    title = "Caption explorer"
    sentence = (
        "change the size, thickness or slant of one digit of a test canvas and see the "
        "caption, the beam's candidates and where each word looked."
    )

    def __init__(
        self,
        model: nn.Module,
        vocab: Vocabulary,
        data: MNISTCaptions,
        pool_images: torch.Tensor,
        start: int = 0,
    ) -> None:
        if not isinstance(data, MNISTCaptions):
            raise TypeError(f"data must be an MNISTCaptions split, got {type(data).__name__}")
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
        if not isinstance(pool_images, torch.Tensor) or pool_images.dtype != torch.uint8:
            raise ValueError("pool_images must be the split's uint8 MNIST digits (digit_pool)")
        if int(data.source.max()) >= len(pool_images):
            raise ValueError("pool_images is not the pool this split was drawn from")
        check_int(start, "start", minimum=0, maximum=len(data) - 1)
        self.model, self.vocab, self.data = model.eval(), vocab, data
        self.pool_images, self.start = pool_images, start

    def controls(self) -> dict[str, widgets.ValueWidget]:
        present = [s for s in range(len(SLOTS)) if self.data.layout.digits[self.start, s] >= 0]
        attribute = {
            name: widgets.Dropdown(
                options=(AS_DRAWN, *values), value=AS_DRAWN, description=name,
                layout=widgets.Layout(width="190px"),
            )
            for name, values in ATTRIBUTES.items()
        }  # fmt: skip
        return {
            "canvas": widgets.IntSlider(
                value=self.start, min=0, max=len(self.data) - 1, description="canvas",
                continuous_update=False,
            ),
            "slot": widgets.Dropdown(
                options=SLOTS, value=SLOTS[present[0]], description="digit on the",
                layout=widgets.Layout(width="190px"),
            ),
            **attribute,
            "beam_width": widgets.IntSlider(
                value=3, min=1, max=MAX_BEAM, description="beam width", continuous_update=False
            ),
        }  # fmt: skip

    def canvas(
        self, canvas: int, slot: str, size: str, thickness: str, slant: str
    ) -> tuple[torch.Tensor, Layout]:
        """The canvas ``(64, 64)`` uint8 with the digit in ``slot`` changed, and its layout."""
        check_int(canvas, "canvas", minimum=0, maximum=len(self.data) - 1)
        check_choice(slot, "slot", SLOTS)
        layout = self.data.layout.select(torch.tensor([canvas]))
        layout = Layout(*(getattr(layout, f).clone() for f in Layout.fields()))
        column = SLOTS.index(slot)
        for name, value in (("size", size), ("thickness", thickness), ("slant", slant)):
            check_choice(value, name, (AS_DRAWN, *ATTRIBUTES[name]))
            if value != AS_DRAWN and layout.digits[0, column] >= 0:
                getattr(layout, name)[0, column] = ATTRIBUTES[name].index(value)
        source = self.data.source[canvas].clamp_min(0)
        drawn = self.data.layout.thickness[canvas]
        width = move_to_band(
            self.data.pen_width[canvas], drawn.clamp_min(0), layout.thickness[0].clamp_min(0)
        )
        image = compose(
            layout, self.pool_images[source][None], self.data.centers[canvas][None], width[None]
        )
        return image[0], layout

    def state(
        self, canvas: int, slot: str, size: str, thickness: str, slant: str, beam_width: int
    ) -> dict[str, Any]:
        """The canvas, its true caption, the beam's candidates (text, probability) best first,
        and the winner's words with their attention ``(words, regions)``."""
        check_int(beam_width, "beam_width", minimum=1, maximum=MAX_BEAM)
        image, layout = self.canvas(canvas, slot, size, thickness, slant)
        rows = [getattr(layout, f)[0].tolist() for f in Layout.fields()]
        items = [(s, *values) for s, values in enumerate(zip(*rows)) if values[0] >= 0]
        pixels = prepare_canvases(image[None])
        candidates = beam_candidates(self.model, pixels, MAX_CAPTION_LEN, beam_width)
        best = candidates[0].tokens
        words = [self.vocab.itos[t] for t in best]
        return {
            "image": image,
            "truth": describe(items, 0),
            "candidates": [(self.vocab.decode(c.tokens), math.exp(c.log_prob)) for c in candidates],
            "words": words,
            "attention": attention_for(self.model, pixels, best),
            "changed": self.data.layout.digits[canvas, SLOTS.index(slot)] >= 0,
        }

    def draw(
        self, canvas: int, slot: str, size: str, thickness: str, slant: str, beam_width: int
    ) -> Figure:
        state = self.state(canvas, slot, size, thickness, slant, beam_width)
        words = state["words"][:MAX_WORD_MAPS]
        columns = 8
        map_rows = math.ceil(len(words) / columns)
        # Two axes only: the attention maps are tiled into one image, because laying out and
        # drawing two dozen small axes on every redraw would cost more than the caption itself.
        figure = Figure(figsize=(10, 3.0 + 1.45 * map_rows))
        grid = figure.add_gridspec(2, 4, height_ratios=(2.2, 1.45 * map_rows))
        figure.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.01, hspace=0.12)
        image_axis = figure.add_subplot(grid[0, :1])
        text_axis = figure.add_subplot(grid[0, 1:])
        maps_axis = figure.add_subplot(grid[1, :])
        image_axis.imshow(state["image"].numpy(), cmap="gray")
        image_axis.set_axis_off()
        note = "" if state["changed"] else f" (no digit on the {slot}: nothing changed)"
        image_axis.set_title(f"canvas {canvas}{note}", fontsize=9)
        lines = ["one true caption: " + state["truth"], ""]
        lines += [f"beam of {beam_width}: up to six candidates, best first (probability)"]
        for rank, (text, probability) in enumerate(state["candidates"][:6], start=1):
            lines.append(f"{rank}. {text}  ({probability:.2g})")
        wrapped = [textwrap.fill(line, 78, subsequent_indent="    ") for line in lines]
        text_axis.text(0, 1, "\n".join(wrapped), va="top", fontsize=8.5, family="monospace")
        text_axis.set_axis_off()
        mosaic, places = attention_mosaic(state["image"], state["attention"][: len(words)], columns)
        maps_axis.imshow(mosaic)
        for word, (x, y) in zip(words, places):
            label = word if word != EOS else "<eos>"
            maps_axis.text(x, y, label, ha="center", va="bottom", fontsize=8)
        maps_axis.set_axis_off()
        return figure
