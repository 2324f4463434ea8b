"""mmcourse.losses against hand-written formulas, brute-force loops and torch.nn's losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse import losses as L
from mmcourse.data.questions import ATTRIBUTE_CLASSES

# ----------------------------------------------------------------------------------------------
# cross-entropy


def hand_cross_entropy(logits, target, eps=0.0, ignore=None) -> float:
    """loss_i = -(1 - eps) log p[y] - eps/C sum_c log p[c], averaged over kept rows, by hand."""
    terms = []
    for row, y in zip(logits.double().tolist(), target.tolist()):
        if y == ignore:
            continue
        log_z = math.log(sum(math.exp(v) for v in row))
        log_p = [v - log_z for v in row]
        terms.append(-(1 - eps) * log_p[y] - eps / len(row) * sum(log_p))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("ignore", [None, 2])
def test_cross_entropy_matches_hand_formula(eps: float, ignore: int | None) -> None:
    logits = torch.randn(12, 5) * 3
    target = torch.randint(0, 5, (12,))
    target[:3] = 2  # some ignored rows when ignore == 2
    loss = L.cross_entropy(logits, target, label_smoothing=eps, ignore_index=ignore)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(hand_cross_entropy(logits, target, eps, ignore), rel=1e-5)


def test_cross_entropy_ignores_index_outside_range_and_backprops() -> None:
    logits = torch.randn(4, 3, requires_grad=True)
    target = torch.tensor([0, -100, 2, -100])
    loss = L.cross_entropy(logits, target, ignore_index=-100)
    keep = torch.tensor([0, 2])
    assert loss.item() == pytest.approx(F.cross_entropy(logits[keep], target[keep]).item())
    loss.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0].abs().sum() > 0


def test_cross_entropy_errors() -> None:
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    with pytest.raises(
        TypeError, match=r"logits must be a torch.Tensor of floats \(N, C\), got list"
    ):
        L.cross_entropy(logits.tolist(), target)
    with pytest.raises(
        ValueError, match=r"logits must be a float tensor of shape \(N, C\), got shape \(4,\)"
    ):
        L.cross_entropy(torch.randn(4), target)
    with pytest.raises(ValueError, match=r"logits must be a float tensor.*torch.int64"):
        L.cross_entropy(target[:, None].repeat(1, 3), target)
    with pytest.raises(
        ValueError,
        match=r"target must be an integer tensor of shape \(N,\) with N = 4 as in logits, .*torch.float32.*\.long\(\)",
    ):
        L.cross_entropy(logits, target.float())
    with pytest.raises(
        ValueError, match=r"target must be an integer tensor .* one-hot rows with \.argmax\(-1\)"
    ):
        L.cross_entropy(logits, F.one_hot(target, 3).float())
    with pytest.raises(
        TypeError,
        match=r"target must be a torch.Tensor of integers \(N,\) with N = 4 as in logits, got list",
    ):
        L.cross_entropy(logits, [0, 1, 2, 1])
    with pytest.raises(
        ValueError,
        match=r"target must be an integer tensor of shape \(N,\) with N = 4 as in logits, got shape \(4, 1\)",
    ):
        L.cross_entropy(logits, target[:, None])
    with pytest.raises(
        ValueError,
        match=r"target must be an integer tensor of shape \(N,\) with N = 4 as in logits, got shape \(3,\)",
    ):
        L.cross_entropy(logits, target[:3])
    with pytest.raises(ValueError, match=r"target must hold classes in 0..2, got min 0, max 3"):
        L.cross_entropy(logits, torch.tensor([0, 1, 3, 1]))
    with pytest.raises(ValueError, match=r"classes in 0..2.*got min -1"):
        L.cross_entropy(logits, torch.tensor([0, 1, -1, 1]))
    with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1\), got 1.0"):
        L.cross_entropy(logits, target, label_smoothing=1.0)
    with pytest.raises(TypeError, match=r"ignore_index must be an int, got str 'pad'"):
        L.cross_entropy(logits, target, ignore_index="pad")
    with pytest.raises(ValueError, match=r"no target to average over .*every one is ignore_index"):
        L.cross_entropy(logits, torch.ones(4, dtype=torch.long), ignore_index=1)
    with pytest.raises(ValueError, match=r"no target to average over \(N = 0"):
        L.cross_entropy(torch.randn(0, 3), torch.zeros(0, dtype=torch.long))


def test_losses_on_logits_refuse_nan() -> None:
    """Same wording as metrics.recall_at_k's refusal of NaN scores."""
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    logits[2, 1] = math.nan
    with pytest.raises(ValueError, match=r"logits holds NaN; every score must be a number"):
        L.cross_entropy(logits, target)
    sequence = torch.randn(2, 3, 5)
    sequence[1, 0, 4] = math.nan
    with pytest.raises(ValueError, match=r"logits holds NaN; every score must be a number"):
        L.sequence_loss(sequence, torch.tensor([[1, 2, 0], [3, 0, 0]]))
    with pytest.raises(ValueError, match=r"label_smoothing must be a number in \[0, 1\), got nan"):
        L.cross_entropy(torch.randn(4, 3), target, label_smoothing=math.nan)


