"""Self-checks for chapter 07 (losses and regularisation).

Each check takes the *function* a learner wrote, runs it on a few random inputs (from its
own generator, so the notebook's random state is untouched) and compares the result with a
reference computed here from the definition. A failure names the slip it looks like (epsilon
spread over C - 1 classes, one direction of CLIP's loss only, the diagonal not masked) or
says whether the learner's value is too high or too low, and by roughly how much -- never the
reference value itself; see :mod:`mmcourse.checks`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from mmcourse.checks._core import CheckResult, describe_miss, describe_shape_miss

_SEED = 7


def _call(fn: Callable[..., object], *args: object) -> tuple[object, str | None]:
    """Run the learner's ``fn``; return (result, None) or (None, a description of the error)."""
    if not callable(fn):
        return None, f"pass your function itself, got a {type(fn).__name__}"
    try:
        return fn(*args), None
    except Exception as error:  # the learner's code may fail in any way; explain, don't crash
        return None, f"your function raised {type(error).__name__}: {error}"


def _as_float_tensor(
    name: str, value: object, shape: tuple[int, ...]
) -> tuple[torch.Tensor | None, str | None]:
    if not isinstance(value, torch.Tensor):
        return None, f"{name} should be a torch.Tensor of shape {shape}, got {type(value).__name__}"
    if tuple(value.shape) != shape:
        return None, f"{name} {describe_shape_miss(value.shape, shape)}"
    return value.detach().double(), None


# --------------------------------------------------------------------------- label smoothing


def reference_smoothed_targets(
    targets: torch.Tensor, num_classes: int, epsilon: float
) -> torch.Tensor:
    """``(1 - epsilon) * one_hot + epsilon / num_classes``: PyTorch's ``label_smoothing``."""
    return (1 - epsilon) * F.one_hot(targets, num_classes).double() + epsilon / num_classes


def check_smoothed_targets(fn: Callable[[torch.Tensor, int, float], torch.Tensor]) -> CheckResult:
    """Does ``fn(targets (B,), num_classes, epsilon) -> (B, num_classes)`` return the label-
    smoothed target distribution that ``F.cross_entropy(..., label_smoothing=epsilon)`` uses?

    A failure names the slip (epsilon over C - 1 classes, epsilon unused or swapped, rows not
    summing to 1) or says whether the true class gets too much or too little, never how much
    it should get."""
    generator = torch.Generator().manual_seed(_SEED)
    for num_classes, epsilon in [(10, 0.1), (4, 0.3), (7, 0.0)]:
        targets = torch.randint(0, num_classes, (6,), generator=generator)
        result, error = _call(fn, targets, num_classes, epsilon)
        if error:
            return CheckResult(False, error)
        got, error = _as_float_tensor("the result", result, (6, num_classes))
        if error:
            return CheckResult(False, f"{error} (one row per target, one column per class)")
        want = reference_smoothed_targets(targets, num_classes, epsilon)
        if not torch.allclose(got.sum(dim=1), torch.ones(6, dtype=torch.float64), atol=1e-5):
            return CheckResult(
                False,
                "each row should be a probability distribution (sum to 1); "
                f"with C={num_classes}, epsilon={epsilon} a row sums to {got[0].sum():.4f}",
            )
        if torch.allclose(got, want, atol=1e-5):
            continue
        setting = f"with C={num_classes} and epsilon={epsilon}"
        rows = torch.arange(6)
        on_true, want_true = got[rows, targets], want[rows, targets]
        off = ~F.one_hot(targets, num_classes).bool()
        if num_classes > 1 and torch.allclose(
            got,
            (1 - epsilon) * F.one_hot(targets, num_classes).double()
            + off * epsilon / (num_classes - 1),
            atol=1e-5,
        ):
            hint = (
                "you spread epsilon over the C - 1 wrong classes; PyTorch spreads it over all C "
                "classes, the true one included"
            )
        elif epsilon > 0 and torch.allclose(got, F.one_hot(targets, num_classes).double()):
            hint = "that is the plain one-hot target: epsilon is not used"
        elif epsilon > 0 and torch.allclose(
            got, epsilon * F.one_hot(targets, num_classes).double() + (1 - epsilon) / num_classes
        ):
            hint = "epsilon and 1 - epsilon are swapped: the true class keeps most of the mass"
        elif not torch.allclose(on_true, want_true, atol=1e-5):
            which = int((on_true - want_true).abs().argmax())
            hint = (
                f"the true class {describe_miss(on_true[which].item(), want_true[which].item())} "
                "(spread epsilon over all C classes, the true one included)"
            )
        else:
            got_off, want_off = got.masked_select(off), want.masked_select(off)
            which = int((got_off - want_off).abs().argmax())
            miss = describe_miss(got_off[which].item(), want_off[which].item())
            hint = f"the true class is right, but a wrong class {miss}"
        return CheckResult(False, f"{setting}: {hint}")
    return CheckResult(
        True, "(1 - epsilon) on the true class plus epsilon / C everywhere, as PyTorch does"
    )


# --------------------------------------------------------------------------- CLIP's loss


