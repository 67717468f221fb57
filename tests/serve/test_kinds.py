"""The other predictor kinds behind /v1/predict: a regressor (values in the target's units) and
a token tagger (tags per word, entities), each against Bundle.predict."""

from __future__ import annotations

import json
import random

import pytest

import practicum
from practicum.bundle import Bundle


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    out = tmp_path_factory.mktemp("reg") / "run"
    return practicum.train("regression_tabular", [f"out_dir={out}", "train.epochs=2", "train.progress=never",
                                                  "train.tensorboard=false", "model.hidden_sizes=[8]"]).bundle


@pytest.fixture(scope="module")
def tagger(tmp_path_factory, tiny_source):
    folder = tmp_path_factory.mktemp("tagger")
    rng, lines = random.Random(0), []
    for _ in range(40):
        words = rng.sample(["my", "card", "was", "declined", "in", "the", "refund", "today"], 4)
        words.insert(rng.randrange(5), rng.choice(["paris", "rome"]))
        lines.append(json.dumps({"tokens": words, "tags": ["B-LOC" if w in ("paris", "rome") else "O"
                                                           for w in words]}))
    (folder / "tags.jsonl").write_text("\n".join(lines) + "\n")
    cfg = {"name": "tagger", "out_dir": str(folder / "run"),
           "data": {"path": str(folder / "tags.jsonl"), "split": {"val_fraction": 0.2, "test_fraction": 0.0}},
           "model": {"type": "pretrained", "init_from": str(tiny_source), "max_length": 16},
           "task": {"type": "token_classification"},
           "train": {"epochs": 1, "batch_size": 16, "progress": "never", "tensorboard": False}}
    return practicum.train(cfg).bundle


def test_regression_predictions_are_in_the_target_units(regressor, make_client):
    rows = [{"species": "Gentoo", "island": "Biscoe", "bill_length_mm": 47.0, "bill_depth_mm": 15.0,
             "flipper_length_mm": 217, "sex": "male", "year": 2008}]
    bundle = Bundle.load(regressor)
    rows = [{k: v for k, v in rows[0].items() if k in bundle.preprocessor.features}]
    with make_client({"reg": regressor}) as api:
        info = api.get("/v1/models").json()["data"][0]
        r = api.post("/v1/predict", json={"inputs": rows})  # the only model: no name needed
    assert info["task"] == "regression" and info["labels"] is None
    got = r.json()["predictions"][0]["prediction"]
    assert got == pytest.approx(bundle.predict(rows)[0]["prediction"], rel=1e-5)


def test_tagger_predictions_match_bundle_predict(tagger, make_client, check_error):
    sentences = ["my card was declined in paris", "refund from rome today"]
    with make_client({"tags": tagger}) as api:
        info = api.get("/v1/models").json()["data"][0]
        r = api.post("/v1/predict", json={"model": "tags", "inputs": [sentences[0],
                                                                      {"tokens": sentences[1].split()}]})
        error = check_error(api.post("/v1/embed", json={"model": "tags", "inputs": ["paris"]}), 400)
    assert info["task"] == "token_classification" and info["labels"] == ["O", "B-LOC", "I-LOC"]
    want = [{k: v for k, v in row.items() if k != "input"} for row in Bundle.load(tagger).predict(sentences)]
    assert r.json()["predictions"] == want
    assert error["code"] == "unsupported_endpoint"
