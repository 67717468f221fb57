"""The config-driven Transformer LM: both attention paths agree, the KV cache and left padding
change nothing, the presets have the published sizes, shape errors are clear."""

from __future__ import annotations

import pytest
import torch

from practicum.config import LMConfig
from practicum.errors import UserError
from practicum.models.lm import TransformerLM

PRESETS = ["gpt-tiny", "bert-tiny", "llama-tiny"]


def tiny(preset: str, **fields) -> TransformerLM:
    torch.manual_seed(0)
    cfg = LMConfig(preset=preset, vocab_size=61, block_size=32, **fields)
    return TransformerLM(cfg).eval()


def logits(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("preset", PRESETS)
def test_sdpa_path_equals_reference_path(preset):
    model = tiny(preset)
    x = torch.randint(0, 61, (3, 17))
    fast = logits(model(x))
    model.set_reference_attention(True)
    assert torch.allclose(fast, logits(model(x)), atol=1e-5)


@pytest.mark.parametrize("preset", PRESETS)
def test_padding_mask_paths_agree(preset):
    model = tiny(preset)
    x = torch.randint(0, 61, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    fast = logits(model(x, mask=mask))
    model.set_reference_attention(True)
    assert torch.allclose(fast, logits(model(x, mask=mask)), atol=1e-5)


@pytest.mark.parametrize("preset", ["gpt-tiny", "llama-tiny"])
def test_kv_cache_gives_the_same_logits_as_one_pass(preset):
    model = tiny(preset)
    x = torch.randint(0, 61, (2, 15))
    full = model(x)
    cache = model.new_cache(2)
    pieces = [model(x[:, :6], cache=cache)] + [model(x[:, t : t + 1], cache=cache) for t in range(6, 15)]
    assert cache.length == 15
    assert torch.allclose(full, torch.cat(pieces, dim=1), atol=1e-5)


@pytest.mark.parametrize("preset", ["gpt-tiny", "llama-tiny"])
def test_left_padding_with_positions_equals_the_unpadded_row(preset):
    model = tiny(preset)
    x = torch.randint(0, 61, (1, 9))
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), x], dim=1)
    mask = torch.cat([torch.zeros(1, 4, dtype=torch.bool), torch.ones(1, 9, dtype=torch.bool)], dim=1)
    positions = (mask.long().cumsum(1) - 1).clamp(min=0)
    out = model(padded, mask=mask, positions=positions)
    assert torch.allclose(out[:, 4:], model(x), atol=1e-5)


def test_causal_model_does_not_look_ahead_and_bert_does():
    gpt, bert = tiny("gpt-tiny"), tiny("bert-tiny")
    x = torch.randint(0, 61, (1, 10))
    y = x.clone()
    y[0, -1] = (x[0, -1] + 1) % 61
    assert torch.allclose(gpt(x)[0, :-1], gpt(y)[0, :-1], atol=1e-6)
    assert not torch.allclose(logits(bert(x))[0, 0], logits(bert(y))[0, 0], atol=1e-6)


def test_grouped_query_attention_has_fewer_key_value_weights():
    mha, gqa = tiny("llama-tiny", n_kv_head=4), tiny("llama-tiny", n_kv_head=1)
    hs = mha.cfg.head_size
    assert mha.blocks[0].attn.qkv.weight.shape[0] == 3 * 4 * hs
    assert gqa.blocks[0].attn.qkv.weight.shape[0] == (4 + 2) * hs


def test_tied_embeddings_share_one_tensor():
    model = tiny("gpt-tiny")
    assert model.lm_head.weight is model.wte.weight
    untied = tiny("llama-tiny")
    assert untied.lm_head.weight is not untied.wte.weight


def test_gpt2_preset_has_gpt2_small_parameter_count():
    with torch.device("meta"):
        model = TransformerLM(LMConfig(preset="gpt2"))
    assert model.num_parameters() == 124_439_808  # GPT-2 small, tied embeddings


def test_bert_base_preset_has_bert_base_encoder_size():
    with torch.device("meta"):
        model = TransformerLM(LMConfig(preset="bert-base"))
    heads = {"lm_head.bias", "head_dense.weight", "head_dense.bias", "head_norm.weight",
             "head_norm.bias", "nsp_head.weight", "nsp_head.bias"}
    encoder = sum(p.numel() for n, p in model.named_parameters() if n not in heads)
    assert encoder == 109_482_240  # BertModel bert-base-uncased, pooler included


@pytest.mark.parametrize("preset", PRESETS)
def test_reference_path_keeps_attention_maps(preset):
    model = tiny(preset)
    model.keep_attention = True
    x = torch.randint(0, 61, (2, 7))
    model(x)
    maps = model.attention_maps()
    assert len(maps) == model.cfg.n_layer
    assert maps[0].shape == (2, model.cfg.n_head, 7, 7)
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, model.cfg.n_head, 7), atol=1e-5)
    if model.cfg.causal:
        assert float(maps[0][0, 0].detach().triu(1).abs().max()) == 0.0


def test_too_long_input_is_a_clear_error():
    model = tiny("gpt-tiny")
    with pytest.raises(UserError, match="longer than the context"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_heads_must_divide_width():
    with pytest.raises(UserError, match="must divide"):
        TransformerLM(LMConfig(preset="gpt-tiny", vocab_size=10, n_head=3))
    with pytest.raises(UserError, match="n_kv_head"):
        TransformerLM(LMConfig(preset="llama-tiny", vocab_size=10, n_kv_head=3))


def test_unknown_preset_is_a_config_error():
    from practicum.config import validate

    with pytest.raises(UserError, match="unknown preset"):
        validate({"model": {"type": "lm", "preset": "gpt5"}})


def test_training_step_lowers_the_loss():
    model = tiny("gpt-tiny").train()
    x = torch.randint(0, 61, (4, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
