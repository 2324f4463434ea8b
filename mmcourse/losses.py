"""Loss functions of the course: classification, contrastive (CLIP), triplet, captioning.

- :func:`cross_entropy`: a checked wrapper of ``F.cross_entropy`` (with label smoothing);
- :func:`clip_loss` and :class:`LearnableTemperature`: CLIP's symmetric InfoNCE;
- :func:`clip_loss_with_duplicates`: the same when several pairs share one description;
- :func:`negative_caption_loss`: an image against its caption and hard negative captions;
- :func:`triplet_loss` and :func:`hardest_negative_triplet_loss` (VSE++'s batch-hard variant);
- :func:`sequence_loss` and :func:`perplexity`: teacher-forcing loss of a captioner;
- :func:`slot_attribute_loss`: what stands in each slot of a canvas (pretraining a backbone);
- :func:`l2_penalty`: the squared-weights regulariser.

Each checks its inputs and raises ``TypeError`` (wrong type) or ``ValueError`` (wrong value:
shape, dtype, range, NaN logits) saying what it expected and what arrived, so a bug fails at the
loss with a readable message rather than deep inside PyTorch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse._validate import (
    Dims,
    check_choice,
    check_float,
    check_index_range,
    check_indices,
    check_int,
    check_module,
    check_no_nan,
    check_nonnegative,
    check_positive,
    check_probability,
    check_tensor,
    require,
)
from mmcourse.data.questions import split_slot_logits
from mmcourse.vocab import PAD_ID

DISTANCES = ("cosine", "euclidean")


def _check_batch(emb: torch.Tensor, minimum: int = 1) -> None:
    """A batch of embeddings needs ``minimum`` rows (2 for an in-batch negative)."""
    if emb.shape[0] < minimum:
        raise ValueError(
            f"the batch holds {emb.shape[0]} pairs; this loss needs at least {minimum}"
        )


def _check_logit_scale(scale: torch.Tensor | float) -> torch.Tensor | float:
    """A finite number > 0 or a one-element float tensor holding one; returned 0-dim."""
    if isinstance(scale, torch.Tensor):
        if scale.numel() != 1 or not scale.is_floating_point():
            raise ValueError(
                "logit_scale must be a number or a one-element float tensor, "
                f"got shape {tuple(scale.shape)} and dtype {scale.dtype}"
            )
        scale = scale.reshape(())
    elif isinstance(scale, bool) or not isinstance(scale, int | float):
        raise TypeError(f"logit_scale must be a number > 0, got {type(scale).__name__}")
    value = float(scale.detach()) if isinstance(scale, torch.Tensor) else float(scale)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"logit_scale must be a finite number > 0 (it is 1 / temperature), got {value}"
        )
    return scale


# ----------------------------------------------------------------------------------------------
# classification


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of logits ``(N, C)`` against class indices ``(N,)``.

    ``loss_i = -(1 - eps) * log p_i[y_i] - (eps / C) * sum_c log p_i[c]`` with
    ``p_i = softmax(logits_i)`` and ``eps = label_smoothing``; the mean runs over the examples
    whose target is not ``ignore_index``. Same numbers as ``F.cross_entropy``; the checks turn
    the classic mistakes (float targets, ``(N, 1)`` targets, a class id ``>= C``) into a clear
    ``ValueError``.
    """
    dims = Dims()
    check_no_nan(dims.float(logits, "logits", "N C"), "logits")
    dims.indices(target, "target", "N")
    check_probability(label_smoothing, "label_smoothing")
    if ignore_index is not None:
        check_int(ignore_index, "ignore_index", minimum=None)
    kept = target if ignore_index is None else target[target != ignore_index]
    require(kept.numel() != 0, "no target to average over (N = 0, or every one is ignore_index)")
    check_index_range(kept, "target", logits.shape[1])
    return F.cross_entropy(
        logits,
        target.long(),
        ignore_index=-100 if ignore_index is None else ignore_index,
        label_smoothing=float(label_smoothing),
    )


