"""Self-checks of chapter 11 accept right answers and explain wrong ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_checks_core import assert_hides

from mmcourse import losses, metrics
from mmcourse.checks import ch11

# ----------------------------------------------------------------------------- recall@k


@pytest.fixture
def retrieval_case() -> tuple[torch.Tensor, torch.Tensor]:
    """40 captions (4 per canvas, in order) against 10 canvases, with some noise."""
    g = torch.Generator().manual_seed(0)
    owner = torch.arange(10).repeat_interleave(4)
    similarity = torch.randn(40, 10, generator=g)
    similarity[torch.arange(40), owner] += 1.0
    return similarity, owner


def _recall_by_sorting(similarity: torch.Tensor, owner: torch.Tensor, k: int) -> float:
    """Reference: sort each row, wrong candidates first among equal scores."""
    hits = 0
    for row, right in zip(similarity.tolist(), owner.tolist()):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j == right))
        hits += right in order[:k]
    return hits / len(similarity)


def test_recall_accepts_the_right_value(retrieval_case) -> None:
    similarity, owner = retrieval_case
    for k in (1, 3, 5):
        expected = _recall_by_sorting(similarity, owner, k)
        assert expected == pytest.approx(metrics.recall_at_k(similarity, owner, (k,))[k])
        result = ch11.check_text_to_image_recall(similarity, owner, k, expected)
        assert result and str(result).startswith("Correct"), result
    value = torch.tensor(_recall_by_sorting(similarity, owner, 3))
    assert ch11.check_text_to_image_recall(similarity, owner, 3, value)


def test_recall_names_the_usual_slips_and_hides_the_answer(retrieval_case) -> None:
    similarity, owner = retrieval_case
    k = 3
    recall = _recall_by_sorting(similarity, owner, k)
    assert 0 < recall < 1
    image_to_text = metrics.recall_at_k(
        similarity.T.contiguous(), (owner[None, :] == torch.arange(10)[:, None]), (k,)
    )[k]
    for guess, hint in (
        (0.0, "placeholder"),
        (_recall_by_sorting(-similarity, owner, k), "largest"),
        (image_to_text, "image -> text"),
        (_recall_by_sorting(similarity, torch.arange(40) % 10, k), "t % N"),
        (_recall_by_sorting(similarity, owner, k - 1), "not k - 1"),
        (_recall_by_sorting(similarity, owner, k + 1), "not k + 1"),
        (recall * 40, "not a count"),
        (round(100 * recall, 1), "percentage"),
    ):
        assert guess != pytest.approx(recall), hint
        result = ch11.check_text_to_image_recall(similarity, owner, k, guess)
        assert hint in result.message, (hint, result)
        assert_hides(result, recall, round(recall * 40))


def test_recall_counts_ties_against_the_model() -> None:
    """Worked by hand. Caption 0 (canvas 0): 0.5 ties with canvas 1 -> rank 2. Caption 1
    (canvas 0): 0.9 is the best -> rank 1. Captions 2 and 3 (canvas 1): 0.8 best -> rank 1;
    0.2 ties with canvas 0 and loses to 0.7 -> rank 3. R@1 = 2/4, R@2 = 3/4; counting ties in
    the model's favour would give R@1 = 3/4."""
    similarity = torch.tensor([[0.5, 0.5, 0.1], [0.9, 0.1, 0.3], [0.1, 0.8, 0.2], [0.2, 0.2, 0.7]])
    owner = torch.tensor([0, 0, 1, 1])
    assert metrics.recall_at_k(similarity, owner, (1, 2)) == pytest.approx({1: 0.5, 2: 0.75})
    assert ch11.check_text_to_image_recall(similarity, owner, 1, 0.5)
    assert ch11.check_text_to_image_recall(similarity, owner, 2, 0.75)
    favourable = ch11.check_text_to_image_recall(similarity, owner, 1, 0.75)
    assert "ties" in favourable.message
    assert_hides(favourable, 0.5)


def test_recall_rejects_bad_inputs(retrieval_case) -> None:
    similarity, owner = retrieval_case
    check = ch11.check_text_to_image_recall
    assert "(T, N)" in check(torch.zeros(3), owner, 1, 0.5).message
    assert "float scores" in check(similarity.long(), owner, 1, 0.5).message
    assert "NaN" in check(similarity.clone().fill_(float("nan")), owner, 1, 0.5).message
    assert "one canvas index" in check(similarity, owner[:5], 1, 0.5).message
    assert "one canvas index" in check(similarity, owner + 10, 1, 0.5).message
    assert "k should be an int" in check(similarity, owner, 0, 0.5).message
    assert "k should be an int" in check(similarity, owner, 11, 0.5).message
    assert "still None" in check(similarity, owner, 1, None).message
    assert "drop the quotes" in check(similarity, owner, 1, "0.5").message


