"""Model inspection: sizes against nn.Conv2d, MACs against the formula and torch's FLOP counter."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mmcourse.models.image import ArticleCNN, VGGStyle, resnet18_mnist
from mmcourse.models.introspect import (
    LayerInfo,
    capture_output,
    conv_output_size,
    count_macs,
    count_parameters,
    find_unregistered_modules,
    layer_macs,
    layer_summary,
    summary_table,
    trace_shapes,
)


def flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    """PyTorch's own count (FLOPs = 2 x MACs for convolutions and matrix products)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    return counter.get_total_flops() // 2


# ----------------------------------------------------------------------------- conv_output_size


def test_conv_output_size_matches_pytorch_layers():
    for size, k, s, p, d in itertools.product(
        [5, 7, 28, 31], [1, 2, 3, 5], [1, 2, 3], [0, 1, 2], [1, 2]
    ):
        if size + 2 * p < d * (k - 1) + 1 or p > k // 2:
            continue
        conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
        pool = nn.MaxPool2d(k, stride=s, padding=p, dilation=d)
        x = torch.zeros(1, 1, size, size)
        assert conv_output_size(size, k, s, p, d) == conv(x).shape[-1]
        assert conv_output_size(size, k, s, p, d) == pool(x).shape[-1]


def test_conv_output_size_floors():
    assert conv_output_size(7, kernel=2, stride=2) == 3
    assert conv_output_size(28, kernel=3, padding=1) == 28


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((0, 3), ValueError, "size must be a positive int, got 0"),
        ((28, 0), ValueError, "kernel must be a positive int, got 0"),
        ((28, 3, 0), ValueError, "stride must be a positive int, got 0"),
        ((28, 3, 1, -1), ValueError, "padding must be an int >= 0, got -1"),
        ((28, 3, 1, 0, 0), ValueError, "dilation must be a positive int, got 0"),
        ((28.0, 3), TypeError, "size must be a positive int, got float 28.0"),
        ((2, 5), ValueError, "does not fit in size 2 with padding 0"),
    ],
)
def test_conv_output_size_rejects(args, error, match):
    with pytest.raises(error, match=match):
        conv_output_size(*args)


# ----------------------------------------------------------------------------- trace_shapes


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=3),  # 10 -> 8
        nn.ReLU(),
        nn.MaxPool2d(2),  # 8 -> 4
        nn.Flatten(),  # 4 * 4 * 4 = 64
        nn.Linear(64, 5),
    )


def test_trace_shapes_on_a_known_model():
    assert trace_shapes(small_net(), torch.zeros(2, 1, 10, 10)) == [
        ("0", (2, 4, 8, 8)),
        ("1", (2, 4, 8, 8)),
        ("2", (2, 4, 4, 4)),
        ("3", (2, 64)),
        ("4", (2, 5)),
    ]


def test_trace_shapes_of_chosen_modules_and_repeated_calls():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Sequential(nn.Linear(3, 3), nn.Tanh())

        def forward(self, x):
            return self.inner(self.inner(x))

    assert trace_shapes(Twice(), torch.zeros(1, 3), modules=["inner"]) == [
        ("inner", (1, 3)),
        ("inner", (1, 3)),
    ]
    resnet = trace_shapes(resnet18_mnist(), torch.zeros(1, 1, 28, 28), ["layer2", "layer4"])
    assert resnet == [("layer2", (1, 128, 14, 14)), ("layer4", (1, 512, 4, 4))]


def test_trace_shapes_restores_mode_and_handles_a_bare_layer():
    model = small_net().train()
    trace_shapes(model, torch.zeros(1, 1, 10, 10))
    assert model.training
    assert trace_shapes(nn.Linear(3, 2), torch.zeros(4, 3)) == [("", (4, 2))]
    assert not nn.Linear(3, 2)._forward_hooks  # hooks are removed


@pytest.mark.parametrize(
    "model, example, kwargs, error, match",
    [
        (
            "not a model",
            torch.zeros(1, 3),
            {},
            TypeError,
            "model must be a torch.nn.Module, got str",
        ),
        (nn.Linear(3, 2), [[0.0, 0.0, 0.0]], {}, TypeError, "example must be a torch.Tensor"),
        (nn.Linear(3, 2), torch.zeros(0, 3), {}, ValueError, "non-empty batch"),
        (nn.Linear(3, 2), torch.tensor(1.0), {}, ValueError, "non-empty batch"),
        (
            small_net(),
            torch.zeros(1, 1, 10, 10),
            {"modules": ["nope"]},
            ValueError,
            "no module named 'nope'",
        ),
    ],
)
def test_trace_shapes_rejects(model, example, kwargs, error, match):
    with pytest.raises(error, match=match):
        trace_shapes(model, example, **kwargs)


