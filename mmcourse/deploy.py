"""Deployment: from a trained model to a program that answers requests.

Training code (the model classes, the loop, the optimiser) stays on the training side; what
a service needs is a function from tensors to tensors that is fast, small and the *same*
function the notebooks trained. This module walks that step:

1. **Export** (:func:`export_module`): ``torch.export`` traces a module into an
   ``ExportedProgram``, a graph of ATen operations plus the weights, with the batch
   dimension left free (``dynamic_batch``). :func:`save_exported` writes it to a ``.pt2``
   file; :func:`load_exported` reads it back and runs it *without* the class that defined
   it. Only tensors-in/tensors-out code exports: a captioner's generation loop does not
   (it stops when every row says ``<eos>``), so :func:`export_captioner` exports its two
   pieces, the encoder (``init_state``) and one decoder step, with the state flattened to a
   tuple of tensors, and :func:`greedy_caption_exported` runs the loop around them.
2. **Check** (:func:`outputs_match`): the exported, compiled or quantised model must give
   the outputs of the original, up to a stated tolerance.
3. **Measure** (:func:`measure_latency`, :func:`measure_throughput`,
   :func:`model_size_bytes`): milliseconds for one request, items per second for a batch,
   bytes on disk.
4. **Speed up or shrink**: :func:`compiled` (``torch.compile``: kernels generated for this
   machine, at a one-off compile cost) and :func:`quantize_int8` (torchao: the weights of
   every ``nn.Linear`` stored as int8, one scale per output row).
5. **Serve**: :class:`CaptionService` (canvas -> sentence) and :class:`SearchService`
   (sentence -> the most similar canvases of a stored gallery) validate every request and
   give a clear ``ValueError`` for a bad one, as a web handler wants.

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

Measurements are noisy on a shared machine: take the median of many calls, fix the thread
count (``torch.set_num_threads``), and compare variants in the same run. Small models suffer
most from threads: on two cores shared with another busy program, one decoder step took
about 0.1 ms on one thread and 8 ms on two (each parallel operation waits for a thread that
is not running), so a service of small models is often best served by one thread per process.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
import math
import statistics
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from mmcourse._validate import check_choice, check_int, check_module, check_nonnegative
from mmcourse.data.captions import CANVAS, CANVAS_MEAN, CANVAS_STD
from mmcourse.decode import greedy_decode
from mmcourse.models.captioner import CaptionerState
from mmcourse.models.text import check_ids
from mmcourse.modes import eval_mode
from mmcourse.vocab import BOS_ID, EOS_ID, PAD_ID, UNK, Vocabulary, tokenize

__all__ = [
    "CaptionEncoder",
    "CaptionService",
    "CaptionStep",
    "ImageTower",
    "QUANT_MODES",
    "SearchService",
    "ExportedCaptioner",
    "ExportedTextTower",
    "TextTower",
    "UNKNOWN_WORDS",
    "compiled",
    "export_captioner",
    "export_image_tower",
    "export_module",
    "export_text_tower",
    "greedy_caption_exported",
    "int8_layers",
    "load_exported",
    "measure_latency",
    "measure_throughput",
    "model_size_bytes",
    "outputs_match",
    "prepare_canvases",
    "quantize_int8",
    "save_exported",
]

Inputs = torch.Tensor | tuple[Any, ...]
"""A model's positional inputs: one tensor, or a tuple of tensors (and tuples of tensors)."""


# ---------------------------------------------------------------------------------- helpers
def _as_args(inputs: object, name: str = "example_inputs") -> tuple[Any, ...]:
    """One tensor -> ``(tensor,)``; a tuple or list -> a tuple; anything else: TypeError."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    if isinstance(inputs, tuple | list) and len(inputs) > 0:
        return tuple(inputs)
    raise TypeError(
        f"{name} must be a tensor or a non-empty tuple of the model's positional inputs, "
        f"got {type(inputs).__name__}"
    )


def _tensors(tree: object) -> list[torch.Tensor]:
    """Every tensor in a tensor / tuple / list / dict / dataclass nesting, in order."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if tree is None:
        return []
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        return [t for f in dataclasses.fields(tree) for t in _tensors(getattr(tree, f.name))]
    if isinstance(tree, dict):
        return [t for value in tree.values() for t in _tensors(value)]
    if isinstance(tree, tuple | list):
        return [t for value in tree for t in _tensors(value)]
    raise TypeError(f"expected tensors (in tuples, lists, dicts or dataclasses), got {tree!r}")


