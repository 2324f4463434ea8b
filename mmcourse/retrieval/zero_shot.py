"""Zero-shot digit recognition with a trained dual encoder: MNIST digits put on canvases as the
dataset draws them, a prompt ensemble per digit, scores averaged over several views (CLIP's
classifier, no digit label used in training).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import check_choice, check_indices, check_int, check_tensor, require
from mmcourse.data.captions import (
    CANVAS,
    CENTER_Y_RANGE,
    MAX_DIGITS,
    N_TEMPLATES,
    NUMBER_WORDS,
    SIZES,
    SLANTS,
    SLOT_X,
    SLOTS,
    THICKNESSES,
    Layout,
    compose,
    describe,
)
from mmcourse.data.pen import PEN_BANDS
from mmcourse.metrics import accuracy
from mmcourse.retrieval.descriptions import check_vocabulary
from mmcourse.retrieval.search import check_encoder, embed_gallery, embed_texts
from mmcourse.vocab import Vocabulary

__all__ = [
    "DEFAULT_PROMPTS",
    "DEFAULT_VIEWS",
    "TYPICAL_CENTRE",
    "digit_prompts",
    "place_digits_on_canvas",
    "prompt_templates",
    "zero_shot_accuracy",
    "zero_shot_classify",
    "zero_shot_scores",
    "zero_shot_weights",
]


DIGIT_FIELD = "{digit}"
"""The placeholder of a prompt template that :func:`digit_prompts` fills with a number word."""


MIDDLE = SLOTS.index("middle")

TYPICAL_CENTRE = (SLOT_X[MIDDLE], sum(CENTER_Y_RANGE) / 2)
"""Where the dataset puts a middle digit's centre of mass on average: ``(32.0, 32.0)``."""


def _check_centre(centre: object, name: str = "centre") -> tuple[float, float]:
    if (
        isinstance(centre, str)
        or not isinstance(centre, Sequence)
        or len(centre) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in centre)
    ):
        raise TypeError(f"{name} must be a pair of numbers (x, y) in pixels, got {centre!r}")
    if not all(math.isfinite(v) and 0 <= v <= CANVAS - 1 for v in centre):
        raise ValueError(f"{name} must lie on the canvas, 0..{CANVAS - 1} pixels, got {centre!r}")
    return float(centre[0]), float(centre[1])


def place_digits_on_canvas(
    digits: torch.Tensor,
    size: str = "large",
    thickness: str = "normal",
    slant: str = "upright",
    centre: tuple[float, float] = TYPICAL_CENTRE,
) -> torch.Tensor:
    """Draw each 28x28 MNIST digit alone in the middle slot of a blank canvas: uint8
    ``(N, 64, 64)``.

    It calls the dataset's own drawing (:func:`mmcourse.data.captions.compose`), so the digit
    is drawn as MNIST-Captions draws a single digit described as
    ``"a <size> [<thickness>] <digit> [leaning <slant>] in the middle"``: its centre line
    deslanted, then sheared by the slant's shear, scaled by the size's factor, traced with a
    pen from the middle of the thickness word's band (:data:`~mmcourse.data.pen.PEN_BANDS`),
    its centre of mass put at ``centre``. The default centre is the *typical* one,
    :data:`TYPICAL_CENTRE` -- the middle slot's ``x = 32`` without the dataset's horizontal
    jitter of up to 1.5 pixels, and ``y = 32``, the middle of its vertical range 26..38 -- so
    the result is deterministic. Unlike the dataset, it never swaps a digit whose drawing
    broke a stroke or filled a loop for another: every digit given is drawn.

    Args:
        digits: uint8 ``(N, 28, 28)`` MNIST digits (``mnist.load_digits(...)[0]``).
        size, thickness, slant: one of :data:`~mmcourse.data.captions.SIZES`,
            :data:`~mmcourse.data.captions.THICKNESSES`,
            :data:`~mmcourse.data.captions.SLANTS`.
        centre: ``(x, y)`` of the digits' centre of mass, in canvas pixels.
    """
    check_tensor(digits, "digits", "of MNIST digits: uint8 (N, 28, 28)")
    if digits.dtype != torch.uint8 or digits.dim() != 3 or tuple(digits.shape[1:]) != (28, 28):
        raise ValueError(
            "digits must be uint8 MNIST digits of shape (N, 28, 28), "
            f"got shape {tuple(digits.shape)} and dtype {digits.dtype}"
        )
    check_choice(size, "size", SIZES)
    check_choice(thickness, "thickness", THICKNESSES)
    check_choice(slant, "slant", SLANTS)
    x, y = _check_centre(centre)
    n = len(digits)
    if n == 0:
        return torch.zeros(0, CANVAS, CANVAS, dtype=torch.uint8)
    empty = torch.full((n, MAX_DIGITS), -1)
    middle = torch.zeros_like(empty).index_fill_(1, torch.tensor([1]), 1).bool()
    layout = Layout(
        torch.where(middle, 0, empty),
        torch.where(middle, SIZES.index(size), empty),
        torch.where(middle, THICKNESSES.index(thickness), empty),
        torch.where(middle, SLANTS.index(slant), empty),
    )
    slots = torch.zeros(n, MAX_DIGITS, 28, 28, dtype=torch.uint8)
    slots[:, 1] = digits
    centers = torch.tensor([x, y]).repeat(n, MAX_DIGITS, 1)
    low, high = PEN_BANDS[thickness]
    pen_width = torch.full((n, MAX_DIGITS), (low + high) / 2)
    return compose(layout, slots, centers, pen_width)