# ----------------------------------------------------------------------------------------------
# CLIP


def hand_clip_loss(image, text, scale: float) -> float:
    """The InfoNCE terms one by one: image i against all texts, text i against all images."""
    b = len(image)
    u = [row / row.norm() for row in image.double()]
    v = [row / row.norm() for row in text.double()]
    sim = [[scale * float(u[i] @ v[j]) for j in range(b)] for i in range(b)]
    image_to_text = 0.0
    text_to_image = 0.0
    for i in range(b):
        image_to_text += -math.log(math.exp(sim[i][i]) / sum(math.exp(sim[i][j]) for j in range(b)))
        text_to_image += -math.log(math.exp(sim[i][i]) / sum(math.exp(sim[j][i]) for j in range(b)))
    return (image_to_text / b + text_to_image / b) / 2


@pytest.mark.parametrize("batch", [1, 2, 7])
@pytest.mark.parametrize("scale", [1.0, 14.285, 100.0])
def test_clip_loss_matches_hand_loop(batch: int, scale: float) -> None:
    image, text = torch.randn(batch, 16), torch.randn(batch, 16) + 0.5
    loss = L.clip_loss(image, text, scale)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(hand_clip_loss(image, text, scale), rel=1e-4, abs=1e-6)
    as_tensor = L.clip_loss(image, text, torch.tensor([scale]))  # one-element tensor works too
    assert as_tensor.item() == pytest.approx(loss.item(), rel=1e-6)


def test_clip_loss_matches_functional_cross_entropy() -> None:
    image, text = torch.randn(9, 8), torch.randn(9, 8)
    logits = 20.0 * F.cosine_similarity(image[:, None, :], text[None, :, :], dim=-1)
    labels = torch.arange(9)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert L.clip_loss(image, text, 20.0).item() == pytest.approx(expected.item(), rel=1e-5)
    # invariant to the length of the embeddings (they are normalised)
    scaled = L.clip_loss(image * 7.0, text * 0.01, 20.0)
    assert scaled.item() == pytest.approx(expected.item(), rel=1e-5)


def test_clip_loss_extremes() -> None:
    # perfect alignment: matching rows identical, others orthogonal -> loss ~ 0 at a high scale
    emb = torch.eye(6, 10)
    assert L.clip_loss(emb, emb, 100.0).item() < 1e-6
    # identical embeddings for everything: the model cannot tell pairs apart -> log(B)
    same = torch.ones(6, 10)
    assert L.clip_loss(same, same, 50.0).item() == pytest.approx(math.log(6), rel=1e-6)
    # swapped pairs cost much more than aligned ones
    assert L.clip_loss(emb, emb.flip(0), 10.0) > L.clip_loss(emb, emb, 10.0) + 5


