"""The article's listing as rebuilt in mmcourse.article: its bugs must stay reproducible, and
the repaired model and helpers must be right (checked against hand computations)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mmcourse import article
from mmcourse.models.text import BagOfWordsEncoder, RNNTextEncoder

# ----------------------------------------------------------------------------- undefined names


def test_undefined_names_of_the_listing() -> None:
    assert article.undefined_names(article.TextEncoder) == ["num_words"]
    assert article.undefined_names(article.train_epoch) == ["loss_fn"]
    assert article.undefined_names(article.evaluate) == ["loss_fn"]
    assert article.undefined_names(article.run_listing) == [
        "model",
        "optimizer",
        "test_loader",
        "train_loader",
        "val_loader",
    ]
    assert article.undefined_names(article.JointClassifier) == []
    assert article.undefined_names(article.caption_log_likelihood) == []


def _reads_missing(values: list[int]) -> list[int]:
    return [scale * v for v in values] + [len(values), offset]  # noqa: F821


class _Reader:
    def method(self) -> int:
        return helper_value  # noqa: F821


def test_undefined_names_finds_nested_code_and_methods() -> None:
    # the comprehension is its own code object; builtins (len) are not missing
    assert article.undefined_names(_reads_missing) == ["offset", "scale"]
    assert article.undefined_names(_Reader) == ["helper_value"]
    # and each one really is a NameError when the code runs
    with pytest.raises(NameError, match="scale"):
        _reads_missing([1])
    with pytest.raises(NameError, match="helper_value"):
        _Reader().method()


def test_undefined_names_rejects_other_objects() -> None:
    with pytest.raises(ValueError, match="function or a class"):
        article.undefined_names(42)


def test_assume_defines_then_removes_names() -> None:
    with pytest.raises(NameError, match="num_words"):
        article.TextEncoder(4, 8, 1)
    with article.assume(num_words=17):
        encoder = article.TextEncoder(4, 8, 1)
        assert article.undefined_names(article.TextEncoder) == []
    assert encoder.embedding.num_embeddings == 17
    assert article.undefined_names(article.TextEncoder) == ["num_words"]
    with pytest.raises(RuntimeError), article.assume(num_words=3):
        raise RuntimeError("boom")
    assert "num_words" not in vars(article)


def test_assume_refuses_to_replace_existing_names() -> None:
    with pytest.raises(ValueError, match="already exist"), article.assume(evaluate=None):
        pass
    assert callable(article.evaluate)


# ----------------------------------------------------------------------------- the listing's shapes


def test_image_encoder_gives_2304_features_on_28x28() -> None:
    assert article.ImageEncoder()(torch.zeros(2, 1, 28, 28)).shape == (2, 256 * 3 * 3)


def test_text_encoder_reads_the_batch_as_time() -> None:
    with article.assume(num_words=20):
        encoder = article.TextEncoder(6, 5, 1)
    ids = torch.randint(0, 20, (4, 7))  # meant as 4 texts of 7 tokens
    out = encoder(ids)
    assert out.shape == (4, 7, 5)  # the whole output sequence, 3-D
    edited = ids.clone()
    edited[0] = (ids[0] + 1) % 20
    changed = (encoder(edited) - out).abs().amax(dim=(1, 2)) > 1e-6
    assert changed.tolist() == [True, True, True, True]  # row 0 leaks into every later row
    edited = ids.clone()
    edited[3] = (ids[3] + 1) % 20
    changed = (encoder(edited) - out).abs().amax(dim=(1, 2)) > 1e-6
    assert changed.tolist() == [False, False, False, True]  # ... and nothing flows backwards


def test_joint_encoder_fails_on_batch_first_captions() -> None:
    with article.assume(num_words=10):
        model = article.JointEncoder(image_dim=2304, text_dim=4, joint_dim=8)
    assert model.fc.in_features == 16
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        model(torch.zeros(3, 1, 28, 28), torch.zeros(3, 5, dtype=torch.long))


def test_joint_encoder_runs_only_with_1d_text_and_matching_sizes() -> None:
    # 8x8 images give 256 * 1 * 1 features, so joint_dim=256 makes 2 * joint_dim fit
    with article.assume(num_words=10):
        model = article.JointEncoder(image_dim=999, text_dim=4, joint_dim=256)
    targets = torch.tensor([3, 1, 4, 1, 5])
    out = model(torch.zeros(5, 1, 8, 8), targets)
    assert out.shape == (5, 256)
    with pytest.raises(RuntimeError):
        model(torch.zeros(5, 1, 28, 28), targets)  # 2304 + 256 != 512


def test_multimodal_loss_is_cross_entropy() -> None:
    logits = torch.randn(6, 4)
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    by_hand = (
        -sum(
            logits[i, target[i]] - math.log(sum(math.exp(v) for v in logits[i].tolist()))
            for i in range(6)
        )
        / 6
    )
    assert article.MultimodalLoss()(logits, target).item() == pytest.approx(float(by_hand), 1e-5)


# ----------------------------------------------------------------------------- the listing's loop


class _Leaky(nn.Module):
    """A model called the listing's way: model(inputs, targets)."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Linear(3, 4)
        self.answer = nn.Embedding(4, 4)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.image(inputs) + self.answer(targets)


