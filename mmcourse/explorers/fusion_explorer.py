"""Chapter 06's explorer: one fusion, one canvas, one question, and the answer it gives.

Pick a trained VQA model (one per fusion), a test canvas and a question; the picture shows the
canvas, the model's five most likely answers with their probabilities, the true answer where
the dataset asks that question of that canvas, and, for a fusion that attends over regions
(cross-attention), where the question looked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from mmcourse._validate import check_choice, check_int
from mmcourse.data.captions import ANSWERS, QUESTION_TYPES, MNISTCaptions
from mmcourse.explorers._base import Explorer
from mmcourse.models.introspect import device_of
from mmcourse.models.vqa import VQAModel
from mmcourse.vocab import Vocabulary

TOP_ANSWERS = 5


class FusionExplorer(Explorer):
    """Pick a fusion, a canvas and a question; see the answer and, if any, the attention.

    Args:
        models: trained :class:`~mmcourse.models.vqa.VQAModel` by name, all reading stored
            regions (chapter 06's ``models`` without early fusion, which reads pixels).
        regions: the test canvases' stored regions ``(N, R, D)``.
        data: the test split (canvases and their questions and answers).
        vocab: the question vocabulary the models were trained with.
        grid: the regions' grid ``(h, w)``, ``h * w == R``, to draw attention on the canvas.
        start: the canvas shown first.
    """

    title = "Fusion playground"
    sentence = (
        "pick a fusion, a test canvas and a question, and see the model's most likely answers "
        "and, for cross-attention, where it looked."
    )

    def __init__(
        self,
        models: Mapping[str, VQAModel],
        regions: torch.Tensor,
        data: MNISTCaptions,
        vocab: Vocabulary,
        grid: tuple[int, int],
        start: int = 0,
    ) -> None:
        if not models or not all(isinstance(m, VQAModel) for m in models.values()):
            raise ValueError("models must map names to trained VQAModel instances")
        if any(m.fusion.input == "pixels" for m in models.values()):
            raise ValueError("every model must read stored regions (early fusion reads pixels)")
        if not isinstance(data, MNISTCaptions):
            raise TypeError(f"data must be an MNISTCaptions split, got {type(data).__name__}")
        if not isinstance(regions, torch.Tensor) or regions.dim() != 3:
            raise ValueError("regions must be the stored regions (N, R, D) of the canvases")
        if len(regions) != len(data):
            raise ValueError(f"got regions of {len(regions)} canvases for {len(data)} canvases")
        if len(grid) != 2 or grid[0] * grid[1] != regions.shape[1]:
            raise ValueError(f"grid {grid} does not hold the {regions.shape[1]} regions")
        check_int(start, "start", minimum=0, maximum=len(data) - 1)
        self.models = {name: model.eval() for name, model in models.items()}
        self.start = start
        self.regions, self.data, self.vocab, self.grid = regions, data, vocab, tuple(grid)
        asked = {(kind, question) for qa in data.qa for kind, question, _ in qa}
        self.questions = [
            q for _, q in sorted(asked, key=lambda x: (QUESTION_TYPES.index(x[0]), x[1]))
        ]

    def controls(self) -> dict[str, widgets.ValueWidget]:
        names = list(self.models)
        start = "cross-attention" if "cross-attention" in names else names[0]
        return {
            "fusion": widgets.Dropdown(options=names, value=start, description="fusion"),
            "canvas": widgets.IntSlider(
                value=self.start, min=0, max=len(self.data) - 1, description="canvas",
                continuous_update=False,
            ),
            "question": widgets.Dropdown(
                options=self.questions, value=self.questions[0], description="question",
                layout=widgets.Layout(width="360px"),
            ),
        }  # fmt: skip

    def state(self, fusion: str, canvas: int, question: str) -> dict[str, Any]:
        """The model's top answers (answer, probability), the truth (``None`` where the
        dataset does not ask this question of this canvas) and the attention ``(h, w)`` (or
        ``None``)."""
        check_choice(fusion, "fusion", tuple(self.models))
        check_int(canvas, "canvas", minimum=0, maximum=len(self.data) - 1)
        check_choice(question, "question", tuple(self.questions))
        model = self.models[fusion]
        device = device_of(model)
        ids = torch.tensor([self.vocab.encode(question, add_bos_eos=False)], device=device)
        regions = self.regions[canvas : canvas + 1].to(device)
        with torch.no_grad():
            probabilities = F.softmax(model(regions, ids), dim=1)[0].cpu()
            attention = None
            if callable(getattr(model.fusion, "attention", None)):
                text = model.question_encoder(ids)
                attention = model.fusion.attention(regions, text)[0].view(self.grid).cpu()
        top = probabilities.topk(TOP_ANSWERS)
        truth = {q: a for _, q, a in self.data.qa[canvas]}.get(question)
        answers = [(ANSWERS[i], float(p)) for p, i in zip(top.values, top.indices)]
        return {"answers": answers, "truth": truth, "attention": attention}

    def draw(self, fusion: str, canvas: int, question: str) -> Figure:
        state = self.state(fusion, canvas, question)
        figure = Figure(figsize=(9, 3.4))
        image_axis, bars_axis = figure.subplots(1, 2, width_ratios=(1, 1.4))
        figure.subplots_adjust(left=0.02, right=0.97, top=0.86, bottom=0.14, wspace=0.35)
        image = self.data.images[canvas].float()
        image_axis.imshow(image.numpy(), cmap="gray")
        if state["attention"] is not None:
            up = F.interpolate(
                state["attention"][None, None], size=image.shape, mode="bilinear",
                align_corners=False,
            )[0, 0]  # fmt: skip
            image_axis.imshow(up.numpy(), cmap="inferno", alpha=0.55, vmin=0.0)
            image_axis.set_title("where the question looked", fontsize=9)
        else:
            image_axis.set_title(f"canvas {canvas} ({fusion} has no attention)", fontsize=9)
        image_axis.set_axis_off()
        names = [answer for answer, _ in state["answers"]]
        colours = ["C2" if answer == state["truth"] else "C7" for answer in names]
        bars_axis.barh(names, [p for _, p in state["answers"]], color=colours)
        bars_axis.invert_yaxis()
        bars_axis.set_xlim(0, 1)
        bars_axis.set_xlabel("probability")
        truth = state["truth"] if state["truth"] is not None else "not asked of this canvas"
        bars_axis.set_title(f"{fusion}: {question!r}\ntrue answer: {truth}", fontsize=9)
        return figure
