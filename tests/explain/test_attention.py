"""Attention maps and rollout: rollout against a hand computation, maps against the attention
computed by hand from the model's own weights, shapes and row sums for every Transformer kind."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from practicum.bundle import Bundle
from practicum.errors import UserError
from practicum.explain import ExplainOptions, attention_maps, attention_rollout, explain_bundle
from practicum.explain.attention import rollout_relevance
from practicum.models.lm import rotate_half


def test_rollout_equals_a_hand_computation_on_fixed_matrices():
    layer1 = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])  # (2 heads, 2, 2)
    layer2 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]])
    # heads averaged + I, rows renormalised: A1' = [[.75, .25], [.25, .75]], A2' = [[1, 0], [.5, .5]]
    expected = torch.tensor([[0.75, 0.25], [0.5, 0.5]])  # A2' @ A1'
    torch.testing.assert_close(attention_rollout([layer1, layer2]), expected)


def test_rollout_matches_numpy_and_rows_sum_to_one():
    rng = np.random.default_rng(0)
    maps = [torch.from_numpy(rng.random((3, 5, 5))).float().softmax(-1) for _ in range(4)]
    expected = np.eye(5)
    for m in maps:
        a = m.double().numpy().mean(axis=0) + np.eye(5)
        expected = (a / a.sum(axis=1, keepdims=True)) @ expected
    rollout = attention_rollout(maps)
    np.testing.assert_allclose(rollout.numpy(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(5))
    torch.testing.assert_close(attention_rollout([torch.eye(4)[None]]), torch.eye(4))


def test_rollout_relevance_reads_the_pooled_row():
    r = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    assert rollout_relevance(r, "cls").tolist() == r[0].tolist()
    assert rollout_relevance(r, "last").tolist() == r[2].tolist()
    torch.testing.assert_close(rollout_relevance(r, "mean", torch.tensor([False, True, True])),
                               (r[1] + r[2]) / 2)


def test_classifier_maps_equal_the_attention_computed_by_hand(text_classifier_bundle):
    bundle = Bundle.load(text_classifier_bundle)
    model = bundle.model
    batch, _, _ = bundle.preprocessor.load_inputs(["my card was declined"])
    T = int(batch["mask"].sum())
    tokens, mask = batch["tokens"][:, :T], batch["mask"][:, :T]
    maps = attention_maps(model, tokens, mask)
    nh = model.cfg.n_heads
    assert len(maps) == model.cfg.n_layers and maps[0].shape == (nh, T + 1, T + 1)  # [CLS] first
    with torch.no_grad():
        x = torch.cat([model.cls, model.tok_emb(tokens)], dim=1) + model.positions(T + 1)
        q, k, _ = model.blocks[0].attn.qkv(model.blocks[0].ln_1(x)).split(model.cfg.d_model, dim=2)
        hs = model.cfg.d_model // nh
        q, k = (t.view(1, T + 1, nh, hs).transpose(1, 2) for t in (q, k))
        expected = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs), dim=-1)[0]
    torch.testing.assert_close(maps[0], expected, rtol=1e-5, atol=1e-6)
    assert not model.keep_attention  # the model is left as it was


def test_causal_lm_maps_are_lower_triangular_distributions(tiny_causal_source):
    bundle = Bundle.load(tiny_causal_source)
    ids = bundle.tokenizer.encode("my card was declined")
    maps = attention_maps(bundle.model, torch.tensor([ids]))
    T, cfg = len(ids), bundle.model.cfg
    assert len(maps) == cfg.n_layer
    for m in maps:
        assert m.shape == (cfg.n_head, T, T)
        torch.testing.assert_close(m.sum(-1), torch.ones(cfg.n_head, T))
        assert float(m.triu(1).abs().max()) == 0.0  # no query sees the future
    assert not bundle.model.keep_attention
    model, nh, nkv, hs = bundle.model, cfg.n_head, cfg.kv_heads, cfg.head_size
    with torch.no_grad():  # layer 1 by hand: RMSNorm, rotary queries and keys, grouped keys, causal mask
        attn = model.blocks[0].attn
        h = model.blocks[0].norm_1(model.wte(torch.tensor([ids])))
        q, k, _ = attn.qkv(h).split((nh * hs, nkv * hs, nkv * hs), dim=-1)
        q, k = q.view(1, T, nh, hs).transpose(1, 2), k.view(1, T, nkv, hs).transpose(1, 2)
        cos, sin = model.rope_cos[:T], model.rope_sin[:T]
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        scores = q @ k.repeat_interleave(nh // nkv, dim=1).transpose(-2, -1) / math.sqrt(hs)
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        expected = scores.masked_fill(future, float("-inf")).softmax(-1)[0]
    torch.testing.assert_close(maps[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fixture", ["text_classifier_bundle", "pretrained_classifier_bundle", "tiny_source",
                                     "tiny_causal_source"])
def test_explain_gives_maps_with_rows_summing_to_one_for_every_transformer(fixture, request):
    bundle = Bundle.load(request.getfixturevalue(fixture))
    item = explain_bundle(bundle, ["my card was declined"], ExplainOptions(views=["attention"])).items[0]
    view = item["attention"]
    maps = torch.tensor(view["maps"], dtype=torch.float64)  # (L, nh, T, T)
    T = len(view["tokens"])
    assert maps.shape == (view["layers"], view["heads"], T, T)
    torch.testing.assert_close(maps.sum(-1), torch.ones(maps.shape[:3], dtype=maps.dtype), atol=1e-5, rtol=0)
    rollout = torch.tensor(view["rollout"], dtype=torch.float64)
    torch.testing.assert_close(rollout, attention_rollout(list(maps)).double(), atol=1e-5, rtol=0)
    assert sum(view["relevance"]) == pytest.approx(1.0, abs=1e-4)


def test_attention_on_a_model_without_attention_is_a_user_error(rnn_text_bundle):
    bundle = Bundle.load(rnn_text_bundle)
    with pytest.raises(UserError, match="no attention"):
        attention_maps(bundle.model, torch.tensor([[2, 3]]))
    with pytest.raises(UserError, match="--view attention is not available .* rnn text"):
        explain_bundle(bundle, ["my card"], ExplainOptions(views=["attention"]))
