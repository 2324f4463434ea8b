"""Self-checks for chapter 06 (fusion)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmcourse.checks._core import CheckResult
from mmcourse.models.fusion import (
    BilinearFusion,
    LowRankBilinearFusion,
    find_unregistered_modules,
)

_SIZES = ((64, 32, 64, 16), (6, 4, 7, 3), (10, 10, 2, 1), (3, 5, 8, 20))


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def check_parameter_formulas(
    bilinear_params: Callable[[int, int, int], int] | None,
    low_rank_params: Callable[[int, int, int, int], int] | None,
) -> CheckResult:
    """Do ``bilinear_params(image_dim, text_dim, out_dim)`` and
    ``low_rank_params(image_dim, text_dim, out_dim, rank)`` give the parameter counts (biases
    included) of ``BilinearFusion`` and ``LowRankBilinearFusion`` for any sizes?"""
    if not callable(bilinear_params) or not callable(low_rank_params):
        return CheckResult(False, "write the two functions bilinear_params and low_rank_params")
    for dx, dy, d, rank in _SIZES:
        want = _numel(BilinearFusion(dx, dy, d))
        try:
            got = bilinear_params(dx, dy, d)
        except Exception as error:  # noqa: BLE001 -- report any mistake to the learner
            return CheckResult(False, f"bilinear_params({dx}, {dy}, {d}) failed: {error}")
        if got != want:
            return CheckResult(
                False,
                f"bilinear_params({dx}, {dy}, {d}) gave {got}, the module has {want} "
                "(one weight per (image feature, text feature, output) triple, plus biases)",
            )
        want = _numel(LowRankBilinearFusion(dx, dy, d, rank=rank))
        try:
            got = low_rank_params(dx, dy, d, rank)
        except Exception as error:  # noqa: BLE001
            return CheckResult(False, f"low_rank_params({dx}, {dy}, {d}, {rank}) failed: {error}")
        if got != want:
            return CheckResult(
                False,
                f"low_rank_params({dx}, {dy}, {d}, {rank}) gave {got}, the module has {want} "
                "(three linear layers: image -> rank, text -> rank, rank -> out, with biases)",
            )
    return CheckResult(True, "both formulas match the modules for every size tried")


def _blocks_depend_on(
    module: nn.Module, image: torch.Tensor, text: torch.Tensor, d: int
) -> tuple[bool, bool, bool, bool]:
    """Does the first block change with the text, the second with the image?"""
    out = module(image, text)
    other_text = module(image, torch.randn_like(text))
    other_image = module(torch.randn_like(image), text)
    first_sees_text = not torch.allclose(out[:, :d], other_text[:, :d])
    second_sees_image = not torch.allclose(out[:, d : 2 * d], other_image[:, d : 2 * d])
    first_sees_image = not torch.allclose(out[:, :d], other_image[:, :d])
    second_sees_text = not torch.allclose(out[:, d : 2 * d], other_text[:, d : 2 * d])
    return first_sees_text, second_sees_image, first_sees_image, second_sees_text


def check_concat_product_fusion(module: nn.Module | None) -> CheckResult:
    """Is ``module`` a fusion ``(B, image_dim), (B, text_dim) -> (B, 3 D)`` that returns
    ``[W_x x + b_x ; W_y y + b_y ; (W_x x + b_x) * (W_y y + b_y)]`` and trains every weight?"""
    if not isinstance(module, nn.Module):
        return CheckResult(False, "build your fusion module (an nn.Module) and pass it in")
    dims = [getattr(module, name, None) for name in ("image_dim", "text_dim", "out_dim")]
    if not all(isinstance(v, int) and v > 0 for v in dims):
        return CheckResult(False, "give the module int attributes image_dim, text_dim and out_dim")
    dx, dy, out_dim = dims
    if out_dim % 3:
        return CheckResult(False, f"out_dim should be 3 * D (three blocks of D), got {out_dim}")
    d = out_dim // 3
    hidden = find_unregistered_modules(module)
    if hidden:
        return CheckResult(
            False, f"{', '.join(hidden)} hide layers from PyTorch: use nn.ModuleList"
        )
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(5, dx, generator=generator)
    text = torch.randn(5, dy, generator=generator)
    try:
        out = module(image, text)
    except Exception as error:  # noqa: BLE001
        return CheckResult(False, f"calling module(image, text) failed: {error}")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (5, out_dim):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return CheckResult(False, f"the output should have shape (5, {out_dim}), got {shape}")
    with torch.no_grad():
        first_text, second_image, first_image, second_text = _blocks_depend_on(
            module, image, text, d
        )
    if first_text or not first_image:
        return CheckResult(False, "the first block should be the projected image, and only that")
    if second_image or not second_text:
        return CheckResult(False, "the second block should be the projected text, and only that")
    if not torch.allclose(out[:, 2 * d :], out[:, :d] * out[:, d : 2 * d], atol=1e-5):
        return CheckResult(False, "the third block should be the product of the first two")
    out.pow(2).sum().backward()
    missing = [n for n, p in module.named_parameters() if p.grad is None or not p.grad.any()]
    if missing:
        return CheckResult(False, f"these parameters get no gradient: {missing}")
    params = sum(p.numel() for p in module.parameters())
    return CheckResult(True, f"[x'; y'; x' * y'] with {params} parameters, all trained")


def _reachable_parameters(model: nn.Module) -> set[int]:
    """Ids of every parameter found by walking attributes, plain containers included."""
    seen_modules: set[int] = set()
    found: set[int] = set()

    def visit(value: object, depth: int) -> None:
        if depth > 6:
            return
        if isinstance(value, nn.Parameter):
            found.add(id(value))
        elif isinstance(value, nn.Module):
            if id(value) in seen_modules:
                return
            seen_modules.add(id(value))
            for p in value.parameters():
                found.add(id(p))
            for key, item in vars(value).items():
                if not key.startswith("_"):
                    visit(item, depth + 1)
            for child in value.children():
                visit(child, depth + 1)
        elif isinstance(value, (list, tuple, set)):
            for item in value:
                visit(item, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item, depth + 1)

    visit(model, 0)
    return found


def check_registered(
    model: nn.Module | None, image_dim: int = 64, text_dim: int = 32
) -> CheckResult:
    """Does PyTorch see every layer of ``model`` (a fusion ``(image, text) -> (B, D)``), and
    does every one of its parameters get a gradient?"""
    if not isinstance(model, nn.Module):
        return CheckResult(False, "build the fixed module and pass it in")
    hidden = find_unregistered_modules(model)
    if hidden:
        return CheckResult(
            False, f"{', '.join(hidden)} still hide layers in a plain Python container"
        )
    registered = {id(p) for p in model.parameters()}
    if _reachable_parameters(model) - registered:
        return CheckResult(False, "some parameters are reachable but not registered")
    if not registered:
        return CheckResult(False, "the module has no parameters at all")
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(4, image_dim, generator=generator)
    text = torch.randn(4, text_dim, generator=generator)
    try:
        out = model(image, text)
        out.pow(2).sum().backward()
    except Exception as error:  # noqa: BLE001
        return CheckResult(False, f"a forward and backward pass failed: {error}")
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    if missing:
        return CheckResult(False, f"these parameters get no gradient: {missing}")
    count = sum(p.numel() for p in model.parameters())
    return CheckResult(True, f"all {count} parameters are registered and get gradients")
