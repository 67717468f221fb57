"""Tokenizers: char, byte-level BPE and WordPiece training, specials, save/load, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from practicum.data.tokenizers import SPECIAL_TOKENS, Tokenizer, train_tokenizer
from practicum.errors import UserError

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A lazy dog sleeps; the brown fox runs away!",
    "Foxes and dogs are quick animals, aren't they?",
    "Café au lait costs 3.50 in Paris, and tea in 日本.",
    "  two  spaces\tand a tab\nand a newline",
]
CORPUS = [f"{s} ({i % 7})" for i in range(60) for s in SENTENCES]  # 300 lines
SAMPLE = "The  lazy dog,\nin 日本; café!\t(3)\n"
ROLE_IDS = {"pad": 0, "unk": 1, "bos": 2, "eos": 3, "mask": 4, "cls": 5, "sep": 6}


def train(kind: str, vocab_size: int = 400) -> Tokenizer:
    return train_tokenizer(kind, iter(CORPUS), vocab_size=vocab_size)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_round_trip_is_exact(kind: str) -> None:
    tok = train(kind)
    ids = tok.encode(SAMPLE)
    assert tok.unk_id not in ids
    assert tok.decode(ids) == SAMPLE
    assert tok.encode_batch([SAMPLE, "fox"]) == [ids, tok.encode("fox")]


def test_char_tokens_are_characters() -> None:
    tok = train("char")
    assert len(tok.encode(SAMPLE)) == len(SAMPLE)
    assert tok.decode(tok.encode("Zzz")) == "zz"  # unseen "Z" -> <unk>, skipped on decode
    assert tok.encode("Z") == [tok.unk_id]


def test_bpe_round_trips_unseen_bytes() -> None:
    tok = train("bpe")
    text = "Ünïcödé ✓ 😀 never seen\r\n"
    assert tok.decode(tok.encode(text)) == text


def test_wordpiece_lowercases_and_splits_unknown_words() -> None:
    tok = train("wordpiece", vocab_size=120)
    pieces = tok.inner.encode("The QUICK quickdogs", add_special_tokens=False).tokens
    assert pieces[:2] == ["the", "quick"]
    assert pieces[2] == "quick" and all(p.startswith("##") for p in pieces[3:])
    assert tok.decode(tok.encode("The QUICK quickdogs, Café!")) == "the quick quickdogs, cafe!"


@pytest.mark.parametrize("kind", ["char", "bpe", "wordpiece"])
def test_special_ids(kind: str) -> None:
    tok = train(kind)
    for role, expected in ROLE_IDS.items():
        assert getattr(tok, f"{role}_id") == expected
        assert tok.inner.id_to_token(expected) == SPECIAL_TOKENS[role]
    plain = tok.encode("the fox")
    first, last = ("cls", "sep") if kind == "wordpiece" else ("bos", "eos")
    assert tok.encode("the fox", add_special=True) == [ROLE_IDS[first], *plain, ROLE_IDS[last]]
    assert tok.decode([ROLE_IDS[first], *plain, ROLE_IDS[last]]) == tok.decode(plain)


@pytest.mark.parametrize(("kind", "size"), [("char", 20), ("bpe", 300), ("wordpiece", 90)])
def test_vocab_size_respected(kind: str, size: int) -> None:
    tok = train(kind, vocab_size=size)
    assert tok.vocab_size <= size
    assert max(tok.inner.get_vocab().values()) < size


@pytest.mark.parametrize("kind", ["char", "bpe", "wordpiece"])
def test_save_load_same_encodings(kind: str, tmp_path: Path) -> None:
    tok = train(kind)
    written = tok.save(tmp_path / "bundle")
    assert written == tmp_path / "bundle" / "tokenizer.json"
    for path in (written, written.parent):
        loaded = Tokenizer.load(path)
        assert loaded.vocab_size == tok.vocab_size
        assert loaded.specials == tok.specials
        assert loaded.encode(SAMPLE, add_special=True) == tok.encode(SAMPLE, add_special=True)
        assert loaded.decode(loaded.encode(SAMPLE)) == tok.decode(tok.encode(SAMPLE))


def test_load_hf_folder_reads_special_tokens_map(tmp_path: Path) -> None:
    tok = train("bpe")
    tok.inner.add_special_tokens(["<|endoftext|>", "[PAD]"])
    tok.save(tmp_path)
    special_map = {
        "eos_token": {"content": "<|endoftext|>", "lstrip": False},
        "pad_token": "[PAD]",
    }
    (tmp_path / "special_tokens_map.json").write_text(json.dumps(special_map))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"pad_token": "<mask>"}))
    loaded = Tokenizer.load(tmp_path)
    assert loaded.eos_id == tok.inner.token_to_id("<|endoftext|>")
    assert loaded.pad_id == tok.inner.token_to_id("[PAD]")  # special_tokens_map.json wins
    assert loaded.bos_id == ROLE_IDS["bos"]


def test_load_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "tokenizer.json"
    with pytest.raises(UserError, match="nope"):
        Tokenizer.load(missing)
    with pytest.raises(UserError, match=r"has no tokenizer\.json"):
        Tokenizer.load(tmp_path)


def test_load_bad_json(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match=str(bad).replace("\\", "\\\\")):
        Tokenizer.load(bad)


def test_unknown_kind_lists_kinds() -> None:
    with pytest.raises(UserError, match=r"'sentencepiece'.*bpe, char, wordpiece"):
        train_tokenizer("sentencepiece", CORPUS)


def test_bad_training_input() -> None:
    with pytest.raises(UserError, match="at least|>= 263"):
        train_tokenizer("bpe", CORPUS, vocab_size=100)
    with pytest.raises(UserError, match="non-empty"):
        train_tokenizer("char", ["", ""])


def test_matches_transformers_fast_tokenizer(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    tok = train("wordpiece")
    tok.save(tmp_path)
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(tmp_path / "tokenizer.json"),
        cls_token="<cls>",
        sep_token="<sep>",
        unk_token="<unk>",
    )
    assert hf(SAMPLE)["input_ids"] == tok.encode(SAMPLE, add_special=True)
    assert hf.decode(tok.encode(SAMPLE)) == tok.decode(tok.encode(SAMPLE))