# ----------------------------------------------------------------------------- zero-shot


def _reference_predictions(digit_emb: torch.Tensor, prompt_emb: torch.Tensor) -> torch.Tensor:
    class_emb = F.normalize(F.normalize(prompt_emb, dim=2).mean(dim=1), dim=1)
    return (F.normalize(digit_emb, dim=1) @ class_emb.T).argmax(dim=1)


@pytest.fixture
def zero_shot_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Digits and prompts where argmin, the first prompt only and the un-normalised mean
    each give other predictions than the right classifier (prompts of some classes are
    spread widely, so their means are short)."""
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        centres = F.normalize(torch.randn(5, 6, generator=g), dim=1)
        spread = torch.tensor([0.2, 1.5, 0.3, 1.2, 0.6])[:, None, None]
        prompts = F.normalize(centres[:, None] + spread * torch.randn(5, 4, 6, generator=g), dim=2)
        digits = F.normalize(torch.randn(16, 6, generator=g), dim=1)
        right = _reference_predictions(digits, prompts)
        slips = [
            _reference_predictions(-digits, prompts),
            _reference_predictions(digits, prompts[:, :1]),
            (digits @ prompts.mean(dim=1).T).argmax(dim=1),
        ]
        if all(not torch.equal(slip, right) for slip in slips) and not any(
            torch.equal(a, b) for i, a in enumerate(slips) for b in slips[i + 1 :]
        ):
            return digits, prompts
    raise AssertionError("no seed separates the slips")


def test_zero_shot_accepts_the_right_predictions(zero_shot_case) -> None:
    digits, prompts = zero_shot_case
    result = ch11.check_zero_shot_predictions(
        digits, prompts, _reference_predictions(digits, prompts)
    )
    assert result and "all 16 predictions" in result.message
    # embeddings that are not unit length are normalised by the classifier as well
    result = ch11.check_zero_shot_predictions(
        3 * digits, prompts, _reference_predictions(digits, prompts).int()
    )
    assert result


def test_zero_shot_names_the_usual_slips(zero_shot_case) -> None:
    digits, prompts = zero_shot_case
    right = _reference_predictions(digits, prompts)
    for guess, hint in (
        (_reference_predictions(-digits, prompts), "smallest"),
        (_reference_predictions(digits, prompts[:, :1]), "first prompt only"),
        ((digits @ prompts.mean(dim=1).T).argmax(dim=1), "normalise each class's mean"),
        ((right + 1) % 5, "predictions differ"),
    ):
        result = ch11.check_zero_shot_predictions(digits, prompts, guess)
        assert not result and hint in result.message, (hint, result)
        assert right.tolist() != guess.tolist()
        assert_hides(result, right.tolist())


def test_zero_shot_explains_wrong_shapes_and_types(zero_shot_case) -> None:
    digits, prompts = zero_shot_case
    scores = digits @ F.normalize(prompts.mean(dim=1), dim=1).T  # (16, 5)
    check = ch11.check_zero_shot_predictions
    assert "argmax over the classes" in check(digits, prompts, scores).message
    assert "one entry per class" in check(digits, prompts, scores.argmax(dim=0)).message
    assert "class indices (integers)" in check(digits, prompts, scores.max(dim=1).values).message
    assert "torch.Tensor" in check(digits, prompts, [0] * 16).message
    assert "still None" in check(digits, prompts, None).message
    assert "one class per digit" in check(digits, prompts, torch.zeros(3, dtype=torch.long)).message
    assert "from 0 to 4" in check(digits, prompts, torch.full((16,), 7)).message
    assert "(N, E)" in check(digits[0], prompts, torch.zeros(16)).message
    assert "(classes, prompts, E)" in check(digits, prompts[0], torch.zeros(16)).message
    assert "last size E" in check(digits, prompts[..., :3], torch.zeros(16)).message


def test_zero_shot_accepts_either_class_of_a_tie() -> None:
    digits = torch.tensor([[1.0, 1.0, 0.0]])  # equally close to classes 0 and 1
    prompts = torch.eye(3)[:, None, :]  # one prompt per class: the axes
    assert ch11.check_zero_shot_predictions(digits, prompts, torch.tensor([0]))
    assert ch11.check_zero_shot_predictions(digits, prompts, torch.tensor([1]))
    assert not ch11.check_zero_shot_predictions(digits, prompts, torch.tensor([2]))


# ----------------------------------------------------------------------------- masked InfoNCE


@pytest.fixture
def tiny_batch() -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    image = F.normalize(torch.randn(5, 3, generator=g), dim=1)
    text = F.normalize(image + 0.5 * torch.randn(5, 3, generator=g), dim=1)
    # pair 3 is pair 0's twin, its caption another paraphrase (a nearby embedding)
    text[3] = F.normalize(text[0] + 0.3 * torch.randn(3, generator=g), dim=0)
    return image, text, 5.0, torch.tensor([0, 1, 2, 0, 3])


def _one_direction(logits: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    twins = (groups[:, None] == groups[None, :]) & ~torch.eye(len(groups), dtype=torch.bool)
    return F.cross_entropy(logits.masked_fill(twins, float("-inf")), torch.arange(len(groups)))


def test_masked_loss_accepts_the_right_value(tiny_batch) -> None:
    image, text, scale, groups = tiny_batch
    expected = losses.clip_loss_with_duplicates(image, text, scale, groups, mode="mask")
    result = ch11.check_masked_clip_loss(image, text, scale, groups, expected.item())
    assert result and str(result).startswith("Correct"), result
    assert ch11.check_masked_clip_loss(image, text, scale, groups, expected)
    # without twins the masked loss is plain CLIP's
    unique = torch.arange(5)
    plain = losses.clip_loss(image, text, scale).item()
    assert ch11.check_masked_clip_loss(image, text, scale, unique, plain)


def test_masked_loss_names_the_usual_slips_and_hides_the_answer(tiny_batch) -> None:
    image, text, scale, groups = tiny_batch
    expected = losses.clip_loss_with_duplicates(image, text, scale, groups, mode="mask").item()
    logits = scale * image @ text.T
    image_to_text = _one_direction(logits, groups).item()
    text_to_image = _one_direction(logits.T, groups).item()
    assert (image_to_text + text_to_image) / 2 == pytest.approx(expected)
    soft = losses.clip_loss_with_duplicates(image, text, scale, groups, mode="soft").item()
    unscaled = losses.clip_loss_with_duplicates(image, text, 1.0, groups, mode="mask").item()
    for guess, hint in (
        (0.0, "placeholder"),
        (losses.clip_loss(image, text, scale).item(), "plain CLIP"),
        (soft, "soft variant"),
        (image_to_text, "image -> text only"),
        (text_to_image, "text -> image only"),
        (unscaled, "logit_scale"),
        (image_to_text + text_to_image, "sum of the two directions"),
        (5 * expected, "sums over the batch"),
        (expected * 1.01, "slightly too high"),
    ):
        result = ch11.check_masked_clip_loss(image, text, scale, groups, guess)
        assert not result and hint in result.message, (hint, result)
        assert_hides(result, expected)


def test_masked_loss_rejects_bad_inputs(tiny_batch) -> None:
    image, text, scale, groups = tiny_batch
    check = ch11.check_masked_clip_loss
    assert "(B, D)" in check(image[0], text, scale, groups, 0.5).message
    assert "like image_emb" in check(image, text[:2], scale, groups, 0.5).message
    assert "description id" in check(image, text, scale, groups.float(), 0.5).message
    assert "positive number" in check(image, text, -1.0, groups, 0.5).message
    assert "still None" in check(image, text, scale, groups, None).message
    assert "a number, got str" in check(image, text, scale, groups, "loss").message
    assert "infinite" in check(image, text, scale, groups, float("inf")).message


def test_soft_and_plain_agree_when_twin_captions_are_the_same_words(tiny_batch) -> None:
    """With identical twin captions the soft target gives plain CLIP's loss (each row splits
    its mass between two equal logits either way); the check then names plain CLIP."""
    image, text, scale, groups = tiny_batch
    text = text.clone()
    text[3] = text[0]
    plain = losses.clip_loss(image, text, scale).item()
    soft = losses.clip_loss_with_duplicates(image, text, scale, groups, mode="soft").item()
    assert soft == pytest.approx(plain, abs=1e-6)
    result = ch11.check_masked_clip_loss(image, text, scale, groups, plain)
    assert not result and "plain CLIP" in result.message
