"""mmcourse.joint against independent references: torch's cosine_similarity, brute-force loops,
explicit formulas, nn.Linear on a concatenation, and autograd."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse import joint

matplotlib.use("Agg")

pytestmark = pytest.mark.usefixtures("close_figures", "one_thread")


# ----------------------------------------------------------------------------- geometry


def test_cosine_similarity_matrix_matches_torch() -> None:
    a, b = torch.randn(5, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    expected = torch.tensor([[F.cosine_similarity(u, v, dim=0).item() for v in b] for u in a])
    torch.testing.assert_close(joint.cosine_similarity_matrix(a, b), expected.double())


def test_cosine_similarity_matrix_is_scale_invariant_and_safe_on_zero_rows() -> None:
    a = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    b = torch.tensor([[6.0, 8.0], [-4.0, 3.0]])
    s = joint.cosine_similarity_matrix(a, b)
    torch.testing.assert_close(s, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (
            torch.ones(2),
            torch.ones(1, 2),
            r"a must be a float tensor of shape \(N, D\), got shape \(2,\)",
        ),
        (
            torch.ones(2, 2),
            torch.ones(2, 3),
            r"b must be a float tensor of shape \(M, D\) with D = 2 as in a, got shape \(2, 3\)",
        ),
        (torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2), "a must be a float tensor"),
    ],
)
def test_cosine_similarity_matrix_errors(a: object, b: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        joint.cosine_similarity_matrix(a, b)  # type: ignore[arg-type]


def test_cosine_similarity_matrix_refuses_a_list() -> None:
    with pytest.raises(
        TypeError, match=r"a must be a torch.Tensor of floats \(N, D\), got list \[\[1.0, 2.0\]\]"
    ):
        joint.cosine_similarity_matrix([[1.0, 2.0]], torch.ones(1, 2))  # type: ignore[arg-type]


@pytest.mark.parametrize("eps", [0.0, -1e-8, math.nan, math.inf])
def test_cosine_similarity_matrix_rejects_bad_eps(eps: float) -> None:
    with pytest.raises(ValueError, match=rf"eps must be a finite number > 0, got {eps!r}"):
        joint.cosine_similarity_matrix(torch.ones(1, 2), torch.ones(1, 2), eps=eps)


def test_nearest_matches_a_brute_force_loop() -> None:
    queries, keys = torch.randn(6, 4), torch.randn(20, 4)
    got = joint.nearest(queries, keys, k=3)
    for q, row in zip(queries, got):
        scores = [(F.cosine_similarity(q, key, dim=0).item(), j) for j, key in enumerate(keys)]
        best = [j for _, j in sorted(scores, reverse=True)[:3]]
        assert row.tolist() == best


@pytest.mark.parametrize("k", [0, 21, 1.5, True])
def test_nearest_rejects_bad_k(k: object) -> None:
    with pytest.raises(ValueError, match="k must be an int between 1 and the number of keys 20"):
        joint.nearest(torch.randn(2, 4), torch.randn(20, 4), k=k)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- DigitWordSpace


def test_digit_word_space_logits_are_cosine_over_temperature() -> None:
    model = joint.DigitWordSpace(dim=3, hidden=8, temperature=0.5)
    images = torch.randn(4, 1, 28, 28)
    points = model.image_encoder(images.reshape(4, 784))
    words = model.word_embedding.weight
    expected = torch.stack(
        [torch.stack([F.cosine_similarity(p, w, dim=0) / 0.5 for w in words]) for p in points]
    )
    torch.testing.assert_close(model(images), expected)
    torch.testing.assert_close(model.encode_images(images[:, 0]), points)
    assert model.nearest_words(images).tolist() == expected.argmax(dim=1).tolist()


def test_digit_word_space_linear_encoder_and_word_lookup() -> None:
    model = joint.DigitWordSpace(dim=2, hidden=0, words=("cat", "dog", "fish"))
    assert isinstance(model.image_encoder, nn.Linear)
    assert model.word_ids(["fish", "cat"]).tolist() == [2, 0]
    assert model.word_ids("dog").tolist() == [1]
    torch.testing.assert_close(model.encode_words("dog"), model.word_embedding.weight[1:2])
    torch.testing.assert_close(
        model.encode_words(torch.tensor([2, 2])), model.word_embedding.weight[[2, 2]]
    )
    assert model.encode_words() is model.word_embedding.weight


def test_digit_word_space_learns_a_separable_toy_task() -> None:
    """Ten classes of 8x8 images, each with its own bright 2x2 patch: the contrastive cross-entropy must
    put every image nearest to its own word (a model that cannot learn stays near 10 %)."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 10
    images = 0.1 * torch.randn(200, 1, 8, 8, generator=generator)
    for i, c in enumerate(labels.tolist()):
        row, col = divmod(c, 4)
        images[i, 0, 3 * row : 3 * row + 2, 2 * col : 2 * col + 2] += 2.0
    model = joint.DigitWordSpace(dim=2, hidden=32, temperature=0.1, image_size=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert (model.nearest_words(images) == labels).float().mean().item() > 0.95


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 0}, "dim must be a positive int"),
        ({"hidden": -1}, "hidden must be an int >= 0"),
        ({"words": ("one",)}, "at least two distinct words"),
        ({"words": ("one", "one")}, "at least two distinct words"),
        ({"temperature": 0.0}, "temperature must be a finite number > 0"),
        ({"temperature": math.nan}, "temperature must be a finite number > 0, got nan"),
        ({"image_size": 0}, "image_size must be a positive int"),
    ],
)
def test_digit_word_space_constructor_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        joint.DigitWordSpace(**kwargs)