def reference_clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves of CLIP's loss: image->text and text->image cross-entropy."""
    logits = logit_scale * image_emb.double() @ text_emb.double().T
    match = torch.arange(len(logits))
    return F.cross_entropy(logits, match), F.cross_entropy(logits.T, match)


def check_clip_loss(
    fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
) -> CheckResult:
    """Does ``fn(image_emb (B, D), text_emb (B, D), logit_scale) -> scalar`` compute CLIP's
    symmetric InfoNCE loss (the mean of the image->text and text->image cross-entropies)?

    A failure names the slip (one direction only, no logit_scale, a sum instead of a mean)
    or says whether the loss is too high or too low, never the reference loss."""
    generator = torch.Generator().manual_seed(_SEED)
    for batch, scale in [(5, 10.0), (8, 1.0), (3, 30.0)]:
        image = F.normalize(torch.randn(batch, 6, generator=generator), dim=1)
        text = F.normalize(image + 0.8 * torch.randn(batch, 6, generator=generator), dim=1)
        result, error = _call(fn, image, text, scale)
        if error:
            return CheckResult(False, error)
        got, error = _as_float_tensor("the loss", result, ())
        if error:
            return CheckResult(False, error + " (a single number: average over the batch)")
        image_to_text, text_to_image = reference_clip_loss(image, text, scale)
        want = (image_to_text + text_to_image) / 2
        if torch.isclose(got, want, atol=1e-4):
            continue
        if torch.isclose(got, image_to_text, atol=1e-4) or torch.isclose(
            got, text_to_image, atol=1e-4
        ):
            return CheckResult(
                False,
                "that is one direction only: average the image->text and the "
                "text->image cross-entropies",
            )
        unscaled = sum(reference_clip_loss(image, text, 1.0)) / 2
        if scale != 1.0 and torch.isclose(got, unscaled, atol=1e-4):
            return CheckResult(False, "multiply the cosine similarities by logit_scale")
        if torch.isclose(got, 2 * want, atol=1e-4):
            hint = "that is the sum of the two directions; take their mean"
        elif torch.isclose(got, batch * want, atol=1e-4):
            hint = "that sums over the batch; cross-entropy averages over it"
        else:
            hint = (
                "which caption is the right one for image i, and which image for caption i? "
                "Score both directions"
            )
        return CheckResult(
            False,
            f"for a batch of {batch} with logit_scale={scale} your loss "
            f"{describe_miss(got.item(), want.item())}; {hint}",
        )
    return CheckResult(True, "the symmetric InfoNCE loss matches on three random batches")


# --------------------------------------------------------------------------- hard negatives


def check_hardest_negatives(fn: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """Does ``fn(similarity (B, B)) -> (B,)`` return, for every row ``i``, the column
    ``j != i`` with the highest similarity (the hardest in-batch negative)?

    A failure names the slip (the diagonal not masked, the easiest instead of the hardest
    negatives, the second largest score, columns instead of rows) or the first wrong row,
    never the right columns."""
    generator = torch.Generator().manual_seed(_SEED)
    for batch in (6, 9):
        similarity = torch.rand(batch, batch, generator=generator) * 2 - 1
        similarity.fill_diagonal_(1.5)  # positives are the most similar, as after training
        similarity[0, 0] = -1.0  # ... except row 0, where the positive is the least similar
        result, error = _call(fn, similarity.clone())
        if error:
            return CheckResult(False, error)
        if not isinstance(result, torch.Tensor) or tuple(result.shape) != (batch,):
            got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
            return CheckResult(
                False, f"return one column index per row, shape ({batch},), got {got}"
            )
        if result.dtype not in (torch.int64, torch.int32):
            return CheckResult(False, f"return integer column indices, got {result.dtype}")
        masked = similarity.clone().fill_diagonal_(float("-inf"))
        want = masked.argmax(dim=1)
        if torch.equal(result.long(), want):
            continue
        if (result.long() == torch.arange(batch)).any():
            return CheckResult(
                False,
                "a row picked its own column: the diagonal holds the positives, "
                "mask it out (e.g. fill it with -inf) before taking the maximum",
            )
        if torch.equal(result.long(), masked.masked_fill(masked.isinf(), float("inf")).argmin(1)):
            return CheckResult(
                False, "those are the easiest negatives: the hardest is the *most* similar"
            )
        if torch.equal(result.long(), masked.argmax(dim=0)):
            return CheckResult(
                False, "you took the maximum down each column; take it along each row (dim=1)"
            )
        second = similarity.topk(2, dim=1).indices[:, 1]
        if torch.equal(result.long(), second):
            return CheckResult(
                False,
                "you took each row's second largest score, which assumes the positive is the "
                "largest; in row 0 it is not: mask the diagonal out instead",
            )
        wrong = (result.long() != want).nonzero()[:, 0]
        row = int(wrong[0])
        return CheckResult(
            False,
            f"{len(wrong)} of {batch} rows pick the wrong column; row {row} picked column "
            f"{int(result[row])}, which is not its most similar wrong partner",
        )
    return CheckResult(True, "every row found its most similar wrong partner")
