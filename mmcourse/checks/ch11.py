"""Self-checks for chapter 11 (retrieval both ways and zero-shot recognition).

Each check recomputes the answer its own way -- plain loops and the formulas of the chapter,
not :mod:`mmcourse.metrics`, :mod:`mmcourse.losses` or :mod:`mmcourse.retrieval` -- and, when
the learner's answer differs, says in which direction and which slip it looks like (image ->
text instead of text -> image, the k smallest scores, ties in the model's favour, a class
embedding not normalised again, plain CLIP instead of the masked loss...), never the expected
value; see :mod:`mmcourse.checks`.
"""

from __future__ import annotations

import math

import torch

from mmcourse.checks._core import (
    CheckResult,
    as_number,
    describe_miss,
    known_mistake,
    recall_range_hint,
)

# ----------------------------------------------------------------------------- recall@k


def _text_to_image_recall(
    similarity: torch.Tensor, owner: torch.Tensor, k: int, ties_count_against: bool = True
) -> float:
    """R@k of the rows of ``similarity`` ``(T, N)``, the relevant column of row ``t`` being
    ``owner[t]``: rank = 1 + the wrong canvases scoring at least as high (or strictly higher
    when ``ties_count_against`` is False)."""
    scores = similarity.double().tolist()
    hits = 0
    for row, right in zip(scores, owner.tolist()):
        mine = row[right]
        if ties_count_against:
            ahead = sum(1 for j, s in enumerate(row) if j != right and s >= mine)
        else:
            ahead = sum(1 for j, s in enumerate(row) if j != right and s > mine)
        hits += ahead + 1 <= k
    return hits / len(scores)


def _image_to_text_recall(similarity: torch.Tensor, owner: torch.Tensor, k: int) -> float:
    """R@k with the canvases as queries: a hit when one of the canvas's own captions is
    among its k best-scored captions (ties counted against); canvases without a caption are
    no query. NaN when no canvas has one."""
    scores = similarity.double().T.tolist()  # (N, T)
    owners = owner.tolist()
    hits = queries = 0
    for canvas, row in enumerate(scores):
        own = [t for t, o in enumerate(owners) if o == canvas]
        if not own:
            continue
        best = max(row[t] for t in own)
        ahead = sum(1 for t, s in enumerate(row) if owners[t] != canvas and s >= best)
        hits += ahead + 1 <= k
        queries += 1
    return hits / queries if queries else math.nan


def check_text_to_image_recall(
    similarity: torch.Tensor, caption_owner: torch.Tensor, k: int, value: object
) -> CheckResult:
    """Is ``value`` the text -> image recall@``k`` (per instance) of ``similarity``?

    ``similarity`` is ``(T, N)``: caption ``t`` (row) against canvas ``n`` (column);
    ``caption_owner[t]`` is the canvas caption ``t`` was written for, the only relevant one.
    A canvas scoring the *same* as the right one is ranked ahead of it (ties count against
    the model, as in :func:`mmcourse.metrics.retrieval_ranks`). A wrong value is described
    as too high or too low and, for the usual slips (image -> text, the k smallest scores,
    ties in the model's favour, captions matched to canvas ``t % N`` instead of their owner,
    k off by one, a count or a percentage), named -- never printed.
    """
    problem = _recall_inputs_problem(similarity, caption_owner, k)
    if problem is not None:
        return problem
    t, n = similarity.shape
    got = as_number("your R@k", value)
    if isinstance(got, CheckResult):
        return got
    expected = _text_to_image_recall(similarity, caption_owner, k)
    if abs(got - expected) <= 1e-6:
        return CheckResult(
            True,
            f"R@{k} = {got:.3f}: the share of the {t} captions whose canvas is in their top {k}",
        )
    mistakes = _recall_mistakes(similarity, caption_owner, k)
    hint = known_mistake(got, expected, mistakes, tol=1e-6) or recall_range_hint(
        got, t, "the captions"
    )
    if hint is None:
        hint = "for each row, is the score of its own canvas among the k largest of the row?"
    return CheckResult(False, f"your R@{k} {describe_miss(got, expected)}; {hint}")


