"""Chapter 11's explorer: search the test canvases with a sentence; recognise a digit by words.

Type a query: the picture shows the gallery canvases most similar to it (cosine similarity in
the dual encoder's joint space). Pick an MNIST test digit: the bars show its zero-shot
probabilities, the softmax of its similarities to the ten class embeddings (the prompt
ensemble of :func:`~mmcourse.retrieval.zero_shot_weights`, averaged over the views) at the
temperature the model learned. A query with a word the model never saw is answered with the reason,
not an error.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import nn

from mmcourse._validate import check_int
from mmcourse.data.captions import NUMBER_WORDS
from mmcourse.deploy.serve import SearchService
from mmcourse.explorers._base import Explorer
from mmcourse.retrieval.zero_shot import zero_shot_scores, zero_shot_weights
from mmcourse.vocab import Vocabulary

MAX_RESULTS = 8


class RetrievalExplorer(Explorer):
    """Type a query, see the best canvases; pick a digit, see its zero-shot scores.

    Args:
        model: a trained :class:`~mmcourse.models.dual.DualEncoder`; ``vocab`` its vocabulary.
        gallery: uint8 canvases ``(N, 64, 64)`` to search.
        digits: uint8 MNIST digits ``(M, 28, 28)``; ``labels`` their classes ``(M,)``.
        query: the query shown first.
    """

    title = "Retrieval explorer"
    sentence = (
        "type a query to see the test canvases closest to it, and pick an MNIST digit to see "
        "its zero-shot probabilities over the ten digit names."
    )

    def __init__(
        self,
        model: nn.Module,
        vocab: Vocabulary,
        gallery: torch.Tensor,
        digits: torch.Tensor,
        labels: torch.Tensor,
        query: str = "a large seven on the left",
    ) -> None:
        if not isinstance(digits, torch.Tensor) or digits.dtype != torch.uint8 or digits.dim() != 3:
            raise ValueError("digits must be uint8 MNIST digits (M, 28, 28)")
        if not isinstance(labels, torch.Tensor) or labels.shape != digits.shape[:1]:
            raise ValueError(f"labels must have shape ({len(digits)},)")
        self.search = SearchService(model, vocab, gallery)
        self.gallery, self.digits, self.labels, self.query = gallery, digits, labels, query
        self._zero_shot: dict[int, torch.Tensor] = {}
        self.class_weights = zero_shot_weights(self.search.model, vocab)  # once, not per digit
        self.search.search(query, k=1)  # a bad starting query fails here, clearly

    def controls(self) -> dict[str, widgets.ValueWidget]:
        return {
            "query": widgets.Text(
                value=self.query, description="query", continuous_update=False,
                layout=widgets.Layout(width="420px"),
            ),
            "k": widgets.IntSlider(
                value=5, min=1, max=MAX_RESULTS, description="results", continuous_update=False
            ),
            "digit": widgets.IntSlider(
                value=0, min=0, max=len(self.digits) - 1, description="MNIST digit",
                continuous_update=False,
            ),
        }  # fmt: skip

    def state(self, query: str, k: int, digit: int) -> dict[str, Any]:
        """The best ``k`` canvases ``(index, cosine)`` (or ``problem``, why the query cannot
        be answered) and the digit's zero-shot probabilities ``(10,)``."""
        check_int(k, "k", minimum=1, maximum=MAX_RESULTS)
        check_int(digit, "digit", minimum=0, maximum=len(self.digits) - 1)
        found, problem = [], None
        try:
            scores = self.search.scores(query)
        except (TypeError, ValueError) as error:
            problem = str(error)
        else:
            order = torch.sort(scores, descending=True, stable=True).indices[:k]
            found = [(int(i), float(scores[i])) for i in order]
        return {
            "found": found,
            "problem": problem,
            "probabilities": self.zero_shot(digit),
            "label": int(self.labels[digit]),
        }

    def zero_shot(self, digit: int) -> torch.Tensor:
        """Digit ``digit``'s zero-shot probabilities ``(10,)``, computed once per digit (a new
        query then redraws without scoring the digit again)."""
        if digit not in self._zero_shot:
            model = self.search.model
            similarity = zero_shot_scores(
                model, self.search.vocab, self.digits[digit : digit + 1],
                class_weights=self.class_weights,
            )  # fmt: skip
            self._zero_shot[digit] = torch.softmax(
                similarity[0] * model.logit_scale().detach(), dim=0
            )
        return self._zero_shot[digit]

    def draw(self, query: str, k: int, digit: int) -> Figure:
        state = self.state(query, k, digit)
        figure = Figure(figsize=(10, 4.6))
        grid = figure.add_gridspec(2, MAX_RESULTS, height_ratios=(1, 1.15))
        figure.subplots_adjust(left=0.08, right=0.99, top=0.92, bottom=0.1, hspace=0.45)
        if state["problem"]:
            axis = figure.add_subplot(grid[0, :])
            axis.text(0.5, 0.5, state["problem"], ha="center", va="center", wrap=True, fontsize=9)
            axis.set_axis_off()
        for column, (index, cosine) in enumerate(state["found"]):
            axis = figure.add_subplot(grid[0, column])
            axis.imshow(self.gallery[index].numpy(), cmap="gray")
            axis.set_title(f"#{index}\ncos {cosine:.2f}", fontsize=8)
            axis.set_axis_off()
        figure.text(0.5, 0.97, f"query: {query!r}", ha="center", fontsize=10)
        thumbnail = figure.add_subplot(grid[1, 0])
        thumbnail.imshow(self.digits[digit].numpy(), cmap="gray_r")
        thumbnail.set_title(f"digit {digit}", fontsize=8)
        thumbnail.set_axis_off()
        bars = figure.add_subplot(grid[1, 2:])
        colours = ["C2" if d == state["label"] else "C7" for d in range(10)]
        bars.bar(NUMBER_WORDS, state["probabilities"].tolist(), color=colours)
        bars.set_ylim(0, 1)
        bars.set_ylabel("zero-shot probability")
        bars.tick_params(axis="x", labelsize=8)
        return figure
