"""Bundles that only the explanation tests need (the shared ones live in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from finetune_data import finetune_config


def _train(overrides: list[str] | dict) -> Path:
    import practicum

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if isinstance(overrides, dict):
            return practicum.train(overrides).bundle
        return practicum.train(None, [*overrides, "train.seed=0", "train.progress=never",
                                      "train.tensorboard=false"]).bundle
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def pretrained_classifier_bundle(tmp_path_factory, tiny_source, labelled_csv) -> Path:
    """The tiny BERT-style source fine-tuned (one epoch) into a topic classifier; mean pooling."""
    cfg = finetune_config(tiny_source, labelled_csv, tmp_path_factory.mktemp("explain_ft") / "run",
                          "full", epochs=1)
    cfg["data"]["leakage"] = "off"
    return _train(cfg)


@pytest.fixture(scope="session")
def rnn_text_bundle(tmp_path_factory, labelled_csv) -> Path:
    """A small LSTM text classifier: token attributions yes, attention no."""
    out = tmp_path_factory.mktemp("explain_rnn") / "run"
    return _train([f"data.path={labelled_csv}", "data.kind=text", "data.features=[text]", "data.target=label",
                   "model.type=rnn", "model.hidden_size=16", "model.embedding_dim=16", "train.epochs=2",
                   f"out_dir={out}"])


@pytest.fixture(scope="session")
def regression_bundle(tmp_path_factory) -> Path:
    """An MLP regressor of body mass on the penguins table, categorical embeddings on."""
    out = tmp_path_factory.mktemp("explain_reg") / "run"
    return _train(["data.path=builtin:penguins", "data.target=body_mass_g", "model.type=mlp",
                   "model.hidden_sizes=[16]", "data.categorical_encoding=embedding", "train.epochs=2",
                   f"out_dir={out}"])