def _recall_inputs_problem(
    similarity: torch.Tensor, caption_owner: torch.Tensor, k: int
) -> CheckResult | None:
    """What is wrong with the exercise's inputs (``None``: nothing)."""
    if not isinstance(similarity, torch.Tensor) or similarity.dim() != 2:
        return CheckResult(False, "similarity should be a (T, N) matrix: captions x canvases")
    t, n = similarity.shape
    if t == 0 or n == 0 or not similarity.is_floating_point():
        return CheckResult(False, "similarity should hold float scores, at least one row")
    if torch.isnan(similarity).any():
        return CheckResult(False, "similarity contains NaN; a NaN score cannot be ranked")
    if (
        not isinstance(caption_owner, torch.Tensor)
        or caption_owner.shape != (t,)
        or caption_owner.is_floating_point()
        or int(caption_owner.min()) < 0
        or int(caption_owner.max()) >= n
    ):
        return CheckResult(False, "caption_owner should hold one canvas index (0..N-1) per row")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        return CheckResult(False, f"k should be an int between 1 and {n}, got {k!r}")
    return None


def _recall_mistakes(
    similarity: torch.Tensor, caption_owner: torch.Tensor, k: int
) -> list[tuple[float, str]]:
    """The usual slips' values, each with what to say when the learner's value is one."""
    t, n = similarity.shape
    mistakes = [
        (
            _text_to_image_recall(-similarity, caption_owner, k),
            "higher similarity is better: take the k *largest* scores of each row",
        ),
        (
            _image_to_text_recall(similarity, caption_owner, k),
            "that is image -> text (a canvas ranking the captions); here each caption is "
            "the query and ranks the canvases: work along the rows",
        ),
        (
            _text_to_image_recall(similarity, caption_owner, k, ties_count_against=False),
            "check the ties: a wrong canvas that scores the same as the right one counts as "
            "ranked ahead of it",
        ),
        (
            _text_to_image_recall(similarity, torch.arange(t) % n, k),
            "caption t belongs to canvas caption_owner[t] (four captions per canvas, in "
            "order), not to canvas t % N",
        ),
    ]
    if k > 1:
        mistakes.append(
            (
                _text_to_image_recall(similarity, caption_owner, k - 1),
                "off by one: keep k, not k - 1",
            )
        )
    if k < n:
        mistakes.append(
            (
                _text_to_image_recall(similarity, caption_owner, k + 1),
                "off by one: keep k, not k + 1",
            )
        )
    return mistakes


# ----------------------------------------------------------------------------- zero-shot

TIE = 1e-5
"""Two cosines closer than this count as a tie (float32 rounding may order them either way)."""


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm > 0 else vector


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _class_scores(
    digit_emb: torch.Tensor, prompt_emb: torch.Tensor, renormalise: bool = True, prompts: int = 0
) -> list[list[float]]:
    """``N`` lists of ``C`` scores: the cosine of each image with each class embedding, the
    mean of the class's first ``prompts`` (0: all) unit prompt embeddings, normalised again
    when ``renormalise`` (else the plain dot product with the mean)."""
    classes = []
    for per_class in prompt_emb.double().tolist():
        chosen = per_class[:prompts] if prompts else per_class
        units = [_unit(p) for p in chosen]
        mean = [sum(column) / len(units) for column in zip(*units)]
        classes.append(_unit(mean) if renormalise else mean)
    return [[_dot(_unit(image), c) for c in classes] for image in digit_emb.double().tolist()]


def _zero_shot(
    digit_emb: torch.Tensor, prompt_emb: torch.Tensor, renormalise: bool = True, prompts: int = 0
) -> torch.Tensor:
    """Predicted class of each row: the argmax of :func:`_class_scores` (first on ties)."""
    scores = _class_scores(digit_emb, prompt_emb, renormalise, prompts)
    return torch.tensor([max(range(len(row)), key=lambda c: (row[c], -c)) for row in scores])


