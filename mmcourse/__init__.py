"""mmcourse: the helper package of the course *Multimodal AI with PyTorch*.

Modules, layer by layer (a module imports only from its own layer or those below; the picture
is in CONTRIBUTING.md):

0. :mod:`mmcourse.config` (seeds, device, profile, threads), :mod:`mmcourse.portable` (the
   same CPU numbers on every x86-64 CPU), :mod:`mmcourse.utils`, ``mmcourse._validate``
   (the argument checks every module shares)
1. :mod:`mmcourse.vocab` (tokenizer, vocabulary), :mod:`mmcourse.data` (MNIST, MNIST-Captions,
   VQA examples, text tasks, statistics)
2. :mod:`mmcourse.losses`, :mod:`mmcourse.metrics`, :mod:`mmcourse.caption_metrics`
3. :mod:`mmcourse.models` -- image and text encoders, fusions (``fusion``, ``film``,
   ``cross_attention``), VQA models, dual encoder, captioners (Show and Tell, Show, Attend
   and Tell, a Transformer decoder); ``introspect`` looks inside any model
4. :mod:`mmcourse.train` (one training step and loop), :mod:`mmcourse.callbacks` (printing,
   early stopping, checkpoints, learning rates), :mod:`mmcourse.checkpoints`,
   :mod:`mmcourse.decode` (greedy decoding, beam search)
5. chapter material and pictures: :mod:`mmcourse.digits`, :mod:`mmcourse.joint`,
   :mod:`mmcourse.article`, :mod:`mmcourse.concepts`, :mod:`mmcourse.chapters`,
   :mod:`mmcourse.viz`, :mod:`mmcourse.doctor`, ...; the case study:
   :mod:`mmcourse.casestudy`, :mod:`mmcourse.retrieval`, :mod:`mmcourse.deploy`
6. :mod:`mmcourse.checks` -- the exercises' self-checks

Sub-modules are imported on demand, so ``import mmcourse`` stays fast.
"""

from mmcourse import portable as _portable

__version__ = "0.1.0"

# Before torch starts: pin the CPU libraries' kernels (see mmcourse.portable), unless the
# learner set them, or turned them off with MMCOURSE_PORTABLE=0.
_portable.apply_before_torch()
