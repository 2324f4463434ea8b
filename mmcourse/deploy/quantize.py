"""Int8 quantisation of a trained model with torchao (:func:`quantize_int8`), and which layers it
changed (:func:`int8_layers`).

What int8 quantisation does here (torchao 0.18, CPU): ``quantize_`` replaces the weight of
each ``nn.Linear`` with an ``Int8Tensor`` (int8 values ``qdata`` and a float ``scale`` per
row). ``nn.Conv2d``, ``nn.GRU``/``nn.LSTM`` and ``nn.Embedding`` are left in float32:
torchao's int8 configs handle linear layers only (forced onto a Conv2d, the int8 weight has
no convolution kernel; a GRU/LSTM has no single ``weight`` to replace). The course's models
spend most of their time in convolutions and recurrent cells, so int8 mostly saves bytes,
not milliseconds.

``quantize_int8(mode="dynamic")`` multiplies int8 activations by int8 weights
(``torch._int_mm``, via oneDNN). Without AVX512-VNNI, oneDNN sums pairs of products in 16
bits, which overflow for full-range int8 (pytorch/pytorch#136746); torch checks the CPU for
VNNI, not the ``ONEDNN_MAX_CPU_ISA=AVX2`` cap that ``import mmcourse`` sets
(:mod:`mmcourse.portable`), so on a VNNI CPU with the cap the products came out wrong by
tens of percent. The dynamic mode therefore uses 7-bit ranges (torchao's ``reduce_range``),
which cannot overflow, at a small cost in precision.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from mmcourse._validate import check_choice, check_module

__all__ = ["QUANT_MODES", "int8_layers", "quantize_int8"]


QUANT_MODES = ("weight_only", "dynamic")
""":func:`quantize_int8`'s modes: int8 weights only (activations stay float), or int8
weights and activations quantised on the fly per row (``dynamic``)."""


def _torchao_quantization() -> Any:
    """``torchao.quantization``, imported on first use (it takes a few seconds)."""
    pytree_log = logging.getLogger("torch.utils._pytree")
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)  # torchao 0.18 registers an Enum the old way: one warning
    try:
        import torchao.quantization as quantization
    except ImportError as error:
        raise ImportError(
            "quantize_int8 needs torchao: pip install torchao (it is in mmcourse's dependencies)"
        ) from error
    finally:
        pytree_log.setLevel(level)
    return quantization


def quantize_int8(module: nn.Module, mode: str = "weight_only") -> nn.Module:
    """A copy of ``module``, in eval mode, whose ``nn.Linear`` weights are int8 (torchao).

    Each weight becomes a ``torchao.quantization.Int8Tensor``: int8 values (``.qdata``) and one
    float scale per output row, ``w ~ qdata * scale`` -- a quarter of float32's bytes. torchao
    spreads each row over the whole int8 range, -128..127, so its scale is ``max|w| / 127.5``
    (the textbook symmetric scheme uses ``/ 127`` and leaves -128 unused). On the
    course's captioner and dual encoder the outputs moved by about 0.5-1% of their range.
    ``mode="dynamic"`` also rounds each input row to int8 at run time and multiplies int8 by
    int8 (about 1.5-2% there; more when a layer's inputs have outliers). Check the copy
    with :func:`outputs_match` and on the validation metric before serving it.

    Only linear layers change: ``nn.Conv2d``, ``nn.GRU``/``nn.LSTM``, ``nn.Embedding`` and
    ``nn.MultiheadAttention``'s output projection stay float32. The original is untouched.

    Raises:
        ValueError: ``module`` has no ``nn.Linear`` layer, so nothing would change.
        ImportError: torchao is not installed.
    """
    check_module(module, "module")
    check_choice(mode, "mode", QUANT_MODES)
    if not any(isinstance(layer, nn.Linear) for layer in module.modules()):
        raise ValueError(
            f"{type(module).__name__} has no nn.Linear layer: torchao's int8 configs quantise "
            "linear layers only (Conv2d, GRU, LSTM and Embedding stay float)"
        )
    quantization = _torchao_quantization()
    config = (
        quantization.Int8WeightOnlyConfig(set_inductor_config=False)
        if mode == "weight_only"
        # 7-bit ranges: see the module docstring (int8 x int8 products overflow without VNNI)
        else quantization.Int8DynamicActivationInt8WeightConfig(
            set_inductor_config=False, reduce_range=True
        )
    )
    copied = copy.deepcopy(module).eval()
    quantization.quantize_(copied, config)
    return copied


def int8_layers(module: nn.Module) -> list[str]:
    """Names of the layers of ``module`` whose ``weight`` holds int8 values (a torchao
    quantised tensor with int8 ``qdata``), e.g. ``["init_hidden", "output"]``."""
    check_module(module, "module")
    names = []
    for name, layer in module.named_modules():
        qdata = getattr(getattr(layer, "weight", None), "qdata", None)
        if isinstance(qdata, torch.Tensor) and qdata.dtype == torch.int8:
            names.append(name)
    return names
