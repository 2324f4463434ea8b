"""The case study: describe, retrieve and recognise MNIST-Captions canvases end to end.

- :mod:`mmcourse.casestudy.recipe` -- data, a pretrained image encoder, three caption decoders
  (Show and Tell, Show, Attend and Tell, a Transformer) trained and chosen on validation;
- :mod:`mmcourse.casestudy.weights` -- saving and loading trained weights with SHA-256 checks
  and clear messages for a missing, corrupted or mismatched file;
- :mod:`mmcourse.casestudy.pretrained` -- the committed, longer-trained weights of
  ``data/weights/`` (made by ``scripts/train_casestudy_weights.py``), one loader each;
- :mod:`mmcourse.casestudy.run` -- ``python -m mmcourse.casestudy``, the whole case study
  without a notebook.
"""