# ----------------------------------------------------------------------------------------------
# contrastive: CLIP


def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE loss for ``B`` matching (image, text) pairs.

    Row ``i`` of ``image_emb`` and row ``i`` of ``text_emb`` belong together; every other row
    of the batch is a negative. With unit vectors ``u_i, v_j``::

        logits[i, j] = logit_scale * cos(u_i, v_j)                       # (B, B)
        loss = (CE(logits, arange(B)) + CE(logits.T, arange(B))) / 2     # image->text, text->image

    Args:
        image_emb: ``(B, D)`` image embeddings (any norm; they are L2-normalised here).
        text_emb: ``(B, D)`` text embeddings.
        logit_scale: the multiplier ``1 / temperature`` (> 0), a float or a 0-dim tensor, e.g.
            the output of :class:`LearnableTemperature` (then it is learned too).

    Returns a 0-dim tensor; ``log(B)`` for random embeddings at a small scale, near 0 when the
    pairs are well separated.
    """
    dims = Dims()
    dims.float(image_emb, "image_emb", "B D")
    dims.float(text_emb, "text_emb", "B D")
    _check_batch(image_emb)
    scale = _check_logit_scale(logit_scale)
    image_emb = F.normalize(image_emb, dim=1)
    text_emb = F.normalize(text_emb, dim=1)
    logits = scale * image_emb @ text_emb.T  # (B, B): row i = image i against every text
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


class LearnableTemperature(nn.Module):
    """CLIP's learned logit scale: stores ``log(1 / temperature)``, returns the scale.

    Initialised to ``1 / 0.07`` (about 14.3) and capped at 100, as in CLIP (Radford et al.,
    2021). Learning the *log* keeps the scale positive and its steps relative. The cap is a
    clamp in :meth:`forward` (no gradient while the scale sits at the cap); open_clip instead
    clamps the parameter in place after each optimiser step — same effect on the loss.

    >>> temperature = LearnableTemperature()
    >>> round(temperature().item(), 2)
    14.29
    """

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        check_positive(init_temperature, "init_temperature")
        check_positive(max_scale, "max_scale")
        self.max_scale = float(max_scale)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))

    def forward(self) -> torch.Tensor:
        """The scale ``min(exp(log_scale), max_scale)`` as a 0-dim tensor."""
        return self.log_scale.exp().clamp(max=self.max_scale)

    @property
    def temperature(self) -> float:
        """The current temperature ``1 / scale``."""
        return 1.0 / self().item()

    def extra_repr(self) -> str:
        return f"scale={self().item():.3f}, max_scale={self.max_scale}"


# ----------------------------------------------------------------------------------------------
# triplet losses


def _distance(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    """``(B,)`` distance between matching rows of ``a`` and ``b`` ``(B, D)``."""
    if distance == "cosine":
        return 1 - F.cosine_similarity(a, b, dim=1)
    # ||a - b + eps||_2 with eps = 1e-6, as nn.TripletMarginLoss: finite gradient when a == b
    return F.pairwise_distance(a, b, p=2.0)


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.2,
    distance: str = "cosine",
) -> torch.Tensor:
    """Mean hinge ``max(0, d(a, p) - d(a, n) + margin)``: the positive must be closer to the
    anchor than the negative is, by at least ``margin``.

    Args:
        anchor, positive, negative: ``(B, D)`` each; row ``i`` forms one triplet.
        margin: a finite number ``>= 0`` (NaN and inf are refused).
        distance: ``"cosine"`` (``1 - cos``, in ``[0, 2]``) or ``"euclidean"`` (L2, with the
            ``eps = 1e-6`` of ``nn.TripletMarginLoss``, which it then equals).
    """
    check_choice(distance, "distance", DISTANCES)
    check_nonnegative(margin, "margin")  # NaN or inf would make every hinge NaN or inf
    dims = Dims()
    _check_batch(dims.float(anchor, "anchor", "B D"))
    dims.float(positive, "positive", "B D")
    dims.float(negative, "negative", "B D")
    d_pos = _distance(anchor, positive, distance)
    d_neg = _distance(anchor, negative, distance)
    return F.relu(d_pos - d_neg + margin).mean()


def hardest_negative_triplet_loss(
    emb_a: torch.Tensor, emb_b: torch.Tensor, margin: float = 0.2
) -> torch.Tensor:
    """Batch-hard triplet loss on cosine similarity ("max of hinges", VSE++, Faghri et al. 2018).

    Row ``i`` of ``emb_a`` (say images) matches row ``i`` of ``emb_b`` (captions); the other
    rows are negatives. With ``s = cos`` similarity matrix ``(B, B)`` (positives on the
    diagonal), each anchor is charged only for its *hardest* negative::

        a -> b:  max_{j != i} max(0, margin + s[i, j] - s[i, i])   for each row i
        b -> a:  max_{j != i} max(0, margin + s[j, i] - s[i, i])   for each column i
        loss = mean_i(a -> b) + mean_i(b -> a)

    (VSE++ sums over the batch; the mean keeps the scale independent of ``B``.)

    Args:
        emb_a, emb_b: ``(B, D)`` with ``B >= 2`` (normalised here).
        margin: a finite number ``>= 0`` (NaN and inf are refused).
    """
    check_nonnegative(margin, "margin")
    dims = Dims()
    _check_batch(dims.float(emb_a, "emb_a", "B D"), minimum=2)
    dims.float(emb_b, "emb_b", "B D")
    s = F.normalize(emb_a, dim=1) @ F.normalize(emb_b, dim=1).T  # (B, B)
    positive = s.diag()
    is_positive = torch.eye(len(s), dtype=torch.bool, device=s.device)
    cost_a = F.relu(margin + s - positive[:, None]).masked_fill(is_positive, 0)  # row anchors
    cost_b = F.relu(margin + s - positive[None, :]).masked_fill(is_positive, 0)  # column anchors
    return cost_a.max(dim=1).values.mean() + cost_b.max(dim=0).values.mean()


# ----------------------------------------------------------------------------------------------
# captioning


def sequence_loss(
    logits: torch.Tensor, targets: torch.Tensor, pad_id: int = PAD_ID, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Teacher-forcing loss of a caption decoder: cross-entropy averaged over real tokens.

    Args:
        logits: ``(B, T, V)`` next-token scores at every position.
        targets: ``(B, T)`` the true next tokens (``captions[:, 1:]``, see
            :func:`mmcourse.models.captioner.teacher_forcing_pairs`).
        pad_id: targets equal to it are padding and do not count (default ``<pad>`` = 0).
        label_smoothing: as in :func:`cross_entropy`.

    Returns the 0-dim mean over the non-pad positions of ``-log softmax(logits)[target]`` —
    every real word weighs the same, however long its caption.
    """
    b, t, v = check_float(logits, "logits", ("B", "T", "V")).shape
    check_indices(targets, "targets", (b, t))
    check_int(pad_id, "pad_id", minimum=0)
    return cross_entropy(
        logits.reshape(b * t, v),
        targets.reshape(b * t),
        label_smoothing=label_smoothing,
        ignore_index=pad_id,
    )


