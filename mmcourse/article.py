"""The article's training listing, rebuilt so that it can be run -- and taken apart.

Chapter 08 runs the reference article's PyTorch listing (section 5.2: image encoder, text
encoder, joint layer, loss, ``train_epoch``/``evaluate`` and the final training block) to see
*why* it does not work as printed. This module is our own minimal rewrite of that listing,
**keeping its bugs on purpose**:

- :class:`TextEncoder` reads a vocabulary size ``num_words`` that is never defined;
  :func:`train_epoch` and :func:`evaluate` read a ``loss_fn`` that is never defined;
  :func:`run_listing` reads ``model``, ``optimizer`` and three data loaders that are never
  defined. :func:`undefined_names` lists them; :func:`assume` supplies them for a while.
- :class:`TextEncoder` uses ``nn.LSTM``'s default *sequence-first* layout on batch-first ids
  and returns the whole output sequence ``(T, B, H)`` -- a 3-D tensor that
  :class:`JointEncoder` cannot concatenate with the ``(B, 2304)`` image features; its linear
  layer expects ``joint_dim * 2`` inputs, which fits only if ``joint_dim`` is 2,304 and the
  "text" is a 1-D tensor (then the LSTM reads the whole batch as one sequence).
- The model is called as ``model(inputs, targets)``: the answer goes *into* the model.
- "Captioning" is a softmax over ``joint_dim`` fixed outputs: a classifier.

The rest of the module is the repair and what chapter 08 needs around it:

- :class:`JointClassifier` -- the corrected model: image encoder ``(B, D_x)``, batch-first text
  encoder ``(B, D_y)``, the joint layer ``Z = W_X X' + W_Y Y'``, a classifier head;
- :class:`DictDataset` and :class:`TargetAsText` -- the dict batches and the
  ``model(inputs, targets)`` call the listing assumes, so its loop can be run as written;
- :func:`caption_log_likelihood` and :func:`same_layout` -- a retrieval similarity matrix from
  per-slot attribute predictions (for recall@K).
"""

from __future__ import annotations

import builtins
import dis
import types
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mmcourse._validate import check_no_nan, require
from mmcourse.data.questions import ATTRIBUTE_CLASSES
from mmcourse.models.image import ArticleCNN

__all__ = [
    "DictDataset",
    "ImageEncoder",
    "JointClassifier",
    "JointEncoder",
    "MultimodalLoss",
    "TargetAsText",
    "TextEncoder",
    "assume",
    "caption_log_likelihood",
    "evaluate",
    "run_listing",
    "same_layout",
    "train_epoch",
    "undefined_names",
]


# ============================================================================ the listing, as printed
# Everything in this section reproduces the article's code *with its mistakes*. Do not fix them:
# chapter 08 shows each one failing.


class ImageEncoder(ArticleCNN):
    """The listing's image encoder: three conv blocks (64, 128, 256 channels), then flatten.

    ``(B, 1, 28, 28)`` -> ``(B, 2304)``; on a 64x64 canvas ``(B, 16384)``.
    """

    def __init__(self) -> None:
        super().__init__(in_channels=1, channels=(64, 128, 256))


class TextEncoder(nn.Module):
    """The listing's text encoder, bugs included.

    - Its embedding table needs the vocabulary size, read from a global ``num_words`` that
      the listing never defines (so building one raises ``NameError``).
    - ``nn.LSTM`` is built without ``batch_first=True``, so it reads its input as
      ``(T, B, E)``: a batch-first ``(B, T)`` id tensor gets its batch taken for time.
    - ``forward`` returns the full output sequence (3-D), not one vector per text; a 1-D
      input ``(L,)`` is read as *one* unbatched sequence of ``L`` steps and gives ``(L, H)``.
    """

    def __init__(self, embedding_dim: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_words, embedding_dim)  # noqa: F821 -- the listing's bug
        self.rnn = nn.LSTM(embedding_dim, hidden_size, num_layers)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        vectors = self.embedding(ids)
        outputs, (_, _) = self.rnn(vectors)
        return outputs