def test_learnable_temperature_init_clamp_and_gradient() -> None:
    temperature = L.LearnableTemperature()
    assert temperature().item() == pytest.approx(1 / 0.07, rel=1e-6)
    assert temperature.log_scale.item() == pytest.approx(math.log(1 / 0.07), rel=1e-6)
    assert temperature.temperature == pytest.approx(0.07, rel=1e-6)
    assert [name for name, _ in temperature.named_parameters()] == ["log_scale"]
    assert "max_scale=100.0" in repr(temperature)
    image = torch.randn(8, 4, requires_grad=True)
    text = torch.randn(8, 4, requires_grad=True)
    loss = L.clip_loss(image, text, temperature())
    loss.backward()
    grad = temperature.log_scale.grad
    assert grad is not None and grad.abs().item() > 0
    assert image.grad is not None and text.grad is not None
    # the gradient is d loss / d log_scale = scale * d loss / d scale, checked by finite difference
    h = 1e-3
    with torch.no_grad():
        up = L.clip_loss(image, text, math.exp(temperature.log_scale.item() + h))
        down = L.clip_loss(image, text, math.exp(temperature.log_scale.item() - h))
    assert grad.item() == pytest.approx((up - down).item() / (2 * h), rel=1e-2, abs=1e-4)
    # capped at 100 as in CLIP
    with torch.no_grad():
        temperature.log_scale.fill_(math.log(1000.0))
    assert temperature().item() == pytest.approx(100.0)
    assert L.LearnableTemperature(init_temperature=0.5, max_scale=1.5)().item() == 1.5


def test_learnable_temperature_learns_to_sharpen() -> None:
    # well separated pairs: a larger scale lowers the loss, so gradient descent raises the scale
    # (plain steps by hand: creating a torch.optim optimiser costs seconds of imports)
    temperature = L.LearnableTemperature(init_temperature=1.0)
    emb = torch.eye(4, 8)
    for _ in range(5):
        temperature.zero_grad()
        L.clip_loss(emb, emb, temperature()).backward()
        with torch.no_grad():
            temperature.log_scale -= 1.0 * temperature.log_scale.grad
    assert temperature().item() > 2.0


def test_clip_errors() -> None:
    image, text = torch.randn(4, 8), torch.randn(4, 8)
    with pytest.raises(
        ValueError,
        match=r"image_emb must be a float tensor of shape \(B, D\), got shape \(4, 8, 1\)",
    ):
        L.clip_loss(image[..., None], text, 1.0)
    with pytest.raises(ValueError, match=r"text_emb must be a float tensor.*torch.int64"):
        L.clip_loss(image, torch.ones(4, 8, dtype=torch.long), 1.0)
    with pytest.raises(
        TypeError,
        match=r"text_emb must be a torch.Tensor of floats \(B, D\) with B = 4 and D = 8 as in image_emb, got list",
    ):
        L.clip_loss(image, text.tolist(), 1.0)
    with pytest.raises(
        ValueError,
        match=r"text_emb must be a float tensor of shape \(B, D\) with B = 4 and D = 8 as in image_emb, got shape \(3, 8\)",
    ):
        L.clip_loss(image, text[:3], 1.0)
    with pytest.raises(
        ValueError,
        match=r"text_emb must be a float tensor of shape \(B, D\) with B = 4 and D = 8 as in image_emb, got shape \(4, 6\)",
    ):
        L.clip_loss(image, text[:, :6], 1.0)
    with pytest.raises(ValueError, match=r"the batch holds 0 pairs; this loss needs at least 1"):
        L.clip_loss(image[:0], text[:0], 1.0)
    with pytest.raises(ValueError, match=r"logit_scale must be a finite number > 0.*got -1.0"):
        L.clip_loss(image, text, -1.0)
    with pytest.raises(ValueError, match=r"logit_scale must be a finite number > 0.*got 0.0"):
        L.clip_loss(image, text, torch.tensor(0.0))
    with pytest.raises(ValueError, match=r"one-element float tensor, got shape \(2,\)"):
        L.clip_loss(image, text, torch.ones(2))
    with pytest.raises(TypeError, match=r"logit_scale must be a number > 0, got str"):
        L.clip_loss(image, text, "14")
    with pytest.raises(ValueError, match=r"init_temperature must be a finite number > 0, got 0"):
        L.LearnableTemperature(init_temperature=0)
    with pytest.raises(ValueError, match=r"max_scale must be a finite number > 0, got -5"):
        L.LearnableTemperature(max_scale=-5)
    with pytest.raises(ValueError, match=r"init_temperature must be a finite number > 0, got nan"):
        L.LearnableTemperature(init_temperature=math.nan)
    with pytest.raises(ValueError, match=r"init_temperature must be a finite number > 0, got inf"):
        L.LearnableTemperature(init_temperature=math.inf)
    with pytest.raises(ValueError, match=r"logit_scale must be a finite number > 0.*got nan"):
        L.clip_loss(image, text, math.nan)
    with pytest.raises(ValueError, match=r"logit_scale must be a finite number > 0.*got inf"):
        L.clip_loss(image, text, torch.tensor(math.inf))


