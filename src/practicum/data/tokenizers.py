"""Subword tokenizers for language models, built on the Hugging Face `tokenizers` library.

    tok = train_tokenizer("bpe", lines, vocab_size=8000)   # "char" | "bpe" | "wordpiece"
    ids = tok.encode("Hello", add_special=True)             # [bos, ..., eos]
    tok.save(bundle_dir)                                     # bundle_dir/tokenizer.json
    tok = Tokenizer.load(bundle_dir)                         # or a Hugging Face tokenizer folder

Tokenizers trained here put the specials at ids 0..6 in SPECIAL_TOKENS order. `tokenizers`
is imported inside functions so that `import practicum` stays fast.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from practicum.errors import UserError
from practicum.registry import Registry

SPECIAL_TOKENS: dict[str, str] = {
    "pad": "<pad>",
    "unk": "<unk>",
    "bos": "<bos>",
    "eos": "<eos>",
    "mask": "<mask>",
    "cls": "<cls>",
    "sep": "<sep>",
}
ROLES = tuple(SPECIAL_TOKENS)
TOKENIZER_FILE = "tokenizer.json"

# Spellings of each special in tokenizers not trained here (BERT, GPT-2, RoBERTa, LLaMA).
_KNOWN_SPELLINGS: dict[str, tuple[str, ...]] = {
    "pad": ("<pad>", "[PAD]"),
    "unk": ("<unk>", "[UNK]"),
    "bos": ("<bos>", "<s>", "<|endoftext|>", "<|begin_of_text|>"),
    "eos": ("<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>"),
    "mask": ("<mask>", "[MASK]"),
    "cls": ("<cls>", "[CLS]"),
    "sep": ("<sep>", "[SEP]"),
}
# Hugging Face folder files that name specials, and their key for each role.
_HF_SPECIAL_FILES = ("special_tokens_map.json", "tokenizer_config.json")


class Tokenizer:
    """A `tokenizers.Tokenizer` plus the role (pad, bos, ...) of each special token it has."""

    def __init__(self, inner: Any, specials: dict[str, str] | None = None) -> None:
        self.inner = inner
        vocab = inner.get_vocab(with_added_tokens=True)
        found = _detect_specials(vocab) if specials is None else specials
        self.specials = {role: tok for role, tok in found.items() if tok in vocab}

    @property
    def vocab_size(self) -> int:
        return int(self.inner.get_vocab_size(with_added_tokens=True))

    def _id(self, role: str) -> int | None:
        tok = self.specials.get(role)
        return None if tok is None else self.inner.token_to_id(tok)

    pad_id = property(lambda self: self._id("pad"))
    unk_id = property(lambda self: self._id("unk"))
    bos_id = property(lambda self: self._id("bos"))
    eos_id = property(lambda self: self._id("eos"))
    mask_id = property(lambda self: self._id("mask"))
    cls_id = property(lambda self: self._id("cls"))
    sep_id = property(lambda self: self._id("sep"))

    @property
    def kind(self) -> str:
        """char, bpe (byte-level), wordpiece, or other: read from the tokenizer's decoder."""
        decoder = type(self.inner.decoder).__name__ if self.inner.decoder is not None else ""
        return {"Fuse": "char", "ByteLevel": "bpe", "WordPiece": "wordpiece"}.get(decoder, "other")

    def token_bytes(self) -> list[int] | None:
        """UTF-8 bytes each id stands for (0 for specials), for bits per byte; None if unknown.

        Exact for char tokenizers (the character's bytes) and byte-level BPE (one symbol of the
        byte alphabet per byte); other tokenizers have no fixed byte length per token.
        """
        if self.kind not in ("char", "bpe"):
            return None
        special = set(self.specials.values())
        table = [0] * self.vocab_size
        for token, i in self.inner.get_vocab(with_added_tokens=True).items():
            if token not in special and i < len(table):
                table[i] = len(token) if self.kind == "bpe" else len(token.encode("utf-8"))
        return table

    def encode(self, text: str, add_special: bool = False) -> list[int]:
        """Token ids of `text`; add_special wraps them (bos..eos, or cls..sep for WordPiece)."""
        return list(self.inner.encode(text, add_special_tokens=add_special).ids)

    def encode_batch(self, texts: list[str], add_special: bool = False) -> list[list[int]]:
        """`encode` over many texts at once (in parallel inside `tokenizers`)."""
        encodings = self.inner.encode_batch(list(texts), add_special_tokens=add_special)
        return [list(e.ids) for e in encodings]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        return str(self.inner.decode(list(ids), skip_special_tokens=skip_special))

    def save(self, path: str | Path) -> Path:
        """Write tokenizer.json atomically; `path` is a .json file or a folder. Returns the file."""
        path = Path(path)
        target = path if path.suffix == ".json" else path / TOKENIZER_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tokenizer-", suffix=".json", dir=target.parent)
        os.close(fd)
        try:
            self.inner.save(tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a tokenizer.json file, or a folder holding one (e.g. a Hugging Face tokenizer)."""
        from tokenizers import Tokenizer as HFTokenizer

        path = Path(path)
        file = path / TOKENIZER_FILE if path.is_dir() else path
        if not path.exists():
            raise UserError(f"{path}: no such file or folder; give a tokenizer.json or its folder")
        if not file.is_file():
            raise UserError(
                f"{path}: folder has no {TOKENIZER_FILE}; save the tokenizer there "
                "(for Hugging Face, a fast tokenizer's save_pretrained writes one)"
            )
        try:
            inner = HFTokenizer.from_file(str(file))
        except Exception as err:  # tokenizers raises plain Exception for bad files
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(
                f"{file}: not a valid tokenizer.json ({first}); re-save it with `tokenizers`"
            ) from err
        # a saved padding/truncation setting (MiniLM pads to 128) would change every encode;
        # batching and truncation are the caller's business
        inner.no_padding()
        inner.no_truncation()
        specials = _detect_specials(inner.get_vocab(with_added_tokens=True))
        if path.is_dir():
            specials.update(_hf_folder_specials(path))
        return cls(inner, specials)


def _detect_specials(vocab: dict[str, int]) -> dict[str, str]:
    """Guess each role from the usual spellings of its token."""
    found: dict[str, str] = {}
    for role, spellings in _KNOWN_SPELLINGS.items():
        for tok in spellings:
            if tok in vocab:
                found[role] = tok
                break
    return found


def _hf_folder_specials(folder: Path) -> dict[str, str]:
    """Roles named by special_tokens_map.json / tokenizer_config.json (`bos_token`, ...)."""
    found: dict[str, str] = {}
    for name in reversed(_HF_SPECIAL_FILES):  # special_tokens_map.json wins
        file = folder / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UserError(f"{file}: not valid JSON ({err}); fix or delete it") from err
        for role in ROLES:
            value = data.get(f"{role}_token") if isinstance(data, dict) else None
            if isinstance(value, dict):  # {"content": "<s>", "lstrip": false, ...}
                value = value.get("content")
            if isinstance(value, str):
                found[role] = value
    return found


# --- training ---------------------------------------------------------------------------

TOKENIZER_KINDS: Registry[Callable[[Iterable[str], int, int], Any]] = Registry("tokenizer kind")
_SPECIAL_LIST = list(SPECIAL_TOKENS.values())
_BYTE_ALPHABET_SIZE = 256


def train_tokenizer(
    kind: str, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2,
    source: str | None = None,
) -> Tokenizer:
    """Train a "char", "bpe" (byte-level) or "wordpiece" tokenizer on streamed texts.

    `source` names where the texts come from, for the error when there are none.
    """
    build = TOKENIZER_KINDS.get(kind)
    if vocab_size <= len(SPECIAL_TOKENS):
        raise UserError(f"vocab_size {vocab_size} is too small; it must exceed the 7 specials")
    seen = [0]
    inner = build(_counted(texts, seen), vocab_size, min_frequency)
    if seen[0] == 0:
        where = f"{source}: " if source else ""
        raise UserError(f"{where}no text to train the {kind!r} tokenizer on; give a non-empty corpus")
    return Tokenizer(inner, dict(SPECIAL_TOKENS))


def _counted(texts: Iterable[str], seen: list[int]) -> Iterator[str]:
    """Yield texts, counting characters so that an empty corpus is caught."""
    for text in texts:
        seen[0] += len(text)
        yield text


def _bos_eos_template(inner: Any) -> None:
    from tokenizers.processors import TemplateProcessing

    bos, eos = SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["eos"]
    inner.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} $B:1 {eos}:1",
        special_tokens=[(bos, inner.token_to_id(bos)), (eos, inner.token_to_id(eos))],
    )


@TOKENIZER_KINDS.register("char")
def _train_char(texts: Iterable[str], vocab_size: int, min_frequency: int) -> Any:
    """Every character seen (the most frequent ones, up to vocab_size) is a token.

    A merge-free BPE model over the whole text splits it into single characters, and the
    Fuse decoder joins them back, so spaces and newlines round-trip exactly.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models

    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    keep = vocab_size - len(_SPECIAL_LIST)
    chars = sorted(ch for ch, _ in counts.most_common(keep) if ch not in _SPECIAL_LIST)
    vocab = {tok: i for i, tok in enumerate(_SPECIAL_LIST + chars)}
    inner = HFTokenizer(models.BPE(vocab, [], unk_token=SPECIAL_TOKENS["unk"]))
    inner.decoder = decoders.Fuse()
    inner.add_special_tokens(_SPECIAL_LIST)
    _bos_eos_template(inner)
    return inner


@TOKENIZER_KINDS.register("bpe")
def _train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int) -> Any:
    """Byte-level BPE (GPT-2 style): all 256 bytes are in the alphabet, so any text round-trips."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    smallest = len(_SPECIAL_LIST) + _BYTE_ALPHABET_SIZE
    if vocab_size < smallest:
        raise UserError(
            f"vocab_size {vocab_size} is too small for byte-level BPE; use >= {smallest}"
        )
    inner = HFTokenizer(models.BPE())
    inner.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    inner.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=_SPECIAL_LIST,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    inner.train_from_iterator(texts, trainer=trainer)
    _bos_eos_template(inner)
    return inner


@TOKENIZER_KINDS.register("wordpiece")
def _train_wordpiece(texts: Iterable[str], vocab_size: int, min_frequency: int) -> Any:
    """BERT-style WordPiece: lowercased, split on whitespace and punctuation, "##" continuations.

    Hugging Face's WordPiece trainer breaks frequency ties differently from run to run, so two
    trainings on the same text can differ; a run saves its tokenizer and a resume reuses it.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    inner = HFTokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk"]))
    inner.normalizer = normalizers.BertNormalizer(lowercase=True)
    inner.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    inner.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=_SPECIAL_LIST,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    inner.train_from_iterator(texts, trainer=trainer)
    cls, sep = SPECIAL_TOKENS["cls"], SPECIAL_TOKENS["sep"]
    inner.post_processor = TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, inner.token_to_id(cls)), (sep, inner.token_to_id(sep))],
    )
    return inner