class JointEncoder(nn.Module):
    """The listing's joint layer: concatenate image and text features, one linear layer.

    ``image_dim`` is accepted and never used; the text encoder's hidden size is
    ``joint_dim`` and the linear layer expects ``joint_dim * 2`` inputs, although the image
    side alone brings 2,304 (28x28 input). Its ``joint_dim`` outputs are what the listing's
    cross-entropy treats as classes.
    """

    def __init__(self, image_dim: int, text_dim: int, joint_dim: int) -> None:
        super().__init__()
        self.image_encoder = ImageEncoder()
        self.text_encoder = TextEncoder(text_dim, joint_dim, 1)
        self.fc = nn.Linear(joint_dim * 2, joint_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        image_features = self.image_encoder(x)
        text_features = self.text_encoder(y)
        joint = torch.cat([image_features, text_features], dim=1)
        return self.fc(joint)


class MultimodalLoss(nn.Module):
    """The listing's loss: plain cross-entropy of ``output`` ``(B, C)`` against class ids."""

    def __init__(self) -> None:
        super().__init__()
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.criterion(output, target)


def train_epoch(
    model: nn.Module, data_loader: DataLoader, optimizer: torch.optim.Optimizer
) -> float:
    """The listing's training epoch. Expects dict batches ``{"inputs", "targets"}``, calls
    ``model(inputs, targets)`` (the target goes in!) and a global ``loss_fn`` that the listing
    never defines. Returns the mean batch loss."""
    model.train()
    total_loss = 0
    correct = 0  # noqa: F841 -- counted nowhere, as in the listing
    for batch in data_loader:
        inputs, targets = batch["inputs"], batch["targets"]
        optimizer.zero_grad()
        output = model(inputs, targets)
        loss = loss_fn(output, targets)  # noqa: F821 -- the listing's bug
        total_loss += loss.item()
        loss.backward()
        optimizer.step()
    return total_loss / len(data_loader)


def evaluate(model: nn.Module, data_loader: DataLoader) -> tuple[float, float]:
    """The listing's evaluation: mean batch loss and accuracy, with the same
    ``model(inputs, targets)`` call and the same undefined ``loss_fn``."""
    model.eval()
    total_loss = 0
    correct = 0
    with torch.no_grad():
        for batch in data_loader:
            inputs, targets = batch["inputs"], batch["targets"]
            output = model(inputs, targets)
            loss = loss_fn(output, targets)  # noqa: F821 -- the listing's bug
            total_loss += loss.item()
            correct += torch.sum(output.argmax(dim=1) == targets)
    return total_loss / len(data_loader), correct.item() / len(data_loader.dataset)


def run_listing(epochs: int = 10, batch_size: int = 16) -> None:
    """The listing's last block: train, validate each epoch, test once. It uses ``model``,
    ``optimizer``, ``train_loader``, ``val_loader`` and ``test_loader``, none of which the
    listing defines; ``batch_size`` is set and never used."""
    for epoch in range(epochs):
        train_loss = train_epoch(model, train_loader, optimizer)  # noqa: F821
        print(f"epoch {epoch + 1}: train loss {train_loss:.4f}")
        val_loss, acc = evaluate(model, val_loader)  # noqa: F821
        print(f"epoch {epoch + 1}: val loss {val_loss:.4f}, accuracy {acc:.4f}")
    test_loss, acc = evaluate(model, test_loader)  # noqa: F821
    print(f"test loss {test_loss:.4f}, accuracy {acc:.4f}")


# ============================================================================ looking at the listing


def _code_objects(obj: object) -> Iterator[tuple[str, types.CodeType, dict]]:
    if isinstance(obj, type):
        for name, member in vars(obj).items():
            if isinstance(member, types.FunctionType):
                yield f"{obj.__name__}.{name}", member.__code__, member.__globals__
    elif isinstance(obj, types.FunctionType):
        yield obj.__name__, obj.__code__, obj.__globals__
    else:
        raise ValueError(f"undefined_names takes a function or a class, got {type(obj).__name__}")


def _global_loads(code: types.CodeType) -> Iterator[str]:
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            yield instruction.argval
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _global_loads(constant)


def undefined_names(obj: object) -> list[str]:
    """Global names that ``obj`` (a function, or every method of a class) reads but that are
    neither defined in its module nor built into Python -- each one a ``NameError`` waiting
    for the line that uses it. Sorted, without repeats.

    >>> def f(x):
    ...     return scale * len(x)
    >>> undefined_names(f)
    ['scale']
    """
    missing: set[str] = set()
    for _, code, namespace in _code_objects(obj):
        for name in _global_loads(code):
            if name not in namespace and not hasattr(builtins, name):
                missing.add(name)
    return sorted(missing)


@contextmanager
def assume(**names: object) -> Iterator[None]:
    """Define module-level names of this module for the duration of a ``with`` block: what
    the listing silently takes for granted (``num_words``, ``loss_fn``, ``model``, ...).

    >>> with assume(num_words=50):
    ...     encoder = TextEncoder(8, 16, 1)
    >>> encoder.embedding.num_embeddings
    50

    Names that already exist here (the listing's own classes and functions) cannot be
    replaced; afterwards every assumed name is removed again.
    """
    namespace = globals()
    clash = sorted(name for name in names if name in namespace)
    if clash:
        raise ValueError(
            f"assume() only supplies names the listing lacks; {clash} already exist in "
            f"mmcourse.article (the missing ones: num_words, loss_fn, model, optimizer, "
            f"train_loader, val_loader, test_loader)"
        )
    namespace.update(names)
    try:
        yield
    finally:
        for name in names:
            namespace.pop(name, None)


# ============================================================================ what the listing assumes


class DictDataset(Dataset):
    """Rows ``{"inputs": inputs[i], "targets": targets[i]}``: a ``DataLoader`` over it yields
    the dict batches that :func:`train_epoch` and :func:`evaluate` index by name."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
            raise ValueError("inputs and targets must be tensors")
        if inputs.dim() == 0 or targets.shape[:1] != inputs.shape[:1]:
            raise ValueError(
                f"inputs and targets need the same first (sample) dimension, got "
                f"{tuple(inputs.shape)} and {tuple(targets.shape)}"
            )
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.inputs[index], "targets": self.targets[index]}


class TargetAsText(nn.Module):
    """What the listing's call ``model(inputs, targets)`` amounts to for an image + text model:
    the target, written as a short text, is what the text branch reads.

    Args:
        model: a model called as ``model(images, ids)``, e.g. :class:`JointClassifier`.
        target_ids: long ``(C, T)``: row ``c`` holds the token ids of class ``c``'s name.

    ``forward(inputs, targets)`` returns ``model(inputs, target_ids[targets])``.
    """

    def __init__(self, model: nn.Module, target_ids: torch.Tensor) -> None:
        super().__init__()
        if not isinstance(target_ids, torch.Tensor) or target_ids.dim() != 2:
            raise ValueError("target_ids must be a (C, T) tensor: the ids of each class's name")
        if target_ids.dtype != torch.long:
            raise ValueError(f"target_ids must hold token ids (torch.long), got {target_ids.dtype}")
        self.model = model
        self.register_buffer("target_ids", target_ids.clone(), persistent=False)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.dim() != 1 or targets.dtype != torch.long:
            raise ValueError(f"targets must be class ids (B,), got {tuple(targets.shape)}")
        if len(targets) and (targets.min() < 0 or targets.max() >= len(self.target_ids)):
            raise ValueError(f"targets must lie in 0..{len(self.target_ids) - 1}")
        return self.model(inputs, self.target_ids[targets])


# ============================================================================ the repair


class JointClassifier(nn.Module):
    """The article's model, repaired: image and text in, class scores out.

    ::

        X' = image_encoder(images)      (B, image_dim)   any image encoder, or none (features)
        Y' = text_encoder(ids)          (B, text_dim)    batch-first ids (B, T), one vector each
        Z  = W_X X' + W_Y Y' + b        (B, joint_dim)   the article's joint layer
        logits = head(ReLU(Z))          (B, num_classes) a small MLP

    Args:
        text_encoder: maps ids ``(B, T)`` to ``(B, text_dim)``, with an ``out_dim`` attribute
            (every encoder of :mod:`mmcourse.models.text` qualifies).
        image_dim: size of the image features.
        num_classes: number of outputs (e.g. answers of a VQA task).
        image_encoder: maps images to ``(B, image_dim)``; ``None`` when the inputs already are
            image features (e.g. cached outputs of a frozen encoder).
        joint_dim: size of ``Z``.
        hidden: width of the head's hidden layer (``0``: one linear layer on ``ReLU(Z)``).

    ``forward`` checks the shapes it receives and says what it expected.
    """

    def __init__(
        self,
        text_encoder: nn.Module,
        image_dim: int,
        num_classes: int,
        image_encoder: nn.Module | None = None,
        joint_dim: int = 128,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        text_dim = getattr(text_encoder, "out_dim", None)
        if not isinstance(text_dim, int):
            raise ValueError("text_encoder must have an int attribute out_dim (its output size)")
        for name, value in (("image_dim", image_dim), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(joint_dim, int) or joint_dim < 1:
            raise ValueError(f"joint_dim must be a positive int, got {joint_dim!r}")
        if not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"hidden must be an int >= 0, got {hidden!r}")
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_dim, self.text_dim, self.num_classes = image_dim, text_dim, num_classes
        self.image_proj = nn.Linear(image_dim, joint_dim)  # W_X and b
        self.text_proj = nn.Linear(text_dim, joint_dim, bias=False)  # W_Y
        if hidden:
            self.head: nn.Module = nn.Sequential(
                nn.ReLU(), nn.Linear(joint_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
            )
        else:
            self.head = nn.Sequential(nn.ReLU(), nn.Linear(joint_dim, num_classes))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``X'`` ``(B, image_dim)``: the image encoder's output (or the features themselves)."""
        features = images if self.image_encoder is None else self.image_encoder(images)
        if not isinstance(features, torch.Tensor) or features.dim() != 2:
            raise ValueError(
                f"image features must be (B, {self.image_dim}), got "
                f"{tuple(features.shape) if isinstance(features, torch.Tensor) else features}"
                + (
                    "; pass image_encoder=... to encode raw images"
                    if self.image_encoder is None
                    else ""
                )
            )
        if features.shape[1] != self.image_dim:
            raise ValueError(
                f"image features have {features.shape[1]} values each, expected image_dim="
                f"{self.image_dim}"
            )
        return features

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """``Y'`` ``(B, text_dim)``: one vector per text."""
        features = self.text_encoder(ids)
        if features.dim() != 2 or features.shape[1] != self.text_dim:
            raise ValueError(
                f"the text encoder must return (B, {self.text_dim}), one vector per text; got "
                f"{tuple(features.shape)}"
            )
        return features

    def joint(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The joint representation ``Z = W_X X' + W_Y Y' + b`` ``(B, joint_dim)``."""
        return self.image_proj(x) + self.text_proj(y)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``images`` ``(B, ...)`` and ``ids`` ``(B, T)`` -> logits ``(B, num_classes)``."""
        x, y = self.encode_image(images), self.encode_text(ids)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"images and texts must come in equal numbers, got {x.shape[0]} and {y.shape[0]}"
            )
        return self.head(self.joint(x, y))


# ============================================================================ retrieval from slot predictions


def _check_slot_inputs(logits: torch.Tensor, truth: torch.Tensor, classes: tuple[int, ...]) -> None:
    width = sum(classes)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or logits.shape[2] != width:
        raise ValueError(f"logits must be (N, slots, {width}), got {_describe(logits)}")
    check_no_nan(logits, "logits")
    if not isinstance(truth, torch.Tensor) or truth.dim() != 3:
        raise ValueError(f"truth must be (M, slots, {len(classes)}), got {_describe(truth)}")
    if truth.shape[1:] != (logits.shape[1], len(classes)):
        raise ValueError(
            f"truth must be (M, {logits.shape[1]}, {len(classes)}), got {tuple(truth.shape)}"
        )
    require(truth.dtype == torch.long, f"truth must hold class ids (torch.long), got {truth.dtype}")
    high = torch.tensor(classes)
    if len(truth) and ((truth < 0).any() or (truth >= high).any()):
        raise ValueError(f"truth values must lie in 0..{[c - 1 for c in classes]} per attribute")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}"
    return type(value).__name__


