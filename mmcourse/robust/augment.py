"""Augmentation of either modality: new training views that keep every answer true.

- :func:`augment_canvases` -- each canvas shifted, turned and scaled a little (a random
  affine map) and then deformed elastically (Simard et al., 2003), with torchvision's own
  ``affine`` and ``elastic``; the same seed gives the same views.
- :func:`word_dropout` -- each word of a question (token ids) is, with probability ``p``,
  dropped, and with another ``p`` replaced by ``<unk>`` (Iyyer et al., 2015; Bowman et al.,
  2016): the model learns not to hang everything on one word.

The ranges are small on purpose: MNIST-Captions states each digit's slot (20 pixels apart),
size, thickness and slant (a shear of 0.3), and a view must not change what a caption or an
answer says. A shift of 3 pixels, a turn of 5 degrees and a scale of 5 % keep every digit in
its slot and its slant readable (shear 0.3 is about 17 degrees).
"""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from mmcourse._validate import check_int, check_probability, require
from mmcourse.robust.corrupt import _check_canvases
from mmcourse.vocab import PAD_ID, UNK_ID

__all__ = ["ELASTIC", "MAX_SCALE", "MAX_SHIFT", "MAX_TURN", "augment_canvases", "word_dropout"]

MAX_SHIFT = 3
"""Largest shift, in pixels, along each axis."""
MAX_TURN = 5.0
"""Largest rotation, in degrees, either way."""
MAX_SCALE = 0.05
"""Largest change of scale, either way (0.95 to 1.05)."""
ELASTIC = {"alpha": 34.0, "sigma": 4.0}
"""The elastic deformation of Simard et al. (2003): a random displacement field smoothed by a
Gaussian of ``sigma`` pixels and scaled by ``alpha`` (torchvision's ``ElasticTransform``)."""


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _displacement(size: list[int], generator: torch.Generator) -> torch.Tensor:
    """torchvision's ``ElasticTransform`` field, drawn from ``generator`` instead of the
    global random state: uniform noise in [-1, 1], blurred, scaled to ``alpha`` pixels."""
    sigma, alpha = ELASTIC["sigma"], ELASTIC["alpha"]
    kernel = int(8 * sigma + 1) | 1
    field = torch.rand([2, *size], generator=generator) * 2 - 1
    field = TF.gaussian_blur(field, [kernel, kernel], [sigma, sigma]) * alpha
    return (field / torch.tensor(size)[:, None, None]).permute(1, 2, 0)[None]


def augment_canvases(canvases: torch.Tensor, seed: int = 0, p: float = 1.0) -> torch.Tensor:
    """A view of each uint8 canvas ``(N, H, W)``: with probability ``p`` (else an unchanged
    copy) a random shift (up to :data:`MAX_SHIFT` pixels), turn (:data:`MAX_TURN` degrees)
    and scale (:data:`MAX_SCALE`), then an elastic deformation (:data:`ELASTIC`). Each canvas
    gets its own draw; the same ``seed`` gives the same views. (Both steps resample the
    canvas bilinearly, which softens its edges a little: ``p < 1`` keeps sharp canvases in
    the mix.)

    >>> canvas = torch.zeros(2, 64, 64, dtype=torch.uint8)
    >>> canvas[:, 20:44, 28:36] = 255
    >>> views = augment_canvases(canvas, seed=1)
    >>> views.shape, views.dtype, bool((views[0] != views[1]).any())
    (torch.Size([2, 64, 64]), torch.uint8, True)
    """
    canvases = _check_canvases(canvases)
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    require(not isinstance(p, bool) and isinstance(p, int | float) and 0 <= p <= 1,
            f"p must be a probability in [0, 1], got {p!r}")  # fmt: skip
    size = list(canvases.shape[1:])
    views = []
    for canvas in canvases:
        if float(torch.rand((), generator=generator)) >= p:
            views.append(canvas.clone())
            continue
        shift = [round(_uniform(generator, -MAX_SHIFT, MAX_SHIFT)) for _ in range(2)]
        view = TF.affine(
            canvas[None], angle=_uniform(generator, -MAX_TURN, MAX_TURN),
            translate=shift, scale=_uniform(generator, 1 - MAX_SCALE, 1 + MAX_SCALE), shear=[0.0, 0.0],
            interpolation=InterpolationMode.BILINEAR,
        )  # fmt: skip
        view = TF.elastic(view.float(), _displacement(size, generator))
        views.append(view.round().clamp(0, 255).to(torch.uint8)[0])
    return torch.stack(views)


def word_dropout(ids: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """A copy of the token ids ``(N, T)`` in which each word (not padding) is, with
    probability ``p``, dropped (set to ``PAD_ID``, which a bag of words ignores) and, with
    another ``p``, replaced by ``UNK_ID``. ``p`` must be at most 0.5.

    >>> ids = torch.tensor([[7, 8, 9, 0]])
    >>> word_dropout(ids, 0.0, torch.Generator()).tolist()
    [[7, 8, 9, 0]]
    """
    require(isinstance(ids, torch.Tensor) and ids.dim() == 2 and not ids.is_floating_point(),
            "ids must be an integer tensor (N, T) of token ids", TypeError)  # fmt: skip
    check_probability(p, "p")
    require(p <= 0.5, f"p is the probability of each of two changes, so at most 0.5; got {p}")
    draw = torch.rand(ids.shape, generator=generator)
    words = ids != PAD_ID
    out = torch.where(words & (draw < p), PAD_ID, ids)
    return torch.where(words & (draw >= p) & (draw < 2 * p), UNK_ID, out)
