"""Retrieval with a trained dual encoder: batched unit embeddings of canvases and texts, and
recall@k both ways, per instance and per description.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import (
    check_float,
    check_index_range,
    check_indices,
    check_int,
    check_module,
    check_tensor,
    require,
)
from mmcourse.data import mnist
from mmcourse.data.captions import CANVAS_MEAN, CANVAS_STD, MNISTCaptions
from mmcourse.metrics import recall_at_k
from mmcourse.models.introspect import device_of
from mmcourse.retrieval.descriptions import check_dataset, check_vocabulary, description_ids
from mmcourse.vocab import Vocabulary

__all__ = [
    "DIRECTIONS",
    "RELEVANCE",
    "embed_gallery",
    "embed_texts",
    "format_report",
    "recall_report",
    "retrieval_report",
]


def check_encoder(model: object) -> nn.Module:
    check_module(model)
    for name in ("encode_image", "encode_text"):
        if not callable(getattr(model, name, None)):
            raise TypeError(
                f"model must offer encode_image(images) and encode_text(ids) like a "
                f"DualEncoder; {type(model).__name__} has no {name}()"
            )
    return model


def _as_float_canvases(images: torch.Tensor) -> torch.Tensor:
    """uint8 canvases ``(N, 64, 64)`` -> standardised floats ``(N, 1, 64, 64)``; floats
    ``(N, 1, H, W)`` are taken as they are (already standardised, as ``float_images()``)."""
    check_tensor(images, "images", "of canvases: uint8 (N, 64, 64) or float (N, 1, 64, 64)")
    if images.dtype == torch.uint8:
        if images.dim() != 3:
            raise ValueError(
                f"uint8 images must be canvases of shape (N, H, W), got {tuple(images.shape)}"
            )
        return mnist.to_float(images, mean=CANVAS_MEAN, std=CANVAS_STD)
    return check_float(images, "images", ("N", 1, "H", "W"))


@torch.no_grad()
def _embed(model: nn.Module, encode: str, inputs: list[torch.Tensor]) -> torch.Tensor:
    """Run ``model.<encode>`` on each chunk in eval mode; unit rows on the CPU."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    try:
        parts = [getattr(model, encode)(x.to(device)).float().cpu() for x in inputs]
    finally:
        model.train(was_training)
    return F.normalize(torch.cat(parts), dim=1)