def check_zero_shot_predictions(
    digit_emb: torch.Tensor, prompt_emb: torch.Tensor, predictions: object
) -> CheckResult:
    """Are ``predictions`` CLIP's zero-shot answers for the digits embedded in ``digit_emb``?

    Args:
        digit_emb: ``(N, E)`` image embeddings of ``N`` digit canvases.
        prompt_emb: ``(C, P, E)`` text embeddings of ``P`` prompts for each of ``C`` classes.
        predictions: the learner's LongTensor ``(N,)`` of class indices.

    The classifier: class ``c``'s embedding is the mean of its ``P`` unit prompt embeddings,
    normalised to unit length again; each digit goes to the class of largest cosine. A wrong
    answer says how many predictions differ and which slip it looks like (the smallest
    cosine, the first prompt only, the mean not normalised again, scores instead of
    classes), never the right predictions.
    """
    problem = _zero_shot_inputs_problem(digit_emb, prompt_emb, predictions)
    if problem is not None:
        return problem
    n = digit_emb.shape[0]
    got = predictions.detach().cpu().long()
    expected = _zero_shot_with_ties(digit_emb, prompt_emb, got)
    if torch.equal(got, expected):
        return CheckResult(
            True, f"all {n} predictions match the prompt-ensemble classifier's, no label used"
        )
    slips = [
        (
            _zero_shot(-digit_emb, prompt_emb),
            "those are the classes of *smallest* cosine: take the argmax",
        ),
        (
            _zero_shot(digit_emb, prompt_emb, prompts=1),
            "those use the first prompt only: average all the prompts of a class",
        ),
        (
            _zero_shot(digit_emb, prompt_emb, renormalise=False),
            "normalise each class's mean embedding to unit length again: a mean of unit "
            "vectors is shorter than 1, by a different amount for each class, so its dot "
            "product (or the mean of the prompts' cosines, the same number) is not the cosine",
        ),
    ]
    wrong = int((got != expected).sum())
    for answer, hint in slips:
        if torch.equal(got, answer) and not torch.equal(answer, expected):
            return CheckResult(False, f"{wrong} of {n} predictions differ; {hint}")
    return CheckResult(
        False,
        f"{wrong} of {n} predictions differ; per class: the mean of its unit prompt "
        "embeddings, normalised again; per digit: the class of largest cosine",
    )


def _zero_shot_with_ties(
    digit_emb: torch.Tensor, prompt_emb: torch.Tensor, got: torch.Tensor
) -> torch.Tensor:
    """The classifier's answers, taking the learner's where two classes tie to float32
    precision (either answer is right there)."""
    expected = _zero_shot(digit_emb, prompt_emb)
    scores = _class_scores(digit_emb, prompt_emb)
    for i, (mine, best) in enumerate(zip(got.tolist(), expected.tolist())):
        if mine != best and scores[i][mine] >= scores[i][best] - TIE:
            expected[i] = mine
    return expected


def _zero_shot_inputs_problem(
    digit_emb: torch.Tensor, prompt_emb: torch.Tensor, predictions: object
) -> CheckResult | None:
    """What is wrong with the inputs or the shape of the predictions (``None``: nothing)."""
    if not isinstance(digit_emb, torch.Tensor) or digit_emb.dim() != 2:
        return CheckResult(False, "digit_emb should be an (N, E) matrix of image embeddings")
    if not isinstance(prompt_emb, torch.Tensor) or prompt_emb.dim() != 3:
        return CheckResult(False, "prompt_emb should be a (classes, prompts, E) tensor")
    n, e = digit_emb.shape
    classes = prompt_emb.shape[0]
    if prompt_emb.shape[2] != e or n == 0 or prompt_emb.shape[1] == 0 or classes == 0:
        return CheckResult(False, "digit_emb and prompt_emb should share their last size E")
    if predictions is None:
        return CheckResult(False, "predictions is still None: replace it with your answer")
    if not isinstance(predictions, torch.Tensor):
        return CheckResult(
            False,
            f"predictions should be a torch.Tensor of class indices, got "
            f"{type(predictions).__name__}",
        )
    if predictions.shape == (n, classes):
        return CheckResult(
            False,
            "that is a score per digit and class: take the argmax over the classes (dim=1)",
        )
    if predictions.shape != (n,):
        if predictions.shape == (classes,):
            return CheckResult(
                False,
                "predictions has one entry per class: take the argmax along the classes "
                "(dim=1), one prediction per digit",
            )
        return CheckResult(
            False,
            f"predictions should hold one class per digit, got shape {tuple(predictions.shape)}",
        )
    if predictions.is_floating_point() or predictions.dtype == torch.bool:
        return CheckResult(
            False, "predictions should hold class indices (integers), as argmax returns"
        )
    got = predictions.detach().cpu().long()
    if int(got.min()) < 0 or int(got.max()) >= classes:
        return CheckResult(
            False, f"every prediction should be a class index from 0 to {classes - 1}"
        )
    return None


# ----------------------------------------------------------------------------- masked InfoNCE


