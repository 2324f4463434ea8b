"""deploy.prune against selections made here by sorting: global magnitude pruning zeroes the
smallest weights across layers, structured pruning the rows of smallest L2 norm per layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmcourse.deploy import prune


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


def test_global_pruning_zeroes_the_smallest_weights_of_all_layers() -> None:
    model = small_model()
    weights = torch.cat([m.weight.detach().flatten() for m in prune.prunable_layers(model)])
    cut = round(0.3 * len(weights))
    smallest = weights.abs().sort().values[cut - 1]  # the largest magnitude that goes
    pruned = prune.prune_weights(model, 0.3)
    after = torch.cat([m.weight.detach().flatten() for m in prune.prunable_layers(pruned)])
    assert int((after == 0).sum()) == cut
    assert torch.equal(after == 0, weights.abs() <= smallest)
    assert torch.equal(after[after != 0], weights[after != 0])  # the rest untouched
    assert prune.sparsity(model) == 0.0 and prune.sparsity(pruned) == pytest.approx(
        cut / len(weights)
    )
    assert not any(hasattr(m, "weight_orig") for m in pruned.modules())  # made permanent


def test_structured_pruning_zeroes_whole_rows_of_smallest_norm_in_each_layer() -> None:
    model = small_model()
    pruned = prune.prune_weights(model, 0.5, structured=True)
    for before, after in zip(prune.prunable_layers(model), prune.prunable_layers(pruned)):
        rows = before.weight.detach().flatten(1)
        gone = rows.norm(dim=1).argsort()[: round(0.5 * len(rows))]
        zero_rows = (after.weight.detach().flatten(1) == 0).all(dim=1).nonzero().flatten()
        assert sorted(zero_rows.tolist()) == sorted(gone.tolist())


def test_prune_errors() -> None:
    with pytest.raises(ValueError, match="amount must be a share in"):
        prune.prune_weights(small_model(), 1.0)
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d layer to prune"):
        prune.prune_weights(nn.ReLU(), 0.2)
