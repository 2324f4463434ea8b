"""Learning with fewer labels (chapter 14): what to do when images are plentiful and labels
are not.

- :mod:`~mmcourse.fewlabels.simclr` -- self-supervised pretraining: two random views of each
  unlabelled digit (:func:`augment`), pulled together and pushed from every other image's
  views by the NT-Xent loss (:func:`nt_xent`, Chen et al. 2020), in :class:`SimCLR`;
- :mod:`~mmcourse.fewlabels.probe` -- what the labels are then used for: a stratified subset
  of them (:func:`labelled_subset`), a linear probe on frozen features
  (:func:`fit_linear_probe`), and fine-tuning or training from scratch at the same budget
  (:func:`train_classifier`);
- :mod:`~mmcourse.fewlabels.semi` -- semi-supervised learning: self-training with pseudo-labels,
  and FixMatch's consistency regularisation
  (:func:`self_train`, :func:`consistency_train`);
- :mod:`~mmcourse.fewlabels.image_text` -- the digits the image--text encoder was pretrained
  on, disjoint from the bundled ones (:func:`~mmcourse.fewlabels.image_text.disjoint_pool`),
  and single digits pasted on a canvas for its image tower;
- :mod:`~mmcourse.fewlabels.active` -- active learning: which images to ask a person to label
  next (:func:`uncertainty`, :func:`next_queries`).
"""

from mmcourse.fewlabels.active import STRATEGIES, next_queries, uncertainty
from mmcourse.fewlabels.probe import (
    LinearProbe,
    accuracy,
    extract_features,
    fit_linear_probe,
    labelled_subset,
    train_classifier,
)
from mmcourse.fewlabels.semi import SelfTraining, consistency_loss, consistency_train, self_train
from mmcourse.fewlabels.simclr import SimCLR, augment, nt_xent, pretrain

__all__ = [
    "LinearProbe",
    "STRATEGIES",
    "SelfTraining",
    "SimCLR",
    "accuracy",
    "augment",
    "consistency_loss",
    "consistency_train",
    "extract_features",
    "fit_linear_probe",
    "labelled_subset",
    "next_queries",
    "nt_xent",
    "pretrain",
    "self_train",
    "train_classifier",
    "uncertainty",
]
