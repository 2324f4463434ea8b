"""Self-checks for chapter 07 (losses and regularisation).

Each check takes the *function* a learner wrote, runs it on a few random inputs (from its
own generator, so the notebook's random state is untouched) and compares the result with a
reference computed here from the definition.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from mmcourse.checks._core import CheckResult

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
        return None, f"{name} has shape {tuple(value.shape)}, expected {shape}"
    return value.detach().double(), None


# --------------------------------------------------------------------------- label smoothing


def reference_smoothed_targets(
    targets: torch.Tensor, num_classes: int, epsilon: float
) -> torch.Tensor:
    """``(1 - epsilon) * one_hot + epsilon / num_classes``: PyTorch's ``label_smoothing``."""
    return (1 - epsilon) * F.one_hot(targets, num_classes).double() + epsilon / num_classes


def check_smoothed_targets(fn: Callable[[torch.Tensor, int, float], torch.Tensor]) -> CheckResult:
    """Does ``fn(targets (B,), num_classes, epsilon) -> (B, num_classes)`` return the label-
    smoothed target distribution that ``F.cross_entropy(..., label_smoothing=epsilon)`` uses?"""
    generator = torch.Generator().manual_seed(_SEED)
    for num_classes, epsilon in [(10, 0.1), (4, 0.3), (7, 0.0)]:
        targets = torch.randint(0, num_classes, (6,), generator=generator)
        result, error = _call(fn, targets, num_classes, epsilon)
        if error:
            return CheckResult(False, error)
        got, error = _as_float_tensor("the result", result, (6, num_classes))
        if error:
            return CheckResult(False, error)
        want = reference_smoothed_targets(targets, num_classes, epsilon)
        if not torch.allclose(got.sum(dim=1), torch.ones(6, dtype=torch.float64), atol=1e-5):
            return CheckResult(
                False,
                "each row should be a probability distribution (sum to 1); "
                f"with C={num_classes}, epsilon={epsilon} a row sums to {got[0].sum():.4f}",
            )
        if not torch.allclose(got, want, atol=1e-5):
            on_true = got[0, targets[0]].item()
            return CheckResult(
                False,
                f"with C={num_classes} and epsilon={epsilon} the true class should get "
                f"1 - epsilon + epsilon / C = {want[0, targets[0]].item():.4f}, yours gets "
                f"{on_true:.4f} (spread epsilon over all C classes, the true one included)",
            )
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
    symmetric InfoNCE loss (the mean of the image->text and text->image cross-entropies)?"""
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
        return CheckResult(
            False,
            f"for a batch of {batch} with logit_scale={scale} the loss should be "
            f"{want.item():.4f}, yours is {got.item():.4f}",
        )
    return CheckResult(True, "the symmetric InfoNCE loss matches on three random batches")


# --------------------------------------------------------------------------- hard negatives


def check_hardest_negatives(fn: Callable[[torch.Tensor], torch.Tensor]) -> CheckResult:
    """Does ``fn(similarity (B, B)) -> (B,)`` return, for every row ``i``, the column
    ``j != i`` with the highest similarity (the hardest in-batch negative)?"""
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
        return CheckResult(False, f"expected {want.tolist()}, got {result.tolist()}")
    return CheckResult(True, "every row found its most similar wrong partner")
