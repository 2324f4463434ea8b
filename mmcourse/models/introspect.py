"""Look inside a model: the shape after every layer, parameters and compute per layer.

- :func:`conv_output_size` -- the size rule of convolutions and pooling,
  ``floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1``.
- :func:`trace_shapes` -- run one example through a model and record each layer's output shape.
- :func:`layer_summary` -- per layer: output shape, parameters and multiply-accumulates (MACs).
- :func:`summary_table` -- that summary as a text table; :func:`count_macs` its total.
- :func:`capture_output` -- the output of one named layer (e.g. feature maps to look at).
- :func:`count_parameters` -- how many parameters (all, or only the trainable ones).
- :func:`find_unregistered_modules` -- layers or parameters hidden from PyTorch in plain Python
  containers (never trained, moved or saved).

MACs are counted by formula for the layers that do nearly all the work -- convolutions and
linear layers -- *for one example* (whatever the batch size of the example passed in):

- ``Conv2d``: ``H_out * W_out * C_out * (C_in / groups) * k_h * k_w``
- ``Linear``: ``in_features * out_features`` (times any extra leading dimensions, e.g. tokens)

Biases, normalisation, activations and pooling cost a few operations per value and are left
out (the usual convention; they are a rounding error next to the convolutions). One MAC is one
multiplication plus one addition, so FLOPs are about twice the MACs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from mmcourse._validate import check_int, check_module, check_tensor, require


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a convolution or pooling window sliding along one axis of ``size``.

    ``floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1``; with ``dilation=1``
    this is the familiar ``floor((size + 2*padding - kernel) / stride) + 1``.

    >>> conv_output_size(28, kernel=3, padding=1)  # a "same" 3x3 convolution
    28
    >>> conv_output_size(7, kernel=2, stride=2)  # 2x2 max-pool: 7 / 2 rounds down
    3
    """
    for name, value, low in (
        ("size", size, 1),
        ("kernel", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        check_int(value, name, minimum=low)
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(
            f"a window spanning {span} pixels does not fit in size {size} with padding {padding}"
        )
    return (size + 2 * padding - span) // stride + 1


@dataclass(frozen=True)
class LayerInfo:
    """One row of :func:`layer_summary`: a layer call and what it costs for one example."""

    name: str
    """The module's name inside the model (as in ``model.named_modules()``)."""
    kind: str
    """The module's class name, e.g. ``"Conv2d"``."""
    output_shape: tuple[int, ...]
    """The shape of its output, batch dimension included."""
    params: int
    """Parameters owned by this module itself (not by its children)."""
    macs: int
    """Multiply-accumulates for one example (0 for layers not counted, see the module doc)."""


def _check_model_and_example(model: nn.Module, example: torch.Tensor) -> None:
    check_module(model)
    check_tensor(example, "example", "(a batch, e.g. shape (1, 1, 28, 28))")
    if example.dim() < 1 or example.shape[0] < 1:
        raise ValueError(
            f"example must be a non-empty batch with the batch dimension first, "
            f"got shape {tuple(example.shape)}"
        )


def _first_tensor(output: object) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _select_modules(model: nn.Module, modules: Iterable[str] | None) -> list[tuple[str, nn.Module]]:
    named = dict(model.named_modules())
    if modules is None:
        leaves = [(name, m) for name, m in named.items() if name and not any(m.children())]
        return leaves or [("", model)]  # a model without children is its own only layer
    chosen = list(modules)
    missing = [name for name in chosen if name not in named]
    if missing:
        known = ", ".join(repr(n) for n in list(named)[1:12])
        raise ValueError(f"model has no module named {missing[0]!r}; names look like: {known}, ...")
    return [(name, named[name]) for name in chosen]


def device_of(model: nn.Module) -> torch.device:
    """Where ``model``'s weights live (its first parameter or buffer); the CPU for a model
    without any."""
    weights = next(itertools.chain(model.parameters(), model.buffers()), None)
    return weights.device if weights is not None else torch.device("cpu")


def _run_with_hooks(
    model: nn.Module, example: torch.Tensor, modules: Iterable[str] | None, clone: bool = False
) -> list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]]:
    """Forward ``example`` once (eval mode, no grad); return (name, module, input, output) per
    call of each selected module, in the order they ran. ``clone`` copies each output at once,
    so that later in-place operations (``out += identity``, ``ReLU(inplace=True)``) cannot
    change what was recorded."""
    _check_model_and_example(model, example)
    example = example.to(device_of(model))  # a CPU example works with a model on a GPU
    calls: list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]] = []
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            out = _first_tensor(output)
            inp = _first_tensor(inputs)
            if out is not None:
                calls.append((name, module, inp, out.detach().clone() if clone else out))

        return hook

    for name, module in _select_modules(model, modules):
        handles.append(module.register_forward_hook(make_hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return calls


def trace_shapes(
    model: nn.Module, example: torch.Tensor, modules: Iterable[str] | None = None
) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``example`` through ``model`` and list ``(layer name, output shape)`` in running order.

    Args:
        model: any module; it is run once in eval mode without gradients (its train/eval mode
            is restored afterwards).
        example: an input batch, e.g. ``(1, 1, 28, 28)`` (moved to the model's device).
        modules: names of the modules to record (any depth, e.g. ``["layer1", "layer2"]`` for a
            ResNet); default: every leaf module (one without children).

    Returns:
        one ``(name, shape)`` per call, batch dimension included; a module called twice appears
        twice. Modules that did not run (or returned no tensor) do not appear.

    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
    >>> trace_shapes(net, torch.zeros(1, 1, 5, 5))
    [('0', (1, 4, 3, 3)), ('1', (1, 36))]
    """
    return [
        (name, tuple(output.shape))
        for name, _, _, output in _run_with_hooks(model, example, modules)
    ]


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of ``module`` for *one example*, by formula.

    ``Conv1d/2d/3d``: output positions * ``C_out`` * ``C_in / groups`` * kernel volume;
    ``Linear``: ``in_features * out_features`` per output row. Other layers: 0.
    ``output`` is the layer's output, batch dimension first.
    """
    check_tensor(output, "output", "(the layer's output, batch dimension first)")
    require(output.dim() >= 1, "output must be the layer's output tensor (batch dimension first)")
    if isinstance(module, nn.modules.conv._ConvNd):
        positions = math.prod(output.shape[2:])
        kernel = math.prod(module.kernel_size)
        in_per_group = module.in_channels // module.groups
        return positions * module.out_channels * in_per_group * kernel
    if isinstance(module, nn.Linear):
        rows = math.prod(output.shape[1:-1])  # 1 for (B, out); tokens for (B, T, out)
        return rows * module.in_features * module.out_features
    return 0


def layer_summary(
    model: nn.Module, example: torch.Tensor, modules: Iterable[str] | None = None
) -> list[LayerInfo]:
    """Per layer: output shape, parameters and MACs for one example, in running order.

    Args:
        model, example: as in :func:`trace_shapes`.
        modules: names of the modules to report (any depth, e.g. a ResNet's ``"layer1"``);
            a composite module's row counts all parameters and MACs inside it. Default:
            every leaf module.

    A module's parameters are counted at its first call only, so ``sum(r.params for r in
    rows)`` equals the model's parameter count when the rows cover every parameter once.
    """
    leaf_calls = _run_with_hooks(model, example, None)
    calls = leaf_calls if modules is None else _run_with_hooks(model, example, modules)
    rows: list[LayerInfo] = []
    seen: set[int] = set()
    for name, module, _, output in calls:
        own = 0
        if id(module) not in seen:
            seen.add(id(module))
            own = sum(p.numel() for p in module.parameters(recurse=modules is not None))
        if modules is None:
            macs = layer_macs(module, output)
        else:
            prefix = name + "."
            macs = sum(
                layer_macs(leaf, out)
                for leaf_name, leaf, _, out in leaf_calls
                if leaf_name == name or leaf_name.startswith(prefix)
            )
        rows.append(LayerInfo(name, type(module).__name__, tuple(output.shape), own, macs))
    return rows


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Total multiply-accumulates of conv and linear layers for one example of ``example``."""
    return sum(row.macs for row in layer_summary(model, example))


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters of ``model``; a parameter shared by two layers is counted once.

    Args:
        model: any module.
        trainable_only: count only the parameters with ``requires_grad`` (what an optimizer
            can change). The default, ``False``, counts all of them, frozen ones included: the
            size of the model. For a model with a frozen backbone the two differ.

    >>> count_parameters(nn.Linear(10, 3))  # 10 * 3 weights + 3 biases
    33
    >>> frozen = nn.Sequential(nn.Linear(10, 3).requires_grad_(False), nn.Linear(3, 2))
    >>> count_parameters(frozen), count_parameters(frozen, trainable_only=True)
    (41, 8)
    """
    check_module(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def summary_table(rows: list[LayerInfo], totals: bool = True) -> str:
    """:func:`layer_summary` rows as an aligned text table (thousands separated)."""
    if not isinstance(rows, list) or not all(isinstance(r, LayerInfo) for r in rows):
        raise TypeError("rows must be the list of LayerInfo that layer_summary returns")
    header = ("layer", "type", "output shape", "params", "MACs")
    lines = [
        (
            r.name,
            r.kind,
            " x ".join(str(d) for d in r.output_shape[1:]) or "-",
            f"{r.params:,}",
            f"{r.macs:,}",
        )
        for r in rows
    ]
    if totals:
        lines.append(
            ("total", "", "", f"{sum(r.params for r in rows):,}", f"{sum(r.macs for r in rows):,}")
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    right = (False, False, True, True, True)

    def fmt(row: tuple[str, ...]) -> str:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [fmt(line) for line in lines]
    if totals:
        body.insert(len(body) - 1, rule)
    return "\n".join([fmt(header), rule, *body])


def capture_output(model: nn.Module, module_name: str, example: torch.Tensor) -> torch.Tensor:
    """The output of the module called ``module_name`` when ``example`` runs through ``model``.

    Useful to look at feature maps: ``capture_output(net, "blocks.0", x[:1])[0]`` is the
    ``(C, H, W)`` stack of maps the first block makes of one digit. Runs in eval mode without
    gradients (``example`` is moved to the model's device); if the module runs more than once,
    the first call's output is returned. The result is a copy, on the CPU.
    """
    calls = _run_with_hooks(model, example, [module_name], clone=True)
    require(calls, f"module {module_name!r} did not run (or returned no tensor)")
    return calls[0][3].cpu()


# ----------------------------------------------------------------------------- registration

_MAX_DEPTH = 5
"""How deep :func:`find_unregistered_modules` looks into nested plain containers."""


def _hides(value: object, registered: set[int], depth: int = 0) -> bool:
    """Whether ``value`` is, or holds in plain lists/tuples/sets/dicts, a module, a parameter or a
    trainable leaf tensor that is not among the ``registered`` ones (ids)."""
    if isinstance(value, (nn.Module, torch.Tensor)):
        if id(value) in registered:
            return False  # an alias of a registered layer, e.g. a list naming some blocks
        if isinstance(value, (nn.Module, nn.Parameter)):
            return True
        return value.is_leaf and value.requires_grad  # meant to be an nn.Parameter
    if depth < _MAX_DEPTH and isinstance(value, (list, tuple, set, frozenset, dict)):
        items = value.values() if isinstance(value, dict) else value
        return any(_hides(item, registered, depth + 1) for item in items)
    return False


def find_unregistered_modules(model: nn.Module) -> list[str]:
    """Names of the attributes that hide layers or parameters from PyTorch.

    PyTorch registers a layer or parameter only when it is assigned directly as an attribute or
    kept in ``nn.ModuleList``, ``nn.ModuleDict``, ``nn.ParameterList`` or
    ``nn.ParameterDict``. Anything else is missing from ``model.parameters()`` (so no optimizer
    trains it), from ``model.to(device)``, ``model.eval()`` and ``state_dict()``. Reported:

    - layers (``nn.Module``) and ``nn.Parameter`` kept in a plain ``list``, ``tuple``, ``set``
      or ``dict``, also nested (``[[nn.Linear(2, 2)]]``);
    - a plain tensor with ``requires_grad=True`` kept as an attribute (or in such a container):
      it was meant to be an ``nn.Parameter``.

    A plain container that only *names* layers registered elsewhere (``self.stages =
    [self.conv1, self.conv2]``) hides nothing and is not reported, nor are plain tensors
    without gradients (constants) or results of computations.

    Returns dotted names such as ``["fusion.heads"]``; ``[]`` when everything is registered.

    >>> class Heads(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.heads = [nn.Linear(2, 2), nn.Linear(2, 2)]  # the bug: a plain list
    >>> find_unregistered_modules(Heads())
    ['heads']
    """
    check_module(model)
    registered = {id(m) for m in model.modules()} | {id(p) for p in model.parameters()}
    return [
        f"{prefix}.{key}" if prefix else key
        for prefix, module in model.named_modules()
        for key, value in vars(module).items()
        if not key.startswith("_") and _hides(value, registered)
    ]
