"""ONNX: the exported programs in a format other runtimes read, run with ONNX Runtime.

``torch.export`` (:mod:`~mmcourse.deploy.export`) gives a graph that PyTorch runs. ONNX is
an open standard for the same idea -- a graph of operators plus weights in one file -- read
by ONNX Runtime, TensorRT, OpenVINO, browsers (onnxruntime-web) and phones, none of which
needs Python or PyTorch.

- :func:`save_onnx` converts an ``ExportedProgram`` (or a module and example inputs) with
  ``torch.onnx.export(..., dynamo=True)``, which starts from ``torch.export``'s own graph,
  keeping its free batch dimension, and writes a ``.onnx`` file;
- :class:`OnnxProgram` runs such a file with ONNX Runtime, tensors in, tensors out;
- :class:`OnnxCaptioner` puts an exported encoder and decoder step behind the captioner's
  ``init_state`` / ``step`` interface, so :func:`~mmcourse.decode.greedy_decode` and beam
  search run on it unchanged.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import torch
from torch.export import ExportedProgram

from mmcourse._validate import check_int, require

__all__ = ["OnnxCaptioner", "OnnxProgram", "save_onnx"]


def save_onnx(
    program: ExportedProgram | torch.nn.Module,
    path: str | Path,
    example_inputs: tuple[Any, ...] | None = None,
) -> Path:
    """Write ``program`` to ``path`` (``.onnx``) and return the path.

    ``program`` is an ``ExportedProgram`` (its free batch dimension stays free), or an
    ``nn.Module`` in eval mode with ``example_inputs``, exported with a fixed batch size.
    The converter's progress messages are swallowed; its errors are not. The converter's
    per-node stack traces are dropped: they hold this machine's file paths, so the same
    model would give files of different sizes in different folders."""
    path = Path(path)
    require(path.suffix == ".onnx", f"path must end in .onnx, got {path.name!r}")
    if isinstance(program, ExportedProgram):
        require(example_inputs is None, "an ExportedProgram brings its own example inputs")
        args: tuple[Any, ...] = ()
    else:
        require(
            isinstance(program, torch.nn.Module) and isinstance(example_inputs, tuple),
            "program must be an ExportedProgram, or an nn.Module with a tuple of example_inputs",
        )
        require(not program.training, "export a model in eval mode: call program.eval() first")
        args = example_inputs
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):
        onnx_program = torch.onnx.export(program, args, dynamo=True)
    _drop_stack_traces(onnx_program.model)
    onnx_program.save(str(path))
    return path


def _drop_stack_traces(model: Any) -> None:
    """Remove the ``pkg.torch.onnx.stack_trace`` note from every node of the exporter's model
    (an ``onnx_ir.Model``), its subgraphs and its functions included."""
    for graph in [model.graph, *model.functions.values()]:
        for node in graph.all_nodes():
            node.metadata_props.pop("pkg.torch.onnx.stack_trace", None)


class OnnxProgram:
    """A ``.onnx`` file run by ONNX Runtime on the CPU: ``program(*tensors)`` returns one
    tensor, or a tuple when the graph has several outputs.

    Args:
        path: the file :func:`save_onnx` wrote.
        threads: ONNX Runtime's intra-operator threads (1, as the chapter's timings use).
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime

        path = Path(path)
        require(path.is_file(), f"no ONNX file at {path}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = check_int(threads, "threads")
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.n_outputs = len(self.session.get_outputs())

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        require(
            len(inputs) == len(self.input_names),
            f"the graph takes {len(self.input_names)} tensors ({', '.join(self.input_names)}), "
            f"got {len(inputs)}",
        )
        for name, tensor in zip(self.input_names, inputs):
            require(isinstance(tensor, torch.Tensor), f"input {name} must be a tensor")
        feed = {
            name: t.detach().cpu().contiguous().numpy() for name, t in zip(self.input_names, inputs)
        }
        outputs = tuple(torch.from_numpy(array) for array in self.session.run(None, feed))
        return outputs[0] if self.n_outputs == 1 else outputs


class OnnxCaptioner:
    """``init_state(images) -> state`` and ``step(tokens, state) -> (logits, state)`` from
    the ONNX files of :func:`~mmcourse.deploy.export_captioner`'s two programs (the state a
    tuple of tensors, as :class:`~mmcourse.deploy.ExportedCaptioner` keeps it)."""

    def __init__(self, encoder: OnnxProgram, step: OnnxProgram) -> None:
        for name, value in (("encoder", encoder), ("step", step)):
            require(isinstance(value, OnnxProgram), f"{name} must be an OnnxProgram")
        self.encoder, self._step = encoder, step

    def init_state(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = self.encoder(images)
        return state if isinstance(state, tuple) else (state,)

    def step(
        self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        logits, *new_state = self._step(tokens, *state)
        return logits, tuple(new_state)
