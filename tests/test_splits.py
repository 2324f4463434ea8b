"""validation_split: disjoint, complete, stratified, reproducible, with clear errors."""

from collections import Counter

import pytest
import torch

from mmcourse.data.splits import validation_split


def test_parts_are_disjoint_complete_and_stratified():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)[
        torch.randperm(100, generator=torch.Generator().manual_seed(3))
    ]
    train, val = validation_split(labels, fraction=0.1, seed=0)
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(100))
    # round(0.1 * count) of each class, counted by hand: 5, 3 and 2
    assert Counter(labels[val].tolist()) == {0: 5, 1: 3, 2: 2}
    assert torch.equal(train, train.sort().values) and torch.equal(val, val.sort().values)


def test_same_seed_same_split_other_seed_other_split():
    labels = torch.arange(200) % 10
    assert torch.equal(
        validation_split(labels, 0.2, seed=1)[1], validation_split(labels, 0.2, seed=1)[1]
    )
    assert not torch.equal(
        validation_split(labels, 0.2, seed=1)[1], validation_split(labels, 0.2, seed=2)[1]
    )


@pytest.mark.parametrize(
    ("labels", "fraction", "error", "match"),
    [
        (torch.zeros(4, 2, dtype=torch.long), 0.5, ValueError, "1-D tensor of integer classes"),
        (torch.rand(4), 0.5, ValueError, "integer classes"),
        (torch.tensor([0, 0, 1, 1]), 1.0, ValueError, r"fraction must be in \(0, 1\)"),
        (torch.tensor([0, 0, 1, 1]), "0.1", TypeError, "fraction must be a number"),
        (torch.tensor([0, 0, 1]), 0.5, ValueError, "class 1 has 1 example"),
        ([0, 1], 0.5, TypeError, "labels"),
    ],
)
def test_bad_input_gets_a_clear_error(labels, fraction, error, match):
    with pytest.raises(error, match=match):
        validation_split(labels, fraction)