def _dict_loader(n: int = 10, batch_size: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(1)
    inputs = torch.randn(n, 3, generator=g)
    targets = torch.randint(0, 4, (n,), generator=g)
    return DataLoader(article.DictDataset(inputs, targets), batch_size=batch_size)


def test_train_epoch_fails_as_printed() -> None:
    model = _Leaky()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tuples = DataLoader(TensorDataset(torch.randn(4, 3), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(TypeError, match="indices must be integers"):
        article.train_epoch(model, tuples, optimizer)
    with pytest.raises(NameError, match="loss_fn"):
        article.train_epoch(model, _dict_loader(), optimizer)
    with pytest.raises(NameError, match="loss_fn"):
        article.evaluate(model, _dict_loader())
    with pytest.raises(NameError, match="model"):
        article.run_listing()


def test_train_epoch_returns_mean_batch_loss_and_steps() -> None:
    model = _Leaky()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[float] = []

    def recording_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(output, target)
        seen.append(loss.item())
        return loss

    loader = _dict_loader(n=10, batch_size=4)  # batches of 4, 4, 2
    with article.assume(loss_fn=recording_loss):
        result = article.train_epoch(model, loader, optimizer)
    assert len(seen) == 3
    assert result == pytest.approx(sum(seen) / 3)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model.training


def test_evaluate_matches_a_hand_loop() -> None:
    model = _Leaky()
    loader = _dict_loader(n=10, batch_size=4)
    with article.assume(loss_fn=article.MultimodalLoss()):
        loss, acc = article.evaluate(model, loader)
    dataset = loader.dataset
    losses, correct = [], 0
    with torch.no_grad():
        for start in range(0, 10, 4):
            x = dataset.inputs[start : start + 4]
            y = dataset.targets[start : start + 4]
            out = model(x, y)
            losses.append(F.cross_entropy(out, y).item())
            correct += int((out.argmax(1) == y).sum())
    assert loss == pytest.approx(sum(losses) / len(losses), 1e-6)
    assert acc == pytest.approx(correct / 10)
    assert not model.training


def test_run_listing_runs_once_everything_is_supplied(capsys: pytest.CaptureFixture[str]) -> None:
    model = _Leaky()
    names = dict(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_loader=_dict_loader(),
        val_loader=_dict_loader(),
        test_loader=_dict_loader(),
        loss_fn=article.MultimodalLoss(),
    )
    with article.assume(**names):
        article.run_listing(epochs=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("test loss")


def test_dict_dataset_rows_and_errors() -> None:
    data = article.DictDataset(torch.arange(6).view(3, 2), torch.tensor([7, 8, 9]))
    assert len(data) == 3
    row = data[1]
    assert row["inputs"].tolist() == [2, 3] and int(row["targets"]) == 8
    batch = next(iter(DataLoader(data, batch_size=3)))
    assert batch["inputs"].shape == (3, 2) and batch["targets"].tolist() == [7, 8, 9]
    with pytest.raises(ValueError, match="must be tensors"):
        article.DictDataset([1, 2], torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="same first"):
        article.DictDataset(torch.zeros(3, 2), torch.zeros(4))


# ----------------------------------------------------------------------------- TargetAsText


def test_target_as_text_feeds_the_target_to_the_text_branch() -> None:
    model = article.JointClassifier(BagOfWordsEncoder(10, 4), image_dim=3, num_classes=5)
    target_ids = torch.tensor([[4, 5], [6, 0], [7, 8], [9, 0], [4, 9]])
    leaky = article.TargetAsText(model, target_ids)
    x = torch.randn(3, 3)
    targets = torch.tensor([2, 0, 4])
    assert torch.equal(leaky(x, targets), model(x, target_ids[targets]))
    assert "target_ids" not in leaky.state_dict()


@pytest.mark.parametrize(
    ("target_ids", "message"),
    [
        (torch.tensor([1, 2]), r"\(C, T\)"),
        (torch.tensor([[1.0, 2.0]]), "torch.long"),
    ],
)
def test_target_as_text_checks_its_table(target_ids: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        article.TargetAsText(nn.Identity(), target_ids)


def test_target_as_text_checks_targets() -> None:
    leaky = article.TargetAsText(nn.Identity(), torch.tensor([[1], [2]]))
    with pytest.raises(ValueError, match="class ids"):
        leaky(torch.zeros(2), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="class ids"):
        leaky(torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"0\.\.1"):
        leaky(torch.zeros(2), torch.tensor([0, 2]))


# ----------------------------------------------------------------------------- JointClassifier


def test_joint_classifier_is_the_joint_layer_then_a_head() -> None:
    model = article.JointClassifier(
        BagOfWordsEncoder(12, 5), image_dim=3, num_classes=4, joint_dim=6
    )
    x = torch.randn(2, 3)
    ids = torch.tensor([[4, 5, 0], [6, 7, 8]])
    # Z = W_X x + W_Y y + b equals one linear layer on the concatenation [x; y]
    y = model.text_encoder(ids)
    concat = nn.Linear(3 + 5, 6)
    with torch.no_grad():
        concat.weight.copy_(torch.cat([model.image_proj.weight, model.text_proj.weight], 1))
        concat.bias.copy_(model.image_proj.bias)
    z = concat(torch.cat([x, y], dim=1))
    assert torch.allclose(model(x, ids), model.head(z), atol=1e-6)
    assert model(x, ids).shape == (2, 4)


def test_joint_classifier_with_an_image_encoder_and_gradients() -> None:
    model = article.JointClassifier(
        RNNTextEncoder(10, 4, 6),
        image_dim=2304,
        num_classes=3,
        image_encoder=article.ImageEncoder(),
        hidden=0,
    )
    out = model(torch.randn(2, 1, 28, 28), torch.tensor([[4, 5, 6], [7, 0, 0]]))
    assert out.shape == (2, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_joint_classifier_rows_are_independent() -> None:
    model = article.JointClassifier(RNNTextEncoder(10, 4, 6), image_dim=3, num_classes=2)
    x = torch.randn(3, 3)
    ids = torch.tensor([[4, 5, 6], [7, 8, 0], [9, 0, 0]])
    edited = ids.clone()
    edited[0] = torch.tensor([9, 9, 9])
    diff = (model(x, edited) - model(x, ids)).abs().amax(dim=1)
    assert diff[0] > 1e-6 and torch.all(diff[1:] < 1e-6)


class _SequenceOut(nn.Module):
    out_dim = 4

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*ids.shape, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(text_encoder=nn.Identity(), image_dim=3, num_classes=2), "out_dim"),
        (dict(image_dim=0, num_classes=2), "image_dim"),
        (dict(image_dim=3, num_classes=True), "num_classes"),
        (dict(image_dim=3, num_classes=2, joint_dim=0), "joint_dim"),
        (dict(image_dim=3, num_classes=2, hidden=-1), "hidden"),
    ],
)
def test_joint_classifier_checks_its_arguments(kwargs: dict, message: str) -> None:
    kwargs.setdefault("text_encoder", BagOfWordsEncoder(10, 4))
    with pytest.raises(ValueError, match=message):
        article.JointClassifier(**kwargs)


def test_joint_classifier_checks_its_inputs() -> None:
    model = article.JointClassifier(BagOfWordsEncoder(10, 4), image_dim=3, num_classes=2)
    ids = torch.tensor([[4, 5], [6, 7]])
    with pytest.raises(ValueError, match=r"\(B, 3\).*image_encoder"):
        model(torch.zeros(2, 1, 28, 28), ids)
    with pytest.raises(ValueError, match="expected image_dim=3"):
        model(torch.zeros(2, 5), ids)
    with pytest.raises(ValueError, match="equal numbers"):
        model(torch.zeros(3, 3), ids)
    sequence = article.JointClassifier(_SequenceOut(), image_dim=3, num_classes=2)
    with pytest.raises(ValueError, match="one vector per text"):
        sequence(torch.zeros(2, 3), ids)


# ----------------------------------------------------------------------------- retrieval helpers


def test_caption_log_likelihood_refuses_nan_logits() -> None:
    logits = torch.zeros(2, 2, 5)
    logits[1, 0, 2] = float("nan")
    truth = torch.zeros(3, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"^logits holds NaN; every score must be a number$"):
        article.caption_log_likelihood(logits, truth, (3, 2))


def test_caption_log_likelihood_matches_a_loop() -> None:
    classes = (3, 2)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 2, 5, generator=g)
    truth = torch.stack(
        [torch.randint(0, 3, (5, 2), generator=g), torch.randint(0, 2, (5, 2), generator=g)],
        dim=2,
    )
    scores = article.caption_log_likelihood(logits, truth, classes)
    assert scores.shape == (4, 5)
    for n in range(4):
        for m in range(5):
            total = 0.0
            for s in range(2):
                start = 0
                for a, k in enumerate(classes):
                    row = logits[n, s, start : start + k].tolist()
                    norm = math.log(sum(math.exp(v) for v in row))
                    total += row[int(truth[m, s, a])] - norm
                    start += k
            assert scores[n, m].item() == pytest.approx(total, abs=1e-4)


def test_caption_log_likelihood_default_classes_fit_slot_targets() -> None:
    from mmcourse.data.questions import ATTRIBUTE_CLASSES

    logits = torch.zeros(2, 3, sum(ATTRIBUTE_CLASSES))
    truth = torch.zeros(3, 3, 4, dtype=torch.long)
    expected = -3 * sum(math.log(k) for k in ATTRIBUTE_CLASSES)  # uniform predictions
    assert torch.allclose(
        article.caption_log_likelihood(logits, truth), torch.full((2, 3), expected)
    )


@pytest.mark.parametrize(
    ("logits", "truth", "message"),
    [
        (
            torch.zeros(2, 3, 4),
            torch.zeros(1, 3, 2, dtype=torch.long),
            r"logits must be \(N, slots, 5\)",
        ),
        (
            torch.zeros(2, 3, 5),
            torch.zeros(1, 3, dtype=torch.long),
            r"truth must be \(M, slots, 2\)",
        ),
        (
            torch.zeros(2, 3, 5),
            torch.zeros(1, 2, 2, dtype=torch.long),
            r"truth must be \(M, 3, 2\)",
        ),
        (torch.zeros(2, 3, 5), torch.zeros(1, 3, 2), "torch.long"),
        (torch.zeros(2, 3, 5), torch.full((1, 3, 2), 2, dtype=torch.long), "must lie in"),
        ([1, 2], torch.zeros(1, 3, 2, dtype=torch.long), "list"),
    ],
)
def test_caption_log_likelihood_checks_inputs(logits: object, truth: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        article.caption_log_likelihood(logits, truth, (3, 2))


def test_same_layout_matches_a_loop() -> None:
    truth = torch.tensor([[[1, 2]], [[1, 3]], [[1, 2]], [[0, 0]]])
    relevant = article.same_layout(truth)
    for i in range(4):
        for j in range(4):
            assert bool(relevant[i, j]) == (truth[i].tolist() == truth[j].tolist())
    with pytest.raises(ValueError, match=r"\(M, \.\.\.\)"):
        article.same_layout(torch.zeros(3))
