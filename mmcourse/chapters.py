"""The course's map: its chapters, what each is about, how long each takes, and a picture.

How long a chapter takes to *read* is computed from what it holds (:func:`reading_time`), as
its run time is measured (``scripts/run_notebooks.py``); ``scripts/reading_times.py`` writes
both numbers' reading half into every ``<!-- reading-time:NN -->`` marker, and a test keeps
them equal.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

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
    Chapter(13, "13_robustness.ipynb", "Robust multimodal models", "evaluation"),
    Chapter(14, "14_fewer_labels.ipynb", "Learning with fewer labels", "training"),
    Chapter(15, "15_data_parallel.ipynb", "Data parallelism with torchrun", "training"),
)

WORDS_PER_MINUTE = 150
"""Technical prose with formulas, read with care: slower than the 200-250 words a minute of
ordinary reading."""
CODE_LINES_PER_MINUTE = 15
"""Lines of code read and understood (blank lines and comment-only lines not counted)."""
MINUTES_PER_EXERCISE = 10
"""An exercise: read it, write a few lines, run the self-check, perhaps once more."""
READING_MARKER = re.compile(r"<!-- reading-time:(\d\d) -->(.*?)<!-- /reading-time -->")
"""Where a reading time is stated; the text between the tags is :func:`reading_phrase`."""


def _is_solution(cell: dict) -> bool:
    return "solution" in cell.get("metadata", {}).get("tags", [])


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def chapter_counts(path: str | Path) -> dict[str, int]:
    """What a learner reads in the notebook at ``path``: the words of its Markdown (stated
    reading times left out), its lines of code (blank and comment-only lines, and the worked
    solutions, left out) and its exercises (one per worked solution)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    text = " ".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    words = len(re.findall(r"[A-Za-z][A-Za-z'’-]*", READING_MARKER.sub(" ", text)))
    code = [c for c in cells if c["cell_type"] == "code" and not _is_solution(c)]
    lines = [line.strip() for c in code for line in _source(c).splitlines()]
    return {
        "words": words,
        "code_lines": sum(1 for line in lines if line and not line.startswith("#")),
        "exercises": sum(1 for c in cells if _is_solution(c)),
    }


def reading_time(path: str | Path) -> tuple[int, int]:
    """``(reading, exercises)`` minutes for the notebook at ``path``: its words at
    :data:`WORDS_PER_MINUTE` plus its code at :data:`CODE_LINES_PER_MINUTE`, rounded up to
    5 minutes, and :data:`MINUTES_PER_EXERCISE` per exercise."""
    counts = chapter_counts(path)
    minutes = counts["words"] / WORDS_PER_MINUTE + counts["code_lines"] / CODE_LINES_PER_MINUTE
    return 5 * max(1, math.ceil(minutes / 5)), MINUTES_PER_EXERCISE * counts["exercises"]


def reading_phrase(path: str | Path) -> str:
    """``about 45 minutes of reading and 30 of exercises`` (or only the reading)."""
    reading, exercises = reading_time(path)
    phrase = f"about {reading} minutes of reading"
    return phrase + (f" and {exercises} of exercises" if exercises else "")


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
