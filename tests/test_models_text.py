"""Text encoders (mmcourse.models.text), checked against hand-written references: a mean by a
loop, the RNN run one unpadded text at a time, the Transformer run without padding, the
sinusoid formula with math.sin/math.cos."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmcourse.models.text import (
    TEXT_ENCODERS,
    BagOfWordsEncoder,
    PositionalEncoding,
    RNNTextEncoder,
    TextClassifier,
    TransformerTextEncoder,
    build_text_encoder,
    check_ids,
    ids_to_lengths,
    last_real_step,
)
from mmcourse.vocab import PAD_ID

V = 20


def padded_batch() -> tuple[torch.Tensor, list[list[int]]]:
    """Three texts of lengths 5, 2 and 4, right-padded to 6."""
    texts = [[1, 5, 6, 7, 2], [1, 2], [1, 9, 8, 2]]
    ids = torch.full((len(texts), 6), PAD_ID, dtype=torch.long)
    for row, seq in enumerate(texts):
        ids[row, : len(seq)] = torch.tensor(seq)
    return ids, texts


def pad_more(ids: torch.Tensor, extra: int) -> torch.Tensor:
    return torch.cat([ids, torch.full((ids.shape[0], extra), PAD_ID, dtype=torch.long)], dim=1)


# ------------------------------------------------------------------ helpers


def test_check_ids_accepts_a_valid_batch() -> None:
    check_ids(torch.tensor([[0, 1, V - 1]]), V)


def test_check_ids_errors() -> None:
    with pytest.raises(TypeError, match="must be a torch.Tensor, got list"):
        check_ids([[1, 2]], V)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape \(B, T\) \(batch first\), got \(3,\)"):
        check_ids(torch.tensor([1, 2, 3]), V)
    with pytest.raises(ValueError, match="torch.long"):
        check_ids(torch.ones(2, 3), V)
    with pytest.raises(ValueError, match="outside 0..19"):
        check_ids(torch.tensor([[1, V]]), V)
    with pytest.raises(ValueError, match="min -1"):
        check_ids(torch.tensor([[-1, 2]]), V)


def test_ids_to_lengths_matches_a_loop() -> None:
    ids, texts = padded_batch()
    assert ids_to_lengths(ids).tolist() == [len(t) for t in texts]
    assert ids_to_lengths(torch.zeros(1, 4, dtype=torch.long)).tolist() == [1]


def test_positional_encoding_formula_by_hand() -> None:
    d, n = 6, 9
    table = PositionalEncoding(d, max_len=n).table
    for pos in range(n):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    x = torch.randn(2, 4, d)
    assert torch.equal(PositionalEncoding(d, n)(x), x + table[:4])


def test_positional_encoding_errors() -> None:
    with pytest.raises(ValueError, match="d_model must be even, got 5"):
        PositionalEncoding(5)
    pe = PositionalEncoding(4, max_len=3)
    with pytest.raises(ValueError, match=r"expected \(B, T, 4\)"):
        pe(torch.zeros(2, 3, 6))
    with pytest.raises(ValueError, match=r"expected \(B, T, 4\)"):
        pe(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="longer than max_len=3"):
        pe(torch.zeros(1, 4, 4))


# ------------------------------------------------------------------ bag of words


def test_bag_of_words_is_the_mean_of_real_embeddings() -> None:
    encoder = BagOfWordsEncoder(V, 8)
    ids, texts = padded_batch()
    out = encoder(ids)
    for row, seq in enumerate(texts):
        expected = sum(encoder.embedding.weight[i] for i in seq) / len(seq)
        assert torch.allclose(out[row], expected, atol=1e-6)
    assert encoder.forward_sequence(ids).shape == (3, 6, 8)
    assert encoder.out_dim == 8


def test_bag_of_words_ignores_order_and_padding() -> None:
    encoder = BagOfWordsEncoder(V, 8)
    ids = torch.tensor([[1, 5, 6, 2]])
    shuffled = torch.tensor([[1, 6, 5, 2]])
    assert torch.allclose(encoder(ids), encoder(shuffled), atol=1e-6)
    assert torch.allclose(encoder(ids), encoder(pad_more(ids, 5)), atol=1e-6)


# ------------------------------------------------------------------ RNNs


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_matches_running_each_text_alone(cell: str, bidirectional: bool) -> None:
    encoder = RNNTextEncoder(V, 6, 5, cell=cell, num_layers=2, bidirectional=bidirectional)
    encoder.eval()
    ids, texts = padded_batch()
    out, sequence = encoder(ids), encoder.forward_sequence(ids)
    assert out.shape == (3, encoder.out_dim) and encoder.out_dim == 5 * (1 + bidirectional)
    assert sequence.shape == (3, 6, encoder.out_dim)
    for row, seq in enumerate(texts):
        alone = encoder.embedding(torch.tensor([seq]))  # (1, L, E): no padding at all
        outputs, state = encoder.rnn(alone)
        hidden = state[0] if cell == "lstm" else state
        expected = torch.cat([hidden[-2], hidden[-1]], -1) if bidirectional else hidden[-1]
        assert torch.allclose(out[row], expected[0], atol=1e-5)
        assert torch.allclose(sequence[row, : len(seq)], outputs[0], atol=1e-5)
        assert (sequence[row, len(seq) :] == 0).all()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_without_packing_matches_running_each_text_alone(
    cell: str, bidirectional: bool
) -> None:
    """forward_padded / forward_sequence_padded (no packing, for torch.export) against the
    same reference as the packed path: each text run alone, with no padding at all."""
    layers = 1 if bidirectional else 2
    encoder = RNNTextEncoder(V, 6, 5, cell=cell, num_layers=layers, bidirectional=bidirectional)
    encoder.eval()
    ids, texts = padded_batch()
    ids = pad_more(ids, 3)  # more padding than any text's length difference
    out, sequence = encoder.forward_padded(ids), encoder.forward_sequence_padded(ids)
    assert out.shape == (3, encoder.out_dim) and sequence.shape == (3, 9, encoder.out_dim)
    for row, seq in enumerate(texts):
        outputs, state = encoder.rnn(encoder.embedding(torch.tensor([seq])))
        hidden = state[0] if cell == "lstm" else state
        expected = torch.cat([hidden[-2], hidden[-1]], -1) if bidirectional else hidden[-1]
        assert torch.allclose(out[row], expected[0], atol=1e-5)
        assert torch.allclose(sequence[row, : len(seq)], outputs[0], atol=1e-5)
        assert (sequence[row, len(seq) :] == 0).all()


def test_rnn_without_packing_refuses_a_stacked_bidirectional_rnn() -> None:
    encoder = RNNTextEncoder(V, 6, 5, num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match="one layer only, got 2 layers"):
        encoder.forward_padded(padded_batch()[0])


@pytest.mark.parametrize("kind", ["bow", "transformer"])
def test_unchecked_paths_equal_the_checked_ones(kind: str) -> None:
    encoder = build_text_encoder(kind, V, 8).eval()
    ids, _ = padded_batch()
    assert torch.equal(encoder.forward_padded(ids), encoder(ids))
    assert torch.equal(encoder.forward_sequence_padded(ids), encoder.forward_sequence(ids))


def test_rnn_final_state_is_the_last_real_output() -> None:
    encoder = RNNTextEncoder(V, 6, 5, cell="lstm").eval()
    ids, texts = padded_batch()
    lengths = torch.tensor([len(t) for t in texts])
    assert torch.allclose(
        encoder(ids), last_real_step(encoder.forward_sequence(ids), lengths), atol=1e-6
    )


def test_rnn_is_invariant_to_extra_padding_and_to_other_rows() -> None:
    encoder = RNNTextEncoder(V, 6, 5, cell="gru").eval()
    ids, _ = padded_batch()
    assert torch.allclose(encoder(ids), encoder(pad_more(ids, 7)), atol=1e-6)
    changed = ids.clone()
    changed[1:, 1] = 11
    assert torch.allclose(encoder(ids)[0], encoder(changed)[0], atol=1e-6)


def test_rnn_errors() -> None:
    with pytest.raises(ValueError, match="cell must be 'lstm' or 'gru', got 'rnn'"):
        RNNTextEncoder(V, cell="rnn")
    with pytest.raises(ValueError, match="batch first"):
        RNNTextEncoder(V)(torch.tensor([1, 2, 3]))


# ------------------------------------------------------------------ Transformer


def test_transformer_matches_running_each_text_without_padding() -> None:
    encoder = TransformerTextEncoder(V, d_model=8, nhead=2, num_layers=2, dropout=0.0).eval()
    ids, texts = padded_batch()
    out, sequence = encoder(ids), encoder.forward_sequence(ids)
    for row, seq in enumerate(texts):
        alone = torch.tensor([seq])
        x = encoder.embedding(alone) * math.sqrt(8) + encoder.positions.table[: len(seq)]
        expected = encoder.encoder(x)[0]  # no padding, so no mask needed
        assert torch.allclose(sequence[row, : len(seq)], expected, atol=1e-5)
        assert torch.allclose(out[row], expected.mean(dim=0), atol=1e-5)


def test_transformer_ignores_padding_in_training_mode_too() -> None:
    encoder = TransformerTextEncoder(V, d_model=8, nhead=2, dropout=0.0).train()
    ids, _ = padded_batch()
    assert torch.allclose(encoder(ids), encoder(pad_more(ids, 4)), atol=1e-5)


def test_transformer_sees_word_order() -> None:
    encoder = TransformerTextEncoder(V, d_model=8, nhead=2, dropout=0.0).eval()
    a, b = torch.tensor([[1, 5, 6, 2]]), torch.tensor([[1, 6, 5, 2]])
    assert (encoder(a) - encoder(b)).abs().max() > 1e-3


def test_transformer_embeddings_start_as_large_as_the_positions() -> None:
    d = 64
    encoder = TransformerTextEncoder(500, d_model=d, nhead=4)
    scaled = encoder.embedding.weight[1:] * math.sqrt(d)
    assert scaled.std().item() == pytest.approx(1.0, abs=0.05)
    assert (encoder.embedding.weight[PAD_ID] == 0).all()


def test_transformer_row_of_padding_gives_zeros_not_nan() -> None:
    encoder = TransformerTextEncoder(V, d_model=8, nhead=2).train()
    out = encoder(torch.tensor([[0, 0, 0], [1, 4, 2]]))
    assert torch.isfinite(out).all()
    assert (out[0] == 0).all()


def test_transformer_errors() -> None:
    with pytest.raises(ValueError, match=r"d_model \(10\) must be divisible by nhead \(4\)"):
        TransformerTextEncoder(V, d_model=10, nhead=4)
    with pytest.raises(ValueError, match="outside 0..19"):
        TransformerTextEncoder(V, d_model=8, nhead=2)(torch.tensor([[1, 25]]))


# ------------------------------------------------------------------ factory, head, last step


@pytest.mark.parametrize("kind", TEXT_ENCODERS)
def test_build_text_encoder(kind: str) -> None:
    encoder = build_text_encoder(kind, V, dim=12, pad_id=PAD_ID)
    expected = {
        "bow": BagOfWordsEncoder,
        "lstm": RNNTextEncoder,
        "gru": RNNTextEncoder,
        "transformer": TransformerTextEncoder,
    }[kind]
    assert isinstance(encoder, expected)
    assert encoder.out_dim == 12
    ids, _ = padded_batch()
    assert encoder(ids).shape == (3, 12)
    if kind in ("lstm", "gru"):
        assert isinstance(encoder.rnn, nn.LSTM if kind == "lstm" else nn.GRU)


def test_build_text_encoder_errors() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        build_text_encoder("cnn", V)
    with pytest.raises(ValueError, match="vocab_size must be a positive int"):
        build_text_encoder("bow", 0)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        build_text_encoder("bow", V, dim=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BagOfWordsEncoder(-5, 4), "vocab_size must be a positive int, got -5"),
        (lambda: BagOfWordsEncoder(V, 0), "dim must be a positive int, got 0"),
        (
            lambda: BagOfWordsEncoder(V, 4, pad_id=V),
            rf"pad_id must be an int in 0..{V - 1}, got {V}",
        ),
        (lambda: RNNTextEncoder(0), "vocab_size must be a positive int, got 0"),
        (lambda: RNNTextEncoder(V, embed_dim=-1), "embed_dim must be a positive int, got -1"),
        (lambda: RNNTextEncoder(V, hidden_dim=0), "hidden_dim must be a positive int, got 0"),
        (lambda: RNNTextEncoder(V, num_layers=0), "num_layers must be a positive int, got 0"),
        (lambda: RNNTextEncoder(V, dropout=1.5), r"dropout must be a number in \[0, 1\), got 1.5"),
        (lambda: RNNTextEncoder(V, pad_id=-1), rf"pad_id must be an int in 0..{V - 1}, got -1"),
        (lambda: TransformerTextEncoder(10, d_model=-8), "d_model must be a positive int, got -8"),
        (lambda: TransformerTextEncoder(10, d_model=0), "d_model must be a positive int, got 0"),
        (lambda: TransformerTextEncoder(V, nhead=0), "nhead must be a positive int, got 0"),
        (
            lambda: TransformerTextEncoder(V, num_layers=0),
            "num_layers must be a positive int, got 0",
        ),
        (
            lambda: TransformerTextEncoder(V, dim_feedforward=-1),
            "dim_feedforward must be a positive int, got -1",
        ),
        (
            lambda: TransformerTextEncoder(V, dropout=1.0),
            r"dropout must be a number in \[0, 1\), got 1.0",
        ),
        (lambda: TransformerTextEncoder(V, max_len=0), "max_len must be a positive int, got 0"),
        (lambda: PositionalEncoding(-4), "d_model must be a positive int, got -4"),
        (lambda: PositionalEncoding(4, max_len=0), "max_len must be a positive int, got 0"),
    ],
)
def test_text_encoders_refuse_bad_sizes(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BagOfWordsEncoder(20.0, 4), "vocab_size must be a positive int, got float 20.0"),
        (
            lambda: RNNTextEncoder(V, num_layers="2"),
            "num_layers must be a positive int, got str '2'",
        ),
        (
            lambda: TransformerTextEncoder(V, nhead=2.0),
            "nhead must be a positive int, got float 2.0",
        ),
        (
            lambda: TransformerTextEncoder(V, dropout=None),
            r"dropout must be a number in \[0, 1\), got NoneType",
        ),
        (
            lambda: build_text_encoder("bow", V, dim=8.0),
            "dim must be a positive int, got float 8.0",
        ),
        (
            lambda: TextClassifier(BagOfWordsEncoder(V, 8), 2.0),
            "num_classes must be a positive int",
        ),
    ],
)
def test_text_encoders_refuse_sizes_of_the_wrong_type(make, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        make()


def test_text_classifier_is_a_linear_layer_on_the_encoder() -> None:
    encoder = BagOfWordsEncoder(V, 8)
    model = TextClassifier(encoder, 3)
    ids, _ = padded_batch()
    logits = model(ids)
    manual = encoder(ids) @ model.head.weight.T + model.head.bias
    assert logits.shape == (3, 3) and torch.allclose(logits, manual, atol=1e-6)


def test_text_classifier_errors() -> None:
    with pytest.raises(ValueError, match="out_dim"):
        TextClassifier(nn.Linear(3, 4), 2)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        TextClassifier(BagOfWordsEncoder(V, 8), 0)


def test_last_real_step_matches_a_loop() -> None:
    outputs = torch.randn(3, 5, 4)
    lengths = torch.tensor([5, 1, 3])
    picked = last_real_step(outputs, lengths)
    for b in range(3):
        assert torch.equal(picked[b], outputs[b, int(lengths[b]) - 1])


def test_last_real_step_errors() -> None:
    outputs = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match=r"\(B, T, H\) tensor, got shape \(2, 4\)"):
        last_real_step(outputs[:, :, 0], torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\), got list"):
        last_real_step(outputs, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lengths must be integers"):
        last_real_step(outputs, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"lie in 1..4"):
        last_real_step(outputs, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"lie in 1..4"):
        last_real_step(outputs, torch.tensor([5, 2]))