def perplexity(loss: torch.Tensor | float) -> float:
    """Per-token perplexity ``exp(loss)`` of a mean per-token cross-entropy (in nats).

    A model that spreads its bets evenly over ``k`` words has perplexity ``k``; a perfect one 1.

    >>> round(perplexity(math.log(10)), 6)
    10.0
    """
    if isinstance(loss, torch.Tensor):
        if loss.numel() != 1:
            raise ValueError(f"loss must be a scalar, got a tensor of shape {tuple(loss.shape)}")
        loss = loss.item()
    if isinstance(loss, bool) or not isinstance(loss, int | float):
        raise TypeError(f"loss must be a mean cross-entropy >= 0, got {type(loss).__name__}")
    require(loss >= 0, f"loss must be a mean cross-entropy >= 0, got {loss!r}")
    return math.exp(loss) if loss < 709 else math.inf


# ----------------------------------------------------------------------------------------------
# reading a canvas


def slot_attribute_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over the 4 attributes of the cross-entropy, averaged over slots and canvases.

    ``logits`` ``(B, slots, 22)`` from :class:`~mmcourse.models.vqa.SlotAttributeHead`,
    ``targets`` ``(B, slots, 4)`` from :func:`mmcourse.data.questions.slot_targets`: the loss that
    teaches an image encoder to see what stands in each slot before any question is asked.
    """
    parts = split_slot_logits(logits, targets)
    return sum(
        F.cross_entropy(part.reshape(-1, part.shape[-1]), targets[..., i].reshape(-1))
        for i, part in enumerate(parts)
    )


# ----------------------------------------------------------------------------------------------
# regularisation


def l2_penalty(model: nn.Module, weight: float, include_bias: bool = False) -> torch.Tensor:
    """``weight * sum(w ** 2)`` over the trainable parameters of ``model``: the L2 regulariser
    to add to the loss.

    Biases (parameters named ``bias``) are left out unless ``include_bias``: they only shift
    outputs and shrinking them does not smooth the function. Its gradient ``2 * weight * w``
    is what SGD's ``weight_decay=2 * weight`` adds.

    Returns a 0-dim tensor (0 if nothing is penalised).
    """
    check_module(model)
    check_nonnegative(weight, "weight")
    total = torch.zeros(())
    for name, p in model.named_parameters():
        if not p.requires_grad or (not include_bias and name.rsplit(".", 1)[-1] == "bias"):
            continue
        total = total.to(p.device) + p.pow(2).sum()
    return weight * total


# ----------------------------------------------------------------------------------------------
# contrastive: CLIP with duplicate descriptions in the batch

DUPLICATE_MODES = ("mask", "soft")
"""How :func:`clip_loss_with_duplicates` treats two pairs of a batch that say the same thing."""


def clip_loss_with_duplicates(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: torch.Tensor | float,
    groups: torch.Tensor,
    mode: str = "soft",
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE when some pairs of the batch share one description.

    :func:`clip_loss` treats every off-diagonal pair as a negative. On MNIST-Captions two
    canvases may have the same ground truth ("a large seven in the middle"), so their captions
    are the same words: pushing canvas ``i`` away from canvas ``j``'s caption then punishes
    the model for a correct match. ``groups[i]`` names the description of pair ``i`` (equal
    ids = identical ground truth), and with ``same[i, j] = groups[i] == groups[j]``:

    - ``"mask"``: same-group pairs off the diagonal are taken out of both softmax
      denominators (their logits become ``-inf``), so they are neither positive nor negative::

          loss_i(image->text) = -log( exp(z_ii) / sum_{j : j == i or not same[i, j]} exp(z_ij) )

    - ``"soft"``: the target of row ``i`` is spread equally over every same-group column
      (a column of the diagonal's group is as right as the diagonal itself)::

          q_ij = same[i, j] / sum_k same[i, k]
          loss_i(image->text) = -sum_j q_ij log softmax(z_i)_j

    with ``z = logit_scale * cos(image_emb, text_emb)`` ``(B, B)``; text->image is the same on
    ``z.T`` and the loss is the mean of the two directions, averaged over the ``B`` rows. When
    every group differs both modes are exactly :func:`clip_loss`.

    Args:
        image_emb: ``(B, D)`` image embeddings (L2-normalised here).
        text_emb: ``(B, D)`` text embeddings.
        logit_scale: ``1 / temperature`` (> 0), a float or a 0-dim tensor.
        groups: ``(B,)`` integer id of each pair's description (any integers).
        mode: ``"mask"`` or ``"soft"`` (:data:`DUPLICATE_MODES`).

    >>> u = torch.eye(3)
    >>> unique = torch.tensor([0, 1, 2])
    >>> bool(torch.isclose(clip_loss_with_duplicates(u, u, 5.0, unique), clip_loss(u, u, 5.0)))
    True
    """
    check_choice(mode, "mode", DUPLICATE_MODES)
    dims = Dims()
    dims.float(image_emb, "image_emb", "B D")
    dims.float(text_emb, "text_emb", "B D")
    _check_batch(image_emb)
    dims.indices(groups, "groups", "B")
    scale = _check_logit_scale(logit_scale)
    logits = scale * F.normalize(image_emb, dim=1) @ F.normalize(text_emb, dim=1).T  # (B, B)
    groups = groups.to(logits.device)
    same = groups[:, None] == groups[None, :]  # (B, B), symmetric, True on the diagonal
    if mode == "mask":
        diagonal = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same & ~diagonal, -math.inf)  # out of the denominators
        labels = torch.arange(len(logits), device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    target = same.to(logits.dtype)
    target = target / target.sum(dim=1, keepdim=True)  # row i: uniform over i's group
    image_to_text = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    text_to_image = -(target * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (image_to_text + text_to_image) / 2


def negative_caption_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    negative_emb: torch.Tensor,
    logit_scale: torch.Tensor | float,
) -> torch.Tensor:
    """Each image must prefer its own caption to *hard negative* captions: the same caption
    with one detail changed (on MNIST-Captions, one digit swapped).

    A softmax per image ``i`` over its caption ``t_i`` and its ``K`` negatives
    ``n_i1 .. n_iK``, with the true caption as the target; with unit vectors ``u, t, n``::

        loss = mean_i -log( e^(s u_i.t_i) / (e^(s u_i.t_i) + sum_k e^(s u_i.n_ik)) )

    (for ``K = 1``: ``softplus(s (u_i.n_i - u_i.t_i))``). In a random batch almost every other
    caption differs from the right one in many ways, so :func:`clip_loss` can be satisfied
    without looking at the details; this term asks for nothing but the detail (NegCLIP,
    Yuksekgonul et al., 2023, adds such captions to CLIP's batches).

    Args:
        image_emb, text_emb: ``(B, D)`` matching rows (L2-normalised here).
        negative_emb: ``(B, K, D)`` negatives of each caption, or ``(B, D)`` for one each.
        logit_scale: ``s``, the ``1 / temperature`` of the contrastive loss (> 0), a float or
            a 0-dim tensor.

    >>> u = torch.tensor([[1.0, 0.0]])
    >>> loss = negative_caption_loss(u, u, torch.tensor([[0.0, 1.0]]), 2.0)  # softplus(-2)
    >>> round(loss.item(), 4)
    0.1269
    """
    dims = Dims()
    dims.float(image_emb, "image_emb", "B D")
    dims.float(text_emb, "text_emb", "B D")
    check_tensor(negative_emb, "negative_emb", "of floats (B, K, D) or (B, D)")
    if negative_emb.dim() == 2:
        negative_emb = dims.float(negative_emb, "negative_emb", "B D")[:, None]
    dims.float(negative_emb, "negative_emb", "B K D")
    scale = _check_logit_scale(logit_scale)
    image_emb = F.normalize(image_emb, dim=1)
    right = (image_emb * F.normalize(text_emb, dim=1)).sum(dim=1, keepdim=True)  # (B, 1)
    wrong = (image_emb[:, None] * F.normalize(negative_emb, dim=2)).sum(dim=2)  # (B, K)
    logits = scale * torch.cat([right, wrong], dim=1)  # column 0 is the true caption
    return F.cross_entropy(logits, torch.zeros(dims["B"], dtype=torch.long, device=logits.device))
