"""Generation: sampling processors, cached vs uncached decoding, left padding, stopping, text
streaming and fill-mask, on tiny random models (CPU, seconds)."""

from __future__ import annotations

import math

import pytest
import torch

from practicum.config import LMConfig
from practicum.data.tokenizers import Tokenizer, train_tokenizer
from practicum.errors import UserError
from practicum.generate import (
    GenerationConfig,
    apply_repetition_penalty,
    fill_mask,
    generate,
    generate_ids,
    sample_next,
    stream,
    top_k_filter,
    top_p_filter,
)
from practicum.models.lm import TransformerLM

TEXTS = [
    "the quick brown fox jumps over the lazy dog. " * 3,
    "héllo wörld, naïve café! 日本語のテキスト ✓ ÿ €",
    "a stitch in time saves nine; all that glitters is not gold.",
]
VOCAB = 48


def tiny_lm(preset: str = "gpt-tiny", vocab: int = VOCAB, block: int = 32, seed: int = 0,
            **fields) -> TransformerLM:
    torch.manual_seed(seed)
    return TransformerLM(LMConfig(preset=preset, vocab_size=vocab, block_size=block, **fields))


def greedy(**fields) -> GenerationConfig:
    return GenerationConfig(temperature=0.0, stop_at_eos=False, **fields)


def run_ids(model: TransformerLM, prompts: list[list[int]], cfg: GenerationConfig,
            eos_id: int | None = None) -> tuple[list[list[int]], dict[int, str]]:
    """All new tokens per prompt and each prompt's finish reason."""
    new: list[list[int]] = [[] for _ in prompts]
    reasons: dict[int, str] = {}
    for step in generate_ids(model, prompts, cfg, eos_id):
        for i, token in step.tokens.items():
            new[i].append(token)
        reasons.update(step.finished)
    return new, reasons


def reference_greedy(model: TransformerLM, prompt: list[int], n: int) -> list[int]:
    """nanoGPT's loop: no cache, the unpadded sequence cropped to its last block_size tokens
    through the model each step."""
    ids, block = list(prompt), model.cfg.block_size
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids[-block:]]))[0, -1].argmax()))
    return ids[len(prompt):]


PROMPTS = [[5, 9, 2, 30, 7, 11, 3], [17], [40, 1, 8, 8]]


@pytest.fixture(scope="module")
def char_tok() -> Tokenizer:
    return train_tokenizer("char", TEXTS, vocab_size=VOCAB)


@pytest.fixture(scope="module")
def bpe_tok() -> Tokenizer:
    return train_tokenizer("bpe", TEXTS, vocab_size=300)


# ---------------------------------------------------------------- processors vs Hugging Face


def test_top_k_and_top_p_masks_on_hand_made_logits() -> None:
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = lambda x: torch.isfinite(x)[0].tolist()  # noqa: E731
    assert kept(top_k_filter(logits, 2)) == [True, True, False, False]
    assert kept(top_k_filter(logits, 10)) == [True] * 4
    assert kept(top_p_filter(logits, 0.5)) == [True, False, False, False]
    assert kept(top_p_filter(logits, 0.75)) == [True, True, False, False]
    assert kept(top_p_filter(logits, 0.9)) == [True, True, True, False]
    assert kept(top_p_filter(logits, 1e-9)) == [True, False, False, False]  # never empty
    shuffled = logits[:, [2, 0, 3, 1]]
    assert kept(top_p_filter(shuffled, 0.75)) == [False, True, False, True]


def test_repetition_penalty_follows_the_ctrl_rule() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0, -4.0]])
    history = torch.tensor([[-1, 0, 1, 1, -1]])  # -1 = padding: token 4 is not penalised
    out = apply_repetition_penalty(logits, history, 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5, 3.0, -4.0]]


def test_processors_match_hugging_face() -> None:
    lp = pytest.importorskip("transformers.generation.logits_process")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=g) * 3
    history = torch.randint(0, 50, (4, 12), generator=g)
    for k in (1, 5, 50):
        torch.testing.assert_close(top_k_filter(logits, k), lp.TopKLogitsWarper(k)(history, logits))
    for p in (0.1, 0.5, 0.9, 0.99):
        torch.testing.assert_close(top_p_filter(logits, p), lp.TopPLogitsWarper(p)(history, logits))
    for penalty in (0.7, 1.3, 2.0):
        hf = lp.RepetitionPenaltyLogitsProcessor(penalty)(history, logits.clone())
        torch.testing.assert_close(apply_repetition_penalty(logits, history, penalty), hf)


