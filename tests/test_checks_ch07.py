"""Self-checks of chapter 07 accept right answers and explain wrong ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from test_checks_core import assert_hides

from mmcourse.checks import ch07

# ----------------------------------------------------------------- label smoothing


def smoothed_right(targets: torch.Tensor, num_classes: int, epsilon: float) -> torch.Tensor:
    distribution = torch.full((len(targets), num_classes), epsilon / num_classes)
    distribution[torch.arange(len(targets)), targets] += 1 - epsilon
    return distribution


def test_reference_smoothing_is_what_pytorch_uses() -> None:
    """Cross-entropy against the reference distribution == PyTorch's label_smoothing."""
    logits, targets = torch.randn(5, 7, dtype=torch.float64), torch.tensor([0, 3, 6, 2, 2])
    smooth = ch07.reference_smoothed_targets(targets, 7, 0.2)
    by_hand = -(smooth * logits.log_softmax(dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(by_hand, F.cross_entropy(logits, targets, label_smoothing=0.2))


def test_check_smoothed_targets() -> None:
    assert ch07.check_smoothed_targets(smoothed_right)
    placeholder = ch07.check_smoothed_targets(lambda t, c, e: None)
    assert not placeholder and "torch.Tensor" in str(placeholder)
    assert str(placeholder).startswith("Not yet: ")

    def off_by_other_classes(targets: torch.Tensor, c: int, e: float) -> torch.Tensor:
        # epsilon spread over the C - 1 wrong classes only (another convention)
        d = torch.full((len(targets), c), e / (c - 1))
        d[torch.arange(len(targets)), targets] = 1 - e
        return d

    result = ch07.check_smoothed_targets(off_by_other_classes)
    assert not result and "true one included" in result.message

    def not_normalised(targets: torch.Tensor, c: int, e: float) -> torch.Tensor:
        return F.one_hot(targets, c).float() + e / c

    assert "sum to 1" in ch07.check_smoothed_targets(not_normalised).message
    assert "shape" in ch07.check_smoothed_targets(lambda t, c, e: torch.zeros(3)).message

    def crashes(targets: torch.Tensor, c: int, e: float) -> torch.Tensor:
        raise KeyError("boom")

    assert "raised KeyError" in ch07.check_smoothed_targets(crashes).message
    assert "pass your function" in ch07.check_smoothed_targets(42).message


def _smoothing_values() -> tuple[float, ...]:
    """What the true and the other classes get in the first case (C = 10, epsilon = 0.1)."""
    return (1 - 0.1 + 0.1 / 10, 0.1 / 10)  # 0.91 and 0.01


def test_check_smoothed_targets_names_the_slip_and_hides_the_values() -> None:
    def one_hot(targets: torch.Tensor, c: int, e: float) -> torch.Tensor:
        return F.one_hot(targets, c).float()

    def swapped(targets: torch.Tensor, c: int, e: float) -> torch.Tensor:
        return e * F.one_hot(targets, c).float() + (1 - e) / c

    def too_much_on_true(targets: torch.Tensor, c: int, e: float) -> torch.Tensor:
        d = smoothed_right(targets, c, e)
        d[torch.arange(len(targets)), targets] += 0.05
        return d / d.sum(dim=1, keepdim=True)

    for fn, hint in (
        (one_hot, "epsilon is not used"),
        (swapped, "swapped"),
        (too_much_on_true, "the true class is slightly too high"),
        (lambda t, c, e: torch.full((len(t), c), 1 / c), "the true class is too low"),
    ):
        result = ch07.check_smoothed_targets(fn)
        assert hint in str(result), result
        assert_hides(result, *_smoothing_values())
    placeholder = ch07.check_smoothed_targets(lambda t, c, e: torch.zeros(len(t), c))
    assert "sum to 1" in str(placeholder)
    assert_hides(placeholder, *_smoothing_values())


# ----------------------------------------------------------------- CLIP


def clip_by_loop(image: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
    """An independent, loop-based InfoNCE: -log softmax of each matching pair, both ways."""
    n = len(image)
    total = 0.0
    for i in range(n):
        row = torch.stack([scale * torch.dot(image[i], text[j]) for j in range(n)])
        col = torch.stack([scale * torch.dot(image[j], text[i]) for j in range(n)])
        total = total - torch.log_softmax(row, 0)[i] - torch.log_softmax(col, 0)[i]
    return total / (2 * n)


def test_reference_clip_loss_matches_a_loop() -> None:
    image = F.normalize(torch.randn(4, 3, dtype=torch.float64), dim=1)
    text = F.normalize(torch.randn(4, 3, dtype=torch.float64), dim=1)
    a, b = ch07.reference_clip_loss(image, text, 5.0)
    torch.testing.assert_close((a + b) / 2, clip_by_loop(image, text, 5.0))


def test_check_clip_loss() -> None:
    assert ch07.check_clip_loss(clip_by_loop)
    assert not ch07.check_clip_loss(lambda i, t, s: torch.tensor(0.0))

    def one_way(image: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
        logits = scale * image @ text.T
        return F.cross_entropy(logits, torch.arange(len(image)))

    assert "one direction" in ch07.check_clip_loss(one_way).message

    def unscaled(image: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
        return clip_by_loop(image, text, 1.0)

    assert "logit_scale" in ch07.check_clip_loss(unscaled).message

    def per_example(image: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
        logits = scale * image @ text.T
        return F.cross_entropy(logits, torch.arange(len(image)), reduction="none")

    assert "single number" in ch07.check_clip_loss(per_example).message

    def wrong_targets(image: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
        logits = scale * image @ text.T
        zeros = torch.zeros(len(image), dtype=torch.long)
        return (F.cross_entropy(logits, zeros) + F.cross_entropy(logits.T, zeros)) / 2

    assert "right one for image i" in ch07.check_clip_loss(wrong_targets).message


def _first_clip_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The first batch check_clip_loss draws (5 pairs, logit_scale 10), drawn the same way."""
    generator = torch.Generator().manual_seed(7)
    image = F.normalize(torch.randn(5, 6, generator=generator), dim=1)
    text = F.normalize(image + 0.8 * torch.randn(5, 6, generator=generator), dim=1)
    return image, text


def test_check_clip_loss_hides_the_loss() -> None:
    image, text = _first_clip_batch()
    want = clip_by_loop(image.double(), text.double(), 10.0).item()  # the loop, not the check
    placeholder = ch07.check_clip_loss(lambda i, t, s: torch.tensor(0.0))
    assert "still 0" in str(placeholder) and "placeholder" in str(placeholder)
    near = ch07.check_clip_loss(lambda i, t, s: clip_by_loop(i, t, s) * 1.02)
    assert "slightly too high" in str(near)
    summed = ch07.check_clip_loss(lambda i, t, s: 2 * clip_by_loop(i, t, s))
    assert "sum of the two directions" in str(summed)
    by_batch = ch07.check_clip_loss(lambda i, t, s: len(i) * clip_by_loop(i, t, s))
    assert "sums over the batch" in str(by_batch)
    for result in (placeholder, near, summed, by_batch):
        assert_hides(result, want)


# ----------------------------------------------------------------- hardest negatives


def hardest_by_loop(similarity: torch.Tensor) -> torch.Tensor:
    picks = []
    for i, row in enumerate(similarity.tolist()):
        best = max((value, j) for j, value in enumerate(row) if j != i)
        picks.append(best[1])
    return torch.tensor(picks)


def test_check_hardest_negatives() -> None:
    assert ch07.check_hardest_negatives(hardest_by_loop)
    placeholder = ch07.check_hardest_negatives(lambda s: None)
    assert not placeholder and "shape" in placeholder.message
    forgot_mask = ch07.check_hardest_negatives(lambda s: s.argmax(dim=1))
    assert not forgot_mask and "own column" in forgot_mask.message

    def easiest(similarity: torch.Tensor) -> torch.Tensor:
        return similarity + torch.diag(torch.full((len(similarity),), 10.0))

    result = ch07.check_hardest_negatives(lambda s: easiest(s).argmin(dim=1))
    assert not result and "easiest" in result.message
    as_float = ch07.check_hardest_negatives(lambda s: hardest_by_loop(s).float())
    assert not as_float and "integer" in as_float.message
    shifted = ch07.check_hardest_negatives(lambda s: (hardest_by_loop(s) + 1) % len(s))
    assert not shifted


def test_check_hardest_negatives_names_the_slip_and_hides_the_columns() -> None:
    generator = torch.Generator().manual_seed(7)  # the check's first matrix, drawn the same way
    similarity = torch.rand(6, 6, generator=generator) * 2 - 1
    similarity.fill_diagonal_(1.5)
    similarity[0, 0] = -1.0
    want = hardest_by_loop(similarity).tolist()

    def second_largest(s: torch.Tensor) -> torch.Tensor:
        return s.topk(2, dim=1).indices[:, 1]

    def by_column(s: torch.Tensor) -> torch.Tensor:
        return s.clone().fill_diagonal_(float("-inf")).argmax(dim=0)

    def shifted(s: torch.Tensor) -> torch.Tensor:
        return (hardest_by_loop(s) + 1) % len(s)

    assert "second largest" in str(ch07.check_hardest_negatives(second_largest))
    assert by_column(similarity).tolist() != want
    assert "each column" in str(ch07.check_hardest_negatives(by_column))
    result = ch07.check_hardest_negatives(shifted)
    assert "6 of 6 rows pick the wrong column" in str(result)
    for fn in (second_largest, by_column, shifted, lambda s: torch.zeros(len(s), dtype=torch.long)):
        assert_hides(ch07.check_hardest_negatives(fn), want)


def test_checks_leave_the_global_random_state_alone() -> None:
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    ch07.check_clip_loss(clip_by_loop)
    ch07.check_smoothed_targets(smoothed_right)
    ch07.check_hardest_negatives(hardest_by_loop)
    torch.testing.assert_close(torch.rand(3), expected)
