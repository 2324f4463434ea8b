"""Chapter 14's committed encoders, loaded in one line each.

``data/weights/fewlabels/`` holds what ``scripts/train_fewlabels_weights.py`` trained:

- ``simclr_digits.pt``: :class:`~mmcourse.fewlabels.SimCLR` pretrained for :data:`EPOCHS`
  epochs on the bundled 10,000 MNIST training digits without their labels (training log:
  ``data/weights/simclr_training_log.json``);
- ``dual_encoder_disjoint.pt``: the case study's CLIP-style dual encoder, trained with the
  case study's recipe for :data:`IMAGE_TEXT_EPOCHS` epochs on MNIST-Captions canvases drawn
  from 10,000 *other* MNIST training digits
  (:func:`~mmcourse.fewlabels.image_text.disjoint_pool`), so that its captions never named
  a digit chapter 14 labels (training log: ``dual_encoder_training_log.json`` beside it).

Each loader checks the file's SHA-256 against ``data/weights/fewlabels/SHA256SUMS`` (a folder
of its own, so that the case study's ``SHA256SUMS``, which chapter 10's stored results are
tied to, stays as it was) and reads it with ``weights_only=True``.
"""

from __future__ import annotations

from mmcourse.casestudy import pretrained as casestudy_weights
from mmcourse.casestudy.pretrained import WEIGHTS
from mmcourse.casestudy.weights import load_weights
from mmcourse.fewlabels.simclr import SimCLR
from mmcourse.models.dual import DualEncoder, new_dual_encoder

__all__ = [
    "EPOCHS",
    "FILE",
    "IMAGE_TEXT_EPOCHS",
    "IMAGE_TEXT_FILE",
    "IMAGE_TEXT_LOG",
    "LOG",
    "load_image_text",
    "load_simclr",
]

RETRAIN = "Retrain it with: python scripts/train_fewlabels_weights.py"

FILE = WEIGHTS / "fewlabels" / "simclr_digits.pt"
"""Where the committed SimCLR encoder lives."""
LOG = WEIGHTS / "simclr_training_log.json"
"""Its training log: the loss of every epoch, the seconds, the versions."""
EPOCHS = 20
"""How long the committed SimCLR encoder was pretrained."""

IMAGE_TEXT_FILE = WEIGHTS / "fewlabels" / "dual_encoder_disjoint.pt"
"""Where the committed image--text dual encoder lives."""
IMAGE_TEXT_LOG = WEIGHTS / "fewlabels" / "dual_encoder_training_log.json"
"""Its training log: the digits and canvases, the loss of every epoch, the seconds."""
IMAGE_TEXT_EPOCHS = 15
"""How long it was trained: as long as the case study's committed dual encoder."""


def load_simclr() -> SimCLR:
    """The committed SimCLR model (encoder and projection head), in eval mode."""
    return load_weights(SimCLR(), FILE, RETRAIN)


def load_image_text() -> DualEncoder:
    """The committed dual encoder pretrained on image--text pairs of digits disjoint from the
    bundled ones; it reads the case study's vocabulary
    (:func:`mmcourse.casestudy.pretrained.vocabulary`). Frozen, in eval mode."""
    vocab_size = len(casestudy_weights.vocabulary())
    model = load_weights(new_dual_encoder(vocab_size), IMAGE_TEXT_FILE, f"{RETRAIN} --image-text")
    return model.requires_grad_(False).eval()