def prompt_templates(
    sizes: Sequence[str] = SIZES,
    thicknesses: Sequence[str] = THICKNESSES,
    slants: Sequence[str] = SLANTS,
    paraphrases: Sequence[int] = tuple(range(N_TEMPLATES)),
) -> list[str]:
    """Prompt templates for one digit in the middle slot, written by the dataset's own caption
    grammar (:func:`mmcourse.data.captions.describe`), with ``{digit}`` where the number word
    goes: one per combination of the given attributes and paraphrases.

    >>> prompt_templates(sizes=["large"], thicknesses=["normal"], slants=["upright"],
    ...                  paraphrases=[0, 3])
    ['a large {digit} in the middle', 'in the middle is a big {digit}']
    """
    choices = (("sizes", sizes, SIZES), ("thicknesses", thicknesses, THICKNESSES))
    choices += (("slants", slants, SLANTS),)
    for name, values, allowed in choices:
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise TypeError(f"{name} must be a non-empty list drawn from {allowed}, got {values!r}")
        for value in values:
            check_choice(value, f"every one of {name}", allowed)
    if isinstance(paraphrases, str) or not isinstance(paraphrases, Sequence) or not paraphrases:
        raise TypeError(f"paraphrases must be a non-empty list of ints, got {paraphrases!r}")
    templates = []
    for paraphrase in paraphrases:
        for size in sizes:
            for thickness in thicknesses:
                for slant in slants:
                    item = (MIDDLE, 0, SIZES.index(size), THICKNESSES.index(thickness))
                    caption = describe([(*item, SLANTS.index(slant))], paraphrase)
                    # "zero" is the number word of digit 0 and occurs nowhere else
                    templates.append(caption.replace(NUMBER_WORDS[0], DIGIT_FIELD))
    return templates


DEFAULT_PROMPTS: tuple[str, ...] = tuple(prompt_templates(sizes=["large"]))
"""The default prompt ensemble: a *large* digit in the middle slot -- the size
:func:`place_digits_on_canvas` draws -- in every thickness, slant and paraphrase, 36 templates
(``"a large {digit} in the middle"``, ``"there is a big thick {digit} tilted left in the
middle"``, ...). The thickness and slant variants are averaged away; the size is not, since
"a small seven" describes another picture (and "a small four" is never seen in training)."""


DEFAULT_VIEWS: tuple[tuple[float, float], ...] = tuple(
    (x, y) for y in (29.0, 32.0, 35.0) for x in (31.0, 32.0, 33.0)
)
"""Where :func:`zero_shot_scores` puts each digit: nine centres spread over the positions the
dataset draws a middle digit at (``x`` within 1 pixel of 32, ``y`` across 29..35)."""


def digit_prompts(digit: int, prompts: Sequence[str] = DEFAULT_PROMPTS) -> list[str]:
    """The prompts of one digit: each template with ``{digit}`` replaced by its number word.

    >>> digit_prompts(7, ["a large {digit} in the middle"])
    ['a large seven in the middle']
    """
    check_int(digit, "digit", minimum=0, maximum=9)
    _check_prompts(prompts)
    return [template.replace(DIGIT_FIELD, NUMBER_WORDS[digit]) for template in prompts]


def _check_prompts(prompts: object) -> Sequence[str]:
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise TypeError(
            f"prompts must be a list of templates such as 'a large {DIGIT_FIELD} in the middle', "
            f"got {type(prompts).__name__}"
        )
    require(len(prompts) != 0, "prompts is empty; give at least one template")
    for template in prompts:
        if not isinstance(template, str) or DIGIT_FIELD not in template:
            raise ValueError(
                f"every prompt must be a str holding {DIGIT_FIELD} where the number word goes, "
                f"got {template!r}"
            )
    return prompts


def zero_shot_weights(
    model: nn.Module, vocab: Vocabulary, prompts: Sequence[str] | None = None
) -> torch.Tensor:
    """``(10, E)``: one unit "class embedding" per digit, CLIP's prompt ensemble.

    Row ``d`` is the mean of the unit text embeddings of every prompt of digit ``d``
    (:func:`digit_prompts`; default :data:`DEFAULT_PROMPTS`), normalised again. Averaging
    many phrasings ("a large seven ...", "a large thin seven tilted left ...") keeps what
    they share -- the digit -- and washes out what they do not (stroke, slant, wording);
    Radford et al. (2021) gain several points of ImageNet accuracy this way.
    """
    prompts = DEFAULT_PROMPTS if prompts is None else _check_prompts(prompts)
    texts = [text for digit in range(10) for text in digit_prompts(digit, prompts)]
    emb = embed_texts(model, vocab, texts).view(10, len(prompts), -1)
    return F.normalize(emb.mean(dim=1), dim=1)