def embed_gallery(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Unit image embeddings ``(N, E)`` on the CPU, ``batch_size`` canvases at a time.

    Args:
        model: a :class:`~mmcourse.models.dual.DualEncoder` (anything with ``encode_image``).
        images: uint8 canvases ``(N, 64, 64)`` (standardised here with the training canvases'
            statistics) or the float ``(N, 1, 64, 64)`` of ``data.float_images()``.

    The model runs in eval mode (batch norm uses its running statistics, so an image's
    embedding does not depend on the rest of its batch) without gradients, and is put back
    in the mode it was in.
    """
    check_encoder(model)
    check_int(batch_size, "batch_size")
    images = _as_float_canvases(images)
    require(len(images) != 0, "images is empty (N = 0)")
    return _embed(model, "encode_image", list(images.split(batch_size)))


def embed_texts(
    model: nn.Module, vocab: Vocabulary, texts: Sequence[str], batch_size: int = 512
) -> torch.Tensor:
    """Unit text embeddings ``(N, E)`` on the CPU for ``N`` captions, in batches.

    Each distinct text is embedded once and shared by all its copies, so identical captions
    get identical embeddings (embedded in batches of different padding they would differ in
    the last bits, enough to break a tie in a ranking). Each batch is tokenised with ``vocab``
    (unknown words become ``<unk>``) and right-padded to its own longest text; the text towers
    of the course ignore the padding.

    >>> embed_texts(nn.Linear(1, 1), Vocabulary.build(["a seven"]), ["a seven"])
    Traceback (most recent call last):
    TypeError: model must offer encode_image(images) and encode_text(ids) like a DualEncoder; \
Linear has no encode_image()
    """
    check_encoder(model)
    check_vocabulary(vocab)
    check_int(batch_size, "batch_size")
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of str, got {type(texts).__name__}")
    require(len(texts) != 0, "texts is empty; give at least one caption")
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise TypeError(f"texts must be a list of str; texts[{bad[0]}] is {texts[bad[0]]!r}")
    distinct = list(dict.fromkeys(texts))  # first-seen order
    row_of = {text: row for row, text in enumerate(distinct)}
    batches = [
        vocab.encode_batch(distinct[start : start + batch_size])[0]
        for start in range(0, len(distinct), batch_size)
    ]
    embeddings = _embed(model, "encode_text", batches)
    return embeddings[torch.tensor([row_of[text] for text in texts])]


Report = dict[str, dict[str, dict[int, float]]]
"""A retrieval report: ``{direction: {relevance: {k: recall@k}}}``."""


DIRECTIONS = ("text_to_image", "image_to_text")
"""The two retrieval directions: captions as queries, or canvases as queries."""


RELEVANCE = ("instance", "description")
"""What counts as a hit: the query's own partner(s), or anything with the same description."""


def recall_report(
    similarity: torch.Tensor,
    caption_owner: torch.Tensor,
    ids: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
) -> Report:
    """Recall@k both ways, per instance and per description, from one similarity matrix.

    Args:
        similarity: ``(T, N)`` scores of ``T`` captions (rows) against ``N`` canvases.
        caption_owner: ``(T,)`` the canvas each caption was written for.
        ids: ``(N,)`` description id of each canvas (:func:`description_ids`).
        ks: the cut-offs.

    Text -> image ranks the canvases of each row; image -> text ranks the captions of each
    column (``similarity.T``). A candidate is relevant per ``"instance"`` if it belongs with
    the query (the caption's own canvas, the canvas's own captions), per ``"description"`` if
    its description id is the query's. Returns ``{direction: {relevance: {k: recall}}}``.
    """
    t, n = check_float(similarity, "similarity", ("T", "N")).shape
    check_indices(caption_owner, "caption_owner", (t,))
    check_indices(ids, "ids", (n,))
    check_index_range(caption_owner, "caption_owner", n, "canvas indices")
    canvases = torch.arange(n)
    caption_owner = caption_owner.long().cpu()
    ids = ids.long().cpu()
    similarity = similarity.cpu()
    own = caption_owner[:, None] == canvases[None, :]  # (T, N): caption i written for canvas j
    same = ids[caption_owner][:, None] == ids[None, :]  # (T, N): same ground truth
    by_image = similarity.T.contiguous()
    if not own.any(dim=0).all():
        lonely = (~own.any(dim=0)).nonzero().flatten()[:5].tolist()
        raise ValueError(f"every canvas needs at least one caption; canvases {lonely} have none")
    return {
        "text_to_image": {
            "instance": recall_at_k(similarity, caption_owner, ks),
            "description": recall_at_k(similarity, same, ks),
        },
        "image_to_text": {
            "instance": recall_at_k(by_image, own.T.contiguous(), ks),
            "description": recall_at_k(by_image, same.T.contiguous(), ks),
        },
    }


def retrieval_report(
    model: nn.Module,
    data: MNISTCaptions,
    vocab: Vocabulary,
    ks: Sequence[int] = (1, 5, 10),
    batch_size: int = 512,
) -> Report:
    """Recall@k of retrieval over a gallery of ``N`` canvases and their ``4 N`` captions.

    As on COCO and Flickr30k, every reference caption is a query or a candidate:

    - **text -> image**: each of the ``4 N`` captions ranks the ``N`` canvases;
    - **image -> text**: each canvas ranks the ``4 N`` captions.

    A hit among the top ``k`` counts (:func:`mmcourse.metrics.recall_at_k`, which takes a
    boolean matrix of relevant candidates) in two ways:

    - ``"instance"``: only the canvas the caption was written for (text -> image), or one of
      the canvas's own four captions (image -> text);
    - ``"description"``: any canvas, or caption, whose ground truth is the same
      (:func:`description_ids`). The strict count penalises a model for something it cannot
      know: two canvases with one description have word-for-word identical captions, which
      tie, and ties count against the model. The gap between the two shows how much of the
      strict miss rate is such duplicates.

    Returns ``{direction: {relevance: {k: recall}}}`` (:func:`recall_report`) with directions
    ``"text_to_image"``, ``"image_to_text"`` and relevances ``"instance"``,
    ``"description"``; :func:`format_report` prints it as a table.
    """
    check_encoder(model)
    check_dataset(data, "data")
    check_vocabulary(vocab)
    n = len(data)
    captions = [caption for references in data.captions for caption in references]
    counts = torch.tensor([len(references) for references in data.captions])
    owner = torch.arange(n).repeat_interleave(counts)  # the canvas of each caption
    image_emb = embed_gallery(model, data.float_images(), batch_size)
    text_emb = embed_texts(model, vocab, captions, batch_size)
    return recall_report(text_emb @ image_emb.T, owner, description_ids(data), ks)


def format_report(report: Report) -> str:
    """A :func:`retrieval_report` as a small table, one row per direction and relevance.

    >>> print(format_report({"text_to_image": {"instance": {1: 0.5, 5: 0.75}}}))
    direction      relevance       R@1    R@5
    text_to_image  instance      0.500  0.750
    """
    if not isinstance(report, dict) or not report:
        raise TypeError("report must be the dict that retrieval_report returns")
    first = next(iter(next(iter(report.values())).values()))
    ks = list(first)
    lines = [f"{'direction':<15}{'relevance':<12}" + "".join(f"{f'R@{k}':>7}" for k in ks)]
    for direction, parts in report.items():
        for relevance, recall in parts.items():
            values = "".join(f"{recall[k]:>7.3f}" for k in ks)
            lines.append(f"{direction:<15}{relevance:<12}{values}")
    return "\n".join(lines)
