"""Text columns: a word or character vocabulary built on the training split.

Specials: <pad> = 0, <unk> = 1. Tokens seen fewer than min_freq times map to <unk>;
the vocabulary keeps the most frequent tokens (ties alphabetical) up to max_vocab.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch

from practicum.config import TextConfig
from practicum.data.tokenizers import Tokenizer

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, unit: str, lowercase: bool) -> list[str]:
    """Words (runs of letters/digits, or single punctuation marks) or characters."""
    if lowercase:
        text = text.lower()
    return _WORD.findall(text) if unit == "word" else list(text)


def column_text(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """One string per row: the text column (several are joined with spaces); missing -> ''."""
    parts = [frame[c].map(lambda v: "" if _missing(v) else str(v)) for c in columns]
    if len(parts) == 1:
        return parts[0].tolist()
    return [" ".join(p for p in row if p) for row in zip(*parts, strict=True)]


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


@dataclass
class TextEncoder:
    columns: list[str]
    tokenizer: str
    lowercase: bool
    max_length: int
    vocab: list[str]

    @classmethod
    def fit(cls, texts: Iterable[str], columns: list[str], cfg: TextConfig) -> TextEncoder:
        """Count training tokens; max_length = min(cfg.max_length, longest training text)."""
        counts: Counter[str] = Counter()
        longest = 1
        for text in texts:
            tokens = tokenize(text, cfg.tokenizer, cfg.lowercase)
            counts.update(tokens)
            longest = max(longest, len(tokens))
        kept = sorted((t for t, n in counts.items() if n >= cfg.min_freq), key=lambda t: (-counts[t], t))
        vocab = [PAD, UNK, *kept[: cfg.max_vocab - 2]]
        return cls(columns, cfg.tokenizer, cfg.lowercase, min(cfg.max_length, longest), vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """{"tokens": (N, T) int64 padded with 0, "mask": (N, T) bool}; an empty text is one <unk>."""
        index = {t: i for i, t in enumerate(self.vocab)}
        tokens = torch.full((len(texts), self.max_length), PAD_ID, dtype=torch.int64)  # (N, T)
        for row, text in enumerate(texts):
            ids = [index.get(t, UNK_ID) for t in tokenize(text, self.tokenizer, self.lowercase)]
            ids = ids[: self.max_length] or [UNK_ID]
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return {"tokens": tokens, "mask": tokens != PAD_ID}

    def transform(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        return self.encode(column_text(frame, self.columns))

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextEncoder:
        return cls(**state)


# ---------------------------------------------------------------- pretrained tokenizers


def encode_texts(tokenizer: Tokenizer, texts: list[str], max_length: int,
                 pad_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids with the model's own specials ([CLS] .. [SEP] for BERT), cut to max_length and
    right-padded to the longest text: (ids (N, T) int64, mask (N, T) bool)."""
    rows = tokenizer.encode_batch(list(texts), add_special=True)
    rows = [_truncate(r, max_length) or [_pad_id(tokenizer, pad_id)] for r in rows]
    width = max((len(r) for r in rows), default=1)
    ids = torch.full((len(rows), width), _pad_id(tokenizer, pad_id), dtype=torch.int64)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.int64)
        mask[i, : len(r)] = True
    return ids, mask


def _truncate(ids: list[int], max_length: int) -> list[int]:
    """Keep the first max_length - 1 ids and the last one (so a closing [SEP] survives)."""
    if len(ids) <= max_length:
        return ids
    return ids[: max_length - 1] + ids[-1:]


def _pad_id(tokenizer: Tokenizer, pad_id: int | None) -> int:
    if pad_id is not None:
        return pad_id
    for role in ("pad", "eos", "unk"):
        found = tokenizer._id(role)
        if found is not None:
            return found
    return 0


@dataclass
class PretrainedTextEncoder:
    """Text columns read with a pretrained model's own tokenizer (model.type pretrained).

    The tokenizer travels inside the state (its JSON), so a bundle needs nothing else.
    """

    columns: list[str]
    max_length: int
    tokenizer: Tokenizer

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def pad_id(self) -> int:
        return _pad_id(self.tokenizer, None)

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """{"tokens": (N, T) int64 with the model's specials, right-padded; "mask": (N, T) bool}."""
        tokens, mask = encode_texts(self.tokenizer, texts, self.max_length)
        return {"tokens": tokens, "mask": mask}

    def transform(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        return self.encode(column_text(frame, self.columns))

    def state(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "max_length": self.max_length,
                "tokenizer_json": self.tokenizer.inner.to_str(),
                "special_tokens": dict(self.tokenizer.specials)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PretrainedTextEncoder:
        from tokenizers import Tokenizer as HFTokenizer

        inner = HFTokenizer.from_str(state["tokenizer_json"])
        return cls(list(state["columns"]), int(state["max_length"]),
                   Tokenizer(inner, dict(state["special_tokens"])))