# ----------------------------------------------------------------------------------------------
# triplet losses


@pytest.mark.parametrize("margin", [0.05, 0.2, 1.0])  # torch insists on margin > 0
def test_triplet_euclidean_matches_torch(margin: float) -> None:
    a, p, n = torch.randn(10, 6), torch.randn(10, 6), torch.randn(10, 6)
    reference = nn.TripletMarginLoss(margin=margin, p=2, eps=1e-6)(a, p, n)
    ours = L.triplet_loss(a, p, n, margin=margin, distance="euclidean")
    assert ours.item() == pytest.approx(reference.item(), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("margin", [0.05, 0.2, 0.5])
def test_triplet_cosine_matches_torch_and_hand(margin: float) -> None:
    a, p, n = torch.randn(10, 6), torch.randn(10, 6), torch.randn(10, 6)
    cosine_distance = lambda x, y: 1 - F.cosine_similarity(x, y)
    reference = nn.TripletMarginWithDistanceLoss(distance_function=cosine_distance, margin=margin)
    ours = L.triplet_loss(a, p, n, margin=margin)
    assert ours.item() == pytest.approx(reference(a, p, n).item(), rel=1e-6, abs=1e-7)
    hand = 0.0
    for ai, pi, ni in zip(a.double(), p.double(), n.double()):
        cos_p = float(ai @ pi / (ai.norm() * pi.norm()))
        cos_n = float(ai @ ni / (ai.norm() * ni.norm()))
        hand += max(0.0, (1 - cos_p) - (1 - cos_n) + margin)
    assert ours.item() == pytest.approx(hand / 10, rel=1e-5, abs=1e-6)


def test_triplet_satisfied_and_violated() -> None:
    a = torch.tensor([[1.0, 0.0]])
    assert L.triplet_loss(a, a, -a).item() == 0.0  # positive identical, negative opposite
    # swapped roles: d(a, p) = 2, d(a, n) = 0 -> 2 + margin
    assert L.triplet_loss(a, -a, a, margin=0.2).item() == pytest.approx(2.2)
    assert L.triplet_loss(a, -a, a, margin=0.0).item() == pytest.approx(2.0)
    assert L.triplet_loss(a, a, a, margin=0.0).item() == 0.0  # a tie costs nothing at margin 0
    x = torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss = L.triplet_loss(
        x, x.detach(), torch.tensor([[3.0, 4.0]]), margin=6.0, distance="euclidean"
    )
    assert loss.item() == pytest.approx(1.0, abs=1e-4)
    loss.backward()
    assert torch.isfinite(x.grad).all()  # eps keeps the gradient finite at d(a, p) = 0


def brute_force_hardest(emb_a, emb_b, margin: float) -> torch.Tensor:
    """Anchor by anchor: every hinge against every other row, keep the largest (autograd on)."""
    a = F.normalize(emb_a, dim=1)
    b = F.normalize(emb_b, dim=1)
    n = len(a)
    a_to_b, b_to_a = [], []
    for i in range(n):
        positive = a[i] @ b[i]
        hinges_a = [torch.clamp(margin + a[i] @ b[j] - positive, min=0) for j in range(n) if j != i]
        hinges_b = [torch.clamp(margin + a[j] @ b[i] - positive, min=0) for j in range(n) if j != i]
        a_to_b.append(torch.stack(hinges_a).max())
        b_to_a.append(torch.stack(hinges_b).max())
    return torch.stack(a_to_b).mean() + torch.stack(b_to_a).mean()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("margin", [0.0, 0.2, 0.5])
def test_hardest_negative_matches_brute_force(seed: int, margin: float) -> None:
    g = torch.Generator().manual_seed(seed)
    emb_a = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    emb_b = (emb_a + 0.8 * torch.randn(7, 5, generator=g, dtype=torch.float64)).detach()
    emb_b.requires_grad_(True)
    ours = L.hardest_negative_triplet_loss(emb_a, emb_b, margin)
    reference = brute_force_hardest(emb_a, emb_b, margin)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-9, abs=1e-12)
    assert ours.item() > 0  # some hinges are active, so the gradients below are not all 0
    ours_grads = torch.autograd.grad(ours, (emb_a, emb_b))
    reference_grads = torch.autograd.grad(reference, (emb_a, emb_b))
    for mine, theirs in zip(ours_grads, reference_grads):
        assert torch.allclose(mine, theirs, rtol=1e-9, atol=1e-12)


