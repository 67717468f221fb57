"""Corpus pipeline: documents -> eos-separated token files, splits, streaming, batches, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from practicum.data import corpus
from practicum.data.corpus import (
    build_corpus,
    iter_documents,
    load_corpus,
    sample_batch,
)
from practicum.data.tokenizers import Tokenizer, train_tokenizer
from practicum.errors import UserError

ALPHABET = "abcdefghijklmnopqrstuvwxyz .,\n{}0123456789"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_tokenizer("char", [ALPHABET], vocab_size=100)


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def split_documents(tok: Tokenizer, ids: np.ndarray) -> list[str]:
    """Decode eos-separated ids back into documents."""
    parts = np.split(ids, np.flatnonzero(ids == tok.eos_id) + 1)
    assert len(parts[-1]) == 0  # the last document ends with eos too
    return [tok.decode(p[:-1].tolist()) for p in parts[:-1]]


def test_folder_round_trips_documents_with_eos(tok: Tokenizer, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "b.txt").write_text("second doc\nline two\n", encoding="utf-8")
    (src / "a.md").write_text("first doc", encoding="utf-8")
    write_jsonl(src / "sub" / "c.jsonl", ["third", "fourth"])
    (src / "skip.csv").write_text("not,text\n", encoding="utf-8")
    expected = ["first doc", "second doc\nline two\n", "third", "fourth"]
    assert list(iter_documents(src)) == expected
    meta = build_corpus(src, tok, tmp_path / "out", val_fraction=0.0)
    train, val, loaded = load_corpus(tmp_path / "out")
    assert loaded == meta and meta["documents"] == 4 and len(val) == 0
    assert isinstance(train, np.memmap)
    assert split_documents(tok, np.asarray(train)) == expected


def test_small_vocabulary_uses_uint16(tok: Tokenizer, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello world\n" * 10, encoding="utf-8")
    meta = build_corpus(tmp_path / "a.txt", tok, tmp_path / "out")
    assert meta["dtype"] == "uint16" and meta["eos_id"] == tok.eos_id
    total = meta["tokens"]["train"] + meta["tokens"]["val"]
    assert total == 121
    sizes = sum((tmp_path / "out" / f"{s}.bin").stat().st_size for s in ("train", "val"))
    assert sizes == total * 2
    assert corpus.token_dtype(70000) == np.uint32


def test_jsonl_splits_whole_documents_by_seed(tok: Tokenizer, tmp_path: Path) -> None:
    texts = [f"doc {i}" for i in range(40)]
    src = write_jsonl(tmp_path / "docs.jsonl", texts)

    def splits(seed: int, name: str) -> tuple[list[str], list[str]]:
        meta = build_corpus(src, tok, tmp_path / name, val_fraction=0.25, seed=seed)
        assert meta["split"] == "documents" and meta["documents"] == 40
        train, val, _ = load_corpus(tmp_path / name)
        return split_documents(tok, np.asarray(train)), split_documents(tok, np.asarray(val))

    train, val = splits(0, "a")
    assert sorted(train + val) == sorted(texts) and 0 < len(val) < 20
    assert [t for t in texts if t in val] == val  # whole documents, in corpus order
    assert splits(0, "b") == (train, val)
    assert splits(1, "c")[1] != val


def test_single_file_splits_tokens_90_10(tok: Tokenizer, tmp_path: Path) -> None:
    text = "".join(f"line {i}\n" for i in range(100))
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    meta = build_corpus(tmp_path / "a.txt", tok, tmp_path / "out")
    train, val, _ = load_corpus(tmp_path / "out")
    every = tok.encode(text) + [tok.eos_id]
    assert meta["split"] == "tail"
    assert len(train) == int(len(every) * 0.9) and len(train) + len(val) == len(every)
    assert train.tolist() == every[: len(train)] and val.tolist() == every[len(train) :]


def test_large_file_is_read_in_chunks(
    tok: Tokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    lines = ["".join(rng.choice(list("abc xyz"), size=rng.integers(0, 80))) for _ in range(40000)]
    text = "\n".join(lines) + "\n" + "q" * 5000  # a long last line with no newline
    (tmp_path / "big.txt").write_text(text, encoding="utf-8")
    assert len(text) > 1_500_000
    monkeypatch.setattr(corpus, "CHUNK_CHARS", 1000)
    monkeypatch.setattr(corpus, "BATCH_CHARS", 50_000)
    pieces = list(corpus.iter_pieces(tmp_path / "big.txt"))
    assert len(pieces) > 1000 and "".join(p for p, _ in pieces) == text
    assert [ends for _, ends in pieces] == [False] * (len(pieces) - 1) + [True]
    assert all(p.endswith("\n") or len(p) < 4 * 1000 for p, _ in pieces)
    build_corpus(tmp_path / "big.txt", tok, tmp_path / "out", val_fraction=0.0)
    train, _, _ = load_corpus(tmp_path / "out")
    assert train.tolist() == tok.encode(text) + [tok.eos_id]


def test_builtin_pydoc_is_an_embedded_corpus() -> None:
    docs = list(iter_documents("builtin:pydoc"))
    assert len(docs) > 50 and sum(map(len, docs)) > 100_000
    assert corpus.count_documents("builtin:pydoc") == len(docs)


def test_any_builtin_text_data_set_is_a_corpus_by_its_text_field() -> None:
    pytest.importorskip("chatterbot_corpus", reason="chatterbot-corpus is not installed")
    docs = list(iter_documents("builtin:chatterbot"))
    assert len(docs) == corpus.count_documents("builtin:chatterbot") == 751
    prompts = list(iter_documents("builtin:chatterbot_pairs", text_field="prompt"))
    assert len(prompts) == corpus.count_documents("builtin:chatterbot_pairs", "prompt") == 1176
    with pytest.raises(UserError, match="no 'text' column \\(it has prompt, response, topic\\); set data.corpus.text_field"):
        list(iter_documents("builtin:chatterbot_pairs"))
    with pytest.raises(UserError, match="builtin:digits holds images, not text"):
        list(iter_documents("builtin:digits"))


def test_sample_batch_shapes_shift_and_determinism() -> None:
    tokens = np.arange(1000, dtype=np.uint16)
    x, y = sample_batch(tokens, 8, 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1)  # tokens are consecutive, so the shift is +1
    again, _ = sample_batch(tokens, 8, 4, torch.Generator().manual_seed(0))
    other, _ = sample_batch(tokens, 8, 4, torch.Generator().manual_seed(1))
    assert torch.equal(x, again) and not torch.equal(x, other)


def test_missing_path(tok: Tokenizer, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope.txt: no such file"):
        build_corpus(tmp_path / "nope.txt", tok, tmp_path / "out")
    with pytest.raises(UserError, match="meta.json: not found"):
        load_corpus(tmp_path / "out")


def test_bad_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    src.write_text('{"text": "ok"}\n\n{"text": broken\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.jsonl:3: not valid JSON"):
        list(iter_documents(src))


def test_missing_text_field(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "d.jsonl", ["a"])
    with pytest.raises(UserError, match=r"d\.jsonl:1: record has no string field 'body'"):
        list(iter_documents(src, text_field="body"))


def test_non_utf8_and_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"ok\xff\xfe")
    with pytest.raises(UserError, match=r"bad\.txt: not UTF-8"):
        list(iter_documents(tmp_path / "bad.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: folder has no"):
        list(iter_documents(tmp_path / "empty"))


def test_tokenizer_without_eos(tok: Tokenizer, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("abc", encoding="utf-8")
    no_eos = Tokenizer(tok.inner, {"unk": "<unk>"})
    with pytest.raises(UserError, match="no eos token"):
        build_corpus(tmp_path / "a.txt", no_eos, tmp_path / "out")


def test_split_too_short_for_block_size() -> None:
    with pytest.raises(UserError, match="fewer than block_size"):
        sample_batch(np.arange(8, dtype=np.uint16), 8, 2, torch.Generator())


def test_token_windows_read_consecutive_ids_and_shift_targets():
    from practicum.data.corpus import TokenWindows

    ids = np.arange(1000, dtype=np.uint16)
    val = TokenWindows(ids, 10)
    assert len(val) == 99  # (1000 - 1) // 10
    batch = val.take(torch.tensor([0, 5]), epoch=0)
    assert batch["tokens"][1].tolist() == list(range(50, 60))
    assert batch["target"][1].tolist() == list(range(51, 61))
    assert batch["tokens"].dtype == torch.int64


def test_token_windows_random_phase_is_seeded_per_epoch_and_stays_in_bounds():
    from practicum.data.corpus import TokenWindows

    ids = np.arange(1000, dtype=np.uint16)
    train = TokenWindows(ids, 10, sampling="phase", seed=3)
    phases = [train.phase(e) for e in range(20)]
    assert phases == [TokenWindows(ids, 10, sampling="phase", seed=3).phase(e) for e in range(20)]
    assert len(set(phases)) > 1
    last = train.take(torch.tensor([len(train) - 1]), epoch=int(np.argmax(phases)))
    assert int(last["target"].max()) <= 999


def test_token_windows_limit_spreads_rows_and_short_split_is_an_error():
    from practicum.data.corpus import TokenWindows

    ids = np.arange(1000, dtype=np.uint16)
    limited = TokenWindows(ids, 10, limit=4)
    starts = [int(limited.take(torch.tensor([i]), 0)["tokens"][0, 0]) for i in range(4)]
    assert len(limited) == 4 and starts[0] == 0 and starts[-1] == 980
    with pytest.raises(UserError, match="too few for one window"):
        TokenWindows(ids[:10], 10, split="val")


def test_token_windows_random_sampling_is_uniform_seeded_and_in_bounds():
    from practicum.data.corpus import TokenWindows

    ids = np.arange(5000, dtype=np.uint16)
    train = TokenWindows(ids, 10, sampling="random", seed=1)
    idx = torch.arange(len(train))
    starts = train.starts(idx, 0)
    assert starts.min() >= 0 and starts.max() <= 5000 - 11
    assert np.array_equal(starts, TokenWindows(ids, 10, sampling="random", seed=1).starts(idx, 0))
    assert not np.array_equal(starts, train.starts(idx, 1))  # a new draw each epoch
    assert not np.array_equal(starts, TokenWindows(ids, 10, sampling="random", seed=2).starts(idx, 0))
    assert abs(starts.mean() - (5000 - 11) / 2) < 0.1 * 5000  # spread over the whole split
    batch = train.take(torch.tensor([3]), 0)
    assert batch["target"][0, :-1].tolist() == batch["tokens"][0, 1:].tolist()
