"""One contract run over a matrix of tiny models: called with a batch dict, (N, num_outputs)
out, gradients reach every parameter, a tiny batch can be overfit, weights round-trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from practicum.config import LeNetConfig, MLPConfig, ResNetConfig, RNNConfig, TransformerConfig
from practicum.models import build_model

N, CLASSES = 16, 3

CASES = {
    "mlp-tabular": (MLPConfig(hidden_sizes=[16, 16], dropout=0.0, norm="batch"), "tabular"),
    "mlp-image": (MLPConfig(hidden_sizes=[16, 16], dropout=0.0, norm="layer"), "image"),
    "lenet": (LeNetConfig(channels=[8, 16], hidden_size=16, dropout=0.0), "image"),
    "lenet-groupnorm": (LeNetConfig(channels=[8, 16], hidden_size=16, dropout=0.0, norm="layer"), "image"),
    "resnet": (ResNetConfig(widths=[8, 16], blocks=[1, 1]), "image"),
    "rnn-lstm-last": (RNNConfig(cell="lstm", embedding_dim=16, hidden_size=16, num_layers=2, pooling="last", dropout=0.0), "text"),
    "rnn-gru-max": (RNNConfig(cell="gru", embedding_dim=16, hidden_size=16, num_layers=2, pooling="max", dropout=0.0), "text"),
    "rnn-rnn-mean": (RNNConfig(cell="rnn", embedding_dim=16, hidden_size=16, num_layers=2, bidirectional=False, dropout=0.0, norm="layer"), "text"),
    "transformer-cls": (TransformerConfig(d_model=16, n_heads=2, d_ff=32, dropout=0.0), "text"),
    "transformer-mean-learned": (TransformerConfig(d_model=16, n_heads=2, d_ff=32, dropout=0.0, pooling="mean", positions="learned"), "text"),
}


def batch_for(kind: str, spec_of, text_data):
    """A spec and an input batch (no target) of N random examples."""
    g = torch.Generator().manual_seed(0)
    if kind == "tabular":
        spec = spec_of("tabular", num_features=5, cat_cardinalities=[3, 4])
        x_cat = torch.stack([torch.randint(0, 3, (N,), generator=g), torch.randint(0, 4, (N,), generator=g)], 1)
        return spec, {"x": torch.randn(N, 5, generator=g), "x_cat": x_cat}
    if kind == "image":
        return spec_of("image", image_shape=(1, 8, 8)), {"image": torch.randn(N, 1, 8, 8, generator=g)}
    tokens, mask = text_data(N)
    return spec_of("text", vocab_size=40, max_length=10), {"tokens": tokens, "mask": mask}


@pytest.fixture(params=list(CASES))
def case(request, spec_of, text_data):
    torch.manual_seed(0)
    cfg, kind = CASES[request.param]
    spec, batch = batch_for(kind, spec_of, text_data)
    return build_model(cfg, spec, CLASSES), batch, (cfg, spec)


def test_called_with_a_batch_dict(case):
    model, batch, (cfg, spec) = case
    out = model(**batch)
    assert out.shape == (N, CLASSES) and out.dtype == torch.float32
    assert build_model(cfg, spec, 1)(**batch).shape == (N, 1)  # regression head


def test_gradients_reach_every_parameter(case):
    model, batch, _ = case
    model(**batch).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_overfits_a_tiny_batch(case):
    model, batch, _ = case
    target = torch.arange(N) % CLASSES
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        loss = F.cross_entropy(model(**batch), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]


def test_weights_round_trip_through_safetensors(case, tmp_path):
    model, batch, (cfg, spec) = case
    model.eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    fresh = build_model(cfg, spec, CLASSES).eval()
    fresh.load_state_dict(load_file(tmp_path / "model.safetensors"))
    torch.testing.assert_close(fresh(**batch), model(**batch))


def test_parameter_count_is_small(case):
    model, _, _ = case
    assert 100 < sum(p.numel() for p in model.parameters()) < 20_000