def test_hardest_negative_extremes() -> None:
    emb = torch.eye(5)
    # matched pairs identical, negatives orthogonal: a margin below 1 is already satisfied
    assert L.hardest_negative_triplet_loss(emb, emb, margin=0.5).item() == 0.0
    assert L.hardest_negative_triplet_loss(emb, emb, margin=1.5).item() == pytest.approx(1.0)
    # all embeddings the same: every negative is as close as the positive -> 2 * margin
    same = torch.ones(4, 3)
    assert L.hardest_negative_triplet_loss(same, same, margin=0.2).item() == pytest.approx(0.4)


def test_triplet_errors() -> None:
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"distance must be one of \('cosine', 'euclidean'\)"):
        L.triplet_loss(x, x, x, distance="manhattan")
    with pytest.raises(ValueError, match=r"margin must be a finite number >= 0, got -0.1"):
        L.triplet_loss(x, x, x, margin=-0.1)
    with pytest.raises(TypeError, match=r"margin must be a finite number >= 0, got str '0.2'"):
        L.hardest_negative_triplet_loss(x, x, margin="0.2")
    with pytest.raises(
        ValueError,
        match=r"negative must be a float tensor of shape \(B, D\) with B = 4 and D = 3 as in anchor, got shape \(4,\)",
    ):
        L.triplet_loss(x, x, x[:, 0])
    with pytest.raises(ValueError, match=r"positive must be a float tensor.*torch.int64"):
        L.triplet_loss(x, x.long(), x)
    with pytest.raises(
        ValueError,
        match=r"negative must be a float tensor of shape \(B, D\) with B = 4 and D = 3 as in anchor",
    ):
        L.triplet_loss(x, x, x[:2])
    with pytest.raises(ValueError, match=r"the batch holds 0 pairs"):
        L.triplet_loss(x[:0], x[:0], x[:0])
    with pytest.raises(
        TypeError,
        match=r"emb_b must be a torch.Tensor of floats \(B, D\) with B = 4 and D = 3 as in emb_a, got list",
    ):
        L.hardest_negative_triplet_loss(x, x.tolist())
    with pytest.raises(
        ValueError,
        match=r"emb_b must be a float tensor of shape \(B, D\) with B = 4 and D = 3 as in emb_a, got shape \(4, 2\)",
    ):
        L.hardest_negative_triplet_loss(x, x[:, :2])
    with pytest.raises(ValueError, match=r"the batch holds 1 pairs; this loss needs at least 2"):
        L.hardest_negative_triplet_loss(x[:1], x[:1])


@pytest.mark.parametrize("margin", [math.nan, math.inf, -math.inf, -0.5])
def test_triplet_losses_refuse_a_margin_that_is_not_finite_and_nonnegative(margin: float) -> None:
    x = torch.randn(4, 3)
    message = rf"margin must be a finite number >= 0, got {margin!r}"
    with pytest.raises(ValueError, match=message):
        L.triplet_loss(x, x, x, margin=margin)
    with pytest.raises(ValueError, match=message):
        L.hardest_negative_triplet_loss(x, x, margin=margin)


