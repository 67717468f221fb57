"""Bad requests: each gets the right 4xx and the one JSON error shape (OpenAI's), and the server
keeps serving afterwards (acceptance 6)."""

from __future__ import annotations

import base64

import pytest

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def api(bundles, make_client):
    models = {k: bundles[k] for k in ("clf", "tab", "img", "gpt")}
    with make_client(models, api_key=KEY, max_body_bytes=4000, max_input_chars=200, max_inputs=4,
                     max_new_tokens=32) as c:
        c.headers.update(AUTH)
        yield c


def _still_serves(api) -> None:
    r = api.post("/v1/predict", json={"model": "clf", "inputs": ["my card"]})
    assert r.status_code == 200 and r.json()["predictions"][0]["prediction"]
    g = api.post("/v1/generate", json={"model": "gpt", "prompt": "a", "max_new_tokens": 3})
    assert g.status_code == 200 and g.json()["tokens"] >= 1


def test_malformed_json_is_400(api, check_error):
    r = api.post("/v1/predict", content=b'{"model": "clf", "inputs": [', headers={"content-type": "application/json"})
    assert check_error(r, 400)["code"] == "invalid_json"
    _still_serves(api)


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/predict", {"model": "clf", "inputs": "my card"}, "inputs"),
    ("/v1/predict", {"model": "clf", "inputs": [3]}, "inputs.0"),
    ("/v1/predict", {"model": 5, "inputs": ["x"]}, "model"),
    ("/v1/generate", {"model": "gpt", "prompt": "a", "max_new_tokens": "ten"}, "max_new_tokens"),
    ("/v1/generate", {"model": "gpt", "prompt": "a", "temperature": -1}, "temperature"),
    ("/v1/generate", {"model": "gpt", "prompt": "a", "max_tokens": 5}, "max_tokens"),
    ("/v1/generate", {"model": "gpt"}, "prompt"),
    ("/v1/chat/completions", {"model": "gpt", "messages": [{"role": "robot", "content": "hi"}]},
     "messages.0.role"),
])
def test_wrong_fields_or_types_are_422(api, check_error, path, body, param):
    error = check_error(api.post(path, json=body), 422)
    assert error["param"] is not None and error["param"].startswith(param), error
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("item", [{"image": "not base64!"}, {"image": base64.b64encode(b"not a png").decode()},
                                  "a string for an image model"])
def test_bad_image_inputs_are_422(api, check_error, item):
    error = check_error(api.post("/v1/predict", json={"model": "img", "inputs": [item]}), 422)
    assert error["param"] == "inputs.0"


def test_bad_record_fields_or_values_name_the_field(api, check_error):
    error = check_error(api.post("/v1/predict", json={"model": "tab", "inputs": [{"bil_length": 3}]}), 422)
    assert "bil_length" in error["message"]
    bad_value = {"model": "tab", "inputs": [{"island": "Dream", "bill_length_mm": "long"}]}
    assert "bill_length_mm" in check_error(api.post("/v1/predict", json=bad_value), 422)["message"]


def test_oversized_body_is_413(api, check_error):
    big = {"model": "clf", "inputs": ["word " * 1000]}
    assert check_error(api.post("/v1/predict", json=big), 413)["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit is counted while reading
        yield b'{"model": "clf", "inputs": ["'
        for _ in range(50):
            yield b"x" * 100
        yield b'"]}'

    r = api.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    check_error(r, 413)
    _still_serves(api)


def test_limits_on_tokens_inputs_and_length_are_400(api, check_error):
    cases = [
        ({"model": "gpt", "prompt": "a", "max_new_tokens": 33}, "/v1/generate", "max_new_tokens_exceeded"),
        ({"model": "gpt", "prompt": "~" * 150}, "/v1/generate", "context_length_exceeded"),  # 150 tokens > 96
        ({"model": "gpt", "prompt": "x" * 201}, "/v1/generate", "input_too_long"),
        ({"model": "clf", "inputs": ["a"] * 5}, "/v1/predict", "too_many_inputs"),
        ({"model": "clf", "inputs": ["x" * 201]}, "/v1/predict", "input_too_long"),
        ({"model": "gpt", "prompt": "a", "max_tokens": 100}, "/v1/completions", "max_new_tokens_exceeded"),
    ]
    for body, path, code in cases:
        assert check_error(api.post(path, json=body), 400)["code"] == code, (path, body)
    _still_serves(api)


def test_unknown_model_is_404_and_missing_model_400(api, check_error):
    error = check_error(api.post("/v1/predict", json={"model": "nope", "inputs": ["x"]}), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert check_error(api.post("/v1/predict", json={"inputs": ["x"]}), 400)["code"] == "model_required"
    # one model serves generation, so it may go unnamed
    assert api.post("/v1/generate", json={"prompt": "a", "max_new_tokens": 2}).status_code == 200


def test_wrong_endpoint_for_the_model_is_400(api, check_error):
    r = api.post("/v1/generate", json={"model": "clf", "prompt": "a"})
    assert check_error(r, 400)["code"] == "unsupported_endpoint"
    r = api.post("/v1/predict", json={"model": "gpt", "inputs": ["a"]})
    assert check_error(r, 400)["code"] == "unsupported_endpoint"


def test_missing_or_wrong_api_key_is_401(api, check_error):
    body = {"model": "clf", "inputs": ["x"]}
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = api.post("/v1/predict", json=body, headers=headers)
        assert check_error(r, 401)["type"] == "authentication_error"
    assert check_error(api.get("/v1/models", headers={"Authorization": ""}), 401)
    assert api.get("/healthz", headers={"Authorization": ""}).status_code == 200  # probes need no key
    _still_serves(api)


def test_unknown_route_and_method_keep_the_shape(api, check_error):
    check_error(api.get("/v1/nothing"), 404)
    check_error(api.get("/v1/predict"), 405)


def test_unsupported_openai_fields_are_400(api, check_error):
    r = api.post("/v1/completions", json={"model": "gpt", "prompt": "a", "logprobs": 2})
    assert check_error(r, 400)["param"] == "logprobs"
    r = api.post("/v1/completions", json={"model": "gpt", "prompt": "a", "frequency_penalty": 0.5})
    assert check_error(r, 400)["param"] == "frequency_penalty"


def test_errors_are_counted_in_the_metrics(api):
    api.post("/v1/predict", json={"model": "nope", "inputs": ["x"]})
    text = api.get("/metrics").text
    assert 'route="/v1/predict",status="404"' in text and 'status="401"' in text
