"""MNIST-Captions: the course's own image-and-text dataset, built from MNIST digits.

Each example is a 64x64 canvas with one to three MNIST digits standing in three slots (left,
middle, right). Every digit is drawn again *by construction* (:mod:`mmcourse.data.pen`): its
centre line is traced with a round pen whose width, in canvas pixels, lies in the band its
thickness word names (thin 1.0-1.4, normal 1.9-2.5, thick 3.3-3.9 pixels, the same at both
sizes); it is scaled for its size, and its own slant is removed before the caption's slant is
sheared in. A drawing that breaks a stroke or fills a loop is drawn again from another digit
of the same class. So every word of a caption is ground truth that the canvas shows:

    "a small thick seven on the left and a large two leaning right on the right"

The dataset builds on "Captioned MNIST" of alignDRAW (Mansimov et al., ICLR 2016: 60x60
canvases, captions about positions, held-out combinations) and Morpho-MNIST (Castro et al.,
JMLR 2019). Each canvas comes with:

- four paraphrased reference captions (templates), each at least five words long;
- structured ground truth (digit, size, thickness, slant and centre of each slot);
- question/answer pairs for visual question answering.

Splits: ``train`` draws its digits from MNIST's training set; ``val`` and ``test`` from two
disjoint halves of MNIST's test set; ``compositional`` (test digits too) holds only canvases
with a combination that :data:`HOLDOUT` keeps out of the other three splits.

The package's modules, each with one job (everything is also importable from here):

- :mod:`~mmcourse.data.captions.layout`    what stands where: slots, sizes, thicknesses, slants,
  the held-out combinations, and layouts sampled per split
- :mod:`~mmcourse.data.captions.render`    the layout drawn: digits redrawn by the pen, pasted
- :mod:`~mmcourse.data.captions.language`  the words: four paraphrases, a caption parsed back,
  the questions and answers
- :mod:`~mmcourse.data.captions.dataset`   :class:`MNISTCaptions` and
  :func:`make_mnist_captions`, built once and cached
"""

from mmcourse.data.captions.dataset import (
    CANVAS_MEAN,
    CANVAS_STD,
    DEFAULT_SIZES,
    SPLITS,
    MNISTCaptions,
    digit_pool,
    generate,
    make_mnist_captions,
)
from mmcourse.data.captions.language import (
    ANSWERS,
    N_TEMPLATES,
    NUMBER_WORDS,
    QUESTION_TYPES,
    DigitDescription,
    describe,
    parse_caption,
    questions_for,
)
from mmcourse.data.captions.layout import (
    ATTRIBUTES,
    CANVAS,
    CENTER_Y_RANGE,
    HOLDOUT,
    JITTER_X,
    MAX_DIGITS,
    SCALES,
    SHEARS,
    SIZES,
    SLANTS,
    SLOT_X,
    SLOTS,
    THICKNESSES,
    Holdout,
    Layout,
    repair_layout,
    sample_layout,
    sample_split_layout,
)
from mmcourse.data.captions.render import compose, cut_out, draw_alone, render_layout

__all__ = [
    "ANSWERS",
    "ATTRIBUTES",
    "CANVAS",
    "CANVAS_MEAN",
    "CANVAS_STD",
    "CENTER_Y_RANGE",
    "DEFAULT_SIZES",
    "DigitDescription",
    "HOLDOUT",
    "Holdout",
    "JITTER_X",
    "Layout",
    "MAX_DIGITS",
    "MNISTCaptions",
    "NUMBER_WORDS",
    "N_TEMPLATES",
    "QUESTION_TYPES",
    "SCALES",
    "SHEARS",
    "SIZES",
    "SLANTS",
    "SLOTS",
    "SLOT_X",
    "SPLITS",
    "THICKNESSES",
    "compose",
    "cut_out",
    "describe",
    "digit_pool",
    "draw_alone",
    "generate",
    "make_mnist_captions",
    "parse_caption",
    "questions_for",
    "render_layout",
    "repair_layout",
    "sample_layout",
    "sample_split_layout",
]