def caption_log_likelihood(
    logits: torch.Tensor, truth: torch.Tensor, classes: tuple[int, ...] = ATTRIBUTE_CLASSES
) -> torch.Tensor:
    """``(N, M)`` similarity: how likely image ``n``'s slot predictions find what caption ``m``
    says, ``sum over slots s and attributes a of log p_n(s, a = truth[m, s, a])``.

    Args:
        logits: ``(N, slots, sum(classes))``: for each image and slot, the logits of each
            attribute side by side (what :class:`mmcourse.models.vqa.SlotAttributeHead`
            returns).
        truth: long ``(M, slots, len(classes))``: what each caption says about each slot, as
            class ids (``mmcourse.data.questions.slot_targets`` encoding: 0 = empty slot).
        classes: number of classes of each attribute.

    Higher is more similar; a matrix to rank captions for an image (rows) or images for a
    caption (columns).
    """
    _check_slot_inputs(logits, truth, classes)
    scores = torch.zeros(len(logits), len(truth), dtype=torch.float64)
    for a, part in enumerate(logits.split(classes, dim=2)):
        log_p = part.double().log_softmax(dim=2)  # (N, slots, K)
        for s in range(logits.shape[1]):
            scores += log_p[:, s, truth[:, s, a]]
    return scores.to(logits.dtype)


def same_layout(truth: torch.Tensor) -> torch.Tensor:
    """``(M, M)`` bool: captions ``i`` and ``j`` say exactly the same thing (every slot and
    attribute equal) -- the relevance matrix of a retrieval in which identical captions of
    different canvases all count as correct."""
    if not isinstance(truth, torch.Tensor) or truth.dim() < 2:
        raise ValueError(f"truth must be a (M, ...) tensor, got {_describe(truth)}")
    flat = truth.reshape(len(truth), -1)
    return (flat[:, None, :] == flat[None, :, :]).all(dim=2)
