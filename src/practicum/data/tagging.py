"""Token classification data: sentences of words with one BIO tag per word -> sub-token rows for
a pretrained encoder, and entity-level scores.

Files are JSON lines, one {"tokens": [...], "tags": [...]} object a line (a .json file may
also hold one array of them), or CoNLL text (.conll, .txt, .bio, .iob): one "word ... TAG"
per line (the first column is the word, the last the tag), a blank line between sentences,
-DOCSTART- lines skipped.

Alignment: each word is tokenized on its own and the row gets the model's own specials (as
practicum.data.text.encode_texts adds them). A word's tag sits on its FIRST sub-token; every
other position (specials, continuation pieces, padding) holds IGNORE_INDEX, so loss and
metrics count each word once. Entities are BIO spans read as seqeval's default mode reads
them: an I- tag that does not continue an entity of its type starts a new one.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from practicum.data.lm import IGNORE_INDEX
from practicum.data.text import _pad_id
from practicum.data.tokenizers import Tokenizer
from practicum.errors import UserError

log = logging.getLogger(__name__)

OUTSIDE = "O"
CONLL_SUFFIXES = (".conll", ".txt", ".bio", ".iob")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_BIO = re.compile(r"^(O|[BI]-\S.*)$")

Span = tuple[int, int, str]  # (first word, one past the last word, entity type)


@dataclass
class TaggedRows:
    """Sentences read from a file: words, their tags (None when the file has none, as for
    prediction input) and the line (or array row) each sentence starts at, for messages."""

    path: str
    words: list[list[str]]
    tags: list[list[str]] | None
    lines: list[str]

    def __len__(self) -> int:
        return len(self.words)


# ---------------------------------------------------------------- reading


def read_tagged(path: str | Path, words_field: str = "tokens", tags_field: str = "tags",
                tag_names: Sequence[str] | None = None, require_tags: bool = True,
                field: str = "data.path") -> TaggedRows:
    """Read a JSON-lines or CoNLL file of tagged sentences (see the module docstring).

    tag_names maps numeric tags (Hugging Face datasets store ner_tags as ids) to names.
    require_tags=False reads prediction input: tags are kept only when every sentence has them.
    """
    from practicum.data.formats import check_exists

    file = check_exists(str(path), field)
    if file.is_dir():
        raise UserError(f"{field}: {file} is a folder; give a .jsonl or .conll file of tagged sentences")
    suffix = file.suffix.lower()
    if suffix in CONLL_SUFFIXES:
        rows = _read_conll(file, require_tags)
    elif suffix in JSON_SUFFIXES:
        rows = _read_json(file, words_field, tags_field, tag_names, require_tags)
    else:
        raise UserError(f"{file}: token classification reads JSON lines ({', '.join(JSON_SUFFIXES)}) "
                        f"or CoNLL text ({', '.join(CONLL_SUFFIXES)}); rename or convert the file")
    if not rows.words:
        raise UserError(f"{file}: no sentences found; it needs one tagged sentence per line "
                        "(JSON lines) or 'word TAG' lines (CoNLL)")
    return rows


def _read_conll(file: Path, require_tags: bool) -> TaggedRows:
    words: list[list[str]] = []
    tags: list[list[str | None]] = []
    starts: list[str] = []
    row_words: list[str] = []
    row_tags: list[str | None] = []
    with file.open(encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("-DOCSTART-"):
                if row_words:
                    words.append(row_words)
                    tags.append(row_tags)
                    row_words, row_tags = [], []
                continue
            parts = line.split()
            if len(parts) < 2 and require_tags:
                raise UserError(f"{file} line {n}: {line!r} has no tag; write 'word TAG' "
                                "(whitespace between them, a blank line between sentences)")
            if not row_words:
                starts.append(f"line {n}")
            row_words.append(parts[0])
            row_tags.append(_check_tag(parts[-1], file, f"line {n}") if len(parts) > 1 else None)
    if row_words:
        words.append(row_words)
        tags.append(row_tags)
    complete = all(t is not None for row in tags for t in row)
    return TaggedRows(str(file), words, tags if complete else None, starts)  # type: ignore[arg-type]


def _json_records(file: Path) -> list[tuple[str, Any]]:
    """(where, record) for each JSON line, or each item of a .json array."""
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{file} line {exc.lineno}: not valid JSON ({exc.msg})") from None
        return [(f"row {i}", item) for i, item in enumerate(items, 1)]
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((f"line {n}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UserError(f"{file} line {n}: not valid JSON ({exc.msg}); write one object a "
                            "line") from None
    return out


def _read_json(file: Path, words_field: str, tags_field: str, tag_names: Sequence[str] | None,
               require_tags: bool) -> TaggedRows:
    records = _json_records(file)
    has_tags = require_tags or all(isinstance(r, dict) and tags_field in r for _, r in records)
    words, tags, starts = [], [], []
    for where, record in records:
        at = f"{file} {where}"
        if not isinstance(record, dict):
            raise UserError(f"{at}: expected an object with {words_field!r} and {tags_field!r} "
                            f"lists, got {type(record).__name__}")
        row_words = _str_list(record, words_field, at, "task.words_field")
        words.append([str(w) for w in row_words])
        starts.append(where)
        if not has_tags:
            continue
        row_tags = _str_list(record, tags_field, at, "task.tags_field")
        if len(row_tags) != len(row_words):
            raise UserError(f"{at}: {len(row_words)} {words_field} but {len(row_tags)} {tags_field}; "
                            "give exactly one tag per word")
        tags.append([_check_tag(_tag_name(t, tag_names, at, j), file, where)
                     for j, t in enumerate(row_tags)])
    return TaggedRows(str(file), words, tags if has_tags else None, starts)


def _str_list(record: dict, name: str, at: str, setting: str) -> list[Any]:
    if name not in record:
        raise UserError(f"{at}: no {name!r} field (it has {', '.join(map(repr, record)) or 'none'}); "
                        f"rename the field or set {setting}")
    value = record[name]
    if not isinstance(value, list):
        raise UserError(f"{at}: {name!r} is {type(value).__name__}, not a list; give a list such as "
                        '["New", "York"] (one entry per word)')
    for j, item in enumerate(value, 1):
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            raise UserError(f"{at}: entry {j} of {name!r} is {item!r}; every entry must be a string")
    return value


def _tag_name(tag: Any, tag_names: Sequence[str] | None, at: str, j: int) -> str:
    if isinstance(tag, str):
        return tag
    if tag_names is None:
        raise UserError(f"{at}: tag {j + 1} is the number {tag!r}; write tag names (B-PER, O, ...) "
                        "or give the names in id order (task.tag_names)")
    if not float(tag).is_integer() or not 0 <= int(tag) < len(tag_names):
        raise UserError(f"{at}: tag {j + 1} is {tag!r}, not an id 0..{len(tag_names) - 1} of "
                        "task.tag_names; fix the tag or the list")
    return str(tag_names[int(tag)])


def _check_tag(tag: str, file: Path, where: str) -> str:
    if not _BIO.match(tag):
        raise UserError(f"{file} {where}: tag {tag!r} is not a BIO tag; use O, B-TYPE (first word of "
                        "an entity) or I-TYPE (the words after it)")
    return tag


def tag_vocabulary(tag_rows: Iterable[Sequence[str]]) -> list[str]:
    """The tags of the training rows, "O" first then sorted; each entity type brings both its
    B- and I- tag, so a type whose I- tag happens to be absent from training still decodes."""
    types = {t[2:] for row in tag_rows for t in row if t != OUTSIDE}
    return [OUTSIDE, *sorted({f"{p}-{t}" for t in types for p in "BI"})]


# ---------------------------------------------------------------- encoding


def special_frame(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer's post-processor puts before and after a text: [CLS] / [SEP] for
    BERT, <s> for LLaMA, none for GPT-2 (the same specials encode_texts gets)."""
    plain, full = tokenizer.encode("a"), tokenizer.encode("a", add_special=True)
    for i in range(len(full) - len(plain) + 1):
        if plain and full[i : i + len(plain)] == plain:
            return full[:i], full[i + len(plain):]
    cls, sep = tokenizer._id("cls"), tokenizer._id("sep")
    return ([] if cls is None else [cls]), ([] if sep is None else [sep])


