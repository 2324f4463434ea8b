"""Chapter 07's captioner recipe, shared with chapter 08, which scores the captions it writes.

Both chapters call :func:`train_captioner` with the same data and settings, so chapter 08
evaluates exactly the model chapter 07 trained, without a file passing between them.

>>> ids = torch.tensor([[[1, 5, 2, 0], [1, 6, 7, 2]]])  # one canvas, two paraphrases
>>> one_of_four(ids, torch.Generator().manual_seed(0)).shape
torch.Size([1, 4])
"""

from __future__ import annotations

import torch

from mmcourse._validate import check_int, check_tensor
from mmcourse.callbacks import History, PrintEpochs
from mmcourse.data.captions import MNISTCaptions
from mmcourse.losses import sequence_loss
from mmcourse.models.captioner import Captioner, teacher_forcing_pairs
from mmcourse.train import Loop, fit
from mmcourse.vocab import PAD_ID, Vocabulary

__all__ = ["caption_forward", "encode_captions", "one_of_four", "train_captioner"]


def encode_captions(data: MNISTCaptions, vocab: Vocabulary) -> torch.Tensor:
    """Every reference caption of every canvas as token ids ``(N, references, T)``, padded."""
    references = len(data.captions[0])
    ids, _ = vocab.encode_batch([caption for captions in data.captions for caption in captions])
    return ids.view(len(data), references, -1)


def one_of_four(captions: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(B, R, T) -> (B, T)``: one reference caption per canvas, picked at random."""
    check_tensor(captions, "captions", "(B, references, T) of token ids")
    if captions.dim() != 3:
        raise ValueError(f"captions must be (B, references, T), got {tuple(captions.shape)}")
    pick = torch.randint(0, captions.shape[1], (len(captions),), generator=generator)
    return captions[torch.arange(len(captions)), pick]


def caption_forward(model: Captioner, batch: tuple[torch.Tensor, torch.Tensor]):
    """``fit``'s forward for a captioner: teacher forcing on one paraphrase per canvas, with
    the columns that are padding in every row dropped. Returns ``(logits, targets)``."""
    images, captions = batch
    ids = one_of_four(captions)
    ids = ids[:, : int((ids != PAD_ID).sum(dim=1).max())]
    inputs, targets = teacher_forcing_pairs(ids)
    return model(images, inputs), targets


def train_captioner(
    train_data: tuple[torch.Tensor, torch.Tensor],
    vocab_size: int,
    *,
    epochs: int,
    image_channels: tuple[int, ...],
    val_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[Captioner, History]:
    """Chapter 07's captioner: a :class:`Captioner` (64-d embeddings, a 128-unit GRU) trained
    with the sequence loss under teacher forcing, Adam at 0.003, batches of 128.

    ``train_data`` is ``(images (N, 1, 64, 64), captions (N, R, T))``; the model is returned
    on the CPU, in eval mode, with its training :class:`History`.
    """
    check_int(vocab_size, "vocab_size", minimum=5)
    torch.manual_seed(seed)
    captioner = Captioner(vocab_size, embed_dim=64, hidden_dim=128, image_channels=image_channels)
    history = fit(
        captioner if device is None else captioner.to(device),
        train_data,
        loss_fn=sequence_loss,
        optimizer=torch.optim.Adam(captioner.parameters(), lr=3e-3),
        epochs=epochs,
        val_data=val_data,
        callbacks=[PrintEpochs(lines=False, bar=progress)],
        loop=Loop(forward=caption_forward),
    )
    return captioner.cpu().eval(), history
