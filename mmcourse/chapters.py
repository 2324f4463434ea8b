"""The course's map: its chapters, what each is about, how long each takes, and a picture."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch


@dataclass(frozen=True)
class Chapter:
    number: int
    file: str
    title: str
    step: str
    """Which step of the recipe (data, encoders, joint layer, loss, training,
    evaluation, deployment) the chapter is about, or "overview"."""


CHAPTERS = (
    Chapter(0, "00_start_here.ipynb", "Start here", "overview"),
    Chapter(1, "01_concepts.ipynb", "Concepts of multimodal AI", "overview"),
    Chapter(
        2, "02_joint_representation.ipynb", "The maths of a joint representation", "joint layer"
    ),
    Chapter(3, "03_mnist_captions.ipynb", "Case study, step 1: MNIST-Captions", "data"),
    Chapter(4, "04_image_encoders.ipynb", "Image encoders", "encoders"),
    Chapter(5, "05_text_encoders.ipynb", "Text encoders", "encoders"),
    Chapter(6, "06_fusion.ipynb", "Fusion", "joint layer"),
    Chapter(7, "07_losses.ipynb", "Losses and regularisation", "loss"),
    Chapter(8, "08_training_evaluation.ipynb", "Training and evaluation", "training + evaluation"),
    Chapter(
        9, "09_captioning_attention.ipynb", "Case study: captioning with attention", "training"
    ),
    Chapter(
        10,
        "10_decoders_beam_transfer.ipynb",
        "Case study: beam search, three decoders, transfer",
        "evaluation",
    ),
    Chapter(
        11,
        "11_retrieval_zero_shot.ipynb",
        "Case study: retrieval and zero-shot",
        "loss + evaluation",
    ),
    Chapter(12, "12_deployment.ipynb", "Case study, step 6: deployment", "deployment"),
)

RECIPE = ("data", "encoders", "joint layer", "loss", "training", "evaluation", "deployment")
"""The steps of building a multimodal system, in order (the article's six, its last one --
evaluation and deployment -- drawn as two)."""


def draw_map() -> Figure:
    """The recipe as a row of boxes, with the chapters that teach each step."""
    fig, ax = plt.subplots(figsize=(12.5, 2.9))
    ax.set_xlim(0, len(RECIPE))
    ax.set_ylim(0, 1)
    ax.axis("off")
    for i, step in enumerate(RECIPE):
        box = FancyBboxPatch(
            (i + 0.08, 0.45), 0.84, 0.4, boxstyle="round,pad=0.02", fc="#dbe9f6", ec="#2b6cb0"
        )
        ax.add_patch(box)
        ax.text(i + 0.5, 0.65, f"{i + 1}. {step}", ha="center", va="center", fontsize=10)
        if i + 1 < len(RECIPE):
            ax.annotate(
                "", xy=(i + 1.06, 0.65), xytext=(i + 0.94, 0.65),
                arrowprops={"arrowstyle": "->", "color": "#2b6cb0"},
            )  # fmt: skip
        taught = [c for c in CHAPTERS if step in c.step.split(" + ")]
        label = "\n".join(textwrap.fill(f"{c.number:02d} {c.title}", 24) for c in taught)
        ax.text(i + 0.5, 0.38, label, ha="center", va="top", fontsize=7.5, color="#333333")
    ax.set_title("The recipe of the course, and the chapters that teach each step", fontsize=11)
    fig.tight_layout()
    return fig
