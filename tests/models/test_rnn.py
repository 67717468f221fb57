"""RNN text classifier: every cell x direction x pooling, padding invariance, pooling semantics."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from practicum.config import RNNConfig
from practicum.models import RNNClassifier, build_model

VARIANTS = list(itertools.product(["rnn", "lstm", "gru"], [False, True], ["last", "mean", "max"]))


def tiny(**kw) -> RNNConfig:
    return RNNConfig(**{"embedding_dim": 16, "hidden_size": 16, "num_layers": 2, "dropout": 0.0, **kw})


@pytest.mark.parametrize(("cell", "bidirectional", "pooling"), VARIANTS)
def test_shapes_and_padding_invariance(text_spec, text_data, cell, bidirectional, pooling):
    model = build_model(tiny(cell=cell, bidirectional=bidirectional, pooling=pooling), text_spec, 3)
    model.eval()
    tokens, mask = text_data()
    with torch.no_grad():
        out = model(tokens, mask)
        assert out.shape == (6, 3)
        # appending padding changes nothing
        padded = model(nn.functional.pad(tokens, (0, 5)), nn.functional.pad(mask, (0, 5)))
        torch.testing.assert_close(padded, out, atol=1e-6, rtol=1e-5)
        # each row alone, unpadded, gives its batched result
        for i in range(len(tokens)):
            n = int(mask[i].sum())
            alone = model(tokens[i : i + 1, :n], mask[i : i + 1, :n])
            torch.testing.assert_close(alone, out[i : i + 1], atol=1e-6, rtol=1e-5)


def test_mask_defaults_to_non_pad_tokens(text_spec, text_data):
    model = build_model(tiny(), text_spec, 3).eval()
    tokens, mask = text_data()
    torch.testing.assert_close(model(tokens), model(tokens, mask))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_last_is_forward_end_and_backward_start(cell):
    """'last' pooling = top layer's forward state at the last real token + backward state at 0."""
    model = RNNClassifier(tiny(cell=cell, bidirectional=True, pooling="last"), 40, 2).eval()
    tokens = torch.tensor([[5, 6, 7, 0, 0]])
    mask = tokens != 0
    seen = {}
    model.head.register_forward_hook(lambda mod, args, out: seen.setdefault("pooled", args[0]))
    with torch.no_grad():
        model(tokens, mask)
        out, _ = model.rnn(model.embed(tokens[:, :3]))  # (1, 3, 2H) on the real tokens only
    H = 16
    expected = torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=1)  # (1, 2H)
    torch.testing.assert_close(seen["pooled"], expected)


def test_max_and_mean_ignore_padding_states():
    model = RNNClassifier(tiny(cell="gru", bidirectional=False, pooling="max"), 40, 2).eval()
    tokens = torch.tensor([[5, 6, 7, 0, 0]])
    seen = {}
    model.head.register_forward_hook(lambda mod, args, out: seen.setdefault("pooled", args[0]))
    with torch.no_grad():
        model(tokens, tokens != 0)
        out, _ = model.rnn(model.embed(tokens[:, :3]))
    torch.testing.assert_close(seen["pooled"], out.max(dim=1).values)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_an_all_padding_row_stays_finite(pooling):
    model = RNNClassifier(tiny(pooling=pooling), 40, 2)
    tokens = torch.tensor([[3, 4, 0], [0, 0, 0]])
    out = model(tokens, tokens != 0)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_config_is_honoured():
    cfg = tiny(cell="gru", num_layers=3, bidirectional=True, dropout=0.3, norm="layer", embedding_dim=12)
    model = RNNClassifier(cfg, 40, 4, pad_id=1)
    assert isinstance(model.rnn, nn.GRU)
    assert (model.rnn.num_layers, model.rnn.bidirectional, model.rnn.dropout) == (3, True, 0.3)
    assert model.embed.padding_idx == 1 and model.embed.embedding_dim == 12
    assert isinstance(model.norm, nn.LayerNorm) and model.norm.normalized_shape == (32,)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    assert model.head.in_features == 32


def test_one_layer_has_no_inter_layer_dropout():
    model = RNNClassifier(tiny(num_layers=1, dropout=0.5), 40, 2)
    assert model.rnn.dropout == 0.0  # avoids PyTorch's warning; embeddings and head still drop
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]


def test_batch_norm_on_the_pooled_vector():
    model = RNNClassifier(tiny(norm="batch", bidirectional=False), 40, 2)
    assert isinstance(model.norm, nn.BatchNorm1d) and model.norm.num_features == 16
