"""The tokenizer and vocabulary (mmcourse.vocab), checked against hand-worked examples and
brute-force loops."""

from __future__ import annotations

import pytest
import torch

from mmcourse.data.captions import make_mnist_captions
from mmcourse.vocab import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    Vocabulary,
    detokenize,
    padding_mask,
    tokenize,
)


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.build(["a small seven on the left", "a large two on the right , a seven"])


# ------------------------------------------------------------------ tokenize / detokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("A small seven, on the LEFT?", ["a", "small", "seven", ",", "on", "the", "left", "?"]),
        ("three digits : a two", ["three", "digits", ":", "a", "two"]),
        ("  spaces\tand\nnewlines  ", ["spaces", "and", "newlines"]),
        ("a well-known x-ray", ["a", "well-known", "x-ray"]),
        ("<bos> a seven <eos>", ["<bos>", "a", "seven", "<eos>"]),
        ("7 digits!", ["7", "digits", "!"]),
        ("", []),
    ],
)
def test_tokenize_examples(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_tokenize_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="expects a str, got list"):
        tokenize(["a", "b"])  # type: ignore[arg-type]


def test_detokenize_attaches_punctuation() -> None:
    assert detokenize(["a", "seven", ",", "a", "two", "?"]) == "a seven, a two?"
    assert detokenize([]) == ""


# ------------------------------------------------------------------ building a vocabulary


def test_build_orders_specials_then_frequency_then_alphabet() -> None:
    vocab = Vocabulary.build(["b a a", "c b a", "d"])
    # counts: a 3, b 2, c 1, d 1 -> ties broken A-Z
    assert vocab.itos == [*SPECIALS, "a", "b", "c", "d"]
    assert (vocab["<pad>"], vocab["<bos>"], vocab["<eos>"], vocab["<unk>"]) == (
        PAD_ID,
        BOS_ID,
        EOS_ID,
        UNK_ID,
    )
    assert len(vocab) == 8 and "c" in vocab and "z" not in vocab


def test_build_min_freq_drops_rare_words() -> None:
    vocab = Vocabulary.build(["b a a", "c b a", "d"], min_freq=2)
    assert vocab.itos == [*SPECIALS, "a", "b"]


def test_build_never_duplicates_a_special_written_in_the_text() -> None:
    vocab = Vocabulary.build(["<unk> a <pad>"])
    assert vocab.itos == [*SPECIALS, "a"]


def test_build_matches_a_counter_on_real_captions() -> None:
    captions = [c for cs in make_mnist_captions("val", n=100).captions for c in cs]
    words = {w for c in captions for w in c.split()}  # captions are space-separated already
    vocab = Vocabulary.build(captions)
    assert set(vocab.itos[4:]) == words
    assert len(vocab) == len(words) + 4


def test_build_errors() -> None:
    with pytest.raises(ValueError, match="min_freq must be at least 1"):
        Vocabulary.build(["a"], min_freq=0)
    with pytest.raises(ValueError, match="got a single str"):
        Vocabulary.build("a small seven")


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="must start with the special tokens"):
        Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="must be unique"):
        Vocabulary([*SPECIALS, "a", "a"])


def test_repr_has_no_address(vocab: Vocabulary) -> None:
    assert repr(vocab).startswith(f"Vocabulary({len(vocab)} tokens: a, ")


# ------------------------------------------------------------------ encode / decode


def test_encode_by_hand(vocab: Vocabulary) -> None:
    ids = vocab.encode("a seven on the left")
    expected = [BOS_ID] + [vocab.itos.index(w) for w in "a seven on the left".split()] + [EOS_ID]
    assert ids == expected
    assert vocab.encode("a seven", add_bos_eos=False) == [
        vocab.itos.index("a"),
        vocab.itos.index("seven"),
    ]
    assert vocab.encode(["a", "seven"]) == vocab.encode("a seven")


def test_unknown_words_become_unk(vocab: Vocabulary) -> None:
    ids = vocab.encode("a purple seven")
    assert ids[2] == UNK_ID
    assert vocab.decode(ids) == "a <unk> seven"
    assert vocab["purple"] == UNK_ID


