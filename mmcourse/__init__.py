"""mmcourse: the helper package of the course *Multimodal AI with PyTorch*.

Modules, in the order data flows through them:

- :mod:`mmcourse.config`         seeds, device, the ``fast``/``full`` profile, thread count
- :mod:`mmcourse.portable`       the settings that make CPU numbers the same on every x86-64 CPU
- :mod:`mmcourse.data.mnist`     find, verify and load MNIST (full or the bundled subset)
- :mod:`mmcourse.data.captions`  MNIST-Captions: canvases, captions, ground truth, Q/A, splits
- :mod:`mmcourse.data.stats`     counting what a dataset holds
- :mod:`mmcourse.text`           vocabulary and tokenizer
- :mod:`mmcourse.models`         image and text encoders, fusion, dual encoder, captioner
- :mod:`mmcourse.joint`          the joint layer Z = W_X X' + W_Y Y', cosine geometry
- :mod:`mmcourse.losses`         cross-entropy, CLIP InfoNCE, triplet, sequence loss
- :mod:`mmcourse.train`          one training loop, early stopping, checkpoints
- :mod:`mmcourse.decode`         greedy decoding
- :mod:`mmcourse.metrics`        accuracy, P/R/F1, confusion, BLEU, recall@K
- :mod:`mmcourse.viz`            figures; :mod:`mmcourse.checks` exercise self-checks
- :mod:`mmcourse.concepts`, :mod:`mmcourse.course`, :mod:`mmcourse.doctor`, :mod:`mmcourse.utils`

Sub-modules are imported on demand, so ``import mmcourse`` stays fast.
"""

from mmcourse import portable as _portable

__version__ = "0.1.0"

# Before torch starts: pin the CPU libraries' kernels (see mmcourse.portable), unless the
# learner set them, or turned them off with MMCOURSE_PORTABLE=0.
_portable.apply_before_torch()
