"""Beyond the clean test set: corrupted inputs, adversarial examples, calibration and
attributions (chapter 13).

- :mod:`~mmcourse.robust.corrupt` -- noise, blur, contrast and occlusion of canvases; typos,
  dropped and unknown words of texts; each at severities 0..5;
- :mod:`~mmcourse.robust.attacks` -- FGSM, PGD, the random-noise control, fast adversarial
  training's examples and accuracy over restarts;
- :mod:`~mmcourse.robust.caption_attack` -- one word of a caption changed by a targeted attack;
- :mod:`~mmcourse.robust.calibration` -- reliability bins, ECE, temperature scaling, AUROC;
- :mod:`~mmcourse.robust.attribution` -- integrated gradients and the randomisation check;
- :mod:`~mmcourse.robust.pretrained` -- the committed adversarially trained digit reader.
"""

from mmcourse.robust.attacks import (
    ATTACKS,
    attack_accuracy,
    fast_adversarial,
    fgsm,
    pgd,
    random_sign_noise,
    robust_accuracy,
)
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
from mmcourse.robust.caption_attack import caption_is, swap_first_word, targeted_caption_pgd
from mmcourse.robust.corrupt import (
    IMAGE_CORRUPTIONS,
    SEVERITIES,
    TEXT_CORRUPTIONS,
    UNSEEN_WORD,
    corrupt_images,
    corrupt_texts,
    corruption_strength,
)
from mmcourse.robust.pretrained import load_robust_reader, robust_reader, training_log

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
    "caption_is",
    "corrupt_images",
    "corrupt_texts",
    "corruption_strength",
    "expected_calibration_error",
    "fast_adversarial",
    "fit_temperature",
    "integrated_gradients",
    "load_robust_reader",
    "pgd",
    "fgsm",
    "plot_reliability",
    "random_sign_noise",
    "randomized_copy",
    "rank_correlation",
    "reliability_bins",
    "robust_accuracy",
    "robust_reader",
    "swap_first_word",
    "targeted_caption_pgd",
    "training_log",
]