def test_sample_next_greedy_and_seeded_draws() -> None:
    logits = torch.randn(3, 20, generator=torch.Generator().manual_seed(1))
    best = logits.argmax(-1)
    assert torch.equal(sample_next(logits, None, GenerationConfig(temperature=0)), best)
    assert torch.equal(sample_next(logits, None, GenerationConfig(top_k=1)), best)
    assert torch.equal(sample_next(logits, None, GenerationConfig(top_p=1e-6)), best)
    draw = lambda seed: sample_next(logits, None, GenerationConfig(),  # noqa: E731
                                    torch.Generator().manual_seed(seed))
    assert torch.equal(draw(3), draw(3))


@pytest.mark.parametrize("fields", [
    dict(temperature=-0.1), dict(top_p=0.0), dict(top_p=1.5), dict(top_k=0),
    dict(repetition_penalty=0.0), dict(max_new_tokens=0), dict(stop=[""]),
])
def test_bad_generation_settings_are_user_errors(fields: dict) -> None:
    with pytest.raises(UserError, match="generation: "):
        GenerationConfig(**fields)


# ---------------------------------------------------------------- the id-level loop


@pytest.mark.parametrize("preset", ["gpt-tiny", "llama-tiny"])  # llama-tiny: rotary + GQA
def test_greedy_cache_no_cache_batched_and_alone_agree(preset: str) -> None:
    model = tiny_lm(preset)
    cached, reasons = run_ids(model, PROMPTS, greedy(max_new_tokens=10))
    uncached, _ = run_ids(model, PROMPTS, greedy(max_new_tokens=10, use_cache=False))
    assert cached == uncached
    assert cached == [reference_greedy(model, p, 10) for p in PROMPTS]
    assert reasons == {0: "length", 1: "length", 2: "length"}
    assert len({tuple(c) for c in cached}) > 1  # the prompts really led somewhere different


def test_repetition_penalty_in_the_loop_sees_prompt_and_output_but_not_padding() -> None:
    model = tiny_lm()
    bonus = 5.0 * torch.nn.functional.one_hot(torch.tensor(0), VOCAB)  # token 0 (= the pad
    model.lm_head.register_forward_hook(lambda m, i, logits: logits + bonus)  # fill) wins
    cfg = greedy(max_new_tokens=4, repetition_penalty=100.0)
    prompts = [[5, 9, 2, 30, 7], [17], [0, 3]]
    batched, _ = run_ids(model, prompts, cfg)
    assert batched == [run_ids(model, [p], cfg)[0][0] for p in prompts]
    assert batched[0][0] == batched[1][0] == 0 != batched[2][0]  # 0 was in prompt 2 only
    assert all(len(set(p + n)) == len(p + n) for p, n in zip(prompts[:2], batched[:2], strict=True))


@pytest.mark.parametrize("preset", ["gpt-tiny", "llama-tiny"])  # learned positions; rotary + GQA
def test_past_the_context_the_model_reads_a_sliding_window(preset: str) -> None:
    model = tiny_lm(preset, block=12, tie_embeddings=False)  # untied: greedy does not just repeat
    prompts = [[3, 7, 1] * 3, [4, 5], [9, 2] * 6]  # 9 and 2 tokens, and one that fills the context
    expected = [reference_greedy(model, p, 30) for p in prompts]
    for use_cache in (True, False):
        new, reasons = run_ids(model, prompts, greedy(max_new_tokens=30, use_cache=use_cache))
        assert new == expected
        assert reasons == {0: "length", 1: "length", 2: "length"}
    alone = [run_ids(model, [p], greedy(max_new_tokens=30))[0][0] for p in prompts]
    assert alone == expected
    assert all(len(set(n[12:])) > 1 for n in expected)  # still decoding past the context, not stuck


def test_seeded_sampling_is_reproducible_and_seeds_differ() -> None:
    model = tiny_lm()
    cfg = lambda seed: GenerationConfig(max_new_tokens=12, seed=seed, stop_at_eos=False)  # noqa: E731
    assert run_ids(model, PROMPTS, cfg(7)) == run_ids(model, PROMPTS, cfg(7))
    assert run_ids(model, PROMPTS, cfg(7))[0] != run_ids(model, PROMPTS, cfg(8))[0]
    assert run_ids(model, PROMPTS, greedy(max_new_tokens=8))[0] == run_ids(
        model, PROMPTS, GenerationConfig(max_new_tokens=8, top_k=1, seed=3, stop_at_eos=False))[0]


