"""Chapter 05 self-checks: they pass on right answers and explain the usual wrong ones."""

from __future__ import annotations

import re

import pytest
import torch
from test_checks_core import assert_hides
from torch import nn

from mmcourse.checks import ch05
from mmcourse.models.text import RNNTextEncoder, last_real_step
from mmcourse.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary, tokenize


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.build(["a small seven on the left", "on the right is a big thick two ,"])


# ------------------------------------------------------------------ encode


def good_encode(text: str, vocab: Vocabulary) -> list[int]:
    return [BOS_ID] + [vocab.stoi.get(t, UNK_ID) for t in tokenize(text)] + [EOS_ID]


def test_check_encode_passes_a_right_answer(vocab: Vocabulary) -> None:
    result = ch05.check_encode(good_encode, vocab)
    assert result and str(result).startswith("Correct: ")


@pytest.mark.parametrize(
    ("encode", "hint"),
    [
        (lambda text, vocab: [], "no ids at all"),
        (lambda text, vocab: good_encode(text, vocab)[1:-1], "add <bos>"),
        (
            lambda text, vocab: (
                [BOS_ID] + [vocab.stoi.get(w, 0) for w in tokenize(text)] + [EOS_ID]
            ),
            "<unk>",
        ),
        (
            lambda text, vocab: (
                [BOS_ID] + [vocab.stoi.get(w, UNK_ID) for w in text.split()] + [EOS_ID]
            ),
            "tokenize",
        ),
        (
            lambda text, vocab: (
                [BOS_ID] + [vocab.stoi.get(w, UNK_ID) for w in tokenize(text)] + [PAD_ID]
            ),
            "position",
        ),
        (lambda text, vocab: 1 / 0, "ZeroDivisionError"),
        (lambda text, vocab: None, "list of ints"),
        (None, "should be a function"),
    ],
)
def test_check_encode_explains_mistakes(vocab: Vocabulary, encode: object, hint: str) -> None:
    result = ch05.check_encode(encode, vocab)  # type: ignore[arg-type]
    assert not result and str(result).startswith("Not yet: ") and hint in str(result)


@pytest.mark.parametrize(
    "encode",
    [
        lambda text, vocab: [],
        lambda text, vocab: good_encode(text, vocab)[1:-1],
        lambda text, vocab: good_encode(text, vocab)[:-1] + [PAD_ID],
        lambda text, vocab: [BOS_ID] + [vocab.stoi.get(w, UNK_ID) for w in text.split()] + [EOS_ID],
    ],
)
def test_check_encode_hides_the_expected_ids(vocab: Vocabulary, encode) -> None:
    result = ch05.check_encode(encode, vocab)
    text = re.search(r"encode\((.*?)\) gave", str(result)).group(1).strip("'")
    assert_hides(result, good_encode(text, vocab))


def test_check_encode_names_each_missing_marker(vocab: Vocabulary) -> None:
    assert "start with <bos>" in str(ch05.check_encode(lambda t, v: good_encode(t, v)[1:], vocab))
    assert "end with <eos>" in str(ch05.check_encode(lambda t, v: good_encode(t, v)[:-1], vocab))
    upper = ch05.check_encode(
        lambda t, v: (
            [BOS_ID]
            + [v.stoi.get(w, UNK_ID) for w in t.replace(",", " ,").replace("!", " !").split()]
            + [EOS_ID]
        ),
        vocab,
    )
    assert "lower-case" in str(upper)


def test_check_encode_accepts_a_tensor_and_needs_a_vocabulary(vocab: Vocabulary) -> None:
    assert ch05.check_encode(lambda t, v: torch.tensor(good_encode(t, v)), vocab)
    assert "Vocabulary" in str(ch05.check_encode(good_encode, {"a": 4}))  # type: ignore[arg-type]


# ------------------------------------------------------------------ padding mask