def test_triplet_margin_refuses_a_bool() -> None:
    x = torch.randn(4, 3)
    with pytest.raises(TypeError, match=r"margin must be a finite number >= 0, got bool True"):
        L.triplet_loss(x, x, x, margin=True)


# ----------------------------------------------------------------------------------------------
# sequence loss, perplexity, L2


def test_sequence_loss_matches_manual_masked_mean() -> None:
    b, t, v, pad = 3, 6, 11, 0
    logits = torch.randn(b, t, v)
    targets = torch.randint(1, v, (b, t))
    targets[0, 4:] = pad
    targets[2, 1:] = pad
    total, count = 0.0, 0
    for i in range(b):
        for j in range(t):
            if targets[i, j] == pad:
                continue
            row = logits[i, j].double()
            total += -(row[targets[i, j]] - torch.logsumexp(row, 0)).item()
            count += 1
    assert count == 4 + 6 + 1
    loss = L.sequence_loss(logits, targets, pad_id=pad)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(total / count, rel=1e-5)
    assert L.sequence_loss(logits, targets).item() == loss.item()  # default pad id is <pad> = 0


def test_sequence_loss_other_pad_and_smoothing() -> None:
    logits = torch.randn(2, 4, 5)
    targets = torch.tensor([[1, 2, 4, 4], [0, 3, 2, 4]])  # pad id 4
    flat = L.cross_entropy(logits.reshape(8, 5), targets.reshape(8), 0.1, ignore_index=4)
    assert L.sequence_loss(logits, targets, pad_id=4, label_smoothing=0.1) == flat
    # a token equal to 0 is a real word when pad_id is 4
    keep = targets.reshape(8) != 4
    expected = hand_cross_entropy(logits.reshape(8, 5)[keep], targets.reshape(8)[keep], 0.1)
    assert flat.item() == pytest.approx(expected, rel=1e-5)


def test_sequence_loss_perfect_and_uniform() -> None:
    targets = torch.tensor([[3, 1, 2, 0]])
    perfect = F.one_hot(targets, 5).float() * 50
    assert L.sequence_loss(perfect, targets).item() < 1e-6
    uniform = torch.zeros(1, 4, 5)
    loss = L.sequence_loss(uniform, targets)
    assert loss.item() == pytest.approx(math.log(5))
    assert L.perplexity(loss) == pytest.approx(5.0)


def test_perplexity() -> None:
    assert L.perplexity(0.0) == 1.0
    assert L.perplexity(math.log(7)) == pytest.approx(7.0)
    assert L.perplexity(torch.tensor([math.log(3)])) == pytest.approx(3.0)
    assert L.perplexity(1000.0) == math.inf


def test_sequence_loss_and_perplexity_errors() -> None:
    logits, targets = torch.randn(2, 3, 5), torch.tensor([[1, 2, 0], [3, 0, 0]])
    with pytest.raises(
        ValueError, match=r"logits must be a float tensor of shape \(B, T, V\), got shape \(6, 5\)"
    ):
        L.sequence_loss(logits.reshape(6, 5), targets)
    with pytest.raises(
        ValueError, match=r"targets must be an integer tensor of shape \(2, 3\).*torch.float32"
    ):
        L.sequence_loss(logits, targets.float())
    with pytest.raises(ValueError, match=r"targets must be an integer .* got shape \(2, 4\)"):
        L.sequence_loss(logits, torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets must be an integer .* got shape \(6,\)"):
        L.sequence_loss(logits, targets.reshape(6))
    with pytest.raises(ValueError, match=r"target must hold classes in 0..4, got min 1, max 5"):
        L.sequence_loss(logits, torch.tensor([[1, 2, 0], [5, 0, 0]]))
    with pytest.raises(ValueError, match=r"every one is ignore_index"):
        L.sequence_loss(logits, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"pad_id must be an int >= 0, got NoneType None"):
        L.sequence_loss(logits, targets, pad_id=None)
    with pytest.raises(ValueError, match=r"loss must be a scalar.*shape \(2,\)"):
        L.perplexity(torch.ones(2))
    with pytest.raises(ValueError, match=r"loss must be a mean cross-entropy >= 0, got -1.0"):
        L.perplexity(-1.0)
    with pytest.raises(ValueError, match=r"loss must be a mean cross-entropy >= 0, got nan"):
        L.perplexity(math.nan)


def small_model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.LayerNorm(2))


