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

6. **Notice trouble** (:mod:`~mmcourse.deploy.monitor`): confidence scores, and a
   :class:`DriftMonitor` that compares windows of live scores with the training distribution.
7. **Prune** (:mod:`~mmcourse.deploy.prune`): unstructured and structured magnitude pruning.
8. **Say "I do not know"** (:mod:`~mmcourse.deploy.confidence`, :mod:`~mmcourse.deploy.ood`):
   a caption's confidence and its agreement with the image, a gate calibrated on validation
   that flags unusual requests, and the unusual canvases to test it on; for search
   (:mod:`~mmcourse.deploy.match_confidence`), the probability that the best canvas matches
   the query, calibrated on validation queries by Platt scaling.
9. **ONNX** (:mod:`~mmcourse.deploy.onnx_runtime`): the exported programs saved as ONNX and
   run with ONNX Runtime.

The steps live in :mod:`~mmcourse.deploy.export`, :mod:`~mmcourse.deploy.measure`,
:mod:`~mmcourse.deploy.quantize`, :mod:`~mmcourse.deploy.serve`, :mod:`~mmcourse.deploy.monitor`
:mod:`~mmcourse.deploy.prune`, :mod:`~mmcourse.deploy.confidence`,
:mod:`~mmcourse.deploy.match_confidence`, :mod:`~mmcourse.deploy.ood`
and :mod:`~mmcourse.deploy.onnx_runtime`; everything is also importable from here
(``deploy.export_captioner``).
"""

from mmcourse.deploy.confidence import (
    ConfidenceGate,
    caption_agreement,
    caption_with_confidence,
)
from mmcourse.deploy.export import (
    CaptionEncoder,
    CaptionStep,
    ExportedCaptioner,
    ExportedTextTower,
    ImageTower,
    TextTower,
    export_captioner,
    export_image_tower,
    export_module,
    export_text_tower,
    greedy_caption_exported,
    load_exported,
    save_exported,
)
from mmcourse.deploy.match_confidence import PlattScaling, binary_reliability
from mmcourse.deploy.measure import (
    compiled,
    measure_latency,
    measure_throughput,
    model_size_bytes,
    outputs_match,
)
from mmcourse.deploy.monitor import (
    DriftMonitor,
    ks_statistic,
    max_softmax_confidence,
    mean_log_probability,
)
from mmcourse.deploy.onnx_runtime import OnnxCaptioner, OnnxProgram, save_onnx
from mmcourse.deploy.ood import LETTERS, OVERSIZE, UNUSUAL_KINDS, letter_glyphs, unusual_canvases
from mmcourse.deploy.prune import compressed_size_bytes, prunable_layers, prune_weights, sparsity
from mmcourse.deploy.quantize import QUANT_MODES, int8_layers, quantize_int8
from mmcourse.deploy.serve import UNKNOWN_WORDS, CaptionService, SearchService, prepare_canvases

__all__ = [
    "CaptionEncoder",
    "CaptionService",
    "CaptionStep",
    "ConfidenceGate",
    "PlattScaling",
    "DriftMonitor",
    "ExportedCaptioner",
    "ExportedTextTower",
    "ImageTower",
    "LETTERS",
    "OVERSIZE",
    "OnnxCaptioner",
    "OnnxProgram",
    "QUANT_MODES",
    "SearchService",
    "TextTower",
    "UNKNOWN_WORDS",
    "UNUSUAL_KINDS",
    "binary_reliability",
    "caption_agreement",
    "caption_with_confidence",
    "compiled",
    "compressed_size_bytes",
    "export_captioner",
    "export_image_tower",
    "export_module",
    "export_text_tower",
    "greedy_caption_exported",
    "int8_layers",
    "ks_statistic",
    "letter_glyphs",
    "load_exported",
    "max_softmax_confidence",
    "mean_log_probability",
    "measure_latency",
    "measure_throughput",
    "model_size_bytes",
    "outputs_match",
    "prepare_canvases",
    "prunable_layers",
    "prune_weights",
    "quantize_int8",
    "save_exported",
    "save_onnx",
    "sparsity",
    "unusual_canvases",
]