def test_eos_ends_only_its_sequence() -> None:
    model = tiny_lm()
    new, _ = run_ids(model, PROMPTS, greedy(max_new_tokens=6))
    eos = new[0][2]  # the token prompt 0 produces third
    cfg = GenerationConfig(temperature=0, max_new_tokens=6)
    ended, reasons = run_ids(model, PROMPTS, cfg, eos_id=eos)
    assert ended[0] == new[0][:new[0].index(eos) + 1]
    assert reasons[0] == "eos"
    for i in (1, 2):
        cut = new[i].index(eos) + 1 if eos in new[i] else 6
        assert ended[i] == new[i][:cut]


def test_prompt_longer_than_the_context_is_refused_when_called() -> None:
    model = tiny_lm(block=8)
    with pytest.raises(UserError, match="prompt 1 has 9 tokens.*block_size\\) is 8.*at most 8"):
        generate_ids(model, [[1], [2] * 9], greedy())  # at the call, before any step is asked for
    assert len(run_ids(model, [[2] * 8], greedy(max_new_tokens=3))[0][0]) == 3  # a full context is fine


def test_generation_restores_training_mode_and_refuses_masked_lms() -> None:
    model = tiny_lm().train()
    run_ids(model, [[1, 2]], greedy(max_new_tokens=2))
    assert model.training
    with pytest.raises(UserError, match="use fill_mask"):
        next(generate_ids(tiny_lm("bert-tiny"), [[1, 2]], greedy()))


# ---------------------------------------------------------------- text: generate and stream


def test_generate_counts_tokens_and_respects_max_new_tokens(char_tok: Tokenizer) -> None:
    model = tiny_lm(vocab=char_tok.vocab_size)
    prompts = ["the quick", "a"]
    out = generate(model, char_tok, prompts, greedy(max_new_tokens=5))
    assert [c.prompt_tokens for c in out] == [9, 1]
    assert all(c.new_tokens == len(c.token_ids) == 5 and c.finish_reason == "length" for c in out)
    assert [c.text for c in out] == [char_tok.decode(c.token_ids) for c in out]


def test_stop_string_cuts_text_and_stream_agrees(char_tok: Tokenizer) -> None:
    model = tiny_lm(vocab=char_tok.vocab_size)
    full = generate(model, char_tok, "the quick", greedy(max_new_tokens=20))[0].text
    stop = full[6:8]
    cut = full.index(stop)
    cfg = greedy(max_new_tokens=20, stop=["never-there", stop])
    done = generate(model, char_tok, ["the quick", "the quick"], cfg)[0]
    assert done.text == full[:cut]
    assert done.finish_reason == "stop"
    assert done.new_tokens == cut + len(stop)  # char tokenizer: one token per character
    assert "".join(stream(model, char_tok, "the quick", cfg)) == done.text


def test_eos_stops_text_generation(char_tok: Tokenizer) -> None:
    model = tiny_lm(vocab=char_tok.vocab_size)
    eos = char_tok.eos_id

    def force_eos(module, inputs, logits):  # noqa: ANN001, ARG001
        return logits.index_fill(-1, torch.tensor([eos]), 100.0)

    model.lm_head.register_forward_hook(force_eos)
    done = generate(model, char_tok, "the", GenerationConfig(temperature=0.0))[0]
    assert (done.text, done.token_ids, done.finish_reason) == ("", [eos], "eos")
    on = generate(model, char_tok, "the", greedy(max_new_tokens=3))[0]
    assert (on.token_ids, on.finish_reason) == ([eos] * 3, "length")


def script(model: TransformerLM, ids: list[int]) -> torch.utils.hooks.RemovableHandle:
    """Make each forward pass of the model predict the next of `ids` (greedy picks it)."""
    upcoming = iter(ids)

    def force(module, inputs, logits):  # noqa: ANN001, ARG001
        token = next(upcoming, None)
        return logits if token is None else logits.index_fill(-1, torch.tensor([token]), 1e4)

    return model.lm_head.register_forward_hook(force)


