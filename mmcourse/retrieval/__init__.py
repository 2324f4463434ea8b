"""The case study's contrastive model: retrieval both ways and zero-shot digit recognition.

A CLIP-style :class:`~mmcourse.models.dual.DualEncoder` is trained on MNIST-Captions with the
symmetric InfoNCE loss, and then used, without any further training, for three things:

- **text -> image retrieval**: embed a caption, rank every canvas of a gallery by cosine;
- **image -> text retrieval**: embed a canvas, rank every caption;
- **zero-shot recognition** of plain MNIST digits: put a digit on a canvas the way the dataset
  draws one, embed ten descriptions ("a large seven in the middle", ...), and pick the digit
  whose description is closest. No digit label is ever used for training -- the labels only
  score the result.

Three things make a small model good at this on two CPU cores in about a minute and a half
(:func:`train_dual_encoder`):

- *hard negative captions*: next to the batch's other captions, each canvas is shown its own
  caption with one digit swapped (:func:`swap_digit_words`,
  :func:`~mmcourse.losses.negative_caption_loss`) -- without them the model learns where the
  digits are and how big, and hardly which digit is which;
- a text tower that averages a bidirectional GRU's states over the words
  (:class:`~mmcourse.models.dual.MeanOverWords`), so that a digit's name reaches the embedding directly;
- at test time, each digit is drawn at nine positions the dataset uses and the scores are
  averaged (:data:`DEFAULT_VIEWS`, test-time augmentation), over a prompt ensemble
  (:data:`DEFAULT_PROMPTS`).

Duplicates. Two canvases of MNIST-Captions may have exactly the same ground truth (a third of
the canvases hold a single digit, and there are only 540 single-digit descriptions), so their
captions are the same words. Plain CLIP calls the other canvas's caption a *negative*;
:func:`description_ids` numbers the descriptions so that the loss can know better
(:func:`mmcourse.losses.clip_loss_with_duplicates`, ``mode="mask"`` or ``"soft"``) and so that
the metrics can count any canvas with the right description as a hit (``"description"``
recall in :func:`retrieval_report`), next to the strict ``"instance"`` recall.

The modules, each with one job (everything is also importable from here, as
``retrieval.train_dual_encoder``):

- :mod:`~mmcourse.retrieval.descriptions`  one id per distinct ground truth; hard negatives
- :mod:`~mmcourse.retrieval.training`      :func:`train_dual_encoder`, the recipe
- :mod:`~mmcourse.retrieval.search`        batched unit embeddings; recall@k both ways, per
  instance and per description (:func:`retrieval_report`, :func:`format_report`)
- :mod:`~mmcourse.retrieval.zero_shot`     MNIST digits -> canvases, CLIP's prompt-ensemble
  classifier (:func:`zero_shot_scores`, :func:`zero_shot_accuracy`)

The model itself, :func:`~mmcourse.models.dual.new_dual_encoder` with its towers
(:class:`~mmcourse.models.dual.MeanOverWords`, :class:`~mmcourse.models.dual.Downsampled`),
lives with the other models.
"""

from mmcourse.models.dual import TEXT_TOWERS, Downsampled, MeanOverWords, new_dual_encoder
from mmcourse.retrieval.descriptions import description_ids, swap_digit_words, swap_one_digit
from mmcourse.retrieval.search import (
    DIRECTIONS,
    RELEVANCE,
    embed_gallery,
    embed_texts,
    format_report,
    recall_report,
    retrieval_report,
)
from mmcourse.retrieval.training import MODES, ContrastiveRecipe, train_dual_encoder
from mmcourse.retrieval.zero_shot import (
    DEFAULT_PROMPTS,
    DEFAULT_VIEWS,
    TYPICAL_CENTRE,
    digit_prompts,
    place_digits_on_canvas,
    prompt_templates,
    zero_shot_accuracy,
    zero_shot_classify,
    zero_shot_scores,
    zero_shot_weights,
)

__all__ = [
    "ContrastiveRecipe",
    "DEFAULT_PROMPTS",
    "DEFAULT_VIEWS",
    "DIRECTIONS",
    "MODES",
    "RELEVANCE",
    "TEXT_TOWERS",
    "TYPICAL_CENTRE",
    "Downsampled",
    "MeanOverWords",
    "description_ids",
    "digit_prompts",
    "embed_gallery",
    "embed_texts",
    "format_report",
    "new_dual_encoder",
    "place_digits_on_canvas",
    "prompt_templates",
    "recall_report",
    "retrieval_report",
    "swap_digit_words",
    "swap_one_digit",
    "train_dual_encoder",
    "zero_shot_accuracy",
    "zero_shot_classify",
    "zero_shot_scores",
    "zero_shot_weights",
]