def test_l2_penalty_matches_manual_sum() -> None:
    model = small_model()
    weights = [model[0].weight, model[2].weight, model[3].weight]
    biases = [model[0].bias, model[2].bias, model[3].bias]
    no_bias = sum((w.detach() ** 2).sum().item() for w in weights)
    with_bias = no_bias + sum((b.detach() ** 2).sum().item() for b in biases)
    assert L.l2_penalty(model, 0.5).item() == pytest.approx(0.5 * no_bias, rel=1e-6)
    assert L.l2_penalty(model, 0.5, include_bias=True).item() == pytest.approx(
        0.5 * with_bias, rel=1e-6
    )
    model[0].weight.requires_grad_(False)  # frozen parameters are not penalised
    frozen = no_bias - (model[0].weight.detach() ** 2).sum().item()
    assert L.l2_penalty(model, 1.0).item() == pytest.approx(frozen, rel=1e-6)
    assert L.l2_penalty(nn.ReLU(), 1.0).item() == 0.0
    assert L.l2_penalty(model, 0).item() == 0.0


def test_l2_penalty_gradient_is_weight_decay() -> None:
    # d/dw (weight * w^2) = 2 * weight * w: what SGD's weight_decay=2 * weight adds to a gradient
    model, weight = small_model(), 0.05
    params = dict(model.named_parameters())
    penalty = L.l2_penalty(model, weight)
    grads = torch.autograd.grad(penalty, list(params.values()), allow_unused=True)
    for (name, p), grad in zip(params.items(), grads):
        if name.endswith("bias"):
            assert grad is None  # biases are not in the penalty at all
        else:
            assert torch.allclose(grad, 2 * weight * p.detach())


def test_l2_penalty_errors() -> None:
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got list"):
        L.l2_penalty([torch.ones(2)], 0.1)
    with pytest.raises(ValueError, match=r"weight must be a finite number >= 0, got -0.1"):
        L.l2_penalty(small_model(), -0.1)
    with pytest.raises(ValueError, match=r"weight must be a finite number >= 0, got inf"):
        L.l2_penalty(small_model(), math.inf)
    with pytest.raises(TypeError, match=r"weight must be a finite number >= 0, got NoneType"):
        L.l2_penalty(small_model(), None)


def test_slot_attribute_loss_is_the_sum_of_four_cross_entropies() -> None:
    b = 5
    logits = torch.randn(b, 3, sum(ATTRIBUTE_CLASSES))  # what a SlotAttributeHead returns
    targets = torch.stack([torch.randint(0, c, (b, 3)) for c in ATTRIBUTE_CLASSES], dim=-1)
    by_hand = 0.0
    start = 0
    for i, c in enumerate(ATTRIBUTE_CLASSES):
        part = logits[..., start : start + c]
        log_p = part.log_softmax(-1).gather(-1, targets[..., i : i + 1]).squeeze(-1)
        by_hand = by_hand - log_p.mean()
        start += c
    torch.testing.assert_close(L.slot_attribute_loss(logits, targets), by_hand)
    with pytest.raises(
        ValueError,
        match=r"targets must be an integer tensor of shape \(B, slots, 4\) with B = 5 and slots = 3 as in logits",
    ):
        L.slot_attribute_loss(logits, targets[..., :3])
    with pytest.raises(
        ValueError, match=r"logits must be a float tensor of shape \(B, slots, 22\)"
    ):
        L.slot_attribute_loss(logits[..., :5], targets)
    with_nan = logits.clone()
    with_nan[0, 1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"^logits holds NaN; every score must be a number$"):
        L.slot_attribute_loss(with_nan, targets)
