"""Chapter 13's explorer: drag the severity of a corruption and watch what it does.

Pick a corruption of either modality (noise, blur, contrast, occlusion of the canvas; typos,
dropped or unknown words of the questions), its severity (0 to 5) and a test canvas. The
picture shows the canvas and one of its questions as the models receive them, how many of
that canvas's questions each model still answers right, and the test-set curves of that
corruption with the chosen severity marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from mmcourse._validate import check_choice, check_int, require
from mmcourse.data.captions import MNISTCaptions
from mmcourse.data.questions import VQAExamples
from mmcourse.explorers._base import Explorer
from mmcourse.models.vqa import CanvasBackbone, VQAModel
from mmcourse.robust.corrupt import (
    IMAGE_CORRUPTIONS,
    SEVERITIES,
    TEXT_CORRUPTIONS,
    corrupt_images,
    corrupt_texts,
)
from mmcourse.robust.study import canvas_regions

KINDS = IMAGE_CORRUPTIONS + TEXT_CORRUPTIONS


class CorruptionExplorer(Explorer):
    """Pick a corruption, a severity and a canvas; see the damage and the models' answers.

    Args:
        models: trained :class:`~mmcourse.models.vqa.VQAModel` by name, reading the frozen
            ``backbone``'s regions (chapter 13's ``models``).
        backbone: the frozen backbone that turns a (corrupted) canvas into regions.
        data: the test split whose canvases are shown.
        qa: the test questions about ``data``'s canvases (their vocabulary encodes the
            corrupted questions).
        curves: ``{kind: [{model: accuracy} per severity 0..5]}``, the chapter's ``curves``.
        start: the canvas shown first.
    """

    title = "Severity explorer"
    sentence = (
        "pick a corruption of the canvas or the question, drag its severity, and see the "
        "damage, how many of the canvas's questions each model still answers, and the "
        "test-set curves."
    )

    def __init__(
        self,
        models: Mapping[str, VQAModel],
        backbone: CanvasBackbone,
        data: MNISTCaptions,
        qa: VQAExamples,
        curves: Mapping[str, Sequence[Mapping[str, float]]],
        start: int = 0,
    ) -> None:  # fmt: skip
        require(models and all(isinstance(m, VQAModel) for m in models.values()),
                "models must map names to trained VQAModel instances")  # fmt: skip
        require(
            isinstance(backbone, CanvasBackbone), "backbone must be a CanvasBackbone", TypeError
        )
        require(isinstance(data, MNISTCaptions), "data must be an MNISTCaptions split", TypeError)
        require(isinstance(qa, VQAExamples), "qa must be the VQAExamples of data", TypeError)
        require(int(qa.canvas.max()) < len(data), "qa asks about canvases that data does not hold")
        missing = sorted(set(KINDS) - set(curves))
        require(not missing, f"curves lacks the corruptions {missing}")
        for kind in KINDS:
            rows = curves[kind]
            require(
                len(rows) == len(SEVERITIES), f"curves[{kind!r}] needs one row per severity 0..5"
            )
            require(all(set(row) == set(models) for row in rows),
                    f"curves[{kind!r}] must give an accuracy for each of {sorted(models)}")  # fmt: skip
        check_int(start, "start", minimum=0, maximum=len(data) - 1)
        self.models = {name: model.eval() for name, model in models.items()}
        self.backbone, self.data, self.qa, self.curves, self.start = (
            backbone,
            data,
            qa,
            curves,
            start,
        )

    def controls(self) -> dict[str, widgets.ValueWidget]:
        return {
            "kind": widgets.Dropdown(options=list(KINDS), value="noise", description="corruption"),
            "severity": widgets.IntSlider(value=2, min=0, max=5, description="severity"),
            "canvas": widgets.IntSlider(
                value=self.start, min=0, max=len(self.data) - 1, description="canvas",
                continuous_update=False,
            ),
        }  # fmt: skip

    def state(self, kind: str, severity: int, canvas: int) -> dict[str, Any]:
        """The canvas as the models see it (uint8 ``(H, W)``), its questions as they see them,
        the true answers' indices, and each model's number of right answers."""
        check_choice(kind, "kind", KINDS)
        check_int(severity, "severity", minimum=0, maximum=5)
        check_int(canvas, "canvas", minimum=0, maximum=len(self.data) - 1)
        image = self.data.images[canvas : canvas + 1]
        rows = (self.qa.canvas == canvas).nonzero()[:, 0]
        texts = [self.qa.texts[i] for i in rows.tolist()]
        if kind in IMAGE_CORRUPTIONS:
            image = corrupt_images(image, kind, severity, seed=severity)
        else:
            texts = corrupt_texts(texts, kind, severity, seed=severity)
        ids, _ = self.qa.vocab.encode_batch(texts, add_bos_eos=False)
        regions = canvas_regions(self.backbone, image).expand(len(texts), -1, -1)
        answers = self.qa.answers[rows]
        with torch.no_grad():
            right = {
                name: int((model(regions, ids).argmax(dim=1) == answers).sum())
                for name, model in self.models.items()
            }
        return {"image": image[0], "questions": texts, "answers": answers, "right": right}

    def draw(self, kind: str, severity: int, canvas: int) -> Figure:
        state = self.state(kind, severity, canvas)
        figure = Figure(figsize=(12, 3.6))
        image_axis, bars_axis, curve_axis = figure.subplots(1, 3, width_ratios=(1, 1.2, 1.4))
        figure.subplots_adjust(left=0.02, right=0.98, top=0.82, bottom=0.16, wspace=0.45)
        image_axis.imshow(state["image"].numpy(), cmap="gray", vmin=0, vmax=255)
        image_axis.set_title(f"{kind}, severity {severity}\n{state['questions'][0]!r}", fontsize=9)
        image_axis.set_axis_off()
        names, total = list(state["right"]), len(state["questions"])
        bars_axis.barh(names, [state["right"][n] for n in names], color="C0")
        bars_axis.invert_yaxis()
        bars_axis.set_xlim(0, total)
        bars_axis.set_xlabel(f"right answers of this canvas's {total} questions")
        bars_axis.set_title(f"canvas {canvas}", fontsize=9)
        for name in names:
            curve_axis.plot(
                SEVERITIES, [row[name] for row in self.curves[kind]], marker="o", label=name
            )
        curve_axis.axvline(severity, color="k", linestyle=":")
        curve_axis.set_ylim(0, 1)
        curve_axis.set_xlabel("severity")
        curve_axis.set_ylabel("test accuracy")
        curve_axis.set_title(f"every test question under {kind}", fontsize=9)
        curve_axis.legend(fontsize=7, loc="lower left")
        return figure
