"""A tabular classifier behind the server: /v1/models describes its feature columns with example
values that are valid inputs, and a category unseen in training is answered and logged."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from practicum.bundle import Bundle
from practicum.data.raw import Table


@pytest.fixture(scope="module")
def api(tabular_classifier_bundle, text_classifier_bundle, make_client):
    with make_client({"tab": tabular_classifier_bundle, "clf": text_classifier_bundle}) as c:
        yield c


def test_models_describe_tabular_features_with_valid_examples(api, tabular_classifier_bundle):
    by_id = {m["id"]: m for m in api.get("/v1/models").json()["data"]}
    pre = Bundle.load(tabular_classifier_bundle).preprocessor
    features = by_id["tab"]["features"]
    assert [f["name"] for f in features] == pre.features
    types = {f["name"]: f["type"] for f in features}
    assert types["island"] == "categorical" and types["bill_length_mm"] == "numeric"
    assert "features" not in by_id["clf"]
    example = {f["name"]: f["example"] for f in features}
    assert pre.unknown_categories(Table(pd.DataFrame([example]), "example")) == {}
    r = api.post("/v1/predict", json={"model": "tab", "inputs": [example]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["prediction"] in by_id["tab"]["labels"]


def test_unseen_category_is_answered_and_logged(api, caplog):
    row = {"island": "Atlantis", "bill_length_mm": 39.0, "sex": "female"}
    with caplog.at_level(logging.WARNING, logger="practicum"):
        r = api.post("/v1/predict", json={"model": "tab", "inputs": [row]})
    assert r.status_code == 200, r.text
    assert "input: island: 1 value not seen in training ('Atlantis'); encoded as unknown" in caplog.text
