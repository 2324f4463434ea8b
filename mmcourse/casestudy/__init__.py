"""The case study: describe, retrieve and recognise MNIST-Captions canvases end to end.

- :mod:`mmcourse.casestudy.recipe` -- data, a pretrained image encoder, three caption decoders
  (Show and Tell, Show, Attend and Tell, a Transformer) trained and chosen on validation;
- :mod:`mmcourse.casestudy.weights` -- saving and loading trained weights with SHA-256 checks
  and clear messages for a missing, corrupted or mismatched file.
"""
