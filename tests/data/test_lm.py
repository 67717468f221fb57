"""LM pretraining data: causal targets, BERT masking statistics, NSP pairs, LM metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from practicum.data.lm import (
    IGNORE_INDEX,
    NSP_IS_NEXT,
    NSP_RANDOM,
    bits_per_byte,
    bits_per_unit,
    lm_targets,
    mask_tokens,
    masked_lm_loss,
    nsp_pairs,
    perplexity,
    special_ids,
    split_documents,
)
from practicum.data.tokenizers import train_tokenizer
from practicum.errors import UserError

PAD, UNK, BOS, EOS, MASK, CLS, SEP = range(7)  # ids of the specials in tokenizers trained here
SPECIALS = (PAD, UNK, BOS, EOS, MASK, CLS, SEP)
VOCAB = 1000


def tolerance(p: float, n: int, sigmas: float = 5.0) -> float:
    """`sigmas` standard errors of a fraction p estimated from n draws."""
    return sigmas * math.sqrt(p * (1 - p) / n)


def g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- causal LM --------------------------------------------------------------------------


def test_lm_targets_shift_by_one() -> None:
    window = torch.arange(10).reshape(2, 5)
    x, y = lm_targets(window)
    assert x.shape == y.shape == (2, 4)
    assert torch.equal(x, window[:, :-1]) and torch.equal(y, window[:, 1:])
    with pytest.raises(UserError, match=r"\(B, T\+1\)"):
        lm_targets(torch.arange(5))


# --- masked LM --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    """64 x 512 random non-special ids with ~10% special ids sprinkled in."""
    gen = g(0)
    tokens = torch.randint(len(SPECIALS), VOCAB, (64, 512), generator=gen)
    sprinkle = torch.rand(tokens.shape, generator=gen) < 0.1
    specials = torch.tensor(SPECIALS)[torch.randint(len(SPECIALS), tokens.shape, generator=gen)]
    return torch.where(sprinkle, specials, tokens)


def masked(
    tokens: torch.Tensor, seed: int, prob: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    return mask_tokens(
        tokens, g(seed), mask_id=MASK, vocab_size=VOCAB, special_ids=SPECIALS, prob=prob
    )


def test_mask_tokens_statistics(batch: torch.Tensor) -> None:
    corrupted, target = masked(batch, seed=1)
    special = torch.isin(batch, torch.tensor(SPECIALS))
    chosen = target != IGNORE_INDEX
    n_maskable, n_chosen = int((~special).sum()), int(chosen.sum())

    assert abs(n_chosen / n_maskable - 0.15) < tolerance(0.15, n_maskable)
    # what the chosen became (a random draw equal to the original counts as kept: ~0.1% of them)
    became_mask = chosen & (corrupted == MASK)
    kept = chosen & (corrupted == batch)
    became_random = chosen & ~became_mask & ~kept
    for part, share in ((became_mask, 0.8), (became_random, 0.1), (kept, 0.1)):
        assert abs(int(part.sum()) / n_chosen - share) < tolerance(share, n_chosen)


def test_mask_tokens_invariants(batch: torch.Tensor) -> None:
    corrupted, target = masked(batch, seed=2)
    special = torch.isin(batch, torch.tensor(SPECIALS))
    chosen = target != IGNORE_INDEX

    assert corrupted.shape == target.shape == batch.shape
    assert corrupted.dtype == target.dtype == torch.int64
    assert not (chosen & special).any()  # specials are never chosen ...
    assert torch.equal(corrupted[special], batch[special])  # ... nor changed
    assert torch.equal(corrupted[~chosen], batch[~chosen])  # only chosen positions change
    assert torch.equal(target[chosen], batch[chosen])  # target: the original id where chosen
    assert (target[~chosen] == IGNORE_INDEX).all()  # ... and -100 exactly elsewhere
    replaced = chosen & (corrupted != MASK)
    assert not torch.isin(corrupted[replaced], torch.tensor(SPECIALS)).any()  # random ids
    assert corrupted.max() < VOCAB


def test_mask_tokens_seeded(batch: torch.Tensor) -> None:
    first, second, other = masked(batch, seed=3), masked(batch, seed=3), masked(batch, seed=4)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[1], other[1])
    assert torch.equal(batch, batch.clone())  # the input is not modified in place


def test_mask_tokens_bad_input(batch: torch.Tensor) -> None:
    with pytest.raises(UserError, match="mask probability"):
        masked(batch, seed=0, prob=0.0)
    with pytest.raises(UserError, match="vocab_size"):
        mask_tokens(batch, g(0), mask_id=MASK, vocab_size=100, special_ids=SPECIALS)
    with pytest.raises(UserError, match="no non-special id"):
        mask_tokens(
            torch.zeros(1, 3, dtype=torch.int64),
            g(0),
            mask_id=4,
            vocab_size=7,
            special_ids=SPECIALS,
        )


def test_masked_lm_loss_matches_cross_entropy_and_is_zero_when_nothing_masked() -> None:
    logits = torch.randn(2, 5, 11, generator=g(0), requires_grad=True)
    target = torch.tensor([[3, -100, -100, 7, -100], [-100, 1, -100, -100, 10]])
    expected = F.cross_entropy(logits.reshape(-1, 11), target.reshape(-1))
    assert torch.allclose(masked_lm_loss(logits, target), expected)

    nothing = masked_lm_loss(logits, torch.full((2, 5), IGNORE_INDEX))
    assert nothing.item() == 0.0  # mean cross_entropy would be NaN here
    nothing.backward()
    assert torch.isfinite(logits.grad).all()


def test_special_ids_of_a_trained_tokenizer() -> None:
    tok = train_tokenizer("char", ["abc def"], vocab_size=50)
    assert special_ids(tok) == list(SPECIALS)


# --- next-sentence prediction -----------------------------------------------------------


def doc_ids(doc: int, length: int) -> list[int]:
    """Ids that encode their document and position: 10 + 1000 * doc + position."""
    return [10 + 1000 * doc + p for p in range(length)]


def decode(token: int) -> tuple[int, int]:
    return (token - 10) // 1000, (token - 10) % 1000


def nsp(documents: list[list[int]], block_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    return nsp_pairs(documents, block_size, g(seed), cls_id=CLS, sep_id=SEP, pad_id=PAD)


def test_nsp_pairs_layout() -> None:
    lengths = np.random.default_rng(0).integers(1, 400, size=300)
    docs = [doc_ids(d, int(n)) for d, n in enumerate(lengths)]
    out = nsp(docs, block_size=64)
    tokens, types, mask, label = out["tokens"], out["token_types"], out["mask"], out["nsp_target"]
    n = len(label)
    assert tokens.shape == types.shape == mask.shape == (n, 64) and label.shape == (n,)
    assert tokens.dtype == types.dtype == label.dtype == torch.int64 and mask.dtype == torch.bool

    assert (tokens[:, 0] == CLS).all()
    assert ((tokens == SEP).sum(dim=1) == 2).all()
    assert torch.equal(mask, tokens != PAD)  # no real token here is pad
    assert (types[~mask] == 0).all()
    for row, row_types, row_mask in zip(tokens, types, mask, strict=True):
        first_sep, second_sep = torch.nonzero(row == SEP).flatten().tolist()
        assert (row_types[: first_sep + 1] == 0).all()  # CLS A SEP
        assert (row_types[first_sep + 1 : second_sep + 1] == 1).all()  # B SEP
        assert torch.equal(row_mask, torch.arange(64) <= second_sep)  # real tokens end at SEP


def test_nsp_pairs_is_next_really_follows() -> None:
    docs = [doc_ids(d, 600) for d in range(200)]  # 20 segments of 30 ids each
    out = nsp(docs, block_size=64)
    labels = out["nsp_target"]
    n = len(labels)
    assert n == 200 * 19  # every segment but the last of its document is an A
    assert abs(float((labels == NSP_IS_NEXT).float().mean()) - 0.5) < tolerance(0.5, n)

    for row, label in zip(out["tokens"].tolist(), labels.tolist(), strict=True):
        first_sep, second_sep = [k for k, t in enumerate(row) if t == SEP]
        a, b = row[1:first_sep], row[first_sep + 1 : second_sep]
        (doc_a, pos_a), (doc_b, pos_b) = decode(a[-1]), decode(b[0])
        assert [decode(t)[0] for t in a] == [doc_a] * len(a)  # A is one piece of one document
        if label == NSP_IS_NEXT:
            assert (doc_b, pos_b) == (doc_a, pos_a + 1)
        else:
            assert label == NSP_RANDOM and doc_b != doc_a


def test_nsp_pairs_short_documents_and_determinism() -> None:
    docs = [doc_ids(0, 5), [], doc_ids(2, 100), doc_ids(3, 1)]
    out = nsp(docs, block_size=16)  # segments of 6 ids
    single = [r for r, row in enumerate(out["tokens"].tolist()) if decode(row[1])[0] in (0, 3)]
    assert len(single) == 2  # each single-segment document gives one A ...
    assert (out["nsp_target"][single] == NSP_RANDOM).all()  # ... with a random B
    again, other = nsp(docs, block_size=16), nsp(docs, block_size=16, seed=1)
    assert all(torch.equal(out[k], again[k]) for k in out)
    assert not torch.equal(out["tokens"], other["tokens"])


def test_nsp_pairs_bad_input() -> None:
    with pytest.raises(UserError, match="at least 2 non-empty documents"):
        nsp([doc_ids(0, 50), []], block_size=16)
    with pytest.raises(UserError, match="block_size 4 is too small"):
        nsp([doc_ids(0, 50), doc_ids(1, 50)], block_size=4)


def test_split_documents_at_eos() -> None:
    ids = np.array([7, 8, EOS, 9, EOS, EOS, 10, 11], dtype=np.uint16)
    docs = split_documents(ids, EOS)
    assert [d.tolist() for d in docs] == [[7, 8], [9], [10, 11]]


# --- metrics ----------------------------------------------------------------------------


def test_perplexity_and_bits() -> None:
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(50)) == pytest.approx(50.0)
    assert perplexity(1000.0) == math.inf  # exp would overflow
    assert bits_per_unit(math.log(2)) == pytest.approx(1.0)
    assert bits_per_unit(math.log(256)) == pytest.approx(8.0)
    # 10 tokens at ln 4 nats each over a 5-byte text: 20 bits / 5 bytes
    assert bits_per_byte(10 * math.log(4), 5) == pytest.approx(4.0)
    with pytest.raises(UserError, match="n_bytes=0"):
        bits_per_byte(1.0, 0)