def _check_views(views: object) -> list[tuple[float, float]]:
    if isinstance(views, str) or not isinstance(views, Sequence):
        raise TypeError(f"views must be a list of centres (x, y), got {type(views).__name__}")
    require(len(views) != 0, "views is empty; give at least one centre (x, y)")
    return [_check_centre(view, "every view") for view in views]


def zero_shot_scores(
    model: nn.Module,
    vocab: Vocabulary,
    digit_images: torch.Tensor,
    prompts: Sequence[str] | None = None,
    size: str = "large",
    views: Sequence[tuple[float, float]] = DEFAULT_VIEWS,
    batch_size: int = 512,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(N, 10)``: how well each digit image matches each digit's description -- the cosine
    of canvas and class embedding, averaged over ``views``.

    ``class_weights`` ``(10, E)``: the class embeddings of :func:`zero_shot_weights`, when
    they were computed once already (they depend on the model and prompts only, not on the
    digits); ``None`` computes them from ``prompts``.

    1. Put each digit on a canvas as the dataset would draw it
       (:func:`place_digits_on_canvas`, in the middle slot, of ``size``), once per centre in
       ``views``.
    2. Embed the canvases (:func:`embed_gallery`).
    3. Embed each digit's prompts and average them into one class embedding
       (:func:`zero_shot_weights`).
    4. Score every canvas against every class embedding (cosine), and average the scores of
       the views of one digit: *test-time augmentation*. The dataset never draws a digit at
       exactly one spot, so neither do we; averaging over the spots it does use smooths away
       the model's quirks at any single one. ``views=[TYPICAL_CENTRE]`` scores one view.

    No label takes part: the "classifier" is written in words.
    """
    check_encoder(model)
    check_vocabulary(vocab)
    centres = _check_views(views)
    if class_weights is None:
        weights = zero_shot_weights(model, vocab, prompts)  # (10, E)
    elif (
        not isinstance(class_weights, torch.Tensor)
        or class_weights.dim() != 2
        or len(class_weights) != 10
    ):
        raise ValueError("class_weights must be the (10, E) tensor zero_shot_weights returns")
    else:
        weights = class_weights
    scores = None
    for centre in centres:
        canvases = place_digits_on_canvas(digit_images, size=size, centre=centre)
        require(len(canvases) != 0, "digit_images is empty (N = 0)")
        view = embed_gallery(model, canvases, batch_size) @ weights.T  # (N, 10)
        scores = view if scores is None else scores + view
    return scores / len(centres)


def zero_shot_classify(
    model: nn.Module,
    vocab: Vocabulary,
    digit_images: torch.Tensor,
    prompts: Sequence[str] | None = None,
    size: str = "large",
    views: Sequence[tuple[float, float]] = DEFAULT_VIEWS,
    batch_size: int = 512,
) -> torch.Tensor:
    """Recognise MNIST digits with a model trained only on captioned canvases: LongTensor
    ``(N,)`` of predicted digits, the best of :func:`zero_shot_scores`.

    Args:
        model: a trained :class:`~mmcourse.models.dual.DualEncoder`.
        vocab: the vocabulary it was trained with.
        digit_images: uint8 MNIST digits ``(N, 28, 28)``.
        prompts: templates holding ``{digit}``; ``None`` for :data:`DEFAULT_PROMPTS`.
        size: the size the digits are drawn at (``"large"`` or ``"small"``).
        views: the centres each digit is drawn at (:data:`DEFAULT_VIEWS`).
    """
    scores = zero_shot_scores(model, vocab, digit_images, prompts, size, views, batch_size)
    return scores.argmax(dim=1)


def zero_shot_accuracy(
    model: nn.Module,
    vocab: Vocabulary,
    digit_images: torch.Tensor,
    labels: torch.Tensor,
    prompts: Sequence[str] | None = None,
    size: str = "large",
    views: Sequence[tuple[float, float]] = DEFAULT_VIEWS,
) -> float:
    """Fraction of ``digit_images`` that :func:`zero_shot_classify` gets right (``labels``:
    the true digits ``(N,)``, used only to score)."""
    check_indices(labels, "labels", ("N",))
    if len(labels) != len(digit_images):
        raise ValueError(
            f"labels must hold one digit per image, got {len(labels)} labels for "
            f"{len(digit_images)} images"
        )
    predictions = zero_shot_classify(model, vocab, digit_images, prompts, size, views)
    return accuracy(predictions, labels)
