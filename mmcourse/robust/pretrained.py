"""Chapter 13's committed robust digit reader, loaded in one line.

``data/weights/robust/robust_reader.pt`` is what ``scripts/train_robust_weights.py`` trained:
a :class:`~mmcourse.models.image.DigitNet` of :data:`CHANNELS` behind MNIST's standardisation,
trained on 55,000 full-MNIST digits with fast adversarial training at ``epsilon = 0.3``
(:func:`mmcourse.robust.fast_adversarial`), the epoch kept chosen on 5,000 validation digits
under PGD. The loader checks the file's SHA-256 against ``data/weights/robust/SHA256SUMS``
and reads it with ``weights_only=True``; :func:`training_log` returns what the script
measured, the full 10,000-digit test set included.
"""

from __future__ import annotations

import json
from typing import Any

from torch import nn
from torchvision.transforms import Normalize

from mmcourse.casestudy.pretrained import WEIGHTS
from mmcourse.casestudy.weights import load_weights
from mmcourse.data.mnist import MEAN, STD
from mmcourse.models.image import DigitNet

__all__ = [
    "CHANNELS",
    "EPSILON",
    "FILE",
    "LOG",
    "load_robust_reader",
    "robust_reader",
    "training_log",
]

FILE = WEIGHTS / "robust" / "robust_reader.pt"
"""Where the committed reader lives."""
LOG = WEIGHTS / "robust" / "training_log.json"
"""What the script measured: every epoch on validation, the chosen epoch, the test set once."""
CHANNELS = (32, 64, 128)
"""The reader's widths: twice the chapter's :class:`DigitNet` (Madry et al. found capacity
matters for robustness)."""
EPSILON = 0.3
"""The ball it was trained for (pixels in [0, 1]), Madry et al.'s on MNIST."""


def robust_reader() -> nn.Sequential:
    """A fresh, untrained reader of the committed shape: ``Normalize`` then ``DigitNet``, so
    that it takes raw pixels in ``[0, 1]`` and an attack's epsilon is in pixel units."""
    return nn.Sequential(Normalize((MEAN,), (STD,)), DigitNet(CHANNELS))


def load_robust_reader() -> nn.Sequential:
    """The committed robust reader, in eval mode."""
    return load_weights(
        robust_reader(), FILE, "Retrain it with: python scripts/train_robust_weights.py"
    )


def training_log() -> dict[str, Any]:
    """The committed reader's training log (see the module docstring)."""
    if not LOG.is_file():
        raise FileNotFoundError(
            f"no training log at {LOG}; it is written by scripts/train_robust_weights.py"
        )
    return json.loads(LOG.read_text(encoding="utf-8"))
