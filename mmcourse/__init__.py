"""mmcourse: the helper package of the course *Multimodal AI with PyTorch*.

Modules, in the order data flows through them:

- :mod:`mmcourse.config`         seeds, device, the ``fast``/``full`` profile, thread count
- :mod:`mmcourse.data.mnist`     find, verify and load MNIST (full or the bundled subset)
- :mod:`mmcourse.data.captions`  MNIST-Captions: canvases, captions, ground truth, Q/A, splits
- :mod:`mmcourse.text`           vocabulary and tokenizer

Sub-modules are imported on demand, so ``import mmcourse`` stays fast.
"""

__version__ = "0.1.0"
