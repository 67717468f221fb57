"""The logit lens: at the last layer it is the model's real next-token distribution; earlier rows
read the residual stream with the same final norm and head."""

from __future__ import annotations

import pytest
import torch

from practicum.bundle import Bundle
from practicum.config import LMConfig
from practicum.explain import ExplainOptions, explain_bundle, logit_lens
from practicum.explain.logit_lens import read_out, residual_streams
from practicum.models.lm import TransformerLM


@pytest.fixture(scope="module")
def llama(tiny_causal_source):
    return Bundle.load(tiny_causal_source)


def test_last_layer_is_the_models_next_token_distribution(llama):
    ids = llama.tokenizer.encode("my card was declined")
    tokens = torch.tensor([ids])
    lens = logit_lens(llama.model, tokens, top_k=5)
    L, T = llama.model.cfg.n_layer, len(ids)
    assert lens.top_ids.shape == (L + 1, T, 5) and lens.next_token_probs.shape == (L + 1, T - 1)
    with torch.no_grad():
        real = llama.model(tokens)[0].softmax(-1)  # (T, V)
    best = real.topk(5, dim=-1)
    torch.testing.assert_close(lens.top_probs[-1], best.values, rtol=1e-5, atol=1e-6)
    assert torch.equal(lens.top_ids[-1], best.indices)
    torch.testing.assert_close(lens.next_token_probs[-1], real[:-1].gather(-1, tokens[0, 1:, None]).squeeze(-1))


def test_earlier_rows_read_the_residual_stream_with_the_final_norm_and_head(llama):
    model = llama.model
    tokens = torch.tensor([llama.tokenizer.encode("the refund is late")])
    streams = residual_streams(model, tokens)
    assert len(streams) == model.cfg.n_layer + 1
    with torch.no_grad():
        torch.testing.assert_close(streams[0], model.wte(tokens))  # rotary: no position vectors added
        by_hand = model.lm_head(model.norm_f(streams[1])).softmax(-1)[0]  # (T, V)
    lens = logit_lens(model, tokens, top_k=3)
    torch.testing.assert_close(lens.top_probs[1], by_hand.topk(3, dim=-1).values, rtol=1e-5, atol=1e-6)


def test_post_norm_models_without_a_final_norm_read_the_block_output():
    torch.manual_seed(0)
    model = TransformerLM(LMConfig(preset="gpt-tiny", vocab_size=40, block_size=16,
                                   norm_placement="post", final_norm=False)).eval()
    tokens = torch.randint(0, 40, (1, 6))
    with torch.no_grad():
        assert model.norm_f is None
        torch.testing.assert_close(read_out(model, residual_streams(model, tokens)[-1]), model(tokens))


def test_explain_reports_candidates_per_layer_and_the_prediction(llama):
    item = explain_bundle(llama, "my card", ExplainOptions(top_k=3)).items[0]
    lens = item["logit_lens"]
    assert lens["layers"] == ["embeddings", "layer 1", "layer 2"]
    assert len(lens["top"]) == 3 and len(lens["top"][0]) == len(item["tokens"]) and len(lens["top"][0][0]) == 3
    last = lens["top"][-1][-1]
    assert [c["probability"] for c in last] == sorted((c["probability"] for c in last), reverse=True)
    assert item["prediction"] == last[0]["token"] and "next token" in item["summary"]
    assert "attention" in item  # both views by default for a causal LM


def test_tokens_are_shown_as_the_model_reads_them(llama):
    from practicum.explain.language import token_texts, visible

    ids = llama.tokenizer.encode("my card")
    assert "".join(token_texts(llama.tokenizer, ids)) == "my card"  # byte-level pieces decoded, spaces kept
    assert visible("a\nb\x07") == "a\\nb\\x07"
