"""Transformer classifier: positions x pooling, padding invariance, attention maps, init."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from practicum.config import TransformerConfig
from practicum.models import TransformerClassifier, build_model

VARIANTS = list(itertools.product(["sinusoidal", "learned"], ["cls", "mean"]))


def tiny(**kw) -> TransformerConfig:
    return TransformerConfig(**{"d_model": 16, "n_heads": 2, "n_layers": 2, "d_ff": 32, "dropout": 0.0, **kw})


@pytest.mark.parametrize(("positions", "pooling"), VARIANTS)
def test_shapes_and_padding_invariance(text_spec, text_data, positions, pooling):
    model = build_model(tiny(positions=positions, pooling=pooling), text_spec, 3).eval()
    tokens, mask = text_data()
    with torch.no_grad():
        out = model(tokens, mask)
        assert out.shape == (6, 3)
        for i in range(len(tokens)):
            n = int(mask[i].sum())
            alone = model(tokens[i : i + 1, :n], mask[i : i + 1, :n])
            torch.testing.assert_close(alone, out[i : i + 1], atol=1e-5, rtol=1e-5)


def test_appending_padding_up_to_max_length_changes_nothing(text_spec):
    model = build_model(tiny(positions="learned"), text_spec, 3).eval()
    tokens = torch.tensor([[4, 5, 6, 0]])
    long = nn.functional.pad(tokens, (0, 6))  # 10 = max_length
    with torch.no_grad():
        torch.testing.assert_close(model(long, long != 0), model(tokens, tokens != 0), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("positions", "pooling"), VARIANTS)
def test_fast_and_explicit_attention_agree_in_eval(text_spec, text_data, positions, pooling):
    model = build_model(tiny(positions=positions, pooling=pooling), text_spec, 3).eval()
    tokens, mask = text_data()
    with torch.no_grad():
        fast = model(tokens, mask)
        for m in model.modules():
            if hasattr(m, "use_sdpa"):
                m.use_sdpa = False
        torch.testing.assert_close(model(tokens, mask), fast, atol=1e-5, rtol=1e-5)


def test_attention_maps(text_spec, text_data):
    model = build_model(tiny(), text_spec, 3).eval()
    tokens, mask = text_data()
    with pytest.raises(RuntimeError, match="keep_attention"):
        model.attention_maps()
    fast = model(tokens, mask)
    model.keep_attention = True
    assert model.keep_attention
    kept = model(tokens, mask)
    torch.testing.assert_close(kept, fast, atol=1e-5, rtol=1e-5)
    maps = model.attention_maps()
    assert len(maps) == 2 and maps[0].shape == (6, 2, 11, 11)  # [CLS] + 10 tokens
    model.keep_attention = False
    assert not model.keep_attention and model.blocks[0].attn.attention is None


def test_an_all_padding_row_stays_finite(text_spec):
    for pooling in ("cls", "mean"):
        model = build_model(tiny(pooling=pooling), text_spec, 3)
        tokens = torch.tensor([[3, 4, 0], [0, 0, 0]])
        for fast in (True, False):
            for m in model.modules():
                if hasattr(m, "use_sdpa"):
                    m.use_sdpa = fast
            assert torch.isfinite(model(tokens, tokens != 0)).all()


def test_mask_defaults_to_non_pad_tokens(text_spec, text_data):
    model = build_model(tiny(), text_spec, 3).eval()
    tokens, mask = text_data()
    torch.testing.assert_close(model(tokens), model(tokens, mask))


def test_too_long_sequences_are_refused(text_spec):
    for positions in ("learned", "sinusoidal"):
        model = build_model(tiny(positions=positions), text_spec, 3)
        with pytest.raises(ValueError, match="11 tokens is longer than max_length 10"):
            model(torch.ones(1, 11, dtype=torch.long))


def test_positions_by_config(text_spec):
    learned = build_model(tiny(positions="learned", pooling="cls"), text_spec, 3)
    assert learned.pos_emb.weight.shape == (11, 16)  # max_length + [CLS]
    assert build_model(tiny(positions="learned", pooling="mean"), text_spec, 3).pos_emb.num_embeddings == 10
    fixed = build_model(tiny(positions="sinusoidal"), text_spec, 3)
    assert fixed.pos_emb is None and fixed.pos_table.shape == (11, 16)
    assert "pos_table" not in fixed.state_dict()  # rebuilt, not saved


def test_init_is_gpt_style():
    torch.manual_seed(0)
    model = TransformerClassifier(tiny(d_model=64, n_heads=4, d_ff=128), 500, 10, 3)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            assert abs(module.weight.std().item() - 0.02) < 0.004, name
            assert (module.bias == 0).all(), name
    assert abs(model.tok_emb.weight[1:].std().item() - 0.02) < 0.002
    assert (model.tok_emb.weight[0] == 0).all()  # the padding row


def test_config_is_honoured():
    cfg = tiny(n_layers=3, activation="relu", dropout=0.2, norm="none", d_ff=24)
    model = TransformerClassifier(cfg, 40, 10, 3)
    assert len(model.blocks) == 3
    assert isinstance(model.blocks[0].ffn.act, nn.ReLU) and model.blocks[0].ffn.fc.out_features == 24
    assert not any(isinstance(m, nn.LayerNorm) for m in model.modules())
    drops = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(p == 0.2 for p in drops)
    assert all(b.attn.dropout == 0.2 for b in model.blocks)


def test_layer_norms_with_default_norm():
    model = TransformerClassifier(tiny(n_layers=2), 40, 10, 3)
    assert sum(isinstance(m, nn.LayerNorm) for m in model.modules()) == 2 * 2 + 1  # + final


def test_parameter_count_is_small():
    model = TransformerClassifier(tiny(), 40, 10, 3)
    block = 2 * 32 + (16 * 48 + 48) + (16 * 16 + 16) + (16 * 32 + 32) + (32 * 16 + 16)
    expected = 40 * 16 + 16 + 2 * block + 32 + (16 * 3 + 3)  # tokens, [CLS], blocks, ln_f, head
    assert sum(p.numel() for p in model.parameters()) == expected
