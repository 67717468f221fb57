"""Language-model pretraining examples and metrics: causal LM, BERT masked LM, next-sentence pairs.

    x, y = lm_targets(window)                                   # (B, T+1) -> (B, T), (B, T)
    ids = special_ids(tok)                                      # every special id of the tokenizer
    inp, tgt = mask_tokens(x, g, mask_id=tok.mask_id, vocab_size=tok.vocab_size, special_ids=ids)
    loss = masked_lm_loss(logits, tgt)                          # 0, not NaN, when nothing is masked
    pairs = nsp_pairs(docs, 128, g, cls_id=tok.cls_id, sep_id=tok.sep_id, pad_id=tok.pad_id)
    perplexity(loss.item()), bits_per_unit(loss.item()), bits_per_byte(total_nats, n_bytes)

All randomness comes from the `torch.Generator` passed in (a CPU generator), so a seed gives the
same examples on any device. Target positions that carry no loss hold IGNORE_INDEX (-100), the
default `ignore_index` of `torch.nn.functional.cross_entropy` and Hugging Face's convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from practicum.data.tokenizers import Tokenizer
from practicum.errors import UserError

IGNORE_INDEX = -100  # target at positions without loss (F.cross_entropy's default ignore_index)
# Of the positions chosen for masked LM: this share becomes the mask id, the same share again a
# random token, the rest stays unchanged (BERT, Devlin et al. 2019: 80% / 10% / 10%).
MASK_SHARE = 0.8
RANDOM_SHARE = 0.1
NSP_IS_NEXT = 0  # nsp_target when B follows A (Hugging Face BertForPreTraining's convention)
NSP_RANDOM = 1  # nsp_target when B comes from another document
_MAX_EXP_ARG = math.log(np.finfo(np.float64).max)  # ~709.78: exp() above this overflows


# --- causal LM --------------------------------------------------------------------------


def lm_targets(tokens: Tensor) -> tuple[Tensor, Tensor]:
    """Inputs and next-token targets of a causal LM from windows of T+1 ids.

    Position t of the inputs predicts position t of the targets, the id that follows it.
    """
    if tokens.dim() != 2 or tokens.shape[1] < 2:
        raise UserError(
            f"lm_targets needs token windows of shape (B, T+1) with T >= 1, got {tuple(tokens.shape)}"
        )
    return tokens[:, :-1], tokens[:, 1:]  # (B, T), (B, T)


# --- masked LM --------------------------------------------------------------------------


def special_ids(tokenizer: Tokenizer) -> list[int]:
    """Ids of every special token the tokenizer has (pad, unk, bos, eos, mask, cls, sep)."""
    ids = (tokenizer.inner.token_to_id(tok) for tok in tokenizer.specials.values())
    return sorted({i for i in ids if i is not None})


def mask_tokens(
    tokens: Tensor,
    generator: torch.Generator,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    prob: float = 0.15,
) -> tuple[Tensor, Tensor]:
    """BERT masked-LM corruption: returns (corrupted tokens, target), both shaped like `tokens`.

    Each position whose id is not special (`special_ids`, plus `mask_id` itself) is chosen with
    probability `prob`. Of the chosen, 80% become `mask_id`, 10% a random non-special id of
    [0, vocab_size) and 10% stay unchanged. `target` holds the original id at chosen positions
    and IGNORE_INDEX (-100) elsewhere.

    Like Hugging Face's DataCollatorForLanguageModeling, no row is forced to have a chosen
    position, so a row, or rarely a whole batch, can have none. `F.cross_entropy` with its default
    mean reduction then returns NaN; use `masked_lm_loss`, which returns 0 in that case.
    """
    if not 0.0 < prob <= 1.0:
        raise UserError(f"mask probability must be in (0, 1], got {prob}")
    if tokens.dtype != torch.int64:
        raise UserError(f"mask_tokens needs int64 token ids, got {tokens.dtype}")
    ids = tokens.detach().cpu()  # (B, T): draw on the CPU so a seed gives the same masks anywhere
    special = torch.tensor(sorted({*special_ids, mask_id}), dtype=torch.int64)
    allowed = _non_special_ids(vocab_size, special)  # (V',) ids a random replacement may take
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise UserError(
            f"token ids must lie in [0, vocab_size={vocab_size}), found "
            f"{int(ids.min())}..{int(ids.max())}; pass the tokenizer's vocab_size"
        )

    maskable = ~torch.isin(ids, special)  # (B, T)
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & maskable  # (B, T)
    how = torch.rand(ids.shape, generator=generator)  # (B, T): which of the three corruptions
    to_mask = chosen & (how < MASK_SHARE)
    to_random = chosen & (how >= MASK_SHARE) & (how < MASK_SHARE + RANDOM_SHARE)
    random_ids = allowed[torch.randint(len(allowed), ids.shape, generator=generator)]  # (B, T)

    corrupted = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    corrupted = torch.where(to_random, random_ids, corrupted)  # (B, T)
    target = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))  # (B, T)
    return corrupted.to(tokens.device), target.to(tokens.device)


def _non_special_ids(vocab_size: int, special: Tensor) -> Tensor:
    allowed = torch.arange(vocab_size, dtype=torch.int64)  # (V,)
    allowed = allowed[~torch.isin(allowed, special)]  # (V',)
    if len(allowed) == 0:
        raise UserError(
            f"vocab_size {vocab_size} leaves no non-special id to draw random replacements from; "
            "pass the tokenizer's full vocab_size"
        )
    return allowed


def masked_lm_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean cross-entropy over positions whose target is not IGNORE_INDEX; 0 if there are none.

    logits (..., V), target (...) as returned by `mask_tokens`. The zero keeps the graph, so
    `backward()` works and the step changes nothing.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1])  # (N, V)
    flat_target = target.reshape(-1)  # (N,)
    total = F.cross_entropy(flat_logits, flat_target, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (flat_target != IGNORE_INDEX).sum().clamp(min=1)
    return total / count


# --- next-sentence prediction -----------------------------------------------------------


def nsp_pairs(
    documents: Sequence[Sequence[int]],
    block_size: int,
    generator: torch.Generator,
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
) -> dict[str, Tensor]:
    """BERT next-sentence-prediction examples "[CLS] A [SEP] B [SEP]", padded to block_size.

    Each document is cut into segments of (block_size - 3) // 2 ids (the last may be shorter),
    so a pair always fits. Every segment that has a successor in its document is an A; its B is
    that successor with probability 1/2 (nsp_target 0, "is next") and otherwise a random segment
    of a different document (nsp_target 1). A document of a single segment gives one A with a
    random B, so such documents raise the share of target 1 above 1/2. Empty documents are
    skipped. Rows come in document order; shuffle them when batching.

    Returns "tokens" (N, block_size) int64, "token_types" (N, block_size) int64 (0 for CLS A SEP
    and padding, 1 for B SEP), "mask" (N, block_size) bool (True at real tokens) and
    "nsp_target" (N,) int64.
    """
    seg_len = (block_size - 3) // 2
    if seg_len < 1:
        raise UserError(f"block_size {block_size} is too small for NSP pairs; it must be >= 5")
    segments = [_segments(doc, seg_len) for doc in documents]
    segments = [segs for segs in segments if segs]
    if len(segments) < 2:
        raise UserError(
            f"NSP needs at least 2 non-empty documents to draw random B segments, got "
            f"{len(segments)}; split the corpus into documents (e.g. at eos)"
        )
    heads = [(d, i) for d, segs in enumerate(segments) for i in range(max(len(segs) - 1, 1))]
    coin, other_doc, other_seg = torch.rand((3, len(heads)), generator=generator).numpy()

    rows = np.full((len(heads), block_size), pad_id, dtype=np.int64)  # (N, block_size)
    types = np.zeros((len(heads), block_size), dtype=np.int64)  # (N, block_size)
    lengths = np.zeros(len(heads), dtype=np.int64)  # (N,)
    target = np.full(len(heads), NSP_RANDOM, dtype=np.int64)  # (N,)
    for n, (d, i) in enumerate(heads):
        if i + 1 < len(segments[d]) and coin[n] < 0.5:
            b, target[n] = segments[d][i + 1], NSP_IS_NEXT
        else:
            j = min(int(other_doc[n] * (len(segments) - 1)), len(segments) - 2)
            if j >= d:  # j ranges over every document but d
                j += 1
            b = segments[j][min(int(other_seg[n] * len(segments[j])), len(segments[j]) - 1)]
        a = segments[d][i]
        pair = [cls_id, *a, sep_id, *b, sep_id]
        rows[n, : len(pair)] = pair
        types[n, len(a) + 2 : len(pair)] = 1
        lengths[n] = len(pair)
    mask = np.arange(block_size)[None, :] < lengths[:, None]  # (N, block_size)
    return {
        "tokens": torch.from_numpy(rows),
        "token_types": torch.from_numpy(types),
        "mask": torch.from_numpy(mask),
        "nsp_target": torch.from_numpy(target),
    }


def _segments(doc: Sequence[int], seg_len: int) -> list[list[int]]:
    ids = [int(t) for t in doc]
    return [ids[k : k + seg_len] for k in range(0, len(ids), seg_len)]


def split_documents(ids: np.ndarray, eos_id: int) -> list[np.ndarray]:
    """Cut a corpus' eos-separated token ids (see corpus.py) into documents, eos dropped."""
    parts = np.split(ids, np.flatnonzero(ids == eos_id) + 1)
    docs = [p[:-1] if len(p) and p[-1] == eos_id else p for p in parts]
    return [doc for doc in docs if len(doc)]


# --- metrics ----------------------------------------------------------------------------


def perplexity(mean_loss_nats: float) -> float:
    """exp(mean cross-entropy per token in nats); inf where exp would overflow a float."""
    if mean_loss_nats > _MAX_EXP_ARG:
        return float("inf")
    return math.exp(mean_loss_nats)


def bits_per_unit(mean_loss_nats: float) -> float:
    """Mean loss per token in bits: nats / ln 2.

    For a char-level tokenizer this is bits per character. For a byte-level tokenizer it is
    bits per byte only if every token is one byte (not so for byte-level BPE, whose tokens span
    several bytes); use `bits_per_byte` to compare models with different tokenizers.
    """
    return mean_loss_nats / math.log(2)


def bits_per_byte(total_loss_nats: float, n_bytes: int) -> float:
    """Total loss in nats over all predicted tokens / ln 2 / the UTF-8 byte count of their text.

    Independent of the tokenizer, so models with different vocabularies compare fairly.
    """
    if n_bytes <= 0:
        raise UserError(f"bits_per_byte needs a positive byte count, got n_bytes={n_bytes}")
    return total_loss_nats / math.log(2) / n_bytes
