"""Serving: :class:`CaptionService` (canvas -> sentence) and :class:`SearchService` (sentence ->
the most similar canvases of a stored gallery) validate every request and give a clear
``ValueError`` for a bad one, as a web handler wants (:func:`prepare_canvases`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.export import ExportedProgram

from mmcourse._validate import check_choice, check_int, check_module, require
from mmcourse.data.captions import CANVAS, CANVAS_MEAN, CANVAS_STD
from mmcourse.deploy.confidence import caption_with_confidence
from mmcourse.deploy.export import (
    ExportedCaptioner,
    export_captioner,
    greedy_caption_exported,
    load_exported,
    runnable,
    save_exported,
)
from mmcourse.vocab import PAD_ID, UNK, Vocabulary, tokenize

__all__ = ["CaptionService", "SearchService", "UNKNOWN_WORDS", "prepare_canvases"]


def prepare_canvases(images: object, normalize: bool = True, name: str = "images") -> torch.Tensor:
    """Check a batch of canvases and turn it into the float input the course's models take.

    Accepted: a ``torch.Tensor`` or NumPy array of shape ``(B, 64, 64)`` or
    ``(B, 1, 64, 64)``, either ``uint8`` pixels ``0..255`` (what the dataset stores) or
    floats in ``[0, 1]`` (raw pixels, *not* already normalised). Returns float32
    ``(B, 1, 64, 64)``, standardised with the training canvases' mean and std when
    ``normalize`` (as ``MNISTCaptions.float_images()`` does).

    Raises ``TypeError`` for something that is not an array, ``ValueError`` for a wrong
    shape, dtype or value (NaN, inf, outside ``[0, 1]``) -- with what arrived and how to fix it.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or a NumPy array of canvases, got "
            f"{type(images).__name__}"
        )
    side = (CANVAS, CANVAS)
    shape = tuple(images.shape)
    if len(shape) not in (3, 4) or shape[1:] not in (side, (1, *side)) or shape[0] < 1:
        raise ValueError(
            f"{name} must have shape (B, {CANVAS}, {CANVAS}) or (B, 1, {CANVAS}, {CANVAS}) "
            f"with B >= 1, got {shape}"
        )
    if images.dtype == torch.uint8:
        pixels = images.float() / 255.0
    elif images.is_floating_point():
        pixels = images.float()
        if not torch.isfinite(pixels).all():
            raise ValueError(f"{name} holds NaN or inf; every pixel must be a number in [0, 1]")
        low, high = float(pixels.min()), float(pixels.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"float {name} must hold raw pixels in [0, 1], got values in [{low:.3g}, "
                f"{high:.3g}]; pass uint8 pixels or divide by 255 (the service normalises "
                "them itself, so do not pass normalised images)"
            )
    else:
        raise ValueError(
            f"{name} must be uint8 pixels (0..255) or floats in [0, 1], got {images.dtype}; "
            "convert with .to(torch.uint8) or .float() / 255"
        )
    pixels = pixels.reshape(shape[0], 1, CANVAS, CANVAS)
    return (pixels - CANVAS_MEAN) / CANVAS_STD if normalize else pixels


def _one_canvas(image: object) -> torch.Tensor:
    """One canvas ``(64, 64)`` or ``(1, 64, 64)`` -> a batch of one ``(1, 64, 64)``."""
    if isinstance(image, np.ndarray | torch.Tensor):
        shape = tuple(image.shape)
        if shape in ((CANVAS, CANVAS), (1, CANVAS, CANVAS)):
            return image.reshape(1, CANVAS, CANVAS)
        raise ValueError(
            f"image must be one canvas of shape ({CANVAS}, {CANVAS}) or (1, {CANVAS}, {CANVAS}), "
            f"got {shape}; describe_batch takes several"
        )
    return image  # prepare_canvases raises the TypeError


