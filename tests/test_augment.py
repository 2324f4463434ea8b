"""mmcourse.robust.augment: canvas views checked against torchvision's own elastic field and
by where the ink goes; word dropout by its frequencies."""

import pytest
import torch
from torchvision.transforms import v2

from mmcourse.data.captions import make_mnist_captions
from mmcourse.robust import augment
from mmcourse.vocab import PAD_ID, UNK_ID


@pytest.fixture(scope="module")
def canvases():
    return make_mnist_captions("train", n=64).images


def _centre(images: torch.Tensor) -> torch.Tensor:
    ink = images.float()
    rows, cols = torch.arange(ink.shape[1]).float(), torch.arange(ink.shape[2]).float()
    mass = ink.sum(dim=(1, 2))
    return torch.stack([(ink.sum(2) * rows).sum(1) / mass, (ink.sum(1) * cols).sum(1) / mass], 1)


def test_the_elastic_field_is_torchvisions():
    """Same seed, same numbers: torchvision's ElasticTransform draws from the global
    generator, ours from its own one seeded alike."""
    torch.manual_seed(5)
    image = torch.zeros(1, 64, 64)
    reference = v2.ElasticTransform(**augment.ELASTIC).make_params([image])["displacement"]
    ours = augment._displacement([64, 64], torch.Generator().manual_seed(5))
    assert ours.shape == reference.shape == (1, 64, 64, 2)
    torch.testing.assert_close(ours, reference)


def test_views_are_reproducible_different_and_keep_the_ink_in_place(canvases):
    views = augment.augment_canvases(canvases, seed=1)
    assert views.shape == canvases.shape and views.dtype == torch.uint8
    assert torch.equal(views, augment.augment_canvases(canvases, seed=1))
    assert not torch.equal(views, augment.augment_canvases(canvases, seed=2))
    assert (views != canvases).flatten(1).any(1).all()  # every canvas changes
    moved = (_centre(views) - _centre(canvases)).norm(dim=1)
    assert moved.max() < augment.MAX_SHIFT * 2**0.5 + 2.5  # the shift, plus turn and warp
    assert moved.mean() > 0.5
    ratio = views.float().sum((1, 2)) / canvases.float().sum((1, 2))
    assert ((ratio > 0.75) & (ratio < 1.35)).all()  # ink neither lost nor invented


def test_augment_canvases_rejects_bad_input(canvases):
    with pytest.raises(ValueError, match="uint8 tensor"):
        augment.augment_canvases(canvases.float())
    with pytest.raises(TypeError, match="uint8 tensor"):
        augment.augment_canvases(canvases.numpy())
    with pytest.raises(ValueError, match="seed"):
        augment.augment_canvases(canvases, seed=-1)


def test_word_dropout_drops_and_unknowns_each_word_with_probability_p():
    ids = torch.randint(4, 40, (4000, 10))
    ids[:, 7:] = PAD_ID
    out = augment.word_dropout(ids, 0.1, torch.Generator().manual_seed(0))
    words = ids != PAD_ID
    n = int(words.sum())  # 28,000 words: three standard deviations are about 0.005
    assert abs(((out == PAD_ID) & words).sum() / n - 0.1) < 0.006
    assert abs(((out == UNK_ID) & words).sum() / n - 0.1) < 0.006
    kept = (out != PAD_ID) & (out != UNK_ID)
    assert torch.equal(out[kept], ids[kept])  # a word is kept, dropped or unknown, never swapped
    assert (out[~words] == PAD_ID).all()  # padding stays padding
    assert torch.equal(augment.word_dropout(ids, 0.0, torch.Generator()), ids)


def test_word_dropout_rejects_bad_input():
    with pytest.raises(TypeError, match="integer tensor"):
        augment.word_dropout(torch.zeros(2, 3), 0.1, torch.Generator())
    with pytest.raises(ValueError, match="at most 0.5"):
        augment.word_dropout(torch.zeros(2, 3, dtype=torch.long), 0.6, torch.Generator())


def test_p_is_the_share_of_canvases_that_change(canvases):
    assert torch.equal(augment.augment_canvases(canvases, seed=3, p=0.0), canvases)
    changed = (augment.augment_canvases(canvases, seed=3, p=0.5) != canvases).flatten(1).any(1)
    assert 16 <= int(changed.sum()) <= 48  # of 64; binomial(64, 0.5) lies there 99.99 % of the time
    with pytest.raises(ValueError, match="p"):
        augment.augment_canvases(canvases, p=1.5)