# ----------------------------------------------------------------------------- MACs


def test_conv_macs_by_hand():
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
    out = conv(torch.zeros(5, 3, 32, 32))  # 16 x 16 output, batch of 5
    assert layer_macs(conv, out) == 16 * 16 * 8 * 3 * 3 * 3  # per example, bias not counted
    grouped = nn.Conv2d(8, 8, kernel_size=3, padding=1, groups=4)
    out = grouped(torch.zeros(1, 8, 10, 10))
    assert layer_macs(grouped, out) == 10 * 10 * 8 * (8 // 4) * 9


def test_linear_macs_by_hand():
    linear = nn.Linear(20, 7)
    assert layer_macs(linear, linear(torch.zeros(3, 20))) == 20 * 7
    assert layer_macs(linear, linear(torch.zeros(3, 5, 20))) == 5 * 20 * 7  # five tokens
    assert layer_macs(nn.ReLU(), torch.zeros(3, 4)) == 0
    with pytest.raises(TypeError, match="output must be a torch.Tensor"):
        layer_macs(linear, "not a tensor")
    with pytest.raises(ValueError, match="output must be the layer's output tensor"):
        layer_macs(linear, torch.tensor(1.0))


@pytest.mark.parametrize(
    "make", [ArticleCNN, VGGStyle, lambda: nn.Sequential(ArticleCNN(), nn.Linear(2304, 10))]
)
def test_count_macs_agrees_with_torch_flop_counter(make):
    model = make()
    x = torch.zeros(1, 1, 28, 28)
    assert count_macs(model, x) == flop_counter_macs(model, x)


def test_count_macs_is_per_example():
    model = ArticleCNN()
    assert count_macs(model, torch.zeros(4, 1, 28, 28)) == count_macs(
        model, torch.zeros(1, 1, 28, 28)
    )


def test_resnet_macs_by_stage_add_up():
    model = resnet18_mnist()
    x = torch.zeros(1, 1, 28, 28)
    stages = layer_summary(model, x, ["conv1", "layer1", "layer2", "layer3", "layer4", "fc"])
    assert sum(r.macs for r in stages) == count_macs(model, x) == flop_counter_macs(model, x)
    assert stages[0].macs == 28 * 28 * 64 * 1 * 9
    # a stage row owns every parameter inside it
    assert stages[2].params == sum(p.numel() for p in model.layer2.parameters())


# ----------------------------------------------------------------------------- summaries


def test_layer_summary_parameters_add_up():
    for model in (ArticleCNN(), VGGStyle(), small_net()):
        x = (
            torch.zeros(1, 1, 28, 28)
            if not isinstance(model, nn.Sequential)
            else torch.zeros(1, 1, 10, 10)
        )
        rows = layer_summary(model, x)
        assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
        assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_layer_summary_rows():
    rows = layer_summary(small_net(), torch.zeros(1, 1, 10, 10))
    assert rows[0] == LayerInfo("0", "Conv2d", (1, 4, 8, 8), 4 * 9 + 4, 8 * 8 * 4 * 9)
    assert rows[4] == LayerInfo("4", "Linear", (1, 5), 64 * 5 + 5, 64 * 5)


def test_shared_module_parameters_counted_once():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    rows = layer_summary(model, torch.zeros(1, 4))
    assert [r.params for r in rows] == [20, 0, 0] and [r.macs for r in rows] == [16, 0, 16]


def test_count_parameters_all_or_trainable_only():
    # a frozen "backbone" (10 * 3 + 3) and a trainable head (3 * 2 + 2), counted by hand
    model = nn.Sequential(nn.Linear(10, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert count_parameters(model) == 10 * 3 + 3 + 3 * 2 + 2 == 41
    assert count_parameters(model, trainable_only=True) == 3 * 2 + 2 == 8
    shared = nn.Linear(4, 4)
    assert count_parameters(nn.Sequential(shared, shared)) == 4 * 4 + 4  # counted once
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got int 3"):
        count_parameters(3)
    with pytest.raises(TypeError):
        count_parameters(model, True)  # type: ignore[misc]  # the keyword must be written out


def test_summary_table_text():
    table = summary_table(layer_summary(ArticleCNN(), torch.zeros(1, 1, 28, 28)))
    lines = table.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "params", "MACs"]
    assert "256 x 3 x 3" in table and "2304" in lines[-3]
    assert lines[-1].split() == ["total", "369,664", "29,352,960"]
    with pytest.raises(TypeError, match="list of LayerInfo"):
        summary_table([("a", 1)])


def test_capture_output():
    model = ArticleCNN()
    x = torch.randn(2, 1, 28, 28)
    maps = capture_output(model, "blocks.0", x)
    assert maps.shape == (2, 64, 14, 14)
    torch.testing.assert_close(maps, model.blocks[0](x))
    with pytest.raises(ValueError, match="no module named 'block9'"):
        capture_output(model, "block9", x)

    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unused = nn.Linear(2, 2)

        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="did not run"):
        capture_output(Skips(), "unused", torch.zeros(1, 2))


def test_capture_output_is_not_changed_by_later_in_place_operations():
    from torchvision.models.resnet import BasicBlock

    block = BasicBlock(4, 4).eval()
    x = torch.randn(1, 4, 6, 6)
    captured = capture_output(block, "bn2", x)
    with torch.no_grad():
        expected = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    # BasicBlock adds the shortcut in place (out += identity) right after bn2
    torch.testing.assert_close(captured, expected)


# ----------------------------------------------------------------------------- registration


class Holder(nn.Module):
    """A layer with one extra attribute set by the test."""

    def __init__(self, **attributes: object) -> None:
        super().__init__()
        self.out = nn.Linear(3, 1)
        for name, value in attributes.items():
            setattr(self, name, value)  # a plain attribute, like the bug


@pytest.mark.parametrize(
    "hidden",
    [
        [nn.Linear(3, 3), nn.Linear(3, 3)],  # a plain list of layers
        {"a": nn.Linear(3, 3)},  # a dict of layers
        (nn.Linear(3, 3), 4),  # a tuple
        {nn.Linear(3, 3)},  # a set
        [[nn.ReLU()]],  # nested, and a layer without parameters (never switched to eval)
        {"deep": [(nn.Linear(3, 3),)]},  # nested three deep
        [nn.Parameter(torch.zeros(3))],  # a parameter in a list
        [nn.Parameter(torch.zeros(3), requires_grad=False)],  # frozen, still never saved
        torch.ones(3, requires_grad=True),  # a raw tensor meant to be an nn.Parameter
        [torch.ones(3, requires_grad=True)],
    ],
    ids=lambda value: type(value).__name__,
)
def test_find_unregistered_modules_reports_each_hiding_place(hidden: object) -> None:
    model = nn.Sequential(nn.Linear(3, 3), Holder(hidden=hidden))
    assert find_unregistered_modules(model) == ["1.hidden"]
    # what it holds is invisible to PyTorch: state_dict() has the registered layers only
    assert set(model.state_dict()) == {"0.weight", "0.bias", "1.out.weight", "1.out.bias"}


@pytest.mark.parametrize(
    "harmless",
    [
        ["a", "b"],  # names
        torch.ones(3),  # a constant
        torch.ones(3, requires_grad=True) * 2,  # a result of a computation, not a leaf
        [1, [2, [3]]],
    ],
    ids=lambda value: type(value).__name__,
)
def test_find_unregistered_modules_ignores_harmless_attributes(harmless: object) -> None:
    assert find_unregistered_modules(Holder(harmless=harmless)) == []


def test_find_unregistered_modules_fix_and_aliases() -> None:
    model = Holder(heads=[nn.Linear(3, 3), nn.Linear(3, 3)])
    assert find_unregistered_modules(model) == ["heads"]
    assert count_parameters(model) == 3 + 1  # only the registered output layer
    model.heads = nn.ModuleList(model.heads)  # the fix
    assert find_unregistered_modules(model) == []
    assert count_parameters(model) == 3 + 1 + 2 * (9 + 3)
    # a plain list that only names registered layers hides nothing
    model.first = [model.heads[0], model.out.weight]
    assert find_unregistered_modules(model) == []
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got list"):
        find_unregistered_modules([nn.Linear(2, 2)])
