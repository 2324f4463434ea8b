"""Chapter 01's explorer: what the temperature of a contrastive loss does to a shared space.

The same tiny model (an MLP for digits, a table of word vectors, both into a plane) is trained
once per temperature; the slider moves between the trained spaces, so the points move as the
temperature changes. A second slider follows one digit: the bars are the probabilities
``softmax(cos(digit, word) / τ)`` that the loss turns its similarities into.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from mmcourse import joint, metrics, train
from mmcourse._validate import check_choice, check_int, check_positive
from mmcourse.explorers._base import Explorer

TEMPERATURES = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""The temperatures the explorer trains a space for (chapter 01 trains at 0.2)."""


def train_spaces(
    images: torch.Tensor,
    labels: torch.Tensor,
    temperatures: Sequence[float] = TEMPERATURES,
    epochs: int = 4,
    hidden: int = 128,
    seed: int = 0,
) -> dict[float, joint.DigitWordSpace]:
    """One 2-D :class:`~mmcourse.joint.DigitWordSpace` per temperature, each trained from the
    same start (``seed``) on the same batches (Adam, learning rate 0.01, batches of 64)."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise ValueError("images must be float digits (B, 28, 28): use mnist.to_float")
    if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1]:
        raise ValueError(f"labels must have shape ({len(images)},)")
    if isinstance(temperatures, str | bytes) or len(temperatures) == 0:
        raise ValueError("temperatures must be a non-empty list of numbers")
    for temperature in temperatures:
        check_positive(temperature, "every temperature")
    check_int(epochs, "epochs")
    spaces = {}
    for temperature in temperatures:
        torch.manual_seed(seed)
        space = joint.DigitWordSpace(dim=2, hidden=hidden, temperature=float(temperature))
        train.fit(
            space, (images, labels), loss_fn=F.cross_entropy,
            optimizer=torch.optim.Adam(space.parameters(), lr=1e-2), epochs=epochs,
            batch_size=64, loop=train.Loop(seed=seed),
        )  # fmt: skip
        spaces[float(temperature)] = space.eval()
    return spaces


class SharedSpaceExplorer(Explorer):
    """Drag the temperature, watch the shared space; follow one digit's probabilities.

    Args:
        spaces: trained 2-D spaces by temperature (:func:`train_spaces`).
        images: float digits ``(N, 28, 28)``; ``labels`` their classes ``(N,)``.
        digits: the same digits as uint8 images, for the thumbnail.
        split: what the digits are, for the titles: ``"validation"`` (the chapter compares
            temperatures on validation digits, keeping the test digits for the end) or
            ``"test"``.
    """

    title = "Shared-space explorer"
    sentence = (
        "a slider picks the temperature a 2-D space of digits and words was trained at, "
        "another follows one digit and its probabilities over the ten words."
    )

    def __init__(
        self,
        spaces: Mapping[float, joint.DigitWordSpace],
        images: torch.Tensor,
        labels: torch.Tensor,
        digits: torch.Tensor,
        split: str = "validation",
    ) -> None:
        if not spaces or not all(isinstance(s, joint.DigitWordSpace) for s in spaces.values()):
            raise ValueError("spaces must map temperatures to trained DigitWordSpace models")
        if any(space.dim != 2 for space in spaces.values()):
            raise ValueError("every space must be 2-D to be drawn")
        if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1]:
            raise ValueError(f"labels must have shape ({len(images)},)")
        if not isinstance(digits, torch.Tensor) or digits.shape[0] != images.shape[0]:
            raise ValueError("digits must hold the same digits as images (uint8 thumbnails)")
        self.split = check_choice(split, "split", ("validation", "test"))
        self.temperatures = sorted(spaces)
        self.labels, self.digits = labels, digits
        self.words = next(iter(spaces.values())).words
        self.points, self.word_points, self.accuracy = {}, {}, {}
        with torch.no_grad():
            for temperature, space in spaces.items():
                self.points[temperature] = space.encode_images(images)
                self.word_points[temperature] = space.encode_words().detach().clone()
                predicted = space.nearest_words(images)
                self.accuracy[temperature] = metrics.accuracy(predicted, labels)

    def controls(self) -> dict[str, widgets.ValueWidget]:
        start = min(self.temperatures, key=lambda t: abs(t - 0.2))
        return {
            "temperature": widgets.SelectionSlider(
                options=self.temperatures, value=start, description="temperature τ",
                continuous_update=False,
            ),
            "digit": widgets.IntSlider(
                value=0, min=0, max=len(self.labels) - 1, description=f"{self.split} digit",
                continuous_update=False,
            ),
        }  # fmt: skip

    def state(self, temperature: float, digit: int) -> dict[str, Any]:
        """What the picture shows: the points and words of the space trained at
        ``temperature``, and digit ``digit``'s probabilities over the words."""
        if temperature not in self.points:
            raise ValueError(f"no space was trained at {temperature}; have {self.temperatures}")
        check_int(digit, "digit", minimum=0, maximum=len(self.labels) - 1)
        points, words = self.points[temperature], self.word_points[temperature]
        cosines = F.cosine_similarity(points[digit][None], words, dim=1)
        return {
            "points": points,
            "words": words,
            "probabilities": torch.softmax(cosines / temperature, dim=0),
            "accuracy": self.accuracy[temperature],
            "label": int(self.labels[digit]),
        }

    def draw(self, temperature: float, digit: int) -> Figure:
        state = self.state(temperature, digit)
        figure = Figure(figsize=(10, 4.4), layout="constrained")
        space_axis, bars_axis = figure.subplots(1, 2, width_ratios=(1.15, 1))
        joint.plot_shared_space(
            state["points"], self.labels, state["words"], self.words, ax=space_axis,
            title=f"trained at τ = {temperature:g}: {self.split} accuracy {state['accuracy']:.3f}",
        )  # fmt: skip
        x, y = state["points"][digit].tolist()
        space_axis.scatter([x], [y], s=160, facecolor="none", edgecolor="black", linewidth=2)
        colours = ["C2" if w == state["label"] else "C7" for w in range(len(self.words))]
        bars_axis.barh(self.words, state["probabilities"].tolist(), color=colours)
        bars_axis.set_xlim(0, 1)
        bars_axis.invert_yaxis()
        bars_axis.set_xlabel(f"softmax(cos / {temperature:g}), the probabilities at τ")
        bars_axis.set_title(f"{self.split} digit {digit} (a {self.words[state['label']]}, circled)")
        inset = bars_axis.inset_axes((0.72, 0.05, 0.25, 0.25))
        inset.imshow(self.digits[digit].numpy(), cmap="gray_r")
        inset.set_axis_off()
        return figure
