"""The one-word attack on a captioner (mmcourse.robust.caption_attack), checked by hand:
targets built word by word, the ball and the pixel range measured, the targeted loss
recomputed with a loop over positions, success compared with greedy decoding itself."""

from __future__ import annotations

import pytest
import torch
from test_deploy import VOCAB, canvases, tiny_captioner

from mmcourse import robust
from mmcourse.data.captions import CANVAS_MEAN, CANVAS_STD
from mmcourse.decode import greedy_decode
from mmcourse.vocab import BOS_ID, EOS_ID, PAD_ID

NORMALIZE = (CANVAS_MEAN, CANVAS_STD)


def pixels_of(batch: int) -> torch.Tensor:
    return canvases(batch).float()[:, None] / 255


def test_swap_first_word_changes_only_the_first_listed_word() -> None:
    ids = torch.tensor([[5, 6, 5, EOS_ID], [7, 8, EOS_ID, PAD_ID], [6, 5, EOS_ID, PAD_ID]])
    targets, swapped = robust.swap_first_word(ids, {5: 9, 8: 4})
    assert targets.tolist() == [[9, 6, 5, EOS_ID], [7, 4, EOS_ID, PAD_ID], [6, 9, EOS_ID, PAD_ID]]
    assert swapped.tolist() == [True, True, True]
    targets, swapped = robust.swap_first_word(ids, {8: 4})
    assert swapped.tolist() == [False, True, False] and torch.equal(targets[0], ids[0])
    with pytest.raises(ValueError, match="swaps must change each word"):
        robust.swap_first_word(ids, {5: 5})
    with pytest.raises(ValueError, match="ids must be a"):
        robust.swap_first_word(ids.float(), {5: 9})


def hand_loss(model, pixels, targets) -> torch.Tensor:
    """Teacher-forced cross-entropy of each target, summed word by word up to its <eos>."""
    total = torch.zeros(())
    for row in range(len(targets)):
        words = targets[row][targets[row] != PAD_ID]
        inputs = torch.cat([torch.tensor([BOS_ID]), words[:-1]])[None]
        image = (pixels[row : row + 1] - CANVAS_MEAN) / CANVAS_STD
        log_probs = model(image, inputs)[0].log_softmax(dim=-1)
        total = total - log_probs[torch.arange(len(words)), words].sum()
    return total


def test_the_attack_stays_in_the_ball_and_lowers_the_targets_loss() -> None:
    model = tiny_captioner("gru").eval()
    pixels = pixels_of(6)
    caption = [VOCAB[w] for w in ("a", "small", "seven", "on", "the", "left")] + [EOS_ID]
    targets, swapped = robust.swap_first_word(
        torch.tensor([caption] * 6), {VOCAB["seven"]: VOCAB["two"]}
    )
    assert swapped.all() and VOCAB.decode(targets[0]) == "a small two on the left"
    attacked = robust.targeted_caption_pgd(model, pixels, targets, 0.1, NORMALIZE, steps=10)
    assert (attacked - pixels).abs().max() <= 0.1 + 1e-6
    assert attacked.min() >= 0 and attacked.max() <= 1
    noise = robust.random_sign_noise(pixels, 0.1, seed=0)
    with torch.no_grad():
        clean, after, control = (hand_loss(model, x, targets) for x in (pixels, attacked, noise))
    assert after < clean - 3 and after < control - 3  # the random control barely moves it
    unchanged = robust.targeted_caption_pgd(model, pixels, targets, 0.0, NORMALIZE, steps=3)
    assert torch.equal(unchanged, pixels)


def test_caption_is_compares_with_greedy_decoding() -> None:
    model = tiny_captioner("lstm").eval()
    pixels = pixels_of(5)
    written = greedy_decode(model, (pixels - CANVAS_MEAN) / CANVAS_STD, max_len=8)
    assert robust.caption_is(model, pixels, written, NORMALIZE).all()
    other = written.clone()
    other[0, 0] = (other[0, 0] + 1 - 4) % (len(VOCAB) - 4) + 4  # another word, not a special
    assert robust.caption_is(model, pixels, other, NORMALIZE).tolist() == [
        False,
        True,
        True,
        True,
        True,
    ]


def test_caption_attack_errors_name_the_problem() -> None:
    model = tiny_captioner("gru").eval()
    targets = torch.tensor([[5, EOS_ID], [6, EOS_ID]])
    with pytest.raises(ValueError, match="B = 2 as in the captions"):
        robust.targeted_caption_pgd(model, pixels_of(3), targets, 0.1, NORMALIZE)
    with pytest.raises(ValueError, match="must end with <eos>"):
        robust.targeted_caption_pgd(model, pixels_of(2), targets[:, :1], 0.1, NORMALIZE)
    with pytest.raises(ValueError, match="epsilon must be a finite number >= 0"):
        robust.targeted_caption_pgd(model, pixels_of(2), targets, -1.0, NORMALIZE)