def _map_tensors(tree: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """``tree`` with ``fn`` applied to every tensor (tuples and lists keep their type)."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, tuple | list):
        return type(tree)(_map_tensors(value, fn) for value in tree)
    if isinstance(tree, dict):
        return {key: _map_tensors(value, fn) for key, value in tree.items()}
    raise TypeError(
        f"inputs to export must be tensors or tuples/lists/dicts of tensors, got "
        f"{type(tree).__name__}"
    )


def _runnable(program: object, name: str) -> Callable[..., Any]:
    """An ``ExportedProgram`` -> its callable ``.module()``; a callable stays as it is."""
    if isinstance(program, ExportedProgram):
        return program.module()
    if callable(program):
        return program
    raise TypeError(
        f"{name} must be an ExportedProgram or a callable, got {type(program).__name__}"
    )


# ---------------------------------------------------------------------------------- export
def export_module(
    module: nn.Module, example_inputs: Inputs, dynamic_batch: bool = True
) -> ExportedProgram:
    """Trace ``module`` into a ``torch.export.ExportedProgram``, in eval mode.

    Args:
        module: the model; its ``forward`` must take the tensors of ``example_inputs`` as
            positional arguments and return tensors (or tuples of tensors).
        example_inputs: one tensor or a tuple of them (a tuple may nest, e.g. a decoder
            state); only their shapes and dtypes matter.
        dynamic_batch: leave dimension 0 of *every* input tensor free, as one shared size
            ``batch`` (any size from 1 up), so the program serves one request or a batch of
            64. With ``False`` it accepts exactly the example's shapes. ``torch.export``
            fixes a dimension whose example size is 1, so a batch-1 example is repeated to
            a batch of 2 for tracing.

    Returns:
        The program; ``program.module()`` runs it, :func:`save_exported` stores it. The
        module is traced in eval mode (dropout off) and put back in its own mode.

    Raises:
        RuntimeError: when ``torch.export`` cannot trace the forward (typically Python
            decisions that depend on tensor *values*, e.g. a text tower that checks its ids
            or packs sequences by their lengths); the message keeps torch's explanation.
    """
    check_module(module, "module")
    args = _as_args(example_inputs)
    tensors = _tensors(args)
    if not tensors:
        raise ValueError("example_inputs hold no tensor")
    dynamic_shapes = None
    if dynamic_batch:
        sizes = {tuple(t.shape[:1]) for t in tensors}
        if any(t.dim() == 0 for t in tensors) or len(sizes) != 1:
            raise ValueError(
                "with dynamic_batch=True every input tensor must have the same batch size in "
                f"dimension 0, got shapes {[tuple(t.shape) for t in tensors]}"
            )
        if tensors[0].shape[0] == 1:  # export would fix a size-1 dimension: trace a batch of 2
            args = _map_tensors(args, lambda t: torch.cat([t, t]))
        batch = Dim("batch", min=1)
        dynamic_shapes = _map_tensors(args, lambda t: {0: batch})
    with eval_mode(module), warnings.catch_warnings():
        # nn.GRU/nn.LSTM re-assign their weight list while being traced; torch warns about
        # it, and the exported program is correct all the same
        warnings.filterwarnings("ignore", message=r".*were assigned during export.*")
        try:
            return torch.export.export(module, args, dynamic_shapes=dynamic_shapes)
        except Exception as error:  # torch raises many kinds; keep its text, add ours
            raise RuntimeError(
                f"torch.export could not trace {type(module).__name__}: export needs a forward "
                "whose Python control flow does not depend on tensor values. Torch says:\n"
                f"{error}"
            ) from error


def save_exported(program: ExportedProgram, path: str | Path) -> Path:
    """Write ``program`` to ``path`` (by convention ``*.pt2``); returns the path.

    The file holds the graph and the weights: :func:`load_exported` runs it without the
    Python class of the model, so a service needs neither ``mmcourse.models`` nor training
    code."""
    if not isinstance(program, ExportedProgram):
        raise TypeError(
            f"program must be a torch.export.ExportedProgram (from export_module), got "
            f"{type(program).__name__}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path)
    return path


def load_exported(path: str | Path) -> ExportedProgram:
    """Read a program written by :func:`save_exported`; run it with ``.module()(*inputs)``.

    A file that is not one gets a ``ValueError`` that says what it is and how to make a good
    one: a damaged file (truncated by an interrupted copy or a full disk), or a checkpoint of
    weights (``torch.save``) given a ``.pt2`` name.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported program at {path} (write one with save_exported)")
    remedy = "export the model again and write it with save_exported(program, path)"
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is damaged (truncated or corrupted, for example by an interrupted copy or a "
            f"full disk) or was never an exported program: it is not a readable archive; {remedy}"
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any(name.endswith("/archive_format") for name in names):
        kind = (
            "a torch.save checkpoint"
            if any(n.endswith("/data.pkl") for n in names)
            else "an archive"
        )
        raise ValueError(
            f"{path} is {kind}, not an exported program: load weights with load_weights or "
            f"load_checkpoint into the model's class, or {remedy}"
        )
    try:
        return torch.export.load(path)
    except (RuntimeError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path} is a damaged exported program ({type(error).__name__}); {remedy}"
        ) from error


class ImageTower(nn.Module):
    """``forward(images)`` = ``model.encode_image(images)``: the image half of a dual
    encoder as a module of its own, which is what :func:`export_module` traces."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(model, "encode_image", None)):
            raise ValueError(
                f"model must offer encode_image(images), like DualEncoder; got {type(model).__name__}"
            )
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)


def export_image_tower(
    model: nn.Module, example_images: torch.Tensor | None = None
) -> ExportedProgram:
    """Export a :class:`~mmcourse.models.dual.DualEncoder`'s ``encode_image``: canvases
    ``(B, 1, 64, 64)`` -> unit embeddings ``(B, embed_dim)``, any batch size. The text
    tower has :func:`export_text_tower`."""
    if example_images is None:
        example_images = torch.zeros(2, 1, CANVAS, CANVAS)
    return export_module(ImageTower(model), (example_images,))


class TextTower(nn.Module):
    """``forward(ids)`` = ``model.encode_text(ids)`` for valid, right-padded ids, computed by
    the text encoder's ``forward_padded``: no id check and no packing by length, the two
    Python decisions on tensor *values* that ``torch.export`` cannot trace. A recurrent
    encoder runs over the padding instead and uses only the real positions: its state at
    each text's last word, or (``MeanOverWords``) the mean of its states over the real words
    (see :meth:`~mmcourse.models.text.RNNTextEncoder.forward_sequence_padded`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        text = getattr(model, "text_encoder", None)
        if not callable(getattr(text, "forward_padded", None)) or not isinstance(
            getattr(model, "text_projection", None), nn.Module
        ):
            raise ValueError(
                "model must be a DualEncoder whose text_encoder offers forward_padded (every "
                "text tower of the course does: bow, lstm, gru, transformer and the mean-pooled "
                f"GRUs); got {type(model).__name__}"
            )
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        features = self.model.text_encoder.forward_padded(ids)
        return torch.nn.functional.normalize(self.model.text_projection(features), dim=-1)


class ExportedTextTower:
    """An exported text tower that takes ids as ``encode_text`` does: it checks them (the
    check the program leaves out), pads them with ``<pad>`` to the program's fixed
    ``length`` and runs the program. Texts longer than ``length`` are refused."""

    def __init__(
        self, program: ExportedProgram | Callable[..., Any], vocab_size: int, length: int
    ) -> None:
        check_int(vocab_size, "vocab_size")
        check_int(length, "length")
        self.program = program
        self.run = _runnable(program, "program")
        self.vocab_size, self.length = vocab_size, length

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        check_ids(ids, self.vocab_size)
        if ids.shape[0] < 1 or ids.shape[1] < 1:
            raise ValueError(
                f"ids must hold at least one text of one token, got {tuple(ids.shape)}"
            )
        if ids.shape[1] > self.length:
            raise ValueError(
                f"texts of {ids.shape[1]} tokens are longer than the exported length {self.length}; "
                "export again with a larger length"
            )
        padded = torch.nn.functional.pad(ids, (0, self.length - ids.shape[1]), value=PAD_ID)
        return self.run(padded)


def export_text_tower(model: nn.Module, length: int = 48) -> ExportedTextTower:
    """Export a :class:`~mmcourse.models.dual.DualEncoder`'s ``encode_text`` (through
    :class:`TextTower`): ids ``(B, length)`` -> unit embeddings ``(B, embed_dim)``, any batch
    size, texts padded to ``length`` tokens (the returned :class:`ExportedTextTower` checks
    and pads them; its ``program`` is the ``ExportedProgram``). A fixed length keeps the
    program simple; padding changes no text's embedding.
    """
    check_module(model, "model")
    check_int(length, "length", minimum=2)
    tower = TextTower(model)
    tables = [m for m in model.text_encoder.modules() if isinstance(m, nn.Embedding)]
    if not tables:
        raise ValueError("model.text_encoder has no nn.Embedding to read its vocabulary size from")
    vocab_size = tables[0].num_embeddings
    example = torch.full((2, length), PAD_ID, dtype=torch.long)
    example[:, 0], example[0, 1], example[:, 2] = BOS_ID, EOS_ID, EOS_ID
    example[1, 1] = min(4, vocab_size - 1)  # texts of different lengths
    program = export_module(tower, (example,))
    return ExportedTextTower(program, vocab_size, length)


def _state_layout(model: nn.Module, images: torch.Tensor) -> tuple[type, tuple[str, ...]]:
    """The class of the model's decoder state (a dataclass such as
    :class:`~mmcourse.models.captioner.CaptionerState` or the attention captioners' states)
    and which of its fields hold tensors (``cell`` is ``None`` for a GRU, ``memory`` when the
    decoder does not read the image at every step)."""
    for name in ("init_state", "step"):
        if not callable(getattr(model, name, None)):
            raise ValueError(
                f"model must offer init_state(images) and step(tokens, state), like Captioner; "
                f"got {type(model).__name__}"
            )
    with torch.no_grad(), eval_mode(model):
        state = model.init_state(images)
    if not dataclasses.is_dataclass(state) or isinstance(state, type):
        raise ValueError(
            f"model.init_state must return a dataclass of tensors (like CaptionerState), "
            f"got {type(state).__name__}"
        )
    fields = tuple(f.name for f in dataclasses.fields(state))
    return type(state), tuple(name for name in fields if getattr(state, name) is not None)


class CaptionEncoder(nn.Module):
    """``forward(images) -> state``: a captioner's ``init_state`` with the state flattened
    to a tuple of tensors, the fields ``fields`` of its state dataclass in order."""

    def __init__(self, model: nn.Module, fields: Sequence[str]) -> None:
        super().__init__()
        self.model, self.fields = model, tuple(fields)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = self.model.init_state(images)
        return tuple(getattr(state, name) for name in self.fields)


class CaptionStep(nn.Module):
    """``forward(tokens (B,), state) -> (logits (B, V), new state)``: one decoder step of a
    captioner, the state a tuple of tensors as :class:`CaptionEncoder` returns it.
    ``state_type`` is the state's dataclass (fields not in ``fields`` are ``None``)."""

    def __init__(
        self, model: nn.Module, fields: Sequence[str], state_type: type = CaptionerState
    ) -> None:
        super().__init__()
        self.model, self.fields, self.state_type = model, tuple(fields), state_type

    def forward(
        self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        values = {f.name: None for f in dataclasses.fields(self.state_type)}
        values.update(zip(self.fields, state))
        logits, new_state = self.model.step(tokens, self.state_type(**values))
        return logits, tuple(getattr(new_state, name) for name in self.fields)


def _check_fixed_shapes(model: nn.Module, images: torch.Tensor, fields: Sequence[str]) -> None:
    """Refuse, before exporting, a captioner whose state changes shape from step to step (the
    Transformer's prefix of words so far): an exported step is traced for one shape, and the
    second step would fail deep inside torch with a guard error."""
    with torch.no_grad(), eval_mode(model):
        state = model.init_state(images)
        tokens = torch.full((images.shape[0],), BOS_ID, dtype=torch.long)
        _, after = model.step(tokens, state)
    for name in fields:
        before, later = getattr(state, name), getattr(after, name)
        if isinstance(before, torch.Tensor) and before.shape != later.shape:
            raise ValueError(
                f"{type(model).__name__}'s state field {name!r} grows from "
                f"{tuple(before.shape)} to {tuple(later.shape)} in one step: only captioners "
                "whose state keeps its shape (Show and Tell, Show, Attend and Tell) export as "
                "one fixed step; run this one eagerly, or with torch.compile"
            )


def export_captioner(
    model: nn.Module, example_images: torch.Tensor | None = None
) -> tuple[ExportedProgram, ExportedProgram]:
    """Export a captioner whose state has a fixed shape -- Show and Tell
    (:class:`~mmcourse.models.captioner.Captioner`) or Show, Attend and Tell
    (:class:`~mmcourse.models.attention_captioner.AttentionCaptioner`) -- as two programs, both
    with a free batch size (the Transformer's state, a growing prefix, is refused with a
    ValueError before anything is traced):

    - ``encoder``: ``images (B, 1, 64, 64) -> state``, a tuple of tensors;
    - ``step``: ``(tokens (B,), state) -> (logits (B, V), state)``.

    The loop that calls them (:func:`greedy_caption_exported`) stays in plain Python: how
    many steps it runs depends on the tokens it picks, which a traced graph cannot express.
    ``example_images`` (default zeros ``(2, 1, 64, 64)``) only give the shapes.
    """
    check_module(model, "model")
    if example_images is None:
        example_images = torch.zeros(2, 1, CANVAS, CANVAS)
    state_type, fields = _state_layout(model, example_images)
    _check_fixed_shapes(model, example_images, fields)
    encoder = export_module(CaptionEncoder(model, fields), (example_images,))
    state = encoder.module()(example_images)
    tokens = torch.full((example_images.shape[0],), BOS_ID, dtype=torch.long)
    step = export_module(CaptionStep(model, fields, state_type), (tokens, tuple(state)))
    return encoder, step


class ExportedCaptioner:
    """The two programs of :func:`export_captioner` behind the step interface of
    :mod:`mmcourse.decode` (``init_state`` / ``step``), so that
    :func:`~mmcourse.decode.greedy_decode` and :func:`~mmcourse.decode.beam_search` run on
    them unchanged: the state is the tuple of tensors the programs pass along."""

    def __init__(
        self,
        encoder: ExportedProgram | Callable[..., Any],
        step: ExportedProgram | Callable[..., Any],
    ) -> None:
        self.run_encoder = _runnable(encoder, "encoder")
        self.run_step = _runnable(step, "step")

    def init_state(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.run_encoder(images))

    def step(
        self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        logits, new_state = self.run_step(tokens, state)
        return logits, tuple(new_state)


def greedy_caption_exported(
    encoder: ExportedProgram | Callable[..., Any],
    step: ExportedProgram | Callable[..., Any],
    images: torch.Tensor,
    max_len: int,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
) -> torch.Tensor:
    """Greedy captions from the two programs of :func:`export_captioner`: the tokens
    :func:`mmcourse.decode.greedy_decode` gives on the original model, ``(B, L)`` with
    ``L <= max_len``, each row ending in ``<eos>`` (unless cut) and padded after it.

    ``encoder`` and ``step`` may be ``ExportedProgram`` objects or their ``.module()``
    (pass the latter when calling many times: ``.module()`` builds a new module each time).
    The loop is :func:`~mmcourse.decode.greedy_decode`'s own, run on an
    :class:`ExportedCaptioner`.
    """
    model = ExportedCaptioner(encoder, step)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] < 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float batch (B, 1, H, W), got {shape}")
    return greedy_decode(model, images, max_len, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id)


# ---------------------------------------------------------------------------------- checks
def _call(fn: Callable[..., Any], inputs: Inputs) -> Any:
    return fn(*_as_args(inputs, "inputs"))


@torch.no_grad()
def outputs_match(
    reference_fn: Callable[..., Any],
    candidate_fn: Callable[..., Any],
    inputs: Inputs,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> tuple[bool, float]:
    """Run both functions on ``inputs`` (one tensor or a tuple of positional inputs) and
    compare every output tensor: ``|candidate - reference| <= atol + rtol * |reference|``.

    Returns:
        ``(match, max_abs_diff)``: whether every element is within tolerance, and the largest
        absolute difference over all outputs. Outputs of different structure, shape or count
        do not match (``max_abs_diff`` is ``inf``); NaN in the same places counts as equal,
        NaN in only one of them as a difference of ``inf``.
    """
    check_nonnegative(atol, "atol")
    check_nonnegative(rtol, "rtol")
    expected = _tensors(_call(reference_fn, inputs))
    actual = _tensors(_call(candidate_fn, inputs))
    if len(expected) != len(actual) or any(a.shape != b.shape for a, b in zip(expected, actual)):
        return False, math.inf
    match, worst = True, 0.0
    for ref, out in zip(expected, actual):
        ref, out = ref.detach().double().cpu(), out.detach().double().cpu()
        match &= bool(torch.allclose(out, ref, atol=atol, rtol=rtol, equal_nan=True))
        both_nan = torch.isnan(ref) & torch.isnan(out)
        diff = (out - ref).abs().masked_fill(both_nan, 0.0).nan_to_num(nan=math.inf)
        if diff.numel():
            worst = max(worst, float(diff.max()))
    return match, worst


# ---------------------------------------------------------------------------------- measure
def _check_timing(repeats: int, warmup: int) -> None:
    check_int(repeats, "repeats")
    check_int(warmup, "warmup", minimum=0)


@torch.no_grad()
def measure_latency(
    fn: Callable[..., Any], example: Inputs, repeats: int = 50, warmup: int = 5
) -> dict[str, float]:
    """Time ``fn(*example)`` call by call, as one request at a time would see it.

    Pass a batch of 1 for a service's latency. The first ``warmup`` calls are not timed
    (they fill caches and, for a compiled model, may compile); the clock is
    ``time.perf_counter`` and gradients are off. Put a model in eval mode first.

    Returns:
        ``{"median_ms", "mean_ms", "min_ms", "max_ms", "repeats"}``; the median is the number
        to quote, as other programs on the machine make single calls slow now and then.
    """
    _check_timing(repeats, warmup)
    args = _as_args(example, "example")
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - start) * 1000.0)
    return {
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": float(repeats),
    }


@torch.no_grad()
def measure_throughput(
    fn: Callable[..., Any], batch: Inputs, repeats: int = 10, warmup: int = 2
) -> float:
    """Items per second of ``fn(*batch)``: ``B * repeats / seconds``, ``B`` the size of
    dimension 0 of the first input tensor (e.g. 64 canvases). ``warmup`` calls go untimed."""
    _check_timing(repeats, warmup)
    args = _as_args(batch, "batch")
    tensors = _tensors(args)
    if not tensors or tensors[0].dim() == 0:
        raise ValueError("batch must hold a tensor with a batch dimension")
    items = tensors[0].shape[0]
    for _ in range(warmup):
        fn(*args)
    start = time.perf_counter()
    for _ in range(repeats):
        fn(*args)
    seconds = time.perf_counter() - start
    return items * repeats / max(seconds, 1e-12)


def model_size_bytes(model: nn.Module | ExportedProgram) -> int:
    """Bytes of the serialised weights: ``torch.save(model.state_dict())`` for a module
    (int8 weights count their int8 values and scales), ``torch.export.save`` for an
    exported program (graph included). Written to memory, not to disk."""
    buffer = io.BytesIO()
    if isinstance(model, ExportedProgram):
        torch.export.save(model, buffer)
    else:
        check_module(model, "model")
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


# ---------------------------------------------------------------------------------- speed up
def compiled(
    module: nn.Module, example_inputs: Inputs, **compile_kwargs: Any
) -> tuple[Callable[..., Any], float]:
    """``torch.compile(module)``, compiled now: returns ``(compiled_module, seconds)``.

    ``torch.compile`` compiles lazily, on the first call; this makes that call with
    ``example_inputs`` (gradients off) so the one-off cost -- often 10-30 s on a laptop's
    CPU, against milliseconds per call afterwards -- is reported apart from the latency.
    A new input shape (another batch size) may compile again. The compiled module shares
    its weights with ``module``, which must be in eval mode.
    """
    check_module(module, "module")
    if module.training:
        raise ValueError("compile a model for inference in eval mode: call module.eval() first")
    fast = torch.compile(module, **compile_kwargs)
    start = time.perf_counter()
    with torch.no_grad():
        _call(fast, example_inputs)
    return fast, time.perf_counter() - start


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


# ---------------------------------------------------------------------------------- services
def prepare_canvases(images: object, normalize: bool = True, name: str = "images") -> torch.Tensor:
    """Check a batch of canvases and turn it into the float input the course's models take.

    Accepted: a ``torch.Tensor`` or NumPy array of shape ``(B, 64, 64)`` or
    ``(B, 1, 64, 64)``, either ``uint8`` pixels ``0..255`` (what the dataset stores) or
    floats in ``[0, 1]`` (raw pixels, *not* already normalised). Returns float32
    ``(B, 1, 64, 64)``, standardised with the training canvases' mean and std when
    ``normalize`` (as ``MNISTCaptions.float_images()`` does).

    Raises ``TypeError`` for something that is not an array, ``ValueError`` for a wrong
    shape, dtype or value (NaN, inf, outside ``[0, 1]``) -- with what arrived and how to fix it.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or a NumPy array of canvases, got "
            f"{type(images).__name__}"
        )
    side = (CANVAS, CANVAS)
    shape = tuple(images.shape)
    if len(shape) not in (3, 4) or shape[1:] not in (side, (1, *side)) or shape[0] < 1:
        raise ValueError(
            f"{name} must have shape (B, {CANVAS}, {CANVAS}) or (B, 1, {CANVAS}, {CANVAS}) "
            f"with B >= 1, got {shape}"
        )
    if images.dtype == torch.uint8:
        pixels = images.float() / 255.0
    elif images.is_floating_point():
        pixels = images.float()
        if not torch.isfinite(pixels).all():
            raise ValueError(f"{name} holds NaN or inf; every pixel must be a number in [0, 1]")
        low, high = float(pixels.min()), float(pixels.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"float {name} must hold raw pixels in [0, 1], got values in [{low:.3g}, "
                f"{high:.3g}]; pass uint8 pixels or divide by 255 (the service normalises "
                "them itself, so do not pass normalised images)"
            )
    else:
        raise ValueError(
            f"{name} must be uint8 pixels (0..255) or floats in [0, 1], got {images.dtype}; "
            "convert with .to(torch.uint8) or .float() / 255"
        )
    pixels = pixels.reshape(shape[0], 1, CANVAS, CANVAS)
    return (pixels - CANVAS_MEAN) / CANVAS_STD if normalize else pixels


def _one_canvas(image: object) -> torch.Tensor:
    """One canvas ``(64, 64)`` or ``(1, 64, 64)`` -> a batch of one ``(1, 64, 64)``."""
    if isinstance(image, np.ndarray | torch.Tensor):
        shape = tuple(image.shape)
        if shape in ((CANVAS, CANVAS), (1, CANVAS, CANVAS)):
            return image.reshape(1, CANVAS, CANVAS)
        raise ValueError(
            f"image must be one canvas of shape ({CANVAS}, {CANVAS}) or (1, {CANVAS}, {CANVAS}), "
            f"got {shape}; describe_batch takes several"
        )
    return image  # prepare_canvases raises the TypeError


class CaptionService:
    """Describe a canvas in words, with the exported pieces of a captioner.

    >>> service = CaptionService.from_model(captioner, vocab)         # doctest: +SKIP
    >>> service.describe(data.images[0])                               # doctest: +SKIP
    'a small seven on the left'
    >>> service.save("caption_service"); CaptionService.load("caption_service")  # doctest: +SKIP

    ``describe`` takes one canvas: ``(64, 64)`` or ``(1, 64, 64)``, ``uint8`` ``0..255`` or
    float in ``[0, 1]`` (a tensor or a NumPy array); ``describe_batch`` a batch ``(B, 64, 64)``
    or ``(B, 1, 64, 64)``. Anything else is refused with a ``ValueError`` saying what
    arrived (:func:`prepare_canvases`), which a web handler can return as a 400 response.

    Args:
        encoder, step: the programs of :func:`export_captioner` (or callables alike).
        vocab: the captioner's vocabulary (turns token ids into words).
        max_len: most tokens per caption, ``<eos>`` included.
        normalize: standardise pixels as the training canvases were (``float_images()``).
    """

    def __init__(
        self,
        encoder: ExportedProgram | Callable[..., Any],
        step: ExportedProgram | Callable[..., Any],
        vocab: Vocabulary,
        max_len: int = 30,
        normalize: bool = True,
    ) -> None:
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
        self.max_len = check_int(max_len, "max_len")
        self.vocab, self.normalize = vocab, bool(normalize)
        self.programs = (encoder, step)
        self._encoder, self._step = _runnable(encoder, "encoder"), _runnable(step, "step")

    @classmethod
    def from_model(
        cls, model: nn.Module, vocab: Vocabulary, max_len: int = 30, normalize: bool = True
    ) -> CaptionService:
        """Export ``model`` (a :class:`~mmcourse.models.captioner.Captioner`) and serve it."""
        check_module(model, "model")
        vocab_size = getattr(model, "vocab_size", None)
        if (
            isinstance(vocab_size, int)
            and isinstance(vocab, Vocabulary)
            and vocab_size != len(vocab)
        ):
            raise ValueError(
                f"the model scores {vocab_size} tokens but the vocabulary holds {len(vocab)}"
            )
        encoder, step = export_captioner(model)
        return cls(encoder, step, vocab, max_len, normalize)

    def describe_ids(self, images: object) -> torch.Tensor:
        """Greedy token ids ``(B, L)`` for a batch of canvases (checked as in ``describe_batch``)."""
        batch = prepare_canvases(images, self.normalize)
        return greedy_caption_exported(self._encoder, self._step, batch, self.max_len)

    def describe_batch(self, images: object) -> list[str]:
        """One caption per canvas of ``(B, 64, 64)`` or ``(B, 1, 64, 64)``."""
        return self.vocab.decode_batch(self.describe_ids(images))

    def describe(self, image: object) -> str:
        """The caption of one canvas ``(64, 64)`` or ``(1, 64, 64)``."""
        return self.describe_batch(_one_canvas(image))[0]

    def save(self, folder: str | Path) -> Path:
        """Write ``encoder.pt2``, ``step.pt2`` and ``service.json`` (vocabulary, settings)
        into ``folder``; :meth:`load` needs nothing else."""
        encoder, step = self.programs
        if not (isinstance(encoder, ExportedProgram) and isinstance(step, ExportedProgram)):
            raise ValueError("only a service built from exported programs can be saved")
        folder = Path(folder)
        save_exported(encoder, folder / "encoder.pt2")
        save_exported(step, folder / "step.pt2")
        settings = {"vocab": self.vocab.to_dict(), "max_len": self.max_len}
        settings["normalize"] = self.normalize
        (folder / "service.json").write_text(json.dumps(settings, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> CaptionService:
        """The service :meth:`save` wrote into ``folder``."""
        folder = Path(folder)
        settings_path = folder / "service.json"
        if not settings_path.is_file():
            raise FileNotFoundError(f"no service.json in {folder} (write it with save)")
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        return cls(
            load_exported(folder / "encoder.pt2"),
            load_exported(folder / "step.pt2"),
            Vocabulary.from_dict(settings["vocab"]),
            settings["max_len"],
            settings["normalize"],
        )


UNKNOWN_WORDS = ("error", "unk")
""":class:`SearchService`'s policies for a query word the vocabulary lacks."""


class SearchService:
    """Find the canvases of a stored gallery that best match a sentence.

    The gallery's image embeddings are computed once, when the service is built; a query
    then costs one pass of the text tower and one matrix-vector product.

    >>> search = SearchService(dual_encoder, vocab, test.images)   # doctest: +SKIP
    >>> search.search("a large two on the right", k=3)             # doctest: +SKIP
    [412, 7, 1290]

    Args:
        model: a trained :class:`~mmcourse.models.dual.DualEncoder` (anything with
            ``encode_image`` and ``encode_text``); the service keeps a copy in eval mode,
            so training the original further does not change it.
        vocab: the vocabulary the text tower was trained with.
        gallery: canvases ``(N, 64, 64)`` or ``(N, 1, 64, 64)``, uint8 or floats in
            ``[0, 1]`` (as :func:`prepare_canvases` checks them).
        normalize: standardise pixels as in training.
        add_bos_eos: wrap a query in ``<bos> ... <eos>`` as ``Vocabulary.encode_batch``
            does by default (how the course trains its dual encoders).
        unknown: what to do with a word the vocabulary lacks: ``"error"`` (default) refuses
            the query and names the words; ``"unk"`` reads them as ``<unk>``, as training did.
            A query none of whose words is known is refused either way.
        batch_size: canvases embedded at a time while building the gallery.

    ``search(query, k)`` returns the indices of the ``k`` most similar canvases, best first.
    """

    def __init__(
        self,
        model: nn.Module,
        vocab: Vocabulary,
        gallery: object,
        *,
        normalize: bool = True,
        add_bos_eos: bool = True,
        unknown: str = "error",
        batch_size: int = 256,
    ) -> None:
        check_module(model, "model")
        for name in ("encode_image", "encode_text"):
            if not callable(getattr(model, name, None)):
                raise ValueError(
                    f"model must offer encode_image and encode_text, like DualEncoder; "
                    f"got {type(model).__name__}"
                )
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab must be a Vocabulary, got {type(vocab).__name__}")
        vocab_size = getattr(getattr(model, "text_encoder", None), "vocab_size", None)
        if isinstance(vocab_size, int) and vocab_size != len(vocab):
            raise ValueError(
                f"the text tower knows {vocab_size} tokens but the vocabulary holds {len(vocab)}"
            )
        check_choice(unknown, "unknown", UNKNOWN_WORDS)
        check_int(batch_size, "batch_size")
        images = prepare_canvases(gallery, normalize, name="gallery")
        self.model = copy.deepcopy(model).eval()
        self.vocab, self.add_bos_eos, self.unknown = vocab, bool(add_bos_eos), unknown
        with torch.no_grad():
            self.gallery_embeddings = torch.cat(
                [self.model.encode_image(part) for part in images.split(batch_size)]
            )

    def __len__(self) -> int:
        return self.gallery_embeddings.shape[0]

    def query_ids(self, query: str) -> torch.Tensor:
        """The checked query as token ids ``(1, T)``."""
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        tokens = tokenize(query)
        if not tokens:
            raise ValueError("query is empty: describe the canvas in a few words")
        unknown = sorted({token for token in tokens if token not in self.vocab})
        if unknown and (self.unknown == "error" or len(unknown) == len(set(tokens))):
            known = ", ".join(self.vocab.itos[4:14])
            raise ValueError(
                f"the model never saw the word(s) {unknown} in training; use words from its "
                f"vocabulary of {len(self.vocab)} tokens (e.g. {known}, ...)"
                + ("" if self.unknown == "error" else "; the query holds no known word")
            )
        tokens = [UNK if token in unknown else token for token in tokens]
        return torch.tensor([self.vocab.encode(tokens, self.add_bos_eos)], dtype=torch.long)

    @torch.no_grad()
    def scores(self, query: str) -> torch.Tensor:
        """Cosine similarity of ``query`` to every gallery canvas, ``(N,)``."""
        text = self.model.encode_text(self.query_ids(query))  # (1, E)
        return (self.gallery_embeddings @ text[0]).float()

    def search(self, query: str, k: int = 5) -> list[int]:
        """Indices of the ``k`` gallery canvases most similar to ``query``, best first
        (ties: the lower index first)."""
        check_int(k, "k", minimum=1, maximum=len(self))
        order = torch.sort(self.scores(query), descending=True, stable=True).indices
        return order[:k].tolist()