def _directional_losses(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    scale: float,
    groups: torch.Tensor,
    mode: str,
) -> tuple[float, float]:
    """Mean image->text and text->image losses, by loops over the rows.

    ``mode``: ``"none"`` (plain CLIP), ``"mask"`` (same-group pairs off the diagonal leave
    the denominators) or ``"soft"`` (the target spread over the row's group)."""
    images = [_unit(v) for v in image_emb.double().tolist()]
    texts = [_unit(v) for v in text_emb.double().tolist()]
    ids = groups.tolist()
    b = len(images)
    z = [[scale * _dot(images[i], texts[j]) for j in range(b)] for i in range(b)]
    directions = []
    for logits in (z, [list(column) for column in zip(*z)]):
        total = 0.0
        for i, row in enumerate(logits):
            keep = [j for j in range(b) if j == i or mode != "mask" or ids[j] != ids[i]]
            top = max(row[j] for j in keep)
            log_denominator = top + math.log(sum(math.exp(row[j] - top) for j in keep))
            if mode == "soft":
                same = [j for j in range(b) if ids[j] == ids[i]]
                total += sum(log_denominator - row[j] for j in same) / len(same)
            else:
                total += log_denominator - row[i]
        directions.append(total / b)
    return directions[0], directions[1]


def check_masked_clip_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    logit_scale: float,
    groups: torch.Tensor,
    value: object,
) -> CheckResult:
    """Is ``value`` the duplicate-masked symmetric InfoNCE loss of this batch?

    Pair ``i`` is ``(image_emb[i], text_emb[i])``; ``groups[i]`` names its description. With
    ``z = logit_scale * cos(image_i, text_j)``, a same-group pair off the diagonal is left out
    of both softmax denominators (neither positive nor negative); the loss is the mean of the
    image->text and text->image cross-entropies, each averaged over the batch. A wrong value
    is described as too high or too low and, for the usual slips (no mask = plain CLIP, the
    soft targets, one direction only, no logit scale, a sum instead of a mean), named.
    """
    if not isinstance(image_emb, torch.Tensor) or image_emb.dim() != 2:
        return CheckResult(False, "image_emb should be a (B, D) matrix")
    if not isinstance(text_emb, torch.Tensor) or text_emb.shape != image_emb.shape:
        return CheckResult(False, "text_emb should be a (B, D) matrix like image_emb")
    b = image_emb.shape[0]
    if not isinstance(groups, torch.Tensor) or groups.shape != (b,) or groups.is_floating_point():
        return CheckResult(False, "groups should hold one integer description id per pair")
    scale = as_number("logit_scale", logit_scale)
    if isinstance(scale, CheckResult) or scale <= 0:
        return CheckResult(False, "logit_scale should be a positive number")
    got = as_number("your loss", value)
    if isinstance(got, CheckResult):
        return got
    image_to_text, text_to_image = _directional_losses(image_emb, text_emb, scale, groups, "mask")
    expected = (image_to_text + text_to_image) / 2
    if abs(got - expected) <= 1e-4:
        return CheckResult(
            True,
            f"loss = {got:.4f}: the duplicate pairs are out of the denominators, both directions",
        )
    plain = _directional_losses(image_emb, text_emb, scale, groups, "none")
    soft = _directional_losses(image_emb, text_emb, scale, groups, "soft")
    unscaled = _directional_losses(image_emb, text_emb, 1.0, groups, "mask")
    mistakes = [
        (
            sum(plain) / 2,
            "that is plain CLIP: the same-description pairs off the diagonal still count "
            "as negatives; set their logits to -inf before the softmax",
        ),
        (
            sum(soft) / 2,
            "that is the soft variant (the target spread over the group); here the "
            "duplicates leave the denominators and the target stays on the diagonal",
        ),
        (image_to_text, "that is image -> text only: average it with text -> image"),
        (text_to_image, "that is text -> image only: average it with image -> text"),
        (plain[0], "that is image -> text only, and without the mask"),
        (sum(unscaled) / 2, "multiply the cosines by logit_scale before the softmax"),
        (image_to_text + text_to_image, "that is the sum of the two directions; take their mean"),
        (b * expected, "that sums over the batch; average over the B rows"),
    ]
    hint = known_mistake(got, expected, mistakes, tol=1e-4)
    if hint is None:
        hint = (
            "per row: -log of the softmax at the diagonal, over the columns that are the "
            "diagonal or of another description; then the mean over rows and directions"
        )
    return CheckResult(False, f"your loss {describe_miss(got, expected)}; {hint}")
