"""Words to numbers and back: a small tokenizer and vocabulary.

>>> vocab = Vocabulary.build(["a small seven on the left"])
>>> ids = vocab.encode("a small seven")
>>> vocab.decode(ids)
'a small seven'

Four special tokens come first, always with the same ids:

==========  ==  =====================================================
``<pad>``    0  fills short sequences up to the batch's length
``<bos>``    1  "begin of sentence": the first input of a decoder
``<eos>``    2  "end of sentence": a decoder stops when it says this
``<unk>``    3  any word the vocabulary has never seen
==========  ==  =====================================================
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from mmcourse._validate import require

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)

_TOKEN = re.compile(r"<[a-z]+>|[a-z0-9]+(?:-[a-z0-9]+)*|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words and punctuation marks.

    >>> tokenize("A small seven, on the LEFT?")
    ['a', 'small', 'seven', ',', 'on', 'the', 'left', '?']
    """
    require(isinstance(text, str), f"tokenize expects a str, got {type(text).__name__}")
    return _TOKEN.findall(text.lower())


def detokenize(tokens: Sequence[str]) -> str:
    """Join tokens with spaces, attaching punctuation to the word before it."""
    out = ""
    for token in tokens:
        if out and not re.fullmatch(r"[,.;:?!]", token):
            out += " "
        out += token
    return out


class Vocabulary:
    """A fixed list of tokens; ``vocab[token]`` is its id, ``vocab.itos[id]`` its text."""

    def __init__(self, tokens: Iterable[str]) -> None:
        tokens = list(tokens)
        if tuple(tokens[:4]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with the special tokens {SPECIALS}")
        require(len(set(tokens)) == len(tokens), "a vocabulary's tokens must be unique")
        self.itos: list[str] = tokens
        self.stoi: dict[str, int] = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 1) -> Vocabulary:
        """The vocabulary of ``texts``: specials first, then words by frequency, ties A-Z."""
        if isinstance(texts, str):
            raise ValueError(
                "Vocabulary.build expects a list of texts, got a single str (it would build a "
                "vocabulary of its characters); wrap it in a list: Vocabulary.build([text])"
            )
        require(min_freq >= 1, f"min_freq must be at least 1, got {min_freq}")
        counts = Counter(token for text in texts for token in tokenize(text))
        words = sorted(
            (w for w, c in counts.items() if c >= min_freq and w not in SPECIALS),
            key=lambda w: (-counts[w], w),
        )
        return cls([*SPECIALS, *words])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(token, UNK_ID)

    def __repr__(self) -> str:
        preview = ", ".join(self.itos[4:12])
        return f"Vocabulary({len(self)} tokens: {preview}, ...)"

    def encode(self, text: str | Sequence[str], add_bos_eos: bool = True) -> list[int]:
        """Token ids of ``text`` (a string, or a list of tokens); unknown words become ``<unk>``."""
        if isinstance(text, str):
            tokens = tokenize(text)
        elif isinstance(text, Sequence) and all(isinstance(token, str) for token in text):
            tokens = list(text)
        else:
            raise ValueError(f"encode expects a str or a list of tokens, got {text!r}")
        ids = [self[token] for token in tokens]
        return [BOS_ID, *ids, EOS_ID] if add_bos_eos else ids

    def decode(self, ids: Sequence[int] | torch.Tensor, strip_special: bool = True) -> str:
        """Text of ``ids``; stops at the first ``<eos>`` and drops ``<pad>``/``<bos>``."""
        return detokenize(self.decode_tokens(ids, strip_special))

    def decode_tokens(
        self, ids: Sequence[int] | torch.Tensor, strip_special: bool = True
    ) -> list[str]:
        """Like :meth:`decode` but returns the list of tokens."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(
                    f"decode expects a 1-D sequence of ids, got shape {tuple(ids.shape)}"
                )
            ids = ids.tolist()
        tokens = []
        for i in ids:
            if not 0 <= int(i) < len(self):
                raise ValueError(f"token id {i} is outside the vocabulary (0..{len(self) - 1})")
            token = self.itos[int(i)]
            if strip_special:
                if token == EOS:
                    break
                if token in (PAD, BOS):
                    continue
            tokens.append(token)
        return tokens

    def encode_batch(
        self,
        texts: Sequence[str],
        max_len: int | None = None,
        add_bos_eos: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode and right-pad texts: ``ids`` LongTensor ``(B, T)`` and ``lengths`` ``(B,)``.

        ``max_len`` truncates longer sequences (keeping ``<eos>`` last) and pads to exactly
        ``max_len``; by default ``T`` is the longest sequence in the batch.
        """
        if isinstance(texts, str) or len(texts) == 0:
            raise ValueError("encode_batch expects a non-empty list of texts")
        if max_len is not None and max_len < (3 if add_bos_eos else 1):
            raise ValueError(f"max_len={max_len} is too short to hold a sequence")
        encoded = [self.encode(text, add_bos_eos) for text in texts]
        if max_len is not None:
            encoded = [
                seq
                if len(seq) <= max_len
                else seq[: max_len - 1] + seq[-1:]
                if add_bos_eos
                else seq[:max_len]
                for seq in encoded
            ]
        width = max_len if max_len is not None else max(len(seq) for seq in encoded)
        ids = torch.full((len(encoded), width), PAD_ID, dtype=torch.long)
        for row, seq in enumerate(encoded):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        lengths = torch.tensor([len(seq) for seq in encoded], dtype=torch.long)
        return ids, lengths

    def decode_batch(self, ids: torch.Tensor) -> list[str]:
        """Decode every row of a ``(B, T)`` tensor of ids."""
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            raise ValueError("decode_batch expects a 2-D tensor of ids (B, T)")
        return [self.decode(row) for row in ids]

    def to_dict(self) -> dict[str, list[str]]:
        """A JSON-friendly form; :meth:`from_dict` reads it back."""
        return {"tokens": list(self.itos)}

    @classmethod
    def from_dict(cls, data: dict[str, list[str]]) -> Vocabulary:
        """Rebuild a vocabulary saved with :meth:`to_dict`."""
        require("tokens" in data, "expected a dict with a 'tokens' list")
        return cls(data["tokens"])


def padding_mask(ids: torch.Tensor, pad_id: int = PAD_ID) -> torch.Tensor:
    """``True`` where ``ids`` is padding: the ``src_key_padding_mask`` of ``nn.Transformer*``."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise ValueError("padding_mask expects a 2-D tensor of ids (B, T)")
    return ids == pad_id
