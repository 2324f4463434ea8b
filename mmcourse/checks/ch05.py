"""Self-checks for chapter 05 (text encoders).

Each check runs the learner's function or model on a few inputs of its own and compares it
with a reference; the message says what was expected and, for common slips, why.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mmcourse.checks._core import CheckResult
from mmcourse.text import PAD_ID, UNK_ID, Vocabulary

_SENTENCES = (
    "a small seven on the left",
    "A purple seven, leaning left!",
    "on the right is a big thick two",
    "",
)


def check_encode(encode: Callable[[str, Vocabulary], list[int]], vocab: Vocabulary) -> CheckResult:
    """Does ``encode(text, vocab)`` give the ids of ``vocab.encode(text)`` (with ``<bos>``,
    ``<eos>`` and ``<unk>`` for unknown words) on a few sentences?"""
    if not callable(encode):
        return CheckResult(False, f"encode should be a function, got {type(encode).__name__}")
    if not isinstance(vocab, Vocabulary):
        return CheckResult(False, f"vocab should be a Vocabulary, got {type(vocab).__name__}")
    for text in _SENTENCES:
        expected = vocab.encode(text)
        try:
            got = encode(text, vocab)
        except Exception as error:  # noqa: BLE001 -- report any learner error as a hint
            return CheckResult(False, f"encode({text!r}) raised {type(error).__name__}: {error}")
        if isinstance(got, torch.Tensor):
            got = got.tolist()
        if not isinstance(got, list | tuple):
            return CheckResult(False, f"encode({text!r}) should return a list of ints, got {got!r}")
        got = list(got)
        if got == expected:
            continue
        if not got:
            hint = "your function returned no ids at all"
        elif got == expected[1:-1]:
            hint = "add <bos> at the start and <eos> at the end"
        elif len(got) != len(expected):
            hint = "split the text with mmcourse.text.tokenize (it lower-cases and splits off punctuation)"
        else:
            first = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
            if expected[first] == UNK_ID:
                hint = "a word the vocabulary lacks must become <unk> (id 3)"
            else:
                hint = f"position {first} should be {expected[first]} ({vocab.itos[expected[first]]!r})"
        return CheckResult(False, f"encode({text!r}) gave {got}, expected {expected}: {hint}")
    return CheckResult(True, f"your encoder agrees with vocab.encode on {len(_SENTENCES)} texts")


def check_padding_mask(make_mask: Callable[[torch.Tensor, int], torch.Tensor]) -> CheckResult:
    """Does ``make_mask(lengths, max_len)`` return the ``(B, max_len)`` bool mask that is
    ``True`` on padding (the convention of ``src_key_padding_mask``)?"""
    if not callable(make_mask):
        return CheckResult(False, f"make_mask should be a function, got {type(make_mask).__name__}")
    for lengths, max_len in (([3, 1, 4], 5), ([2], 2), ([1, 6], 6)):
        expected = torch.tensor([[t >= n for t in range(max_len)] for n in lengths])
        try:
            got = make_mask(torch.tensor(lengths), max_len)
        except Exception as error:  # noqa: BLE001
            return CheckResult(
                False, f"make_mask({lengths}, {max_len}) raised {type(error).__name__}: {error}"
            )
        if not isinstance(got, torch.Tensor):
            return CheckResult(False, f"make_mask should return a tensor, got {got!r}")
        if tuple(got.shape) != tuple(expected.shape):
            return CheckResult(
                False,
                f"for lengths {lengths} and max_len {max_len} the mask should have shape "
                f"{tuple(expected.shape)}, got {tuple(got.shape)}",
            )
        if got.dtype != torch.bool:
            return CheckResult(False, f"the mask should be a bool tensor, got {got.dtype}")
        if torch.equal(got, ~expected):
            return CheckResult(
                False, "your mask is True on the real tokens; PyTorch wants True on padding"
            )
        if not torch.equal(got, expected):
            return CheckResult(
                False,
                f"for lengths {lengths}: got {got.int().tolist()}, expected "
                f"{expected.int().tolist()} (1 = padding)",
            )
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
    ``nn.LSTM(embed_dim, hidden_dim)``?"""
    want_embedding, want_lstm = lstm_parameter_count(vocab_size, embed_dim, hidden_dim)
    for name, value in (("embedding_params", embedding_params), ("lstm_params", lstm_params)):
        if not isinstance(value, int) or isinstance(value, bool):
            return CheckResult(False, f"{name} should be an int, got {value!r}")
    if embedding_params != want_embedding:
        return CheckResult(
            False,
            f"embedding_params is {embedding_params}, expected {want_embedding}: one row of "
            "embed_dim numbers per word of the vocabulary",
        )
    e, h = embed_dim, hidden_dim
    hints = {
        4 * (e * h + h * h + h): "PyTorch keeps two bias vectors per gate, b_ih and b_hh",
        4 * (e * h + h * h): "do not forget the biases (two per gate)",
        e * h + h * h + 2 * h: "an LSTM has four gates (input, forget, cell, output)",
        3 * (e * h + h * h + 2 * h): "that is a GRU's count; an LSTM has four gates",
    }
    if lstm_params != want_lstm:
        hint = hints.get(lstm_params, "count W_ih (4H x E), W_hh (4H x H) and two biases (4H)")
        return CheckResult(False, f"lstm_params is {lstm_params}, expected {want_lstm}: {hint}")
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
    except Exception as error:  # noqa: BLE001
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
