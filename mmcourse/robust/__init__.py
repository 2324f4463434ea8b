"""Beyond the clean test set: corrupted inputs, adversarial examples, calibration and
attributions (chapter 13).

- :mod:`~mmcourse.robust.corrupt` -- noise, blur, contrast and occlusion of canvases; typos,
  dropped and unknown words of texts; each at severities 0..5;
- :mod:`~mmcourse.robust.attacks` -- FGSM, PGD and the random-noise control;
- :mod:`~mmcourse.robust.calibration` -- reliability bins, ECE, temperature scaling, AUROC;
- :mod:`~mmcourse.robust.attribution` -- integrated gradients and the randomisation check.
"""

from mmcourse.robust.attacks import ATTACKS, attack_accuracy, fgsm, pgd, random_sign_noise
from mmcourse.robust.attribution import integrated_gradients, randomized_copy, rank_correlation
from mmcourse.robust.calibration import (
    Reliability,
    auroc,
    average_ranks,
    expected_calibration_error,
    fit_temperature,
    plot_reliability,
    reliability_bins,
)
from mmcourse.robust.corrupt import (
    IMAGE_CORRUPTIONS,
    SEVERITIES,
    TEXT_CORRUPTIONS,
    UNSEEN_WORD,
    corrupt_images,
    corrupt_texts,
    corruption_strength,
)

__all__ = [
    "ATTACKS",
    "IMAGE_CORRUPTIONS",
    "Reliability",
    "SEVERITIES",
    "TEXT_CORRUPTIONS",
    "UNSEEN_WORD",
    "attack_accuracy",
    "auroc",
    "average_ranks",
    "corrupt_images",
    "corrupt_texts",
    "corruption_strength",
    "expected_calibration_error",
    "fit_temperature",
    "integrated_gradients",
    "pgd",
    "fgsm",
    "plot_reliability",
    "random_sign_noise",
    "randomized_copy",
    "rank_correlation",
    "reliability_bins",
]