class CaptionService:
    """Describe a canvas in words, with the exported pieces of a captioner.

    >>> service = CaptionService.from_model(captioner, vocab)         # doctest: +SKIP
    >>> service.describe(data.images[0])                               # doctest: +SKIP
    'a small seven on the left'
    >>> service.save("caption_service"); CaptionService.load("caption_service")  # doctest: +SKIP

    ``describe`` takes one canvas: ``(64, 64)`` or ``(1, 64, 64)``, ``uint8`` ``0..255`` or
    float in ``[0, 1]`` (a tensor or a NumPy array); ``describe_batch`` a batch ``(B, 64, 64)``
    or ``(B, 1, 64, 64)``. Anything else is refused with a ``ValueError`` saying what
    arrived (:func:`prepare_canvases`), which a web handler can return as a 400 response.

    Args:
        encoder, step: the programs of :func:`export_captioner` (or callables alike).
        vocab: the captioner's vocabulary (turns token ids into words).
        max_len: most tokens per caption, ``<eos>`` included.
        normalize: standardise pixels as the training canvases were (``float_images()``).
    """

    def __init__(
        self,
        encoder: ExportedProgram | Callable[..., Any],
        step: ExportedProgram | Callable[..., Any],
        vocab: Vocabulary,
        max_len: int = 30,
        normalize: bool = True,
    ) -> None:
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
        self.max_len = check_int(max_len, "max_len")
        self.vocab, self.normalize = vocab, bool(normalize)
        self.programs = (encoder, step)
        self._encoder, self._step = runnable(encoder, "encoder"), runnable(step, "step")

    @classmethod
    def from_model(
        cls, model: nn.Module, vocab: Vocabulary, max_len: int = 30, normalize: bool = True
    ) -> CaptionService:
        """Export ``model`` (a :class:`~mmcourse.models.captioner.Captioner`) and serve it."""
        check_module(model, "model")
        vocab_size = getattr(model, "vocab_size", None)
        if (
            isinstance(vocab_size, int)
            and isinstance(vocab, Vocabulary)
            and vocab_size != len(vocab)
        ):
            raise ValueError(
                f"the model scores {vocab_size} tokens but the vocabulary holds {len(vocab)}"
            )
        encoder, step = export_captioner(model)
        return cls(encoder, step, vocab, max_len, normalize)

    def describe_ids(self, images: object) -> torch.Tensor:
        """Greedy token ids ``(B, L)`` for a batch of canvases (checked as in ``describe_batch``)."""
        batch = prepare_canvases(images, self.normalize)
        return greedy_caption_exported(self._encoder, self._step, batch, self.max_len)

    def describe_batch(self, images: object) -> list[str]:
        """One caption per canvas of ``(B, 64, 64)`` or ``(B, 1, 64, 64)``."""
        return self.vocab.decode_batch(self.describe_ids(images))

    def describe(self, image: object) -> str:
        """The caption of one canvas ``(64, 64)`` or ``(1, 64, 64)``."""
        return self.describe_batch(_one_canvas(image))[0]

    def describe_with_confidence(self, images: object) -> tuple[list[str], torch.Tensor]:
        """One caption per canvas of a batch (as ``describe_batch``) and ``(B,)`` each
        caption's mean log-probability (:func:`~mmcourse.deploy.caption_with_confidence`):
        the same words, with how sure the decoder was of them."""
        batch = prepare_canvases(images, self.normalize)
        model = ExportedCaptioner(self._encoder, self._step)
        ids, confidence = caption_with_confidence(model, batch, self.max_len)
        return self.vocab.decode_batch(ids), confidence

    def save(self, folder: str | Path) -> Path:
        """Write ``encoder.pt2``, ``step.pt2`` and ``service.json`` (vocabulary, settings)
        into ``folder``; :meth:`load` needs nothing else."""
        encoder, step = self.programs
        if not (isinstance(encoder, ExportedProgram) and isinstance(step, ExportedProgram)):
            raise ValueError("only a service built from exported programs can be saved")
        folder = Path(folder)
        save_exported(encoder, folder / "encoder.pt2")
        save_exported(step, folder / "step.pt2")
        settings = {"vocab": self.vocab.to_dict(), "max_len": self.max_len}
        settings["normalize"] = self.normalize
        (folder / "service.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> CaptionService:
        """The service :meth:`save` wrote into ``folder``."""
        folder = Path(folder)
        settings_path = folder / "service.json"
        if not settings_path.is_file():
            raise FileNotFoundError(f"no service.json in {folder} (write it with save)")
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        return cls(
            load_exported(folder / "encoder.pt2"),
            load_exported(folder / "step.pt2"),
            Vocabulary.from_dict(settings["vocab"]),
            settings["max_len"],
            settings["normalize"],
        )


UNKNOWN_WORDS = ("error", "unk")
""":class:`SearchService`'s policies for a query word the vocabulary lacks."""


class SearchService:
    """Find the canvases of a stored gallery that best match a sentence.

    The gallery's image embeddings are computed once, when the service is built; a query
    then costs one pass of the text tower and one matrix-vector product.

    >>> search = SearchService(dual_encoder, vocab, test.images)   # doctest: +SKIP
    >>> search.search("a large two on the right", k=3)             # doctest: +SKIP
    [412, 7, 1290]

    Args:
        model: a trained :class:`~mmcourse.models.dual.DualEncoder` (anything with
            ``encode_image`` and ``encode_text``); the service keeps a copy in eval mode,
            so training the original further does not change it.
        vocab: the vocabulary the text tower was trained with.
        gallery: canvases ``(N, 64, 64)`` or ``(N, 1, 64, 64)``, uint8 or floats in
            ``[0, 1]`` (as :func:`prepare_canvases` checks them).
        normalize: standardise pixels as in training.
        add_bos_eos: wrap a query in ``<bos> ... <eos>`` as ``Vocabulary.encode_batch``
            does by default (how the course trains its dual encoders).
        unknown: what to do with a word the vocabulary lacks: ``"error"`` (default) refuses
            the query and names the words; ``"unk"`` reads them as ``<unk>``, as training did.
            A query none of whose words is known is refused either way.
        batch_size: canvases embedded at a time while building the gallery.

    ``search(query, k)`` returns the indices of the ``k`` most similar canvases, best first.
    """

    def __init__(
        self,
        model: nn.Module,
        vocab: Vocabulary,
        gallery: object,
        *,
        normalize: bool = True,
        add_bos_eos: bool = True,
        unknown: str = "error",
        batch_size: int = 256,
    ) -> None:
        check_module(model, "model")
        for name in ("encode_image", "encode_text"):
            if not callable(getattr(model, name, None)):
                raise ValueError(
                    f"model must offer encode_image and encode_text, like DualEncoder; "
                    f"got {type(model).__name__}"
                )
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
        vocab_size = getattr(getattr(model, "text_encoder", None), "vocab_size", None)
        if isinstance(vocab_size, int) and vocab_size != len(vocab):
            raise ValueError(
                f"the text tower knows {vocab_size} tokens but the vocabulary holds {len(vocab)}"
            )
        check_choice(unknown, "unknown", UNKNOWN_WORDS)
        check_int(batch_size, "batch_size")
        images = prepare_canvases(gallery, normalize, name="gallery")
        self.model = copy.deepcopy(model).eval()
        self.vocab, self.add_bos_eos, self.unknown = vocab, bool(add_bos_eos), unknown
        with torch.no_grad():
            self.gallery_embeddings = torch.cat(
                [self.model.encode_image(part) for part in images.split(batch_size)]
            )

    def __len__(self) -> int:
        return self.gallery_embeddings.shape[0]

    def query_ids(self, query: str) -> torch.Tensor:
        """The checked query as token ids ``(1, T)``."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        tokens = tokenize(query)
        require(tokens, "query is empty: describe the canvas in a few words")
        unknown = sorted({token for token in tokens if token not in self.vocab})
        if unknown and (self.unknown == "error" or len(unknown) == len(set(tokens))):
            known = ", ".join(self.vocab.itos[4:14])
            raise ValueError(
                f"the model never saw the word(s) {unknown} in training; use words from its "
                f"vocabulary of {len(self.vocab)} tokens (e.g. {known}, ...)"
                + ("" if self.unknown == "error" else "; the query holds no known word")
            )
        tokens = [UNK if token in unknown else token for token in tokens]
        return torch.tensor([self.vocab.encode(tokens, self.add_bos_eos)], dtype=torch.long)

    @torch.no_grad()
    def scores(self, query: str) -> torch.Tensor:
        """Cosine similarity of ``query`` to every gallery canvas, ``(N,)``."""
        text = self.model.encode_text(self.query_ids(query))  # (1, E)
        return (self.gallery_embeddings @ text[0]).float()

    @torch.no_grad()
    def scores_batch(self, queries: list[str]) -> torch.Tensor:
        """Cosine similarity of each query to every gallery canvas, ``(Q, N)``; each query is
        checked as :meth:`search` checks it."""
        require(
            isinstance(queries, list) and len(queries) > 0,
            "queries must be a non-empty list of sentences",
        )
        ids = [self.query_ids(query)[0] for query in queries]
        padded = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=PAD_ID)
        text = self.model.encode_text(padded)  # (Q, E)
        return (text @ self.gallery_embeddings.T).float()

    def best_matches(self, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index (Q,), cosine (Q,))``: each query's best gallery canvas and its score,
        the number a confidence is made from (:class:`~mmcourse.deploy.PlattScaling`)."""
        best = self.scores_batch(queries).max(dim=1)
        return best.indices, best.values

    def search(self, query: str, k: int = 5) -> list[int]:
        """Indices of the ``k`` gallery canvases most similar to ``query``, best first
        (ties: the lower index first)."""
        check_int(k, "k", minimum=1, maximum=len(self))
        order = torch.sort(self.scores(query), descending=True, stable=True).indices
        return order[:k].tolist()
