"""Chapter 14's committed SimCLR encoder, loaded in one line.

``data/weights/fewlabels/simclr_digits.pt`` is what ``scripts/train_fewlabels_weights.py`` trained:
:class:`~mmcourse.fewlabels.SimCLR` pretrained for :data:`EPOCHS` epochs on the bundled
10,000 MNIST training digits without their labels. The loader checks the file's SHA-256
against ``data/weights/fewlabels/SHA256SUMS`` (a folder of its own, so that the case study's
``SHA256SUMS``, which chapter 10's stored results are tied to, stays as it was) and reads it
with ``weights_only=True``; the training log is ``data/weights/simclr_training_log.json``.
"""

from __future__ import annotations

from mmcourse.casestudy.pretrained import WEIGHTS
from mmcourse.casestudy.weights import load_weights
from mmcourse.fewlabels.simclr import SimCLR

__all__ = ["EPOCHS", "FILE", "LOG", "load_simclr"]

FILE = WEIGHTS / "fewlabels" / "simclr_digits.pt"
"""Where the committed encoder lives."""
LOG = WEIGHTS / "simclr_training_log.json"
"""Its training log: the loss of every epoch, the seconds, the versions."""
EPOCHS = 20
"""How long the committed encoder was pretrained."""


def load_simclr() -> SimCLR:
    """The committed SimCLR model (encoder and projection head), in eval mode."""
    return load_weights(
        SimCLR(), FILE, "Retrain it with: python scripts/train_fewlabels_weights.py"
    )
