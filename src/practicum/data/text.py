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
