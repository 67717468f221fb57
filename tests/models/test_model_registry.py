"""build_model: registry look-up, data/model pairing errors and config errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from practicum.config import (
    LeNetConfig,
    MLPConfig,
    ResNetConfig,
    RNNConfig,
    TransformerConfig,
    load_config,
)
from practicum.errors import UserError
from practicum.models import (
    DATA_KINDS,
    MLP,
    MODELS,
    ImageMLP,
    LeNet,
    ResNet,
    RNNClassifier,
    TransformerClassifier,
    build_model,
    models_for,
)


def test_every_model_type_in_the_config_is_registered():
    from practicum.config import MODEL_CONFIGS

    assert sorted(MODELS) == sorted(MODEL_CONFIGS) == sorted(DATA_KINDS)


def test_models_for_each_kind():
    assert models_for("tabular") == ["mlp"]
    assert models_for("image") == ["lenet", "mlp", "resnet"]
    assert models_for("text") == ["pretrained", "rnn", "transformer"]


def test_build_picks_the_class(spec_of, text_spec, tabular_spec):
    image = spec_of("image", image_shape=(1, 8, 8))
    assert type(build_model(MLPConfig(), tabular_spec, 3)) is MLP
    assert type(build_model(MLPConfig(), image, 3)) is ImageMLP
    assert type(build_model(LeNetConfig(), image, 3)) is LeNet
    assert type(build_model(ResNetConfig(), image, 3)) is ResNet
    assert type(build_model(RNNConfig(), text_spec, 3)) is RNNClassifier
    assert type(build_model(TransformerConfig(), text_spec, 3)) is TransformerClassifier


def test_build_from_a_loaded_recipe(text_spec):
    cfg = load_config({"model": {"type": "transformer", "d_model": 16, "n_heads": 2}})
    model = build_model(cfg.model, text_spec, 2)
    tokens = torch.randint(1, 40, (3, 10))
    assert model(tokens=tokens, mask=tokens != 0).shape == (3, 2)


def test_unknown_type_suggests_the_closest():
    with pytest.raises(UserError, match=r"unknown model 'lenett' \(did you mean 'lenet'\?\)"):
        build_model(SimpleNamespace(type="lenett"), SimpleNamespace(kind="image"), 3)


def test_wrong_pairing_message_is_the_contract_one(text_spec):
    with pytest.raises(UserError) as err:
        build_model(LeNetConfig(), text_spec, 3)
    assert str(err.value) == (
        "model.type 'lenet' needs image data but data.path gives text; use pretrained or rnn or transformer"
    )


@pytest.mark.parametrize(
    ("cfg", "kind", "needs", "fits"),
    [
        (LeNetConfig(), "tabular", "image", "mlp"),
        (ResNetConfig(), "text", "image", "pretrained or rnn or transformer"),
        (RNNConfig(), "image", "text", "lenet or mlp or resnet"),
        (TransformerConfig(), "tabular", "text", "mlp"),
        (MLPConfig(), "text", "tabular or image", "pretrained or rnn or transformer"),
    ],
)
def test_wrong_pairings(spec_of, cfg, kind, needs, fits):
    with pytest.raises(UserError) as err:
        build_model(cfg, spec_of(kind), 3)
    message = str(err.value)
    assert "\n" not in message
    assert f"model.type '{cfg.type}' needs {needs} data but data.path gives {kind}" in message
    assert message.endswith(f"use {fits}")


def test_unknown_data_kind(spec_of):
    with pytest.raises(UserError, match="no model type accepts 'audio' data"):
        build_model(MLPConfig(), spec_of("audio"), 3)


def test_heads_must_divide_width(text_spec):
    with pytest.raises(UserError, match=r"model.n_heads \(3\) must divide model.d_model \(16\)"):
        build_model(TransformerConfig(d_model=16, n_heads=3), text_spec, 3)


def test_resnet_widths_and_blocks_must_match(spec_of):
    with pytest.raises(UserError, match="model.blocks has 2 entries but model.widths has 3"):
        build_model(ResNetConfig(widths=[4, 8, 16], blocks=[1, 1]), spec_of("image", image_shape=(1, 8, 8)), 3)


def test_num_outputs_must_be_positive(tabular_spec):
    with pytest.raises(ValueError, match="num_outputs"):
        build_model(MLPConfig(), tabular_spec, 0)


def test_specs_missing_their_shape_are_bugs_not_user_errors(spec_of):
    with pytest.raises(ValueError, match="image_shape"):
        build_model(LeNetConfig(), spec_of("image"), 3)
    with pytest.raises(ValueError, match="vocab_size"):
        build_model(RNNConfig(), spec_of("text"), 3)


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="registered twice"):
        MODELS.register("mlp")(lambda cfg, spec, n: None)
