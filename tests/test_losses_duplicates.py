"""mmcourse.losses.clip_loss_with_duplicates and negative_caption_loss against hand-computed
values, clip_loss and numerical gradients."""

from __future__ import annotations

import math

import pytest
import torch

from mmcourse import losses as L

# Three pairs; pairs 0 and 1 share a description (group 7), pair 2 stands alone (group 3).
# The embeddings are unit vectors, so the cosines can be read off by hand:
IMAGES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
TEXTS = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
# cos[i, j] = IMAGES[i] . TEXTS[j]:
COS = [[1.0, 0.6, 0.0], [0.0, 0.8, 1.0], [-1.0, -0.6, 0.0]]
GROUPS = torch.tensor([7, 7, 3])
SCALE = 2.0


def log_softmax_entry(row: list[float], j: int, keep: list[int]) -> float:
    """log( exp(row[j]) / sum_{k in keep} exp(row[k]) ), written out."""
    return row[j] - math.log(sum(math.exp(row[k]) for k in keep))


def hand_loss(mode: str) -> float:
    """Both directions by hand, with plain Python lists and math."""
    z = [[SCALE * c for c in row] for row in COS]
    zt = [[z[j][i] for j in range(3)] for i in range(3)]
    same = [[GROUPS[i] == GROUPS[j] for j in range(3)] for i in range(3)]
    total = 0.0
    for logits in (z, zt):
        rows = []
        for i in range(3):
            if mode == "mask":  # drop same-group columns except the diagonal
                keep = [j for j in range(3) if j == i or not same[i][j]]
                rows.append(-log_softmax_entry(logits[i], i, keep))
            else:  # soft: the target spreads over the row's group
                members = [j for j in range(3) if same[i][j]]
                rows.append(
                    -sum(log_softmax_entry(logits[i], j, [0, 1, 2]) for j in members) / len(members)
                )
        total += sum(rows) / 3
    return total / 2


def test_hand_values_on_three_pairs() -> None:
    # one number spelled out: row 0 (image 0) under "mask" keeps only columns 0 and 2:
    # logits (2, -, 0): -log(e^2 / (e^2 + e^0)) = log(1 + e^-2)
    z0 = [SCALE * c for c in COS[0]]
    assert -log_softmax_entry(z0, 0, [0, 2]) == pytest.approx(math.log(1 + math.exp(-2)))
    for mode in ("mask", "soft"):
        loss = L.clip_loss_with_duplicates(IMAGES, TEXTS, SCALE, GROUPS, mode=mode)
        assert loss.shape == ()
        assert loss.item() == pytest.approx(hand_loss(mode), rel=1e-12)
    # and the numbers differ from plain CLIP, which calls text 1 a negative of image 0
    plain = L.clip_loss(IMAGES, TEXTS, SCALE).item()
    assert abs(plain - hand_loss("mask")) > 0.1 and abs(plain - hand_loss("soft")) > 0.1


def test_mask_and_soft_constants() -> None:
    # soft, direction image -> text, row 0: columns 0 and 1 are both right, each with 1/2;
    # logits (2, 1.2, 0): -(1/2)(log p0 + log p1) = log(e^2 + e^1.2 + 1) - (2 + 1.2) / 2
    z0 = [SCALE * c for c in COS[0]]
    soft_row0 = -(log_softmax_entry(z0, 0, [0, 1, 2]) + log_softmax_entry(z0, 1, [0, 1, 2])) / 2
    assert soft_row0 == pytest.approx(math.log(math.exp(2) + math.exp(1.2) + 1) - 1.6)


@pytest.mark.parametrize("mode", L.DUPLICATE_MODES)
def test_reduces_to_clip_loss_when_groups_are_unique(mode: str) -> None:
    torch.manual_seed(0)
    image, text = torch.randn(9, 5), torch.randn(9, 5)
    groups = torch.tensor([4, 0, 8, 2, 6, 1, 3, 5, 7])
    scale = torch.tensor(7.5)
    expected = L.clip_loss(image, text, scale)
    got = L.clip_loss_with_duplicates(image, text, scale, groups, mode=mode)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_one_group_soft_and_mask_agree_with_their_definitions() -> None:
    # every pair says the same thing: mask leaves only the diagonal (loss 0); soft asks for a
    # uniform row, whose best value is log(B) - reached when all logits of a row are equal
    torch.manual_seed(1)
    image, text = torch.randn(4, 3), torch.randn(4, 3)
    same = torch.zeros(4, dtype=torch.long)
    assert L.clip_loss_with_duplicates(image, text, 3.0, same, mode="mask").item() == 0.0
    flat = torch.ones(4, 3)
    soft = L.clip_loss_with_duplicates(flat, flat, 3.0, same, mode="soft")
    assert soft.item() == pytest.approx(math.log(4), rel=1e-6)


