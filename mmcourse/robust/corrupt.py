"""Corruptions of either modality at a severity from 0 (clean) to 5, reproducible from a seed.

Images are uint8 canvases ``(N, H, W)`` in and out, so a corrupted set goes through the same
preprocessing as a clean one. The image corruptions follow MNIST-C (Mu and Gilmer, 2019) and
ImageNet-C (Hendrycks and Dietterich, 2019), which grade each one at five severities:

- ``"noise"`` -- Gaussian noise added to every pixel (standard deviation 0.1 to 0.5 of full ink);
- ``"blur"`` -- a Gaussian blur (standard deviation 0.6 to 2.2 pixels);
- ``"contrast"`` -- ink and background pulled towards their mean (to 60 % down to 10 % of the
  original contrast);
- ``"occlusion"`` -- a black square (10 to 26 pixels wide) at a random place, erasing ink.

Texts are strings in and out; a corrupted word the vocabulary does not know becomes ``<unk>``
when it is encoded, as a real misspelling would:

- ``"typos"`` -- each word, with probability 0.1 to 0.5, has two neighbouring letters swapped
  (or, for a one-letter word, its letter doubled);
- ``"dropped"`` -- each word, with that probability, is left out (a text keeps at least one);
- ``"unknown"`` -- each word, with that probability, is replaced by a word never seen in
  training (``"blorf"``).
"""

from __future__ import annotations

import math

import torch
import torchvision.transforms.functional as TF

from mmcourse._validate import check_choice, check_int, require

__all__ = [
    "IMAGE_CORRUPTIONS",
    "SEVERITIES",
    "TEXT_CORRUPTIONS",
    "UNSEEN_WORD",
    "corrupt_images",
    "corrupt_texts",
    "corruption_strength",
]

IMAGE_CORRUPTIONS = ("noise", "blur", "contrast", "occlusion")
TEXT_CORRUPTIONS = ("typos", "dropped", "unknown")
SEVERITIES = (0, 1, 2, 3, 4, 5)
UNSEEN_WORD = "blorf"

_STRENGTH = {  # the parameter of each corruption at severities 1..5
    "noise": (0.1, 0.2, 0.3, 0.4, 0.5),  # standard deviation, in units of full ink
    "blur": (0.6, 1.0, 1.4, 1.8, 2.2),  # standard deviation in pixels
    "contrast": (0.6, 0.45, 0.3, 0.2, 0.1),  # the contrast that is left
    "occlusion": (10, 14, 18, 22, 26),  # the square's side in pixels
    "typos": (0.1, 0.2, 0.3, 0.4, 0.5),  # probability per word
    "dropped": (0.1, 0.2, 0.3, 0.4, 0.5),
    "unknown": (0.1, 0.2, 0.3, 0.4, 0.5),
}


def corruption_strength(kind: str, severity: int) -> float:
    """The parameter behind ``severity`` of ``kind``, e.g. ``0.3`` for noise at severity 3
    (its standard deviation); 0 for severity 0.

    >>> corruption_strength("blur", 2)
    1.0
    """
    check_choice(kind, "kind", IMAGE_CORRUPTIONS + TEXT_CORRUPTIONS)
    check_int(severity, "severity", minimum=0, maximum=5)
    return 0.0 if severity == 0 else float(_STRENGTH[kind][severity - 1])


def _check_canvases(images: object) -> torch.Tensor:
    require(isinstance(images, torch.Tensor), "images must be a uint8 tensor (N, H, W)", TypeError)
    require(
        images.dtype == torch.uint8 and images.dim() == 3,  # type: ignore[union-attr]
        f"images must be a uint8 tensor (N, H, W), got {images.dtype} "  # type: ignore[union-attr]
        f"{tuple(images.shape)}",  # type: ignore[union-attr]
    )
    return images  # type: ignore[return-value]


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    kernel = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(x.unsqueeze(1), [kernel, kernel], [sigma, sigma]).squeeze(1)


def _occlude(x: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    n, height, width = x.shape
    require(side <= min(height, width), f"a {side}-pixel square does not fit {height}x{width}")
    tops = torch.randint(0, height - side + 1, (n,), generator=generator)
    lefts = torch.randint(0, width - side + 1, (n,), generator=generator)
    rows, cols = torch.arange(height), torch.arange(width)
    inside_rows = (rows >= tops[:, None]) & (rows < tops[:, None] + side)  # (N, H)
    inside_cols = (cols >= lefts[:, None]) & (cols < lefts[:, None] + side)  # (N, W)
    return x.masked_fill(inside_rows[:, :, None] & inside_cols[:, None, :], 0.0)


def corrupt_images(images: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``images`` (uint8 ``(N, H, W)``) with corruption ``kind`` at ``severity`` 0..5; the
    same seed gives the same corruption. Severity 0 returns an unchanged copy.

    >>> canvas = torch.zeros(1, 28, 28, dtype=torch.uint8)
    >>> canvas[0, 10:18, 12:16] = 255
    >>> corrupt_images(canvas, "contrast", 5).unique().tolist()  # paper and ink, a tenth apart
    [9, 35]
    """
    check_choice(kind, "kind", IMAGE_CORRUPTIONS)
    strength = corruption_strength(kind, severity)
    x = _check_canvases(images).float() / 255.0
    if severity == 0:
        return images.clone()
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    if kind == "noise":
        x = x + strength * torch.randn(x.shape, generator=generator)
    elif kind == "blur":
        x = _blur(x, strength)
    elif kind == "contrast":
        mean = x.mean(dim=(1, 2), keepdim=True)
        x = mean + (x - mean) * strength
    else:
        x = _occlude(x, int(strength), generator)
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def _typo(word: str, generator: torch.Generator) -> str:
    if len(word) == 1:
        return word * 2
    i = int(torch.randint(0, len(word) - 1, (1,), generator=generator))
    swapped = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return swapped if swapped != word else word + word[-1]  # "ee" swapped is still "ee"


def corrupt_texts(texts: list[str], kind: str, severity: int, seed: int = 0) -> list[str]:
    """Each text with corruption ``kind`` at ``severity`` 0..5 applied word by word (see the
    module's docstring); the same seed gives the same corruption.

    >>> corrupt_texts(["a small seven"], "unknown", 0)
    ['a small seven']
    """
    check_choice(kind, "kind", TEXT_CORRUPTIONS)
    probability = corruption_strength(kind, severity)
    require(
        isinstance(texts, list | tuple) and all(isinstance(t, str) for t in texts),
        f"texts must be a list of strings, got {type(texts).__name__}",
        TypeError,
    )
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    corrupted = []
    for text in texts:
        words = text.split()
        hit = (torch.rand(len(words), generator=generator) < probability).tolist()
        if kind == "typos":
            words = [_typo(w, generator) if h else w for w, h in zip(words, hit)]
        elif kind == "unknown":
            words = [UNSEEN_WORD if h else w for w, h in zip(words, hit)]
        else:
            kept = [w for w, h in zip(words, hit) if not h]
            words = kept or words[:1]
        corrupted.append(" ".join(words))
    return corrupted
