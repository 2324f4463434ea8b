"""Tests for mmcourse.decode: greedy search against scripted models and brute force."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from mmcourse.decode import StepModel, greedy_decode, select_state
from mmcourse.models.captioner import Captioner
from mmcourse.models.image import CanvasEncoder
from mmcourse.vocab import BOS_ID, EOS_ID, PAD_ID

V = 10


pytestmark = pytest.mark.usefixtures("one_thread")


class Scripted:
    """A fake step model: row i says ``scripts[i][t]`` at step t (then <eos> forever).

    Its state is the step counter of every row, so rows are independent.
    """

    def __init__(self, scripts: list[list[int]], vocab: int = V) -> None:
        self.scripts, self.vocab = scripts, vocab
        self.seen: list[list[int]] = []

    def init_state(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"t": torch.zeros(images.shape[0], dtype=torch.long), "row": images[:, 0].long()}

    def step(self, tokens: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        self.seen.append(tokens.tolist())
        logits = torch.zeros(len(tokens), self.vocab)
        for i, (t, row) in enumerate(zip(state["t"].tolist(), state["row"].tolist())):
            script = self.scripts[row]
            logits[i, script[t] if t < len(script) else EOS_ID] = 5.0
        return logits, {"t": state["t"] + 1, "row": state["row"]}


def rows(n: int) -> torch.Tensor:
    """Inputs whose first column names the script row."""
    return torch.arange(n, dtype=torch.float32)[:, None]


def test_stops_at_eos_and_pads_after() -> None:
    model = Scripted([[5, 6, EOS_ID], [7, EOS_ID], [4, 4, 4, 4, EOS_ID]])
    out = greedy_decode(model, rows(3), max_len=20)
    assert out.tolist() == [
        [5, 6, EOS_ID, PAD_ID, PAD_ID],
        [7, EOS_ID, PAD_ID, PAD_ID, PAD_ID],
        [4, 4, 4, 4, EOS_ID],
    ]
    assert out.dtype == torch.long
    # it stopped once every row had finished: five steps, not twenty
    assert len(model.seen) == 5
    # the first input is <bos>, then each row's own previous token
    assert model.seen[0] == [BOS_ID] * 3
    assert model.seen[1] == [5, 7, 4]


def test_max_len_cuts_long_sequences() -> None:
    model = Scripted([[5, 6, 7, 8, EOS_ID], [9, EOS_ID]])
    out = greedy_decode(model, rows(2), max_len=3)
    assert out.tolist() == [[5, 6, 7], [9, EOS_ID, PAD_ID]]


def test_custom_special_ids() -> None:
    model = Scripted([[5, 8], [6, 6, 8]])  # 8 plays <eos>
    out = greedy_decode(model, rows(2), max_len=6, bos_id=9, eos_id=8, pad_id=7)
    assert out.tolist() == [[5, 8, 7], [6, 6, 8]]
    assert model.seen[0] == [9, 9]


def test_greedy_equals_brute_force_argmax_over_teacher_forcing() -> None:
    """Greedy decoding via step == re-running the whole prefix through forward each time."""
    torch.manual_seed(1)
    model = Captioner(
        V, embed_dim=8, hidden_dim=16, image_encoder=CanvasEncoder(16, channels=(4, 8))
    )
    model.eval()
    images = torch.randn(3, 1, 16, 16)
    out = greedy_decode(model, images, max_len=6, eos_id=V - 1)  # an id it rarely picks
    prefix = torch.full((3, 1), BOS_ID)
    expected = []
    for _ in range(6):
        nxt = model(images, prefix)[:, -1].argmax(-1)
        expected.append(nxt)
        prefix = torch.cat([prefix, nxt[:, None]], dim=1)
    expected = torch.stack(expected, dim=1)
    finished = torch.zeros(3, dtype=torch.bool)
    for t in range(expected.shape[1]):  # pad after <eos>, as documented
        expected[finished, t] = PAD_ID
        finished |= expected[:, t] == V - 1
    assert torch.equal(out, expected[:, : out.shape[1]])


def test_eval_mode_during_decoding_and_restored_after() -> None:
    model = Captioner(
        V, dropout=0.5, embed_dim=8, hidden_dim=16, image_encoder=CanvasEncoder(16, (4, 8))
    )
    images = torch.randn(4, 1, 16, 16)
    model.train()
    first = greedy_decode(model, images, max_len=8)
    second = greedy_decode(model, images, max_len=8)
    assert torch.equal(first, second)  # no dropout noise
    assert model.training
    model.eval()
    greedy_decode(model, images, max_len=8)
    assert not model.training


def test_captioner_is_a_step_model() -> None:
    assert isinstance(Captioner(V, image_encoder=CanvasEncoder(8, (4,))), StepModel)
    assert not isinstance(nn.Linear(2, 2), StepModel)


@dataclass
class PairState:
    a: torch.Tensor
    b: torch.Tensor | None


def test_select_state_reorders_every_tensor() -> None:
    index = torch.tensor([2, 0, 0])
    x = torch.arange(6).view(3, 2)
    assert select_state(x, index).tolist() == [[4, 5], [0, 1], [0, 1]]
    nested = {"h": (x, [x * 10]), "none": None}
    picked = select_state(nested, index)
    assert picked["h"][0].tolist() == x[[2, 0, 0]].tolist()
    assert isinstance(picked["h"][1], list)
    assert picked["h"][1][0].tolist() == (x * 10)[[2, 0, 0]].tolist()
    assert picked["none"] is None
    state = select_state(PairState(x, None), torch.tensor([1]))
    assert isinstance(state, PairState)
    assert state.a.tolist() == [[2, 3]] and state.b is None


def test_select_state_repeats_rows_for_a_beam() -> None:
    model = Captioner(V, cell="lstm", image_encoder=CanvasEncoder(8, (4,)))
    state = model.init_state(torch.randn(2, 1, 8, 8))
    beam = select_state(state, torch.arange(2).repeat_interleave(3))
    assert beam.hidden.shape[0] == beam.cell.shape[0] == 6
    torch.testing.assert_close(beam.hidden[3], state.hidden[1])
    torch.testing.assert_close(beam.cell[2], state.cell[0])


def test_select_state_errors() -> None:
    with pytest.raises(ValueError, match="1-D LongTensor"):
        select_state(torch.zeros(3), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="1-D LongTensor"):
        select_state(torch.zeros(3), [0, 1])
    with pytest.raises(ValueError, match="scalar"):
        select_state(torch.tensor(1.0), torch.tensor([0]))
    with pytest.raises(ValueError, match="got str"):
        select_state({"x": "hello"}, torch.tensor([0]))


def test_greedy_decode_errors() -> None:
    model = Scripted([[5, EOS_ID]])
    with pytest.raises(ValueError, match="init_state"):
        greedy_decode(nn.Linear(2, 2), rows(1), max_len=3)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(model, rows(1), max_len=0)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(model, rows(1), max_len=True)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(model, rows(1), max_len=2.0)
    with pytest.raises(ValueError, match="images must be a tensor"):
        greedy_decode(model, [[0.0]], max_len=3)
    with pytest.raises(ValueError, match="images must be a tensor"):
        greedy_decode(model, torch.zeros(0, 1), max_len=3)
    with pytest.raises(ValueError, match="eos_id and pad_id must differ"):
        greedy_decode(model, rows(1), max_len=3, eos_id=0, pad_id=0)
    with pytest.raises(ValueError, match="eos_id=12 is outside"):
        greedy_decode(model, rows(1), max_len=3, eos_id=12)
    with pytest.raises(ValueError, match="bos_id=-1 is outside"):
        greedy_decode(model, rows(1), max_len=3, bos_id=-1)


def test_greedy_decode_checks_what_step_returns() -> None:
    class Bad:
        def init_state(self, images: torch.Tensor) -> torch.Tensor:
            return images

        def step(self, tokens: torch.Tensor, state: torch.Tensor) -> tuple:
            return torch.zeros(len(tokens), 3, V), state

    with pytest.raises(ValueError, match=r"logits of shape \(2, V\)"):
        greedy_decode(Bad(), rows(2), max_len=3)


def test_greedy_decode_refuses_nan_logits() -> None:
    class NaNs:
        def init_state(self, images: torch.Tensor) -> torch.Tensor:
            return images

        def step(self, tokens: torch.Tensor, state: torch.Tensor) -> tuple:
            return torch.full((len(tokens), V), float("nan")), state

    with pytest.raises(ValueError, match=r"^the output of model.step holds NaN; every score"):
        greedy_decode(NaNs(), rows(2), max_len=3)
