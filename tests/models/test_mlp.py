"""MLP on tabular rows (with and without categorical embeddings) and on flattened images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from practicum.config import MLPConfig
from practicum.models import MLP, build_model

TINY = dict(hidden_sizes=[16, 16], dropout=0.0)


def test_tabular_without_categoricals(spec_of):
    model = build_model(MLPConfig(**TINY), spec_of("tabular", num_features=5), 3)
    assert model(torch.randn(4, 5)).shape == (4, 3)
    assert len(model.embeddings) == 0


def test_tabular_with_categoricals(tabular_spec):
    model = build_model(MLPConfig(**TINY, embedding_dim=4), tabular_spec, 3)
    x, x_cat = torch.randn(4, 5), torch.stack([torch.randint(0, 3, (4,)), torch.randint(0, 7, (4,))], 1)
    assert model(x, x_cat).shape == (4, 3)
    assert [e.weight.shape for e in model.embeddings] == [(3, 4), (7, 4)]
    assert model.net[0].in_features == 5 + 2 * 4  # dense + one embedding per column


def test_only_categoricals(spec_of):
    model = build_model(MLPConfig(**TINY), spec_of("tabular", cat_cardinalities=[4]), 1)
    assert model(torch.zeros(2, 0), torch.tensor([[1], [3]])).shape == (2, 1)


def test_missing_x_cat_is_an_error(tabular_spec):
    model = build_model(MLPConfig(**TINY), tabular_spec, 3)
    with pytest.raises(ValueError, match="pass x_cat"):
        model(torch.randn(2, 5))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_image_mlp_flattens(spec_of, shape):
    model = build_model(MLPConfig(**TINY), spec_of("image", image_shape=shape), 10)
    assert model(image=torch.randn(2, *shape)).shape == (2, 10)
    assert model.net[0].in_features == shape[0] * shape[1] * shape[2]


def test_parameter_count_is_exact():
    model = MLP(MLPConfig(hidden_sizes=[16, 16], norm="layer"), 5, 3, [3, 7])
    width = 5 + 2 * 8
    expected = (3 + 7) * 8 + (width * 16 + 16) + 2 * 16 + (16 * 16 + 16) + 2 * 16 + (16 * 3 + 3)
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize(("norm", "cls"), [("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm), ("none", None)])
def test_norm_follows_the_config(norm, cls):
    model = MLP(MLPConfig(hidden_sizes=[16, 8], norm=norm), 4, 2)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.LayerNorm)]
    assert [type(m) for m in norms] == ([cls, cls] if cls else [])


@pytest.mark.parametrize("act", ["relu", "gelu", "tanh", "sigmoid", "silu"])
def test_activation_follows_the_config(act):
    model = MLP(MLPConfig(hidden_sizes=[8], activation=act), 4, 2)
    assert type(model.net[2]).__name__.lower() == act


def test_dropout_follows_the_config():
    model = MLP(MLPConfig(hidden_sizes=[64, 64], dropout=0.5), 4, 2)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    x = torch.randn(8, 4)
    torch.manual_seed(0)
    assert not torch.equal(model(x), model(x))  # train: random masks
    model.eval()
    assert torch.equal(model(x), model(x))
