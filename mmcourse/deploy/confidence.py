"""How sure a captioning service is, and when it should say it does not know.

- :func:`caption_with_confidence` -- greedy captions (the tokens of
  :func:`~mmcourse.decode.greedy_decode`) and each caption's mean log-probability, the
  decoder's own confidence in the sentence it wrote;
- :func:`caption_agreement` -- a second opinion from another model: the cosine similarity
  between the canvas and its caption in a dual encoder's joint space (chapter 11);
- :class:`ConfidenceGate` -- turns any number of such scores into one, calibrated on
  validation canvases, and flags a request whose score falls below what all but a chosen
  share of validation canvases reach.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mmcourse._validate import check_float, check_module, check_no_nan, require
from mmcourse.decode import StepModel, greedy_decode
from mmcourse.deploy.monitor import mean_log_probability
from mmcourse.modes import eval_mode
from mmcourse.vocab import PAD_ID, Vocabulary

__all__ = ["ConfidenceGate", "caption_agreement", "caption_with_confidence"]


@torch.no_grad()
def caption_with_confidence(
    model: StepModel, images: torch.Tensor, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy captions ``(B, L)`` (``<eos>`` then ``<pad>`` after each sentence's end, as
    :func:`~mmcourse.decode.greedy_decode` returns them) and ``(B,)`` the mean
    log-probability of each caption's tokens, ``<eos>`` included: 0 when the decoder was
    certain of every word, more negative the less sure it was.

    ``model`` offers ``init_state`` and ``step``: a captioner, or the exported pieces behind
    :class:`~mmcourse.deploy.ExportedCaptioner` (or ONNX Runtime sessions behind the same
    interface)."""
    ids, log_probs = greedy_decode(model, images, max_len, return_log_probs=True)
    lengths = (ids != PAD_ID).sum(dim=1)  # the words written, <eos> included
    return ids, mean_log_probability(log_probs, lengths)


@torch.no_grad()
def caption_agreement(
    dual: nn.Module, vocab: Vocabulary, images: torch.Tensor, captions: list[str]
) -> torch.Tensor:
    """``(B,)`` the cosine similarity of each canvas of ``images`` ``(B, 1, 64, 64)``
    (standardised) with its caption in ``dual``'s joint space
    (:class:`~mmcourse.models.dual.DualEncoder`: unit embeddings, so a dot product).
    Words outside ``vocab`` are read as ``<unk>``."""
    check_module(dual, "dual")
    require(
        isinstance(captions, list) and len(captions) == len(images),
        f"captions must be a list of one string per canvas ({len(images)})",
    )
    ids, _ = vocab.encode_batch(captions)
    with eval_mode(dual):
        image_embeddings = dual.encode_image(images)
        text_embeddings = dual.encode_text(ids)
    return (image_embeddings * text_embeddings).sum(dim=1)


class ConfidenceGate:
    """Flags requests less confident than nearly every validation canvas.

    Each named score (higher = more confident) is turned into its **validation percentile**:
    the share of validation canvases that scored lower. A request's confidence is the lowest
    of its percentiles (it must look ordinary by every score), and it is flagged when that
    falls below the threshold: the ``false_flag_rate`` quantile of the validation canvases'
    own confidences. So about that share of ordinary requests is flagged, by construction on
    validation and measured on test (:meth:`flag_rate`).

    >>> gate = ConfidenceGate({"log_prob": validation_log_probs})     # doctest: +SKIP
    >>> gate.flag({"log_prob": live_log_probs})                        # doctest: +SKIP
    """

    def __init__(
        self, validation: Mapping[str, torch.Tensor], false_flag_rate: float = 0.05
    ) -> None:
        require(
            isinstance(validation, Mapping) and len(validation) > 0,
            "validation must map each score's name to its (N,) scores on validation canvases",
        )
        require(
            0 < false_flag_rate < 1, f"false_flag_rate must lie in (0, 1), got {false_flag_rate!r}"
        )
        sizes = set()
        for name, scores in validation.items():
            check_no_nan(check_float(scores, f"validation[{name!r}]", ("N",)), name)
            sizes.add(len(scores))
        require(len(sizes) == 1, "every validation score needs one value per canvas")
        require(sizes.pop() >= 20, "calibrating on fewer than 20 validation canvases is noise")
        self.names = tuple(validation)
        self.validation = {
            name: validation[name].detach().double().sort().values for name in self.names
        }
        self.false_flag_rate = float(false_flag_rate)
        own = self.confidence(validation)
        self.threshold = float(torch.quantile(own.double(), self.false_flag_rate))

    def percentile(self, name: str, scores: torch.Tensor) -> torch.Tensor:
        """``(N,)`` the share of validation canvases whose score ``name`` lies below each of
        ``scores`` (ties count half), in [0, 1]."""
        require(name in self.validation, f"unknown score {name!r}; the gate knows {self.names}")
        reference = self.validation[name]
        check_float(scores, name, ("N",))
        below = torch.searchsorted(reference, scores.detach().double(), right=False)
        not_above = torch.searchsorted(reference, scores.detach().double(), right=True)
        return (below + not_above).double() / (2 * len(reference))

    def confidence(self, scores: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(N,)`` the lowest validation percentile of each request's scores."""
        require(
            isinstance(scores, Mapping) and set(scores) == set(self.names),
            f"scores must name exactly {self.names}",
        )
        return torch.stack([self.percentile(n, scores[n]) for n in self.names]).amin(dim=0)

    def flag(self, scores: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(N,)`` bool: which requests fall below the threshold."""
        return self.confidence(scores) < self.threshold

    def flag_rate(self, scores: Mapping[str, torch.Tensor]) -> float:
        """The share of requests flagged."""
        return float(self.flag(scores).double().mean())
