"""Chapter 14's committed SimCLR encoder, loaded in one line.

``data/weights/simclr_digits.pt`` is what ``scripts/train_fewlabels_weights.py`` trained:
:class:`~mmcourse.fewlabels.SimCLR` pretrained for :data:`EPOCHS` epochs on the bundled
10,000 MNIST training digits without their labels. The loader checks the file's SHA-256
against ``data/weights/SHA256SUMS`` and reads it with ``weights_only=True``.
"""

from __future__ import annotations

from mmcourse.casestudy.pretrained import WEIGHTS
from mmcourse.casestudy.weights import load_weights
from mmcourse.fewlabels.simclr import SimCLR

__all__ = ["EPOCHS", "FILE", "load_simclr"]

FILE = WEIGHTS / "simclr_digits.pt"
"""Where the committed encoder lives."""
EPOCHS = 20
"""How long the committed encoder was pretrained."""


def load_simclr() -> SimCLR:
    """The committed SimCLR model (encoder and projection head), in eval mode."""
    return load_weights(
        SimCLR(), FILE, "Retrain it with: python scripts/train_fewlabels_weights.py"
    )