def test_round_trip_on_real_captions() -> None:
    data = make_mnist_captions("val", n=50)
    captions = [c for cs in data.captions for c in cs]
    vocab = Vocabulary.build(captions)
    for caption in captions:
        decoded = vocab.decode(vocab.encode(caption))
        # the text comes back up to the spaces before punctuation ("left , a" -> "left, a")
        assert decoded == caption.replace(" ,", ",").replace(" :", ":")
        assert tokenize(decoded) == tokenize(caption)


def test_decode_stops_at_eos_and_skips_pad_bos(vocab: Vocabulary) -> None:
    seven = vocab.itos.index("seven")
    ids = [BOS_ID, seven, EOS_ID, seven, PAD_ID]
    assert vocab.decode(ids) == "seven"
    assert vocab.decode_tokens(ids, strip_special=False) == [
        "<bos>",
        "seven",
        "<eos>",
        "seven",
        "<pad>",
    ]
    assert vocab.decode(torch.tensor([PAD_ID, seven, PAD_ID])) == "seven"


def test_decode_errors(vocab: Vocabulary) -> None:
    with pytest.raises(ValueError, match="1-D sequence of ids, got shape"):
        vocab.decode(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([len(vocab)])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.decode([-1])


def test_encode_errors(vocab: Vocabulary) -> None:
    with pytest.raises(ValueError, match="a str or a list of tokens"):
        vocab.encode(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a str or a list of tokens"):
        vocab.encode([1, 2])  # type: ignore[list-item]


def test_dict_round_trip(vocab: Vocabulary) -> None:
    again = Vocabulary.from_dict(vocab.to_dict())
    assert again.itos == vocab.itos
    with pytest.raises(ValueError, match="'tokens' list"):
        Vocabulary.from_dict({"words": []})


# ------------------------------------------------------------------ batches and padding


def test_encode_batch_pads_on_the_right(vocab: Vocabulary) -> None:
    texts = ["a seven", "a large two on the right"]
    ids, lengths = vocab.encode_batch(texts)
    assert lengths.tolist() == [4, 8]
    assert ids.shape == (2, 8) and ids.dtype == torch.long
    for row, text in enumerate(texts):
        seq = vocab.encode(text)
        assert ids[row, : len(seq)].tolist() == seq
        assert (ids[row, len(seq) :] == PAD_ID).all()


def test_encode_batch_max_len_truncates_keeping_eos(vocab: Vocabulary) -> None:
    ids, lengths = vocab.encode_batch(["a large two on the right", "a"], max_len=5)
    full = vocab.encode("a large two on the right")
    assert ids[0].tolist() == full[:4] + [EOS_ID]
    assert ids[1].tolist() == [BOS_ID, vocab["a"], EOS_ID, PAD_ID, PAD_ID]
    assert lengths.tolist() == [5, 3]
    plain, plain_lengths = vocab.encode_batch(["a large two"], max_len=2, add_bos_eos=False)
    assert plain.tolist() == [[vocab["a"], vocab["large"]]] and plain_lengths.tolist() == [2]


def test_encode_batch_errors(vocab: Vocabulary) -> None:
    with pytest.raises(ValueError, match="non-empty list of texts"):
        vocab.encode_batch([])
    with pytest.raises(ValueError, match="non-empty list of texts"):
        vocab.encode_batch("a seven")
    with pytest.raises(ValueError, match="too short to hold a sequence"):
        vocab.encode_batch(["a"], max_len=2)
    with pytest.raises(ValueError, match="too short to hold a sequence"):
        vocab.encode_batch(["a"], max_len=0, add_bos_eos=False)


def test_decode_batch(vocab: Vocabulary) -> None:
    texts = ["a seven", "a large two on the right"]
    ids, _ = vocab.encode_batch(texts)
    assert vocab.decode_batch(ids) == texts
    with pytest.raises(ValueError, match="2-D tensor of ids"):
        vocab.decode_batch(ids[0])


def test_padding_mask_matches_a_loop(vocab: Vocabulary) -> None:
    ids, lengths = vocab.encode_batch(["a seven", "a large two on the right", "two"])
    mask = padding_mask(ids)
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            assert bool(mask[b, t]) == (t >= int(lengths[b]))
    with pytest.raises(ValueError, match="2-D tensor of ids"):
        padding_mask(ids[0])