def test_digit_word_space_input_errors() -> None:
    model = joint.DigitWordSpace()
    with pytest.raises(ValueError, match="images must be a float tensor, got torch.uint8"):
        model.encode_images(torch.zeros(2, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="images must be a float tensor, got list"):
        model.encode_images([[0.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"images must have shape \(B, 1, 28, 28\)"):
        model.encode_images(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="unknown word"):
        model.word_ids(["eleven"])
    with pytest.raises(ValueError, match="word ids must be a 1-D long tensor"):
        model.encode_words(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"word ids must lie in \[0, 10\)"):
        model.encode_words(torch.tensor([10]))


# ----------------------------------------------------------------------------- joint layer


def test_split_concat_weight_takes_the_column_blocks() -> None:
    weight = torch.arange(12.0).reshape(2, 6)
    w_x, w_y = joint.split_concat_weight(weight, 4)
    assert w_x.tolist() == [[0, 1, 2, 3], [6, 7, 8, 9]]
    assert w_y.tolist() == [[4, 5], [10, 11]]


@pytest.mark.parametrize("image_dim", [0, 6, 2.0])
def test_split_concat_weight_errors(image_dim: object) -> None:
    with pytest.raises(ValueError, match="image_dim must be an int between 1 and 5"):
        joint.split_concat_weight(torch.ones(2, 6), image_dim)  # type: ignore[arg-type]


@pytest.mark.parametrize("bias", [True, False])
def test_joint_linear_equals_linear_on_concatenation(bias: bool) -> None:
    fc = nn.Linear(5 + 3, 4, bias=bias).double()
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    layer = joint.JointLinear.from_concat(fc, image_dim=5)
    torch.testing.assert_close(layer(x, y), fc(torch.cat([x, y], dim=1)), atol=1e-12, rtol=0)
    expected = x @ fc.weight[:, :5].T + y @ fc.weight[:, 5:].T + (fc.bias if bias else 0)
    torch.testing.assert_close(layer(x, y), expected, atol=1e-12, rtol=0)
    back = layer.to_concat()
    torch.testing.assert_close(back.weight, fc.weight)
    assert (back.bias is None) == (not bias)
    torch.testing.assert_close(layer.project_image(x), x @ fc.weight[:, :5].T)
    torch.testing.assert_close(layer.project_text(y), y @ fc.weight[:, 5:].T)


def test_joint_linear_shapes_and_parameters() -> None:
    layer = joint.JointLinear(2304, 128, 64)
    assert tuple(layer.weight_x.shape) == (64, 2304)
    assert tuple(layer.weight_y.shape) == (64, 128)
    assert sum(p.numel() for p in layer.parameters()) == 64 * (2304 + 128) + 64
    assert layer(torch.randn(3, 2304), torch.randn(3, 128)).shape == (3, 64)
    assert "image_dim=2304, text_dim=128, joint_dim=64, bias=True" in repr(layer)


def test_joint_linear_errors() -> None:
    with pytest.raises(ValueError, match="text_dim must be a positive int"):
        joint.JointLinear(3, 0, 2)
    layer = joint.JointLinear(3, 2, 4)
    with pytest.raises(ValueError, match=r"text features .* with N = 2 as in image features"):
        layer(torch.randn(2, 3), torch.randn(3, 2))
    with pytest.raises(
        ValueError, match=r"image features must be a float tensor of shape \(\w, 3\)"
    ):
        layer(torch.randn(2, 4), torch.randn(2, 2))
    with pytest.raises(
        ValueError, match=r"text features must be a float tensor of shape \(\w, 2\)"
    ):
        layer.project_text(torch.randn(2, 3))
    with pytest.raises(TypeError, match="linear must be an nn.Linear"):
        joint.JointLinear.from_concat(nn.Conv1d(1, 1, 1), 1)  # type: ignore[arg-type]


def test_joint_linear_refuses_lists_and_bad_sizes() -> None:
    """A Python list used to fail deep inside (AttributeError: 'list' object has no attribute
    'shape')."""
    layer = joint.JointLinear(3, 2, 4)
    x, y = torch.randn(2, 3), torch.randn(2, 2)
    with pytest.raises(
        TypeError, match=r"image features must be a torch.Tensor of floats \(N, 3\), got list"
    ):
        layer(x.tolist(), y)
    with pytest.raises(
        TypeError, match=r"text features must be a torch.Tensor of floats \(N, 2\) with N = 2 as"
    ):
        layer(x, y.tolist())
    with pytest.raises(
        TypeError, match=r"image features must be a torch.Tensor of floats \(N, 3\), got list"
    ):
        layer.project_image(x.tolist())
    with pytest.raises(TypeError, match=r"joint_dim must be a positive int, got float 4.0"):
        joint.JointLinear(3, 2, 4.0)
    with pytest.raises(ValueError, match=r"image_dim must be a positive int, got -3"):
        joint.JointLinear(-3, 2, 4)


# ----------------------------------------------------------------------------- gradients


def _random_problem(batch: int = 6, d_x: int = 5, d_y: int = 3, k: int = 4):
    x = torch.randn(batch, d_x, dtype=torch.float64, requires_grad=True)
    y = torch.randn(batch, d_y, dtype=torch.float64, requires_grad=True)
    w_x = torch.randn(k, d_x, dtype=torch.float64, requires_grad=True)
    w_y = torch.randn(k, d_y, dtype=torch.float64, requires_grad=True)
    b = torch.randn(k, dtype=torch.float64, requires_grad=True)
    return x, y, w_x, w_y, b


def _assert_backward_matches_autograd(loss: torch.Tensor, grad_z: torch.Tensor, problem) -> None:
    x, y, w_x, w_y, b = problem
    loss.backward()
    grads = joint.joint_linear_backward(x.detach(), y.detach(), w_x.detach(), w_y.detach(), grad_z)
    for mine, reference in (
        (grads.weight_x, w_x.grad),
        (grads.weight_y, w_y.grad),
        (grads.bias, b.grad),
        (grads.image_features, x.grad),
        (grads.text_features, y.grad),
    ):
        torch.testing.assert_close(mine, reference, atol=1e-12, rtol=1e-10)


def test_backward_matches_autograd_for_any_upstream_gradient() -> None:
    problem = _random_problem()
    x, y, w_x, w_y, b = problem
    z = x @ w_x.T + y @ w_y.T + b
    upstream = torch.randn_like(z)
    _assert_backward_matches_autograd((z * upstream).sum(), upstream, problem)


def test_squared_error_gradient_matches_autograd() -> None:
    problem = _random_problem()
    x, y, w_x, w_y, b = problem
    z = x @ w_x.T + y @ w_y.T + b
    target = torch.randn_like(z)
    loss = 0.5 * ((z - target) ** 2).sum(dim=1).mean()
    grad_z = joint.squared_error_grad(z.detach(), target)
    torch.testing.assert_close(grad_z, torch.autograd.grad(loss, z, retain_graph=True)[0])
    _assert_backward_matches_autograd(loss, grad_z, problem)


def test_softmax_cross_entropy_gradient_matches_autograd() -> None:
    problem = _random_problem(batch=7, k=5)
    x, y, w_x, w_y, b = problem
    z = x @ w_x.T + y @ w_y.T + b
    labels = torch.tensor([0, 4, 2, 2, 1, 3, 0])
    loss = F.cross_entropy(z, labels)
    grad_z = joint.softmax_cross_entropy_grad(z.detach(), labels)
    torch.testing.assert_close(grad_z, torch.autograd.grad(loss, z, retain_graph=True)[0])
    _assert_backward_matches_autograd(loss, grad_z, problem)


def test_gradient_errors() -> None:
    x, y, w_x, w_y = torch.randn(4, 3), torch.randn(4, 2), torch.randn(5, 3), torch.randn(5, 2)
    with pytest.raises(
        ValueError,
        match=r"weight_x must be a float tensor of shape \(K, Dx\) with Dx = 3 as in image_features",
    ):
        joint.joint_linear_backward(x, y, torch.randn(5, 2), w_y, torch.randn(4, 5))
    with pytest.raises(
        ValueError,
        match=r"weight_y must be .* shape \(K, Dy\) with K = 5 as in weight_x and Dy = 2 as in "
        r"text_features, got shape \(6, 2\)",
    ):
        joint.joint_linear_backward(x, y, w_x, torch.randn(6, 2), torch.randn(4, 5))
    with pytest.raises(
        ValueError, match=r"text_features must .* shape \(N, Dy\) with N = 4 as in image_features"
    ):
        joint.joint_linear_backward(x, torch.randn(3, 2), w_x, w_y, torch.randn(4, 5))
    grad_z_needs = r"grad_z must .* shape \(N, K\) with N = 4 as in image_features and K = 5 as in"
    with pytest.raises(ValueError, match=grad_z_needs + r" weight_x, got shape \(4, 4\)"):
        joint.joint_linear_backward(x, y, w_x, w_y, torch.randn(4, 4))
    with pytest.raises(ValueError, match=grad_z_needs + r" weight_x, got shape \(3, 5\)"):
        joint.joint_linear_backward(x, y, w_x, w_y, torch.randn(3, 5))
    with pytest.raises(ValueError, match="target must have the shape of z"):
        joint.squared_error_grad(torch.randn(4, 5), torch.randn(4, 4))
    with pytest.raises(ValueError, match=r"labels must be an integer tensor of shape \(N,\)"):
        joint.softmax_cross_entropy_grad(torch.randn(4, 5), torch.zeros(4))
    with pytest.raises(ValueError, match=r"labels .* \(N,\) with N = 4 as in z"):
        joint.softmax_cross_entropy_grad(torch.randn(4, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must hold classes in 0..4"):
        joint.softmax_cross_entropy_grad(torch.randn(4, 5), torch.tensor([0, 1, 5, 2]))


# ----------------------------------------------------------------------------- the 2-D toy


def test_toy_pairs_shapes_and_balance() -> None:
    pairs = joint.make_toy_pairs(n=30, n_concepts=3, seed=1)
    assert pairs.image_features.shape == (30, 2) and pairs.text_features.shape == (30, 2)
    assert torch.bincount(pairs.labels).tolist() == [10, 10, 10]
    again = joint.make_toy_pairs(n=30, n_concepts=3, seed=1)
    assert torch.equal(pairs.image_features, again.image_features)
    assert not torch.equal(pairs.image_features, joint.make_toy_pairs(n=30, seed=2).image_features)


def test_toy_modalities_are_linearly_related_without_noise() -> None:
    """Without noise, text = image @ M for one 2x2 matrix M (least squares residual 0), and
    the two modalities disagree (M is far from the identity)."""
    pairs = joint.make_toy_pairs(n=40, noise=0.0, seed=0)
    solution = torch.linalg.lstsq(pairs.image_features.double(), pairs.text_features.double())
    residual = pairs.image_features.double() @ solution.solution - pairs.text_features.double()
    assert residual.abs().max().item() < 1e-5
    assert (solution.solution - torch.eye(2, dtype=torch.float64)).abs().max().item() > 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be a positive int"),
        ({"n_concepts": 0}, "n_concepts must be a positive int"),
        ({"n": 2, "n_concepts": 3}, "n_concepts must be at most n=2"),
        ({"noise": -0.1}, "noise must be a finite number >= 0"),
        ({"noise": math.nan}, "noise must be a finite number >= 0, got nan"),
    ],
)
def test_toy_pairs_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        joint.make_toy_pairs(**kwargs)


def test_pair_alignment_losses_match_explicit_formulas() -> None:
    u, v = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    squared = sum(((u[i] - v[i]) ** 2).sum() for i in range(5)) / 5
    torch.testing.assert_close(joint.pair_alignment_loss(u, v, "squared"), squared)
    t = 0.2
    cos = [[F.cosine_similarity(u[i], v[j], dim=0).item() / t for j in range(5)] for i in range(5)]
    rows = [-(cos[i][i] - math.log(sum(math.exp(c) for c in cos[i]))) for i in range(5)]
    cols = [-(cos[j][j] - math.log(sum(math.exp(cos[i][j]) for i in range(5)))) for j in range(5)]
    expected = (sum(rows) / 5 + sum(cols) / 5) / 2
    got = joint.pair_alignment_loss(u, v, "contrastive", temperature=t).item()
    assert got == pytest.approx(expected, rel=1e-9)


def test_pair_alignment_loss_errors() -> None:
    u = torch.randn(4, 2)
    with pytest.raises(
        ValueError,
        match=r"text_points must be .* shape \(N, D\) with N = 4 and D = 2 as in image_points, "
        r"got shape \(3, 2\)",
    ):
        joint.pair_alignment_loss(u, torch.randn(3, 2))
    with pytest.raises(ValueError, match="kind must be 'contrastive' or 'squared'"):
        joint.pair_alignment_loss(u, u, kind="cosine")
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got 0"):
        joint.pair_alignment_loss(u, u, temperature=0)


def _partner_accuracy(u: torch.Tensor, v: torch.Tensor) -> float:
    """Fraction of image points whose most cosine-similar text point is their own partner."""
    similarity = torch.stack([F.cosine_similarity(p, v, dim=1) for p in u])
    return (similarity.argmax(dim=1) == torch.arange(len(u))).float().mean().item()


def test_align_pairs_contrastive_aligns_and_squared_collapses() -> None:
    pairs = joint.make_toy_pairs(n=60, seed=0)
    before = _partner_accuracy(pairs.image_features, pairs.text_features)
    layer, losses = joint.align_pairs(pairs, "contrastive", steps=150)
    assert len(losses) == 150 and losses[-1] < losses[0]
    with torch.no_grad():
        u, v = layer.project_image(pairs.image_features), layer.project_text(pairs.text_features)
    assert _partner_accuracy(u, v) > before + 0.1
    # the same concept lands in the same direction for both modalities
    same = F.cosine_similarity(u, v, dim=1).mean().item()
    assert same > 0.9
    layer, losses = joint.align_pairs(pairs, "squared", steps=300)
    with torch.no_grad():
        u = layer.project_image(pairs.image_features)
    scale = pairs.image_features.norm(dim=1).mean().item()
    assert losses[-1] < 1e-3 and u.norm(dim=1).mean().item() < 0.1 * scale


def test_align_pairs_errors() -> None:
    with pytest.raises(TypeError, match="pairs must be a ToyPairs"):
        joint.align_pairs((torch.ones(2, 2), torch.ones(2, 2)))  # type: ignore[arg-type]
    pairs = joint.make_toy_pairs(n=6)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        joint.align_pairs(pairs, steps=0)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        joint.align_pairs(pairs, lr=-1.0)


# ----------------------------------------------------------------------------- pictures


def test_plot_shared_space_draws_points_and_words() -> None:
    points, labels = torch.randn(30, 2), torch.arange(30) % 3
    fig = joint.plot_shared_space(points, labels, torch.randn(3, 2), ["a", "b", "c"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c"]
    assert len(ax.collections) == 3 + 3  # one scatter per class, one star per word


def test_plot_pairs_joins_every_pair() -> None:
    fig = joint.plot_pairs(torch.randn(8, 2), torch.randn(8, 2), torch.arange(8) % 2)
    assert len(fig.axes[0].lines) == 8
    fig = joint.plot_pairs(
        torch.randn(8, 2), torch.randn(8, 2), torch.arange(8) % 2, unit_circle=True
    )
    assert len(fig.axes[0].lines) == 9


def test_plot_errors() -> None:
    with pytest.raises(ValueError, match=r"image_points must be a float tensor of shape \(\w, 2\)"):
        joint.plot_shared_space(torch.randn(4, 3), torch.zeros(4), torch.randn(2, 2), ["a", "b"])
    labels = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="got 1 words for 2 word points"):
        joint.plot_shared_space(torch.randn(4, 2), labels, torch.randn(2, 2), ["a"])
    with pytest.raises(ValueError, match=r"labels .* \(N,\) with N = 4 as in image_points"):
        joint.plot_shared_space(torch.randn(4, 2), labels[:3], torch.randn(2, 2), ["a", "b"])
    with pytest.raises(ValueError, match=r"text_points .* with N = 4 as in image_points"):
        joint.plot_pairs(torch.randn(4, 2), torch.randn(3, 2), labels)
    with pytest.raises(ValueError, match=r"labels .* \(N,\) with N = 4 as in image_points"):
        joint.plot_pairs(torch.randn(4, 2), torch.randn(4, 2), labels[:2])
    with pytest.raises(ValueError, match=r"labels must be an integer tensor .* convert float"):
        joint.plot_pairs(torch.randn(4, 2), torch.randn(4, 2), labels.float())