@pytest.mark.parametrize("mode", L.DUPLICATE_MODES)
def test_gradcheck_in_double(mode: str) -> None:
    torch.manual_seed(2)
    image = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    text = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    groups = torch.tensor([0, 1, 0, 2, 1])

    def loss(i: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return L.clip_loss_with_duplicates(i, t, s, groups, mode=mode)

    assert torch.autograd.gradcheck(loss, (image, text, scale))


def test_learnable_temperature_gets_a_gradient() -> None:
    temperature = L.LearnableTemperature()
    image, text = torch.randn(6, 3), torch.randn(6, 3)
    groups = torch.tensor([0, 0, 1, 2, 2, 3])
    L.clip_loss_with_duplicates(image, text, temperature(), groups).backward()
    assert temperature.log_scale.grad is not None and temperature.log_scale.grad != 0


def test_errors() -> None:
    image, text, groups = torch.randn(3, 2), torch.randn(3, 2), torch.tensor([0, 0, 1])
    with pytest.raises(ValueError, match=r"mode must be one of \('mask', 'soft'\), got 'hard'"):
        L.clip_loss_with_duplicates(image, text, 1.0, groups, mode="hard")
    with pytest.raises(TypeError, match="mode must be one of"):
        L.clip_loss_with_duplicates(image, text, 1.0, groups, mode=None)
    with pytest.raises(
        ValueError,
        match=r"text_emb must be a float tensor of shape \(B, D\) with B = 3 and D = 2 as in image_emb",
    ):
        L.clip_loss_with_duplicates(image, torch.randn(4, 2), 1.0, groups)
    with pytest.raises(ValueError, match=r"image_emb must be a float tensor of shape \(B, D\)"):
        L.clip_loss_with_duplicates(torch.randn(3), text, 1.0, groups)
    with pytest.raises(
        ValueError,
        match=r"groups must be an integer tensor of shape \(B,\) with B = 3 as in image_emb",
    ):
        L.clip_loss_with_duplicates(image, text, 1.0, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="convert float labels with .long()"):
        L.clip_loss_with_duplicates(image, text, 1.0, groups.float())
    with pytest.raises(TypeError, match="groups must be a torch.Tensor"):
        L.clip_loss_with_duplicates(image, text, 1.0, [0, 0, 1])
    with pytest.raises(ValueError, match="logit_scale must be a finite number > 0"):
        L.clip_loss_with_duplicates(image, text, -1.0, groups)
    with pytest.raises(ValueError, match="the batch holds 0 pairs"):
        empty = torch.zeros(0, 2)
        L.clip_loss_with_duplicates(empty, empty, 1.0, torch.zeros(0, dtype=torch.long))


# ----------------------------------------------------------------------------------------------
# negative_caption_loss


def test_negative_caption_loss_by_hand() -> None:
    image = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    right = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # cosines 1 and 1/sqrt(2)
    wrong = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # cosines 0 and 1
    s = 3.0
    # -log(e^(s r) / (e^(s r) + e^(s w))) for each row, averaged
    terms = [
        -math.log(math.exp(s * r) / (math.exp(s * r) + math.exp(s * w)))
        for r, w in [(1.0, 0.0), (1 / math.sqrt(2), 1.0)]
    ]
    loss = L.negative_caption_loss(image, right, wrong, s)
    assert loss.item() == pytest.approx(sum(terms) / 2, rel=1e-6)
    # (B, D) is one negative per row, the same as (B, 1, D)
    assert L.negative_caption_loss(image, right, wrong[:, None], s).item() == loss.item()


def test_negative_caption_loss_with_several_negatives() -> None:
    # one image, its caption at cosine 0.6, three negatives at cosines 0.8, 0, -0.6
    image = torch.tensor([[1.0, 0.0]])
    right = torch.tensor([[0.6, 0.8]])
    wrong = torch.tensor([[[0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]]])
    s = 2.0
    denominator = sum(math.exp(s * c) for c in (0.6, 0.8, 0.0, -0.6))
    expected = -math.log(math.exp(s * 0.6) / denominator)
    assert L.negative_caption_loss(image, right, wrong, s).item() == pytest.approx(expected)


def test_negative_caption_loss_gradcheck() -> None:
    torch.manual_seed(3)
    image = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    text = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    wrong = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(L.negative_caption_loss, (image, text, wrong, scale))


def test_negative_caption_loss_errors() -> None:
    image, right = torch.randn(2, 2), torch.randn(2, 2)
    with pytest.raises(
        ValueError,
        match=r"negative_emb must be a float tensor of shape \(B, D\) with B = 2 and D = 2 as in image_emb",
    ):
        L.negative_caption_loss(image, right, torch.randn(1, 2), 1.0)
    with pytest.raises(
        ValueError,
        match=r"negative_emb must be a float tensor of shape \(B, K, D\) with B = 2 and D = 2 as in image_emb",
    ):
        L.negative_caption_loss(image, right, torch.randn(2, 3, 5), 1.0)
    with pytest.raises(TypeError, match="negative_emb must be a torch.Tensor"):
        L.negative_caption_loss(image, right, [[0.0, 1.0]], 1.0)
    with pytest.raises(
        ValueError,
        match=r"text_emb must be a float tensor of shape \(B, D\) with B = 2 and D = 2 as in image_emb",
    ):
        L.negative_caption_loss(image, right[:1], torch.randn(2, 2), 1.0)
    with pytest.raises(ValueError, match="logit_scale must be a finite number > 0"):
        L.negative_caption_loss(image, right, torch.randn(2, 2), 0.0)