def test_stream_holds_back_split_characters_with_byte_level_bpe(bpe_tok: Tokenizer) -> None:
    text = "Grüße 🙂 Ωmega, 日本"  # ü, ß, 🙂, Ω unseen in training: one token per byte
    ids = bpe_tok.encode(text)
    assert len(ids) > len(text)  # characters really are split across tokens
    model = tiny_lm(vocab=bpe_tok.vocab_size)
    cfg = greedy(max_new_tokens=len(ids))
    with script(model, ids):
        done = generate(model, bpe_tok, "a", cfg)[0]
    with script(model, ids):
        deltas = list(stream(model, bpe_tok, "a", cfg))
    assert done.text == text and done.token_ids == ids
    assert "".join(deltas) == text
    assert len(deltas) > 5 and not any("\ufffd" in d for d in deltas)
    stopped = greedy(max_new_tokens=len(ids), stop=["🙂"])
    with script(model, ids):
        cut = generate(model, bpe_tok, "a", stopped)[0]
    with script(model, ids):
        assert "".join(stream(model, bpe_tok, "a", stopped)) == cut.text == "Grüße "
    assert cut.finish_reason == "stop"


def test_stream_joins_to_generate_text_on_random_bytes(bpe_tok: Tokenizer) -> None:
    model = tiny_lm(vocab=bpe_tok.vocab_size)
    with torch.no_grad():  # sharper logits: runs of byte tokens that are often invalid UTF-8
        model.lm_head.weight.mul_(20)
    for prompt in ["日本語", "héllo", "the"]:
        cfg = GenerationConfig(max_new_tokens=30, seed=1, stop_at_eos=False)
        done = generate(model, bpe_tok, prompt, cfg)[0]
        deltas = list(stream(model, bpe_tok, prompt, cfg))
        assert "".join(deltas) == done.text == bpe_tok.decode(done.token_ids)


def test_empty_prompt_starts_from_bos(char_tok: Tokenizer) -> None:
    model = tiny_lm(vocab=char_tok.vocab_size)
    assert generate(model, char_tok, "", greedy(max_new_tokens=2))[0].prompt_tokens == 1
    no_bos = Tokenizer(char_tok.inner, {"eos": "<eos>"})
    with pytest.raises(UserError, match="prompt 0 is empty"):
        generate(model, no_bos, "", greedy())


# ---------------------------------------------------------------- fill-mask


@pytest.fixture(scope="module")
def wordpiece_tok() -> Tokenizer:
    return train_tokenizer("wordpiece", TEXTS, vocab_size=120, min_frequency=1)


def test_fill_mask_ranks_candidates(wordpiece_tok: Tokenizer) -> None:
    model = tiny_lm("bert-tiny", vocab=wordpiece_tok.vocab_size, block=32)
    out = fill_mask(model, wordpiece_tok, "the quick [MASK] fox <mask> over", top_k=4)
    assert len(out) == 2
    for candidates in out:
        probs = [p for _, p in candidates]
        assert len(candidates) == 4 and all(isinstance(t, str) for t, _ in candidates)
        assert probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1 + 1e-6
    # the oracle: the model's own softmax at the mask position
    ids = [wordpiece_tok.cls_id, *wordpiece_tok.encode("the quick "), wordpiece_tok.mask_id,
           *wordpiece_tok.encode(" fox"), wordpiece_tok.sep_id]
    with torch.no_grad():
        probs = model(torch.tensor([ids]))[0][0, ids.index(wordpiece_tok.mask_id)].softmax(-1)
    best = fill_mask(model, wordpiece_tok, "the quick [MASK] fox", top_k=1)[0][0]
    assert math.isclose(best[1], float(probs.max()), rel_tol=1e-5)


def test_fill_mask_errors(wordpiece_tok: Tokenizer) -> None:
    bert = tiny_lm("bert-tiny", vocab=wordpiece_tok.vocab_size, block=8)
    with pytest.raises(UserError, match="needs a masked-LM"):
        fill_mask(tiny_lm(vocab=wordpiece_tok.vocab_size), wordpiece_tok, "a [MASK]")
    with pytest.raises(UserError, match="no mask in the text"):
        fill_mask(bert, wordpiece_tok, "no marker here")
    with pytest.raises(UserError, match="no mask token"):
        fill_mask(bert, Tokenizer(wordpiece_tok.inner, {"cls": "<cls>"}), "a [MASK]")
    with pytest.raises(UserError, match="block_size\\) is 8"):
        fill_mask(bert, wordpiece_tok, "the quick brown fox jumps over [MASK] lazy dog")
