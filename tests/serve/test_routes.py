"""The native routes against the library as oracle: /v1/predict gives what Bundle.predict gives
(text, tabular, image upload), /v1/embed gives the vector the head reads (or the LM's mean
hidden state), plus /v1/models, health, readiness, metrics and the playground page."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch

from practicum.bundle import Bundle
from practicum.data.text import encode_texts

TEXTS = ["the goalkeeper saved the penalty", "my card was declined at the shop", "a cheap flight to rome"]


@pytest.fixture(scope="module")
def api(bundles, make_client):
    with make_client(bundles) as c:
        yield c


def _close(served: list[dict], expected: list[dict]) -> None:
    """Same predictions, probabilities equal to 1e-5 (a batch of one vs of many)."""
    assert len(served) == len(expected)
    for got, want in zip(served, expected, strict=True):
        assert got["prediction"] == want["prediction"]
        assert set(got) == set(want) - {"input"}
        for label, p in want.get("probabilities", {}).items():
            assert got["probabilities"][label] == pytest.approx(p, abs=1e-5)


def test_models_lists_every_bundle_in_the_contract_shape(api):
    body = api.get("/v1/models").json()
    assert body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    assert set(by_id) == {"clf", "tab", "img", "gpt", "bert"}
    for m in body["data"]:
        assert m["object"] == "model" and m["owned_by"] == "practicum" and isinstance(m["created"], int)
    assert by_id["clf"]["task"] == "classification" and by_id["clf"]["kind"] == "text"
    assert by_id["img"]["kind"] == "image" and by_id["tab"]["kind"] == "tabular"
    assert by_id["clf"]["labels"] == Bundle.load(api.app.state.serve.models["clf"].bundle.path).task.label_names
    assert by_id["gpt"]["task"] == "causal_lm" and by_id["gpt"]["labels"] is None and by_id["gpt"]["chat"]
    assert by_id["bert"]["task"] == "masked_lm" and by_id["bert"]["endpoints"] == ["embed"]
    # what a model lists is what it serves: a chat template adds chat; "chat" says the same
    assert by_id["gpt"]["endpoints"] == ["generate", "completions", "chat", "embed"]
    assert by_id["clf"]["endpoints"] == ["predict", "embed"]
    for m in body["data"]:
        assert m["chat"] is ("chat" in m["endpoints"]), m


def test_a_language_model_without_chat_template_lists_no_chat(char_gpt, make_client, check_error):
    with make_client({"plain": char_gpt}) as c:
        (entry,) = c.get("/v1/models").json()["data"]
        assert entry["endpoints"] == ["generate", "completions", "embed"] and entry["chat"] is False
        assert c.post("/v1/completions", json={"model": "plain", "prompt": "the", "max_tokens": 2}).status_code == 200
        chat = {"model": "plain", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        error = check_error(c.post("/v1/chat/completions", json=chat), 400)
        assert error["code"] == "no_chat_template" and "/v1/completions" in error["message"]


def test_predict_text_matches_bundle_predict(api, text_classifier_bundle):
    inputs = [TEXTS[0], {"text": TEXTS[1]}, TEXTS[2]]
    r = api.post("/v1/predict", json={"model": "clf", "inputs": inputs})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "clf"
    _close(r.json()["predictions"], Bundle.load(text_classifier_bundle).predict(TEXTS))


def test_predict_tabular_records_match_bundle_predict(api, tabular_classifier_bundle):
    rows = [{"island": "Biscoe", "bill_length_mm": 46.0, "bill_depth_mm": 15.0, "flipper_length_mm": 215,
             "body_mass_g": 5200, "sex": "male", "year": 2008},
            {"island": "Dream", "bill_length_mm": 39.0, "bill_depth_mm": 18.5, "flipper_length_mm": 190,
             "body_mass_g": 3700, "sex": "female", "year": 2009}]
    r = api.post("/v1/predict", json={"model": "tab", "inputs": rows})
    _close(r.json()["predictions"], Bundle.load(tabular_classifier_bundle).predict(rows))
    # a missing field is an empty cell, imputed the same way alone or beside full records
    partial = {"island": "Dream", "bill_length_mm": 39.0}
    alone = api.post("/v1/predict", json={"model": "tab", "inputs": [partial]}).json()["predictions"]
    beside = api.post("/v1/predict", json={"model": "tab", "inputs": [rows[0], partial]}).json()["predictions"]
    assert alone[0] == beside[1]


def _png(pixels: np.ndarray, mode: str = "L") -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_image_upload_is_preprocessed_as_in_training(api, image_classifier_bundle):
    from sklearn.datasets import load_digits

    digits = load_digits().images[:4]  # (4, 8, 8) in 0..16
    pixels = np.round(digits / 16.0 * 255).astype(np.uint8)
    inputs = [{"image": _png(p)} for p in pixels[:3]] + [{"image": "data:image/png;base64," + _png(pixels[3])}]
    r = api.post("/v1/predict", json={"model": "img", "inputs": inputs})
    assert r.status_code == 200, r.text
    expected = Bundle.load(image_classifier_bundle).predict((pixels / 255.0).astype(np.float32))
    _close(r.json()["predictions"], expected)


def test_image_of_another_size_and_colour_is_converted(api):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[4:12, 7:9] = 255  # a white bar: a "1" of sorts
    r = api.post("/v1/predict", json={"model": "img", "inputs": [{"image": _png(rgb, "RGB")}]})
    assert r.status_code == 200, r.text
    assert set(r.json()["predictions"][0]["probabilities"]) == {str(i) for i in range(10)}


def test_embed_is_the_vector_the_head_reads(api, text_classifier_bundle):
    r = api.post("/v1/embed", json={"model": "clf", "inputs": TEXTS})
    body = r.json()
    vectors = torch.tensor(body["embeddings"])
    assert body["dim"] == vectors.shape[1] == 32 and vectors.shape[0] == 3
    bundle = Bundle.load(text_classifier_bundle)
    with torch.no_grad():  # the head applied to the embeddings gives the predicted probabilities
        probs = torch.softmax(bundle.model.head(vectors), dim=-1)
    expected = bundle.predict(TEXTS)
    for row, want in zip(probs, expected, strict=True):
        got = dict(zip(bundle.task.label_names, row.tolist(), strict=True))
        assert got == pytest.approx(want["probabilities"], abs=1e-5)


@pytest.mark.parametrize("name", ["gpt", "bert"])
def test_language_model_embed_is_the_mean_last_hidden_state(api, bundles, name):
    r = api.post("/v1/embed", json={"model": name, "inputs": TEXTS})
    vectors = torch.tensor(r.json()["embeddings"])
    bundle = Bundle.load(bundles[name])
    for text, vector in zip(TEXTS, vectors, strict=True):  # one at a time: no padding at all
        ids, _ = encode_texts(bundle.tokenizer, [text], bundle.config.model.block_size)
        with torch.no_grad():
            states = bundle.model.hidden_states(ids)[0]  # (T, C)
        torch.testing.assert_close(vector, states.mean(0), atol=1e-5, rtol=1e-4)


def test_health_readiness_metrics_and_playground(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").status_code == 200
    api.post("/v1/predict", json={"model": "clf", "inputs": [TEXTS[0]]})
    text = api.get("/metrics").text
    assert 'practicum_requests_total{model="clf",route="/v1/predict",status="200"}' in text
    for name in ("practicum_request_duration_seconds_bucket", "practicum_batch_size_bucket",
                 "practicum_generated_tokens_total", "practicum_requests_in_flight"):
        assert name in text
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in ('id="model"', 'id="text"', 'id="classify"', 'id="label"', 'id="image"',
                    'id="prompt"', 'id="send"', 'id="output"', 'id="error"', 'id="api-key"'):
        assert element in page.text
    script = api.get("/static/app.js")
    assert script.status_code == 200 and "/v1/chat/completions" in script.text


def test_readyz_is_503_before_start_and_after_shutdown(bundles, make_client):
    from fastapi.testclient import TestClient

    from practicum.serve import create_app

    app = create_app({"clf": bundles["clf"]})
    outside = TestClient(app)  # no lifespan: models not started
    assert outside.get("/readyz").status_code == 503
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200
    assert outside.get("/readyz").status_code == 503
