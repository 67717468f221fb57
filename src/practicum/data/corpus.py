"""Text corpora -> token ids in memory-mapped files, for language-model pretraining.

    tok = train_tokenizer("char", iter_documents("notes/"), vocab_size=256)
    meta = build_corpus("notes/", tok, "runs/corpus")       # train.bin, val.bin, meta.json
    train, val, meta = load_corpus("runs/corpus")            # np.memmap token ids
    x, y = sample_batch(train, block_size=64, batch_size=12, generator=g)

A source is a .txt/.md file (one document), a .jsonl file (one document per record's text
field), a folder of those (sorted, recursive) or a built-in text data set such as
`builtin:pydoc` (the standard library's pydoc topics; one document per row's text field).
Everything is streamed: JSONL line by line, big text files in pieces cut at
newlines, and tokens appended to disk in batches, so corpora larger than memory work.
Each document ends with the tokenizer's eos id.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from practicum.data.formats import BUILTIN_PREFIX, read_source
from practicum.data.tokenizers import Tokenizer
from practicum.errors import UserError

BUILTIN_PYDOC = "builtin:pydoc"
"""The default corpus of `practicum pretrain` (registered in data.builtin like every builtin:NAME)."""
TEXT_SUFFIXES = (".txt", ".md")
CORPUS_SUFFIXES = (*TEXT_SUFFIXES, ".jsonl")
CHUNK_CHARS = 1 << 20  # a big text file is read as ~1 MB pieces, cut at newlines
BATCH_CHARS = 4 << 20  # characters tokenized per encode_batch call
MIN_DOCS_FOR_DOC_SPLIT = 10  # fewer documents: the last val_fraction of tokens is val
COPY_TOKENS = 1 << 20  # tokens moved per step when splitting off the tail


# --- reading documents ------------------------------------------------------------------


def iter_pieces(source: str | Path, text_field: str = "text") -> Iterator[tuple[str, bool]]:
    """Yield (text, ends_document) pieces; a big text file comes as several pieces."""
    if str(source).startswith(BUILTIN_PREFIX):
        yield from ((text, True) for text in _builtin_texts(str(source), text_field))
        return
    for file in _corpus_files(Path(source)):
        if file.suffix == ".jsonl":
            yield from ((text, True) for text in _read_jsonl(file, text_field))
        else:
            yield from _read_text_chunks(file)


def iter_documents(source: str | Path, text_field: str = "text") -> Iterator[str]:
    """Yield the corpus texts (e.g. to train a tokenizer); a big file comes as several pieces."""
    for text, _ in iter_pieces(source, text_field):
        yield text


def count_documents(source: str | Path, text_field: str = "text") -> int:
    """Number of documents, found without decoding: 1 per text file, 1 per non-blank JSONL line
    (1 per row of a built-in data set)."""
    if str(source).startswith(BUILTIN_PREFIX):
        return len(_builtin_texts(str(source), text_field))
    count = 0
    for file in _corpus_files(Path(source)):
        if file.suffix == ".jsonl":
            with file.open("rb") as handle:
                count += sum(1 for line in handle if line.strip())
        else:
            count += 1
    return count


@functools.lru_cache(maxsize=4)
def _builtin_texts(source: str, text_field: str = "text") -> tuple[str, ...]:
    """The documents of a built-in text data set: its text_field column, one document per row
    (read once for counting and reading)."""
    loaded = read_source(source, field="data.path")
    frame = getattr(loaded.train, "frame", None)
    if frame is None:
        raise UserError(f"{source} holds images, not text; pretrain on a text corpus such as "
                        f"{BUILTIN_PYDOC} (see `practicum data list`)")
    if text_field not in frame.columns:
        raise UserError(f"{source} has no {text_field!r} column (it has "
                        f"{', '.join(map(str, frame.columns))}); set data.corpus.text_field to one of them")
    return tuple(str(text) for text in frame[text_field].dropna())


def _corpus_files(path: Path) -> list[Path]:
    if not path.exists():
        raise UserError(f"{path}: no such file or folder; give a text file, a .jsonl or a folder")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in CORPUS_SUFFIXES)
        if not files:
            raise UserError(f"{path}: folder has no .txt, .md or .jsonl files; add some text")
        return files
    if path.suffix not in CORPUS_SUFFIXES:
        raise UserError(f"{path}: unsupported corpus file; use .txt, .md or .jsonl")
    return [path]


def _read_jsonl(file: Path, text_field: str) -> Iterator[str]:
    with file.open(encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield _record_text(line, f"{file}:{number}", text_field)
        except UnicodeDecodeError as err:
            raise UserError(f"{file}: not UTF-8 text ({err.reason}); re-save it as UTF-8") from err


def _record_text(line: str, where: str, text_field: str) -> str:
    try:
        record = json.loads(line)
    except ValueError as err:
        raise UserError(f"{where}: not valid JSON ({err}); fix or remove that line") from err
    if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
        raise UserError(
            f"{where}: record has no string field {text_field!r}; "
            "add it or pass the right text_field"
        )
    return record[text_field]


def _read_text_chunks(file: Path) -> Iterator[tuple[str, bool]]:
    """One document, as pieces of about CHUNK_CHARS characters that end at a newline."""
    carry, pending = "", ""  # pending is held back so that the last piece can end the document
    with file.open(encoding="utf-8", newline="") as handle:
        try:
            while chunk := handle.read(CHUNK_CHARS):
                if "\x00" in chunk:  # valid UTF-8 can still be binary: text has no NUL bytes
                    raise UserError(f"{file}: looks like a binary file (it has NUL bytes), "
                                    "not text; give a UTF-8 .txt, .md or .jsonl corpus")
                buffer = carry + chunk
                cut = buffer.rfind("\n") + 1
                if cut == 0 and len(buffer) < 2 * CHUNK_CHARS:  # no newline yet: read on
                    carry = buffer
                    continue
                cut = cut or len(buffer)  # a very long line is cut where it stands
                if pending:
                    yield pending, False
                pending, carry = buffer[:cut], buffer[cut:]
        except UnicodeDecodeError as err:
            raise UserError(f"{file}: not UTF-8 text ({err.reason}); re-save it as UTF-8") from err
    yield pending + carry, True


# --- building token files ---------------------------------------------------------------


def token_dtype(vocab_size: int, requested: str = "auto") -> np.dtype:
    """The id type of a token file: uint16 when every id fits in 16 bits, else uint32.

    `requested` uint16 or uint32 insists on one, and a vocabulary it cannot hold is an error.
    """
    if requested == "auto":
        requested = "uint16" if vocab_size <= 1 << 16 else "uint32"
    dtype = np.dtype(requested)
    if vocab_size > np.iinfo(dtype).max + 1:
        raise UserError(
            f"a vocabulary of {vocab_size:,} tokens does not fit in {dtype.name} token ids "
            f"(at most {np.iinfo(dtype).max + 1:,}); use data.corpus.token_dtype "
            f"{'uint32' if dtype.itemsize == 2 else 'auto'} or a smaller data.corpus.vocab_size"
        )
    return dtype


def build_corpus(
    source: str | Path,
    tokenizer: Tokenizer,
    out_dir: str | Path,
    val_fraction: float = 0.1,
    text_field: str = "text",
    seed: int = 0,
    dtype: str = "auto",
) -> dict[str, Any]:
    """Tokenize `source` into out_dir/train.bin, val.bin and meta.json; returns the meta.

    With >= 10 documents whole documents go to val (a seeded hash of the document index);
    with fewer, the last val_fraction of the tokens does (nanoGPT style).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction {val_fraction} must be in [0, 1)")
    eos = tokenizer.eos_id
    if eos is None:
        raise UserError("the tokenizer has no eos token; train one with practicum or add <eos>")
    documents = count_documents(source, text_field)
    if documents == 0:
        raise UserError(f"{source}: corpus has no documents; give a non-empty corpus")
    by_document = documents >= MIN_DOCS_FOR_DOC_SPLIT
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.vocab_size, dtype)
    paths = {"train": out / "train.bin", "val": out / "val.bin"}
    with paths["train"].open("wb") as train, paths["val"].open("wb") as val:
        batch: list[tuple[str, bool, Any]] = []
        index, size = 0, 0
        for text, ends in iter_pieces(source, text_field):
            to_val = by_document and _goes_to_val(seed, index, val_fraction)
            batch.append((text, ends, val if to_val else train))
            index, size = index + ends, size + len(text)
            if size >= BATCH_CHARS:
                _write_batch(batch, tokenizer, eos, dtype)
                batch, size = [], 0
        _write_batch(batch, tokenizer, eos, dtype)
    if not by_document:
        _move_tail(paths["train"], paths["val"], dtype, val_fraction)
    meta = {
        "dtype": dtype.name,
        "vocab_size": tokenizer.vocab_size,
        "tokens": {name: path.stat().st_size // dtype.itemsize for name, path in paths.items()},
        "documents": index,
        "split": "documents" if by_document else "tail",
        "val_fraction": val_fraction,
        "seed": seed,
        "source": str(source),
        "eos_id": eos,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def _goes_to_val(seed: int, index: int, val_fraction: float) -> bool:
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < val_fraction


def _write_batch(
    batch: list[tuple[str, bool, Any]], tokenizer: Tokenizer, eos: int, dtype: np.dtype
) -> None:
    """Tokenize the pieces together and append each to its file, eos after a document's end."""
    encoded = tokenizer.encode_batch([text for text, _, _ in batch]) if batch else []
    for ids, (_, ends, handle) in zip(encoded, batch, strict=True):
        np.asarray(ids + [eos] if ends else ids, dtype=dtype).tofile(handle)


def _move_tail(train: Path, val: Path, dtype: np.dtype, val_fraction: float) -> None:
    """Move the last val_fraction of train's tokens into val, then truncate train."""
    total = train.stat().st_size // dtype.itemsize
    keep = int(total * (1.0 - val_fraction))
    with train.open("r+b") as src, val.open("wb") as dst:
        src.seek(keep * dtype.itemsize)
        while block := src.read(COPY_TOKENS * dtype.itemsize):
            dst.write(block)
        src.truncate(keep * dtype.itemsize)


# --- reading token files ----------------------------------------------------------------


def load_corpus(out_dir: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Open train.bin and val.bin read-only as np.memmap (empty arrays if empty) and meta."""
    out = Path(out_dir)
    meta_file = out / "meta.json"
    if not meta_file.is_file():
        raise UserError(f"{meta_file}: not found; build the corpus first with build_corpus")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    splits = []
    for name in ("train", "val"):
        file = out / f"{name}.bin"
        if not file.is_file():
            raise UserError(f"{file}: not found; rebuild the corpus with build_corpus")
        if file.stat().st_size == 0:  # numpy cannot memory-map an empty file
            splits.append(np.zeros(0, dtype=meta["dtype"]))
        else:
            splits.append(np.memmap(file, dtype=meta["dtype"], mode="r"))
    return splits[0], splits[1], meta


def sample_batch(
    tokens: np.ndarray, block_size: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows x (B, T) and their next tokens y (B, T), as int64."""
    if len(tokens) < block_size + 1:
        raise UserError(
            f"split has {len(tokens)} tokens, fewer than block_size + 1 = {block_size + 1}; "
            "use a smaller block_size or a larger corpus / val_fraction"
        )
    starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=generator)
    windows = np.stack([tokens[i : i + block_size + 1] for i in starts.tolist()])
    windows = torch.from_numpy(windows.astype(np.int64))  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


class TokenWindows:
    """A language-model split as rows: windows of block_size + 1 consecutive token ids.

    An epoch has len(tokens) // block_size rows, so it reads about every token once.
    sampling "sequential": row i starts at i * block_size (validation: deterministic, no
    overlap). "phase": row i of epoch e starts at phase(e) + i * block_size, the phase drawn
    from (seed, e), so windows straddle different boundaries each epoch. "random": every row
    of every epoch starts at an offset hashed from (seed, e, i), uniform over the split:
    nanoGPT's independent random windows, still exactly reproducible on resume.
    `take` returns {"tokens": (B, T), "target": (B, T)} int64, the targets being the next
    ids. `limit` keeps at most that many rows, evenly spread (cheaper validation).
    """

    def __init__(self, tokens: np.ndarray, block_size: int, *, sampling: str = "sequential",
                 seed: int = 0, limit: int | None = None, split: str = "train") -> None:
        if sampling not in ("sequential", "phase", "random"):
            raise ValueError(f"unknown sampling {sampling!r}")
        self.tokens, self.block_size = tokens, block_size
        self.sampling, self.seed = sampling, seed
        self.random_phase = sampling == "phase"
        slack = block_size - 1 if self.random_phase else 0  # room for the largest phase
        n = (len(tokens) - 1 - slack) // block_size
        if n < 1:
            raise UserError(
                f"the {split} split has {len(tokens)} tokens, too few for one window of "
                f"block_size + 1 = {block_size + 1}; use a smaller model.block_size or more text"
            )
        self.rows = np.arange(n, dtype=np.int64)
        if limit is not None and limit < n:
            self.rows = np.linspace(0, n - 1, limit).round().astype(np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def phase(self, epoch: int) -> int:
        if not self.random_phase:
            return 0
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return int(torch.randint(self.block_size, (1,), generator=gen))

    def starts(self, idx: torch.Tensor, epoch: int) -> np.ndarray:
        """Where rows `idx` of epoch `epoch` begin in the token array."""
        rows = self.rows[np.asarray(idx, dtype=np.int64)]
        if self.sampling == "random":
            span = len(self.tokens) - self.block_size  # a window needs block_size + 1 ids
            return (_hash64(self.seed, epoch, rows) % np.uint64(span)).astype(np.int64)
        return self.phase(epoch) + rows * self.block_size

    def take(self, idx: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        T = self.block_size
        starts = self.starts(idx, epoch)
        windows = np.stack([self.tokens[s : s + T + 1] for s in starts.tolist()])
        windows = torch.from_numpy(windows.astype(np.int64))  # (B, T + 1)
        return {"tokens": windows[:, :-1], "target": windows[:, 1:]}


def _hash64(seed: int, epoch: int, rows: np.ndarray) -> np.ndarray:
    """A well-mixed uint64 per row from (seed, epoch, row): splitmix64's finaliser."""
    with np.errstate(over="ignore"):
        x = rows.astype(np.uint64) + np.uint64((seed * 0x9E3779B1 + epoch * 0x85EBCA77 + 1) % 2**64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