def test_check_padding_mask_passes_right_answers() -> None:
    by_arange = lambda lengths, max_len: torch.arange(max_len)[None, :] >= lengths[:, None]

    def by_loop(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
        mask = torch.zeros(len(lengths), max_len, dtype=torch.bool)
        for row, n in enumerate(lengths.tolist()):
            mask[row, n:] = True
        return mask

    assert ch05.check_padding_mask(by_arange)
    assert ch05.check_padding_mask(by_loop)


@pytest.mark.parametrize(
    ("make_mask", "hint"),
    [
        (
            lambda lengths, max_len: torch.arange(max_len)[None, :] < lengths[:, None],
            "True on padding",
        ),
        (lambda lengths, max_len: torch.arange(max_len)[None, :] > lengths[:, None], "1 = padding"),
        (
            lambda lengths, max_len: (torch.arange(max_len)[None, :] >= lengths[:, None]).int(),
            "bool",
        ),
        (
            lambda lengths, max_len: torch.zeros(len(lengths), max_len + 1, dtype=torch.bool),
            "shape",
        ),
        (lambda lengths, max_len: None, "should return a tensor"),
        (lambda lengths, max_len: lengths.foo, "AttributeError"),
        ("mask", "should be a function"),
    ],
)
def test_check_padding_mask_explains_mistakes(make_mask: object, hint: str) -> None:
    result = ch05.check_padding_mask(make_mask)  # type: ignore[arg-type]
    assert not result and hint in str(result)


@pytest.mark.parametrize(
    ("make_mask", "hint"),
    [
        (
            lambda lengths, max_len: torch.zeros(len(lengths), max_len, dtype=torch.bool),
            "no position",
        ),
        (
            lambda lengths, max_len: torch.ones(len(lengths), max_len, dtype=torch.bool),
            "every position",
        ),
        (lambda lengths, max_len: torch.arange(max_len)[None, :] > lengths[:, None], "off by one"),
        (
            lambda lengths, max_len: torch.arange(max_len)[None, :] >= lengths[:, None] - 1,
            "off by one",
        ),
        (
            lambda lengths, max_len: torch.arange(max_len)[None, :] >= lengths.flip(0)[:, None],
            "row 0",
        ),
    ],
)
def test_check_padding_mask_hides_the_expected_mask(make_mask, hint: str) -> None:
    result = ch05.check_padding_mask(make_mask)
    assert hint in str(result)
    # the first case is lengths [3, 1, 4], max_len 5; its right mask, written out by hand
    assert_hides(result, [[0, 0, 0, 1, 1], [0, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert "[0, 0, 0, 1, 1], [0, 1, 1, 1, 1], [0, 0, 0, 0, 1]" not in str(result)


# ------------------------------------------------------------------ parameter counts


def test_check_parameter_counts_by_formula() -> None:
    v, e, h = 35, 16, 32
    assert ch05.check_parameter_counts(v * e, 4 * (e * h + h * h + 2 * h), v, e, h)
    assert ch05.lstm_parameter_count(v, e, h) == (v * e, 4 * (e * h + h * h + 2 * h))


@pytest.mark.parametrize(
    ("embedding", "lstm", "hint"),
    [
        (35 * 16, 4 * (16 * 32 + 32 * 32 + 32), "two bias vectors"),
        (35 * 16, 4 * (16 * 32 + 32 * 32), "biases"),
        (35 * 16, 16 * 32 + 32 * 32 + 64, "three gates (input, forget, output) and the candidate"),
        (35 * 16, 3 * (16 * 32 + 32 * 32 + 64), "GRU"),
        (35 * 16, 7, "W_ih"),
        (35 * 32, 4 * (16 * 32 + 32 * 32 + 64), "one row"),
        (35 * 16 + 16, 0, "no bias"),
        (35, 0, "one number per word"),
        (35 * 16, 4 * (16 * 32 + 2 * 32), "W_hh"),
        (35 * 16, 4 * (32 * 32 + 2 * 32), "W_ih"),
        (0, 0, "placeholder"),
        (35 * 16, 0, "placeholder"),
        (35 * 16, 6401, "slightly too high"),
        (None, 0, "still None"),
        (560, 6272.0, "should be an int"),
        (True, 6272, "should be an int"),
    ],
)
def test_check_parameter_counts_explains_mistakes(
    embedding: object, lstm: object, hint: str
) -> None:
    result = ch05.check_parameter_counts(embedding, lstm, 35, 16, 32)
    assert not result and hint in str(result)
    # 35 words x 16 numbers, and 4 gates x (16 x 32 + 32 x 32 + 2 x 32), by hand
    assert_hides(result, 35 * 16, 4 * (16 * 32 + 32 * 32 + 2 * 32))


# ------------------------------------------------------------------ the article's encoder, fixed


class ArticleEncoder(nn.Module):
    """The article's text encoder: nn.LSTM built sequence-first, fed batch-first ids."""

    def __init__(self, vocab_size: int, batch_first: bool, read: str) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 8, padding_idx=PAD_ID)
        self.rnn = nn.LSTM(8, 6, batch_first=batch_first)
        self.read = read

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        outputs, (h, _) = self.rnn(self.embedding(ids))
        if self.read == "all":
            return outputs
        if self.read == "last_column":
            return outputs[:, -1]
        if self.read == "gather":
            return last_real_step(outputs, (ids != PAD_ID).sum(dim=1))
        return h[-1]


def test_check_text_encoder_passes_right_answers() -> None:
    assert ch05.check_text_encoder(RNNTextEncoder(12, 8, 6), 12)
    assert ch05.check_text_encoder(ArticleEncoder(12, batch_first=True, read="gather"), 12)


@pytest.mark.parametrize(
    ("model", "hint"),
    [
        (ArticleEncoder(12, batch_first=False, read="h"), "batch_first=True"),
        (ArticleEncoder(12, batch_first=False, read="last_column"), "did not change"),
        (ArticleEncoder(12, batch_first=True, read="last_column"), "more padding"),
        (ArticleEncoder(12, batch_first=True, read="h"), "more padding"),
        (ArticleEncoder(12, batch_first=True, read="all"), "return the final hidden state"),
        (nn.Linear(3, 4), "raised RuntimeError"),
        ("lstm", "nn.Module"),
    ],
)
def test_check_text_encoder_explains_mistakes(model: object, hint: str) -> None:
    result = ch05.check_text_encoder(model, 12)  # type: ignore[arg-type]
    assert not result and hint in str(result)


def test_check_text_encoder_rejects_a_constant_model() -> None:
    class Constant(nn.Module):
        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.zeros(ids.shape[0], 4)

    assert "did not change when its words changed" in str(ch05.check_text_encoder(Constant(), 12))


def test_check_text_encoder_restores_training_mode() -> None:
    model = RNNTextEncoder(12, 8, 6).train()
    ch05.check_text_encoder(model, 12)
    assert model.training


def test_check_text_encoder_errors() -> None:
    with pytest.raises(ValueError, match="vocab_size must be an int >= 3"):
        ch05.check_text_encoder(RNNTextEncoder(12), 2)
