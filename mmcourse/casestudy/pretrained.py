"""The committed, longer-trained weights of the case study, loaded in one line each.

``data/weights/`` holds what ``scripts/train_casestudy_weights.py`` trained (the same recipe
as the chapters', for more epochs): the pretrained image encoder, the three caption decoders
and the dual encoder, with their vocabulary and SHA-256 sums. Chapters load them so that
they stay within a few minutes on a laptop (checkpoints, as in any course that trains
models); every loader checks the file's SHA-256, reads it with ``weights_only=True`` and
refuses a model of another shape or a vocabulary that is not the data's, with a message
that says how to retrain.

>>> from mmcourse.casestudy import pretrained, recipe
>>> data = recipe.build_data(vocab=pretrained.vocabulary())  # doctest: +SKIP
>>> decoder = pretrained.load_decoder("attention", data.vocab)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from mmcourse._validate import check_choice
from mmcourse.casestudy import recipe
from mmcourse.casestudy.weights import WeightsError, load_weights
from mmcourse.models.dual import DualEncoder, new_dual_encoder
from mmcourse.models.vqa import CanvasBackbone
from mmcourse.vocab import Vocabulary

__all__ = [
    "ABLATION",
    "WEIGHTS",
    "dual_encoder_file",
    "load_decoder",
    "load_dual_encoder",
    "load_encoder",
    "saved_vocabulary",
    "vocabulary",
]

WEIGHTS = Path(__file__).resolve().parents[2] / "data" / "weights"
"""Where the committed weights live."""

RETRAIN = "Retrain them with: python scripts/train_casestudy_weights.py"


def _folder(folder: str | os.PathLike | None) -> Path:
    return WEIGHTS if folder is None else Path(folder)


def saved_vocabulary(folder: str | os.PathLike | None = None) -> list[str]:
    """The words (``itos``) the weights in ``folder`` were trained with."""
    path = _folder(folder) / "vocab.json"
    if not path.exists():
        raise WeightsError(f"no vocabulary at {path}. {RETRAIN}")
    return json.loads(path.read_text())


def vocabulary(folder: str | os.PathLike | None = None) -> Vocabulary:
    """The :class:`~mmcourse.vocab.Vocabulary` the weights in ``folder`` were trained with:
    pass it to :func:`recipe.build_data` (``vocab=``) so that data built in any profile
    encodes its captions with the ids the weights expect."""
    return Vocabulary(saved_vocabulary(folder))


def _check_saved_vocabulary(vocab: Vocabulary, folder: str | os.PathLike | None) -> None:
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
    if saved_vocabulary(folder) != vocab.itos:
        raise WeightsError(
            f"the weights in {_folder(folder)} were trained with another vocabulary than this "
            f"one ({len(vocab)} words): build the data with it, "
            f"recipe.build_data(vocab=pretrained.vocabulary()), or "
            f"{RETRAIN[0].lower() + RETRAIN[1:]}"
        )


def load_encoder(folder: str | os.PathLike | None = None) -> CanvasBackbone:
    """The image encoder pretrained on the slot attributes, frozen, in eval mode."""
    encoder = load_weights(recipe.new_encoder(), _folder(folder) / "encoder.pt", RETRAIN)
    return encoder.requires_grad_(False).eval()


def load_decoder(
    kind: str, vocab: Vocabulary, folder: str | os.PathLike | None = None
) -> nn.Module:
    """The trained captioner ``kind`` (one of :data:`recipe.DECODERS`), its image encoder
    inside, reading canvases ``(N, 1, 64, 64)``; frozen, in eval mode."""
    check_choice(kind, "decoder", recipe.DECODERS)
    _check_saved_vocabulary(vocab, folder)
    decoder = recipe.make_decoder(kind, len(vocab), recipe.new_encoder().encoder)
    load_weights(decoder, _folder(folder) / f"{kind}.pt", RETRAIN)
    return decoder.requires_grad_(False).eval()


ABLATION = ((0, 0), (1, 0), (1, 3))
"""The ``(seed, negatives)`` of the dual encoders committed beside ``dual_encoder.pt``
(seed 0, 3 hard negatives): the hard-negative ablation, trained with the same recipe,
budget and data, each seed once with and once without hard negatives."""


def dual_encoder_file(seed: int = 0, negatives: int = 3) -> str:
    """The file name of the committed dual encoder trained with ``seed`` and ``negatives``
    hard negative captions per caption (``dual_encoder.pt`` for the default recipe)."""
    if (seed, negatives) == (0, 3):
        return "dual_encoder.pt"
    if (seed, negatives) not in ABLATION:
        raise ValueError(
            f"no committed dual encoder with seed={seed!r}, negatives={negatives!r}; there are "
            f"(seed, negatives) = (0, 3) and {list(ABLATION)}"
        )
    return f"dual_encoder_seed{seed}_negatives{negatives}.pt"


def load_dual_encoder(
    vocab: Vocabulary,
    folder: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    negatives: int = 3,
) -> DualEncoder:
    """The trained CLIP-style dual encoder of :mod:`mmcourse.retrieval`; frozen, in eval mode.
    ``seed`` and ``negatives`` pick one of the hard-negative ablation's models
    (:data:`ABLATION`); the default is the course's recipe."""
    name = dual_encoder_file(seed, negatives)
    _check_saved_vocabulary(vocab, folder)
    model = load_weights(new_dual_encoder(len(vocab)), _folder(folder) / name, RETRAIN)
    return model.requires_grad_(False).eval()
