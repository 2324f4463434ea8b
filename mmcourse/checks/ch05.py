"""Self-checks for chapter 05 (text encoders).

Each check runs the learner's function or model on a few inputs of its own and compares it
with a reference. A failed check shows the learner's own output and says what is wrong with
it and, for the common slips, why (no ``<bos>``/``<eos>``, unknown words not mapped to
``<unk>``, a mask off by one or inverted, the biases or a gate forgotten in a count) -- but it
never prints the expected ids, mask or count; see :mod:`mmcourse.checks`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmcourse.checks._core import CheckResult, describe_miss, describe_shape_miss
from mmcourse.vocab import PAD_ID, UNK_ID, Vocabulary

_SENTENCES = (
    "a small seven on the left",
    "A purple seven, leaning left!",
    "on the right is a big thick two",
    "",
)


def _token(vocab: Vocabulary, index: object) -> str:
    if isinstance(index, int) and 0 <= index < len(vocab.itos):
        return repr(vocab.itos[index])
    return "not an id of the vocabulary"


def _encode_hint(got: list, expected: list[int], vocab: Vocabulary) -> str:
    """Why ``got`` is not ``expected``, without saying what ``expected`` is."""
    if not got:
        return "your function returned no ids at all"
    if got == expected[1:-1]:
        return "add <bos> at the start and <eos> at the end"
    if got == expected[1:]:
        return "start with <bos>"
    if got == expected[:-1]:
        return "end with <eos>"
    if len(got) != len(expected):
        more = "too many" if len(got) > len(expected) else "too few"
        return (
            f"{more} ids: split the text with mmcourse.vocab.tokenize (it lower-cases and "
            "splits off punctuation), and add <bos> and <eos> once"
        )
    first = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
    shown = f"position {first} holds {got[first]!r} ({_token(vocab, got[first])})"
    if expected[first] == UNK_ID:
        return f"{shown}: a word the vocabulary lacks must become <unk> (id {UNK_ID})"
    if got[first] == UNK_ID:
        return (
            f"{shown}, but the vocabulary knows that word: lower-case and split the text "
            "with mmcourse.vocab.tokenize before the lookup"
        )
    if first == len(expected) - 1:
        return f"{shown}: the last id marks the end of the text"
    if first == 0:
        return f"{shown}: the first id marks the start of the text"
    return f"{shown}, which is not that word's id: look it up in vocab.stoi"


def check_encode(encode: Callable[[str, Vocabulary], list[int]], vocab: Vocabulary) -> CheckResult:
    """Does ``encode(text, vocab)`` give the ids of ``vocab.encode(text)`` (with ``<bos>``,
    ``<eos>`` and ``<unk>`` for unknown words) on a few sentences?

    A wrong encoding is shown as the learner's own ids with the first thing wrong in them.
    """
    if not callable(encode):
        return CheckResult(False, f"encode should be a function, got {type(encode).__name__}")
    if not isinstance(vocab, Vocabulary):
        return CheckResult(False, f"vocab should be a Vocabulary, got {type(vocab).__name__}")
    for text in _SENTENCES:
        expected = vocab.encode(text)
        try:
            got = encode(text, vocab)
        except Exception as error:
            return CheckResult(False, f"encode({text!r}) raised {type(error).__name__}: {error}")
        if isinstance(got, torch.Tensor):
            got = got.tolist()
        if not isinstance(got, list | tuple):
            return CheckResult(False, f"encode({text!r}) should return a list of ints, got {got!r}")
        got = list(got)
        if got == expected:
            continue
        return CheckResult(
            False, f"encode({text!r}) gave {got}: {_encode_hint(got, expected, vocab)}"
        )
    return CheckResult(True, f"your encoder agrees with vocab.encode on {len(_SENTENCES)} texts")


def _reference_mask(lengths: list[int], max_len: int, shift: int = 0) -> torch.Tensor:
    return torch.tensor([[t >= n + shift for t in range(max_len)] for n in lengths])


def check_padding_mask(make_mask: Callable[[torch.Tensor, int], torch.Tensor]) -> CheckResult:
    """Does ``make_mask(lengths, max_len)`` return the ``(B, max_len)`` bool mask that is
    ``True`` on padding (the convention of ``src_key_padding_mask``)?

    A wrong mask is explained by the slip it shows (inverted, off by one either way, all
    padding or none) or by the first position it gets wrong.
    """
    if not callable(make_mask):
        return CheckResult(False, f"make_mask should be a function, got {type(make_mask).__name__}")
    for lengths, max_len in (([3, 1, 4], 5), ([2], 2), ([1, 6], 6)):
        expected = _reference_mask(lengths, max_len)
        call = f"make_mask({lengths}, {max_len})"
        try:
            got = make_mask(torch.tensor(lengths), max_len)
        except Exception as error:
            return CheckResult(False, f"{call} raised {type(error).__name__}: {error}")
        if not isinstance(got, torch.Tensor):
            return CheckResult(False, f"make_mask should return a tensor, got {got!r}")
        if tuple(got.shape) != tuple(expected.shape):
            return CheckResult(
                False,
                f"the mask of {call} {describe_shape_miss(got.shape, expected.shape)}; it "
                "should be (B, max_len): one row per text, one column per position",
            )
        if got.dtype != torch.bool:
            return CheckResult(False, f"the mask should be a bool tensor, got {got.dtype}")
        got = got.cpu()
        if torch.equal(got, expected):
            continue
        if torch.equal(got, ~expected):
            return CheckResult(
                False, "your mask is True on the real tokens; PyTorch wants True on padding"
            )
        if torch.equal(got, _reference_mask(lengths, max_len, shift=1)):
            hint = (
                "off by one: a text of length n fills positions 0 .. n-1, so position n is "
                "already padding (1 = padding)"
            )
        elif torch.equal(got, _reference_mask(lengths, max_len, shift=-1)):
            hint = "off by one: position n-1 still holds the text's last token (1 = padding)"
        elif not got.any():
            hint = "your mask marks no position as padding (1 = padding)"
        elif got.all():
            hint = "your mask marks every position as padding (1 = padding)"
        else:
            row, position = (int(i) for i in (got != expected).nonzero()[0])
            what = (
                "marks a real token as padding"
                if got[row, position]
                else "misses a padding position"
            )
            hint = f"row {row} {what} at position {position} (1 = padding)"
        return CheckResult(False, f"for {call} your mask is {got.int().tolist()}: {hint}")
    return CheckResult(True, "the mask is True exactly on the padding positions")


def lstm_parameter_count(vocab_size: int, embed_dim: int, hidden_dim: int) -> tuple[int, int]:
    """``(embedding, lstm)`` parameter counts of ``nn.Embedding(vocab_size, embed_dim)`` and a
    one-layer ``nn.LSTM(embed_dim, hidden_dim)``, counted on the modules themselves."""
    embedding = nn.Embedding(vocab_size, embed_dim)
    lstm = nn.LSTM(embed_dim, hidden_dim)
    return (
        sum(p.numel() for p in embedding.parameters()),
        sum(p.numel() for p in lstm.parameters()),
    )


def check_parameter_counts(
    embedding_params: object,
    lstm_params: object,
    vocab_size: int,
    embed_dim: int,
    hidden_dim: int,
) -> CheckResult:
    """Are these the parameter counts of ``nn.Embedding(vocab_size, embed_dim)`` and of
    ``nn.LSTM(embed_dim, hidden_dim)``?

    A wrong count is described as too high or too low and, for the usual slips (one bias
    per block, no biases, one block, a GRU's three blocks, a bias on the embedding), named --
    never printed.
    """
    want_embedding, want_lstm = lstm_parameter_count(vocab_size, embed_dim, hidden_dim)
    for name, value in (("embedding_params", embedding_params), ("lstm_params", lstm_params)):
        if value is None:
            return CheckResult(False, f"{name} is still None: replace it with your count")
        if not isinstance(value, int) or isinstance(value, bool):
            return CheckResult(
                False, f"{name} should be an int, got {type(value).__name__} {value!r}"
            )
    e, h = embed_dim, hidden_dim
    if embedding_params != want_embedding:
        hints = {
            vocab_size: "that is one number per word; each word has a row of embed_dim numbers",
            embed_dim: "that is one row; the table has one row per word of the vocabulary",
            want_embedding + embed_dim: "an embedding table has no bias",
        }
        hints.pop(want_embedding, None)
        hint = hints.get(
            embedding_params, "one row of embed_dim numbers per word of the vocabulary"
        )
        return CheckResult(
            False, f"embedding_params {describe_miss(embedding_params, want_embedding)}; {hint}"
        )
    hints = {
        4 * (e * h + h * h + h): "PyTorch keeps two bias vectors per block, b_ih and b_hh",
        4 * (e * h + h * h): "do not forget the biases (two per block)",
        4 * (e * h + 2 * h): "the recurrent weights W_hh (4H x H) are missing",
        4 * (h * h + 2 * h): "the input weights W_ih (4H x E) are missing",
        e * h + h * h + 2 * h: (
            "an LSTM has four blocks of weights: three gates (input, forget, output) and the "
            "candidate"
        ),
        3 * (e * h + h * h + 2 * h): (
            "that is a GRU's count (two gates and a candidate); an LSTM has three gates and a "
            "candidate"
        ),
    }
    hints.pop(want_lstm, None)
    if lstm_params != want_lstm:
        hint = hints.get(
            lstm_params,
            "for each of the four blocks (three gates and the candidate), count the input "
            "weights W_ih, the recurrent weights W_hh and two biases, b_ih and b_hh",
        )
        return CheckResult(False, f"lstm_params {describe_miss(lstm_params, want_lstm)}; {hint}")
    return CheckResult(
        True, f"{want_embedding} embedding and {want_lstm} LSTM parameters, counted by hand"
    )


def check_text_encoder(model: nn.Module, vocab_size: int) -> CheckResult:
    """Does ``model`` map right-padded ids ``(B, T)`` to one vector per text ``(B, H)`` that
    depends on that text only: not on the other texts of the batch, not on the padding?"""
    if not isinstance(model, nn.Module):
        return CheckResult(False, f"model should be an nn.Module, got {type(model).__name__}")
    if not isinstance(vocab_size, int) or vocab_size < 3:
        raise ValueError(f"vocab_size must be an int >= 3, got {vocab_size!r}")
    generator = torch.Generator().manual_seed(5)
    lengths = [7, 3, 5, 1]
    ids = torch.full((len(lengths), 9), PAD_ID, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1, vocab_size, (n,), generator=generator)
    changed = ids.clone()
    changed[1:, 0] = ids[1:, 0] % (vocab_size - 1) + 1  # the first word of the other texts
    own_words = ids.clone()
    own_words[0, : lengths[0]] = ids[0, : lengths[0]] % (vocab_size - 1) + 1  # text 0 changes
    more_padding = torch.cat([ids, torch.full((len(lengths), 6), PAD_ID)], dim=1)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(ids)
            out_changed = model(changed)
            out_padded = model(more_padding)
            out_own = model(own_words)
    except Exception as error:
        return CheckResult(False, f"model(ids (B, T)) raised {type(error).__name__}: {error}")
    finally:
        model.train(was_training)
    if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == ids.shape[1]:
        return CheckResult(
            False,
            f"for ids of shape {tuple(ids.shape)} the model returned one row per time step "
            f"{tuple(out.shape)}: the LSTM took the batch dimension for time; build it with "
            "batch_first=True",
        )
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != len(lengths):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return CheckResult(
            False,
            f"for ids of shape {tuple(ids.shape)} the model should return ({len(lengths)}, H), "
            f"got {shape}; return the final hidden state, not every time step",
        )
    if not torch.allclose(out[0], out_changed[0], atol=1e-5):
        return CheckResult(
            False,
            "the vector of text 0 changed when only the *other* texts changed: the LSTM reads "
            "the batch dimension as time; build it with batch_first=True",
        )
    if not torch.allclose(out, out_padded, atol=1e-5):
        return CheckResult(
            False,
            "the vectors changed when more padding was added: the state is read after the "
            "padding; pack the sequences (pack_padded_sequence) or read the last real step",
        )
    if torch.allclose(out[0], out_own[0], atol=1e-6):
        return CheckResult(
            False,
            "the vector of text 0 did not change when its words changed: it is read from "
            "the wrong place (a padding position or another text)",
        )
    return CheckResult(True, "one vector per text, independent of the batch and of the padding")
