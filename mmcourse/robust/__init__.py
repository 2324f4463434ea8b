"""Beyond the clean test set: corrupted inputs, adversarial examples, calibration and
attributions (chapter 13).

- :mod:`~mmcourse.robust.corrupt` -- noise, blur, contrast and occlusion of canvases; typos,
  dropped and unknown words of texts; each at severities 0..5;
- :mod:`~mmcourse.robust.attacks` -- FGSM, PGD, the random-noise control, fast adversarial
  training's examples and accuracy over restarts;
- :mod:`~mmcourse.robust.caption_attack` -- one word of a caption changed by a targeted attack;
- :mod:`~mmcourse.robust.calibration` -- reliability bins, ECE, temperature scaling, AUROC;
- :mod:`~mmcourse.robust.attribution` -- integrated gradients and the randomisation check;
- :mod:`~mmcourse.robust.pretrained` -- the committed adversarially trained digit reader;
- :mod:`~mmcourse.robust.augment` -- augmented views of canvases, word dropout of questions;
- :mod:`~mmcourse.robust.study` -- the chapter's corruption curves and augmentation study over
  seeds, stored by ``experiments/robustness_seeds.py``.
"""

from mmcourse.robust import study  # noqa: E402  (after the modules it uses)
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
from mmcourse.robust.augment import augment_canvases, word_dropout
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
    "augment_canvases",
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
    "study",
    "swap_first_word",
    "targeted_caption_pgd",
    "training_log",
    "word_dropout",
]
