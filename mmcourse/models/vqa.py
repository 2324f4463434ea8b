"""Visual question answering models: a backbone that sees the canvas, and the full model.

- :class:`CanvasBackbone` -- an image encoder giving a grid of region vectors and one vector per
  canvas; :class:`SlotAttributeHead` reads what stands in each slot from that vector, to
  pretrain the backbone (with :func:`mmcourse.losses.slot_attribute_loss`);
- :class:`VQAModel` -- image encoder + question encoder + a
  :class:`~mmcourse.models.fusion.Fusion` + answer classifier;
- :class:`CanvasLookup` -- a :class:`VQAModel` that reads stored features by canvas index.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcourse._validate import check_float, check_int, check_probability, check_sizes
from mmcourse.data.questions import ATTRIBUTE_CLASSES
from mmcourse.models.fusion import Fusion
from mmcourse.models.image import CanvasEncoder


class CanvasBackbone(nn.Module):
    """An image encoder that gives both a grid of regions and one vector per canvas.

    ``forward_grid(images) -> (B, R, region_dim)`` is the
    :class:`~mmcourse.models.image.CanvasEncoder` grid (what attention and FiLM look at);
    ``vector(regions) -> (B, out_dim)`` flattens the grid (so every region keeps its place)
    and projects it with a linear layer, as VGG's fully connected layers turn its last feature
    maps into one vector. ``forward(images) = vector(forward_grid(images))``.
    """

    def __init__(
        self,
        encoder: CanvasEncoder | None = None,
        out_dim: int = 64,
        image_size: tuple[int, int] = (64, 64),
    ) -> None:
        super().__init__()
        check_int(out_dim, "out_dim")
        self.encoder = encoder if encoder is not None else CanvasEncoder(64, (16, 32, 64))
        self.image_size = tuple(check_sizes(image_size, "image_size", length=2))
        self.grid_size = self.encoder.grid_size(*self.image_size)
        if min(self.grid_size) < 1:
            raise ValueError(f"images of {self.image_size} are too small for this encoder")
        self.n_regions = self.grid_size[0] * self.grid_size[1]
        self.region_dim, self.out_dim = self.encoder.out_dim, out_dim
        self.to_vector = nn.Sequential(
            nn.Flatten(), nn.Linear(self.n_regions * self.region_dim, out_dim)
        )

    def forward_grid(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` -> regions ``(B, R, region_dim)``, row-major (top-left first)."""
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            if tuple(images.shape[-2:]) != self.image_size:
                raise ValueError(
                    f"expected images of size {self.image_size}, got {tuple(images.shape[-2:])}"
                )
        return self.encoder.forward_grid(images)

    def vector(self, regions: torch.Tensor) -> torch.Tensor:
        """Regions ``(B, R, region_dim)`` -> one vector ``(B, out_dim)`` per canvas."""
        check_float(regions, "regions", ("B", "R", self.region_dim))
        if regions.shape[1] != self.n_regions:
            raise ValueError(f"expected {self.n_regions} regions, got {regions.shape[1]}")
        return self.to_vector(regions)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.vector(self.forward_grid(images))

    @torch.no_grad()
    def store_regions(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """The regions ``(N, R, region_dim)`` of many canvases ``(N, 1, H, W)``, computed batch
        by batch in eval mode without gradients (on the backbone's device), returned on the
        CPU: run a frozen backbone once, reuse its output for every question and model."""
        check_int(batch_size, "batch_size")
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            parts = [self.forward_grid(x.to(device)).cpu() for x in images.split(batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(parts)


class SlotAttributeHead(nn.Module):
    """Reads what stands in each slot from an image vector: for each of the 3 slots, logits
    over digit (11 classes: empty or 0-9), size, thickness and slant (each "empty" or a
    value), the targets of :func:`mmcourse.data.questions.slot_targets`.

    ``forward(vector (B, in_dim)) -> (B, 3, 22)``; :func:`slot_attribute_loss` scores it.
    A backbone trained with it learns to *see* the canvas, as VQA backbones are pretrained to
    name objects and their attributes before any question is asked.
    """

    def __init__(self, in_dim: int, slots: int = 3) -> None:
        super().__init__()
        check_int(in_dim, "in_dim")
        check_int(slots, "slots")
        self.slots = slots
        self.linear = nn.Linear(in_dim, slots * sum(ATTRIBUTE_CLASSES))

    def forward(self, vector: torch.Tensor) -> torch.Tensor:
        check_float(vector, "vector", ("B", self.linear.in_features))
        return self.linear(vector).view(len(vector), self.slots, sum(ATTRIBUTE_CLASSES))


# ----------------------------------------------------------------------------- the VQA model


class VQAModel(nn.Module):
    """Visual question answering: image encoder + question encoder + fusion + classifier.

    ``forward(images, questions) -> (B, n_answers)`` logits. ``images`` is either

    - raw canvases ``(B, 1, H, W)``: they go through ``image_encoder`` (a
      :class:`CanvasBackbone`), or
    - the regions ``(B, R, D)`` that ``image_encoder.forward_grid`` already returned (e.g.
      stored once per canvas when the encoder is frozen).

    A ``"vector"`` fusion gets ``image_encoder.vector(regions)``, a ``"regions"`` fusion the
    regions themselves, a ``"pixels"`` fusion (:class:`EarlyFusion`) the raw canvases (and
    then ``image_encoder`` must be ``None``).

    Args:
        question_encoder: ``ids (B, T) -> (B, text_dim)``, e.g. a bag of words or a GRU.
        fusion: a :class:`Fusion`.
        n_answers: size of the answer vocabulary.
        image_encoder: a :class:`CanvasBackbone`, or ``None`` for early fusion.
        hidden: width of the classifier's hidden layer (``0``: a single linear layer).
        freeze_image_encoder: keep the image encoder's weights (and batch-norm statistics)
            fixed, so only the question encoder, fusion and classifier learn.
    """

    def __init__(
        self,
        question_encoder: nn.Module,
        fusion: Fusion,
        n_answers: int,
        image_encoder: CanvasBackbone | None = None,
        hidden: int = 64,
        dropout: float = 0.0,
        freeze_image_encoder: bool = True,
    ) -> None:
        super().__init__()
        check_int(n_answers, "n_answers")
        if not isinstance(fusion, Fusion):
            raise ValueError(f"fusion must be a Fusion module, got {type(fusion).__name__}")
        if fusion.input == "pixels" and image_encoder is not None:
            raise ValueError("early fusion reads the pixels itself: pass image_encoder=None")
        if fusion.input != "pixels" and image_encoder is None:
            raise ValueError(f"a {fusion.input!r} fusion needs an image_encoder (CanvasBackbone)")
        text_dim = getattr(question_encoder, "out_dim", None)
        if text_dim != fusion.text_dim:
            raise ValueError(
                f"the question encoder gives {text_dim}-d vectors, the fusion expects "
                f"text_dim={fusion.text_dim}"
            )
        if image_encoder is not None:
            want = image_encoder.region_dim if fusion.input == "regions" else image_encoder.out_dim
            if want != fusion.image_dim:
                raise ValueError(
                    f"the image encoder gives {want}-d {fusion.input}s, the fusion expects "
                    f"image_dim={fusion.image_dim}"
                )
        if fusion.produces_logits and fusion.out_dim != n_answers:
            raise ValueError(f"late fusion must output n_answers={n_answers} scores")
        check_int(hidden, "hidden", minimum=0)
        check_probability(dropout, "dropout")
        self.question_encoder, self.fusion, self.image_encoder = (
            question_encoder,
            fusion,
            image_encoder,
        )
        self.n_answers, self.freeze_image_encoder = n_answers, freeze_image_encoder
        if fusion.produces_logits:
            self.classifier: nn.Module = nn.Identity()
        elif hidden:
            self.classifier = nn.Sequential(
                nn.Linear(fusion.out_dim, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, n_answers),
            )
        else:
            self.classifier = nn.Linear(fusion.out_dim, n_answers)
        if image_encoder is not None and freeze_image_encoder:
            image_encoder.requires_grad_(False)
            image_encoder.eval()

    def train(self, mode: bool = True) -> VQAModel:
        super().train(mode)
        if self.image_encoder is not None and self.freeze_image_encoder:
            self.image_encoder.eval()  # a frozen encoder keeps its batch-norm statistics
        return self

    def image_input(self, images: torch.Tensor) -> torch.Tensor:
        """What the fusion gets on the image side (see the class docstring)."""
        if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
            raise ValueError(
                f"images must be canvases (B, 1, H, W) or regions (B, R, D), got {shape}"
            )
        if self.fusion.input == "pixels":
            if images.dim() != 4:
                raise ValueError("early fusion needs the raw canvases (B, 1, H, W), not regions")
            return images
        regions = images if images.dim() == 3 else self.image_encoder.forward_grid(images)
        return regions if self.fusion.input == "regions" else self.image_encoder.vector(regions)

    def forward(self, images: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        fused = self.fusion(self.image_input(images), self.question_encoder(questions))
        return self.classifier(fused)


class CanvasLookup(nn.Module):
    """A :class:`VQAModel` that takes canvas *indices*: ``lookup(canvas, questions) =
    model(table[canvas], questions)``.

    ``table`` holds one entry per canvas: the regions ``(N, R, D)`` a frozen image encoder
    gave once (:meth:`CanvasBackbone.store_regions`), or the canvases ``(N, 1, H, W)``
    themselves. Each canvas has about ten questions, so storing per canvas and looking up per
    question saves memory and, for regions, reruns of the encoder. ``table`` is a
    non-persistent buffer (it moves with ``.to(device)``, is not saved); the parameters are
    the model's.
    """

    def __init__(self, model: VQAModel, table: torch.Tensor) -> None:
        super().__init__()
        if not isinstance(model, VQAModel):
            raise ValueError(f"model must be a VQAModel, got {type(model).__name__}")
        if not isinstance(table, torch.Tensor) or not table.is_floating_point():
            raise ValueError("table must be a float tensor: regions (N, R, D) or canvases")
        if table.dim() == 3:
            if model.image_encoder is None:
                raise ValueError("early fusion reads pixels: give it canvases (N, 1, H, W)")
            check_float(table, "table", ("B", "R", model.image_encoder.region_dim))
        elif table.dim() != 4:
            raise ValueError(
                f"table must hold regions (N, R, D) or canvases (N, 1, H, W), got "
                f"{tuple(table.shape)}"
            )
        self.model = model
        self.register_buffer("table", table, persistent=False)

    def forward(self, canvas: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
        if not isinstance(canvas, torch.Tensor) or canvas.dim() != 1 or canvas.is_floating_point():
            raise ValueError("canvas must be a 1-D tensor of canvas indices")
        if len(canvas) and (canvas.min() < 0 or canvas.max() >= len(self.table)):
            raise ValueError(
                f"canvas indices must lie in 0..{len(self.table) - 1}, got "
                f"{int(canvas.min())}..{int(canvas.max())}"
            )
        return self.model(self.table[canvas], questions)
