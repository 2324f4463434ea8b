"""Export: a trained module traced by ``torch.export`` into a program that runs without its class
(:func:`export_module`, :func:`save_exported`, :func:`load_exported`), the two towers of a dual
encoder, and a captioner in two exportable pieces (its encoder and one decoder step) with
:func:`greedy_caption_exported` running the loop around them.
"""

from __future__ import annotations

import dataclasses
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from mmcourse._validate import check_int, check_module, require
from mmcourse.data.captions import CANVAS
from mmcourse.decode import greedy_decode
from mmcourse.models.captioner import CaptionerState
from mmcourse.models.text import check_ids
from mmcourse.modes import eval_mode
from mmcourse.vocab import BOS_ID, EOS_ID, PAD_ID

__all__ = [
    "CaptionEncoder",
    "CaptionStep",
    "ExportedCaptioner",
    "ExportedTextTower",
    "ImageTower",
    "TextTower",
    "export_captioner",
    "export_image_tower",
    "export_module",
    "export_text_tower",
    "greedy_caption_exported",
    "load_exported",
    "save_exported",
]


Inputs = torch.Tensor | tuple[Any, ...]
"""A model's positional inputs: one tensor, or a tuple of tensors (and tuples of tensors)."""


def as_args(inputs: object, name: str = "example_inputs") -> tuple[Any, ...]:
    """One tensor -> ``(tensor,)``; a tuple or list -> a tuple; anything else: TypeError."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    if isinstance(inputs, tuple | list) and len(inputs) > 0:
        return tuple(inputs)
    raise TypeError(
        f"{name} must be a tensor or a non-empty tuple of the model's positional inputs, "
        f"got {type(inputs).__name__}"
    )


def tensors_in(tree: object) -> list[torch.Tensor]:
    """Every tensor in a tensor / tuple / list / dict / dataclass nesting, in order."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if tree is None:
        return []
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        return [t for f in dataclasses.fields(tree) for t in tensors_in(getattr(tree, f.name))]
    if isinstance(tree, dict):
        return [t for value in tree.values() for t in tensors_in(value)]
    if isinstance(tree, tuple | list):
        return [t for value in tree for t in tensors_in(value)]
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


def runnable(program: object, name: str) -> Callable[..., Any]:
    """An ``ExportedProgram`` -> its callable ``.module()``; a callable stays as it is."""
    if isinstance(program, ExportedProgram):
        return program.module()
    if callable(program):
        return program
    raise TypeError(
        f"{name} must be an ExportedProgram or a callable, got {type(program).__name__}"
    )


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
    args = as_args(example_inputs)
    tensors = tensors_in(args)
    require(tensors, "example_inputs hold no tensor")
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
        self.run = runnable(program, "program")
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
    require(tables, "model.text_encoder has no nn.Embedding to read its vocabulary size from")
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
        self.run_encoder = runnable(encoder, "encoder")
        self.run_step = runnable(step, "step")

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