def word_pieces(tokenizer: Tokenizer, words_rows: Sequence[Sequence[str]]) -> list[list[list[int]]]:
    """Sub-token ids of every word, tokenized on its own (one batch call). Byte-level BPE words
    after the first get their leading space, as in running text; a word with no pieces gets
    [unk] (or none when the tokenizer has no unk)."""
    spaced = tokenizer.kind == "bpe"
    flat = [(" " + w if spaced and j else w) for row in words_rows for j, w in enumerate(row)]
    ids = tokenizer.encode_batch(flat) if flat else []
    unk = tokenizer._id("unk")
    out, at = [], 0
    for row in words_rows:
        out.append([p or ([unk] if unk is not None else []) for p in ids[at : at + len(row)]])
        at += len(row)
    return out


def _fit_words(pieces: list[list[int]], budget: int) -> list[list[int]]:
    """The leading whole words whose pieces fit in `budget` ids (a first word longer than the
    budget keeps its first pieces, so the row still has a tag)."""
    kept, used = [], 0
    for p in pieces:
        if used + len(p) > budget:
            if not kept:
                kept.append(p[:budget])
            break
        kept.append(p)
        used += len(p)
    return kept


def encode_tagged(tokenizer: Tokenizer, words_rows: Sequence[Sequence[str]],
                  tag_rows: Sequence[Sequence[str]] | None, tag_index: dict[str, int],
                  max_length: int, source: str = "data") -> dict[str, torch.Tensor]:
    """{"tokens": (N, T) int64 with the model's specials, right-padded; "mask": (N, T) bool;
    "target": (N, T) int64 tag id on each word's first sub-token, IGNORE_INDEX elsewhere (left
    out when tag_rows is None); "word_index": (N, T) int64 the word number at first sub-tokens,
    -1 elsewhere}. T is the longest row, at most max_length: rows cut there lose whole words
    from their end (a warning counts them); those words have no position and no target."""
    prefix, suffix = special_frame(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise UserError(f"max_length {max_length} leaves no room for words after the model's "
                        f"{len(prefix) + len(suffix)} special tokens; raise it")
    rows, cut_rows, cut_words = [], 0, 0
    for pieces in word_pieces(tokenizer, words_rows):
        kept = _fit_words(pieces, budget)
        if len(kept) < len(pieces) or sum(map(len, kept)) < sum(map(len, pieces)):
            cut_rows, cut_words = cut_rows + 1, cut_words + len(pieces) - len(kept)
        rows.append(kept)
    if cut_rows:
        log.warning("%s: %d of %d sentences are longer than %d tokens; %d words at their ends were "
                    "cut (no tag is learned or scored for them); raise max_length to keep them",
                    source, cut_rows, len(rows), max_length, cut_words)
    width = max(len(prefix) + sum(map(len, r)) + len(suffix) for r in rows) if rows else 1
    n = len(rows)
    tokens = torch.full((n, width), _pad_id(tokenizer, None), dtype=torch.int64)  # (N, T)
    mask = torch.zeros((n, width), dtype=torch.bool)  # (N, T)
    target = torch.full((n, width), IGNORE_INDEX, dtype=torch.int64)  # (N, T)
    word_index = torch.full((n, width), -1, dtype=torch.int64)  # (N, T)
    for i, kept in enumerate(rows):
        ids, firsts = list(prefix), []
        for w, p in enumerate(kept):
            if p:
                firsts.append((len(ids), w))
            ids.extend(p)
        ids.extend(suffix)
        tokens[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        mask[i, : len(ids)] = True
        for pos, w in firsts:
            word_index[i, pos] = w
            if tag_rows is not None:
                target[i, pos] = _tag_id(tag_rows[i][w], tag_index, source, i)
    out = {"tokens": tokens, "mask": mask, "word_index": word_index}
    if tag_rows is not None:
        out["target"] = target
    return out


def _tag_id(tag: str, tag_index: dict[str, int], source: str, row: int) -> int:
    if tag not in tag_index:
        raise UserError(f"{source} sentence {row + 1}: tag {tag!r} never occurs in the training data "
                        f"(it has {', '.join(tag_index)}); fix the tag or add training examples of it")
    return tag_index[tag]


# ---------------------------------------------------------------- entities


def bio_spans(tags: Sequence[str]) -> set[Span]:
    """Entities of one sentence as (start, end, type) word spans, end exclusive. B-X starts an
    entity; I-X continues one of type X, else starts one (seqeval's default, conlleval's rule);
    O or any other tag ends it."""
    spans: set[Span] = set()
    start, kind = -1, ""
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, _, this = tag.partition("-")
        inside = prefix in ("B", "I") and bool(this)
        begins = inside and (prefix == "B" or this != kind)
        if start >= 0 and (not inside or begins):
            spans.add((start, i, kind))
            start, kind = -1, ""
        if begins:
            start, kind = i, this
    return spans


def add_entity_counts(totals: dict[str, float], true_tags: Sequence[str],
                      pred_tags: Sequence[str]) -> None:
    """Add one sentence's entity counts to totals: tp, pred, true, and per type tp:X, pred:X, true:X."""
    true, pred = bio_spans(true_tags), bio_spans(pred_tags)
    for name, spans in (("tp", true & pred), ("pred", pred), ("true", true)):
        totals[name] = totals.get(name, 0.0) + len(spans)
        for *_, kind in spans:
            totals[f"{name}:{kind}"] = totals.get(f"{name}:{kind}", 0.0) + 1


def _prf(tp: float, pred: float, true: float) -> dict[str, float]:
    precision = tp / pred if pred else 0.0
    recall = tp / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def entity_scores(totals: dict[str, float]) -> dict[str, Any]:
    """Micro precision, recall and F1 over entities, plus per_type {X: {..., support}}."""
    out: dict[str, Any] = _prf(totals.get("tp", 0.0), totals.get("pred", 0.0), totals.get("true", 0.0))
    kinds = sorted({k.split(":", 1)[1] for k in totals if ":" in k})
    out["per_type"] = {
        k: {**_prf(totals.get(f"tp:{k}", 0.0), totals.get(f"pred:{k}", 0.0), totals.get(f"true:{k}", 0.0)),
            "support": int(totals.get(f"true:{k}", 0.0))}
        for k in kinds
    }
    return out


def entity_f1(true_rows: Sequence[Sequence[str]], pred_rows: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 over the entities of all sentences (seqeval's default)."""
    if len(true_rows) != len(pred_rows):
        raise ValueError(f"{len(true_rows)} true rows but {len(pred_rows)} predicted rows")
    totals: dict[str, float] = {}
    for true, pred in zip(true_rows, pred_rows, strict=True):
        add_entity_counts(totals, true, pred)
    scores = entity_scores(totals)
    return {k: scores[k] for k in ("precision", "recall", "f1")}
