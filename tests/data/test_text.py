"""Text vocabulary: tokenizers, lowercasing, min_freq, max_vocab, max_length, specials, masks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch

from practicum.config import TaskConfig, TextConfig
from practicum.data import load_data
from practicum.data.columns import column_type, infer_table_kind
from practicum.data.text import PAD_ID, UNK_ID, TextEncoder, tokenize


def test_word_and_char_tokenizers() -> None:
    assert tokenize("Hello, World!", "word", lowercase=True) == ["hello", ",", "world", "!"]
    assert tokenize("Hi!", "word", lowercase=False) == ["Hi", "!"]
    assert tokenize("Ab c", "char", lowercase=True) == ["a", "b", " ", "c"]


def test_vocab_order_specials_and_min_freq() -> None:
    texts = ["b a a", "c a b", "d"]
    enc = TextEncoder.fit(texts, ["text"], TextConfig(min_freq=2))
    assert enc.vocab == ["<pad>", "<unk>", "a", "b"]  # most frequent first; c, d below min_freq
    out = enc.encode(["a c", ""])
    assert out["tokens"].tolist() == [[2, UNK_ID, 0], [UNK_ID, PAD_ID, PAD_ID]]
    assert out["mask"].tolist() == [[True, True, False], [True, False, False]]


def test_max_vocab_and_max_length() -> None:
    texts = ["a a a b b c d e f g"]
    enc = TextEncoder.fit(texts, ["text"], TextConfig(max_vocab=4, max_length=3))
    assert enc.vocab == ["<pad>", "<unk>", "a", "b"]
    assert enc.max_length == 3
    assert enc.encode(["c a b a"])["tokens"].tolist() == [[UNK_ID, 2, 3]]


def test_max_length_shrinks_to_longest_training_text() -> None:
    enc = TextEncoder.fit(["one two", "three"], ["text"], TextConfig(max_length=64))
    assert enc.max_length == 2


def test_free_text_column_makes_text_kind(gen: SimpleNamespace) -> None:
    frame = gen.text_frame()
    assert column_type(frame["text"]) == "text"
    assert infer_table_kind("auto", frame, ["text"], None) == "text"
    short = pd.DataFrame({"color": ["red", "blue", "red", "blue"]})
    assert infer_table_kind("auto", short, ["color"], None) == "tabular"


def test_load_text_csv(gen: SimpleNamespace, text_csv: Path) -> None:
    splits = load_data(gen.config(text_csv, text={"tokenizer": "word"}), TaskConfig())
    assert splits.spec.kind == "text" and splits.task == "classification"
    tokens, mask = splits.train["tokens"], splits.train["mask"]
    assert tokens.dtype == torch.int64 and mask.dtype == torch.bool
    assert tokens.shape == mask.shape and tokens.shape[1] == splits.spec.max_length
    assert torch.equal(mask, tokens != 0)
    assert splits.label_names == ["neg", "pos"]
    assert splits.test_display is not None and "number" in splits.test_display[0]


def test_char_vocab_is_small(gen: SimpleNamespace, text_csv: Path) -> None:
    splits = load_data(gen.config(text_csv, text={"tokenizer": "char"}), TaskConfig())
    assert splits.spec.vocab_size < 40


def test_predict_on_list_of_strings(gen: SimpleNamespace, text_csv: Path) -> None:
    pre = load_data(gen.config(text_csv), TaskConfig()).preprocessor
    batch, display, targets = pre.load_inputs(["I love this", "awful"])
    assert set(batch) == {"tokens", "mask"} and batch["tokens"].shape[0] == 2
    assert display == ["I love this", "awful"] and targets is None
