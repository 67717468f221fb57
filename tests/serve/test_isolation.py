"""One client's bad request fails alone: with 30 good requests in flight beside it (batched with
it), every good one succeeds and the bad one gets a 4xx JSON error, never a 5xx; abandoned work
is cancelled; what a request may buy is limited."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
import socket
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from practicum.generate import GenerationConfig, StopMatcher, sample_next
from practicum.serve.decoding import DecodeEngine

GOOD_TEXT = ["my card was declined", "a cheap flight to rome", "the goalkeeper saved it"]
GOOD_RECORD = {"island": "Dream", "bill_length_mm": 39.0, "sex": "male"}


def _png(size: tuple[int, int] = (8, 8), mode: str = "L", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0]), dtype=np.uint8)).convert(
        mode).save(buffer, format=fmt)
    return buffer.getvalue()


def _b64(raw: bytes) -> dict[str, str]:
    return {"image": base64.b64encode(raw).decode()}


def _broken_crc(png: bytes) -> bytes:
    """The PNG with the checksum of its header chunk wrong."""
    end = png.index(b"IHDR") + 4 + 13
    return png[:end] + bytes([png[end] ^ 1]) + png[end + 1:]


def _truncated_header() -> bytes:
    """A PNG whose header chunk is too short (Pillow raises ValueError, not an OSError)."""
    data = b"\x00\x00\x00\x08\x00"
    return (b"\x89PNG\r\n\x1a\n" + len(data).to_bytes(4, "big") + b"IHDR" + data
            + zlib.crc32(b"IHDR" + data).to_bytes(4, "big"))


GOOD = {  # route -> body of a well-behaved request
    "predict": ("/v1/predict", {"model": "clf", "inputs": GOOD_TEXT}),
    "tabular": ("/v1/predict", {"model": "tab", "inputs": [GOOD_RECORD]}),
    "image": ("/v1/predict", {"model": "img", "inputs": [_b64(_png())]}),
    "embed": ("/v1/embed", {"model": "gpt", "inputs": GOOD_TEXT}),
    "embeddings": ("/v1/embeddings", {"model": "gpt", "input": GOOD_TEXT}),
    "generate": ("/v1/generate", {"model": "gpt", "prompt": "the card", "max_new_tokens": 12,
                                  "temperature": 0.8, "seed": 1}),
    "completions": ("/v1/completions", {"model": "gpt", "prompt": "a refund", "max_tokens": 12}),
    "chat": ("/v1/chat/completions", {"model": "gpt", "max_tokens": 12,
                                      "messages": [{"role": "user", "content": "hello"}]}),
}

BAD = {  # name -> (route of the good requests beside it, path, raw JSON body, statuses it may get)
    "temperature 1e-300": ("generate", "/v1/generate",
                           '{"model": "gpt", "prompt": "the", "max_new_tokens": 12, "temperature": 1e-300}',
                           {200}),
    "temperature 1e-45": ("completions", "/v1/completions",
                          '{"model": "gpt", "prompt": "the", "max_tokens": 12, "temperature": 1e-45}', {200}),
    "top_p 1e-300": ("generate", "/v1/generate",
                     '{"model": "gpt", "prompt": "the", "max_new_tokens": 12, "top_p": 1e-300}', {200}),
    "repetition_penalty 1e-300": ("generate", "/v1/generate",
                                  '{"model": "gpt", "prompt": "the", "repetition_penalty": 1e-300}', {422}),
    "seed 2**64": ("generate", "/v1/generate", '{"model": "gpt", "prompt": "the", "seed": 18446744073709551616}',
                   {422}),
    "seed below -2**63": ("completions", "/v1/completions",
                          '{"model": "gpt", "prompt": "the", "seed": -9223372036854775809}', {422}),
    "lone surrogate in a prompt": ("generate", "/v1/generate", '{"model": "gpt", "prompt": "a \\ud800 b"}',
                                   {400}),
    "lone surrogate in a chat message": ("chat", "/v1/chat/completions",
                                         '{"model": "gpt", "messages": [{"role": "user", "content": "\\udfff"}]}',
                                         {400}),
    "dict input to an LM's embed": ("embed", "/v1/embed", '{"model": "gpt", "inputs": [{"a": 1}]}', {422}),
    "lone surrogate in embed": ("embeddings", "/v1/embeddings", '{"model": "gpt", "input": ["\\ud800"]}',
                                {400}),
    "lone surrogate in a text input": ("predict", "/v1/predict", '{"model": "clf", "inputs": ["\\ud800"]}',
                                       {400}),
    "lone surrogate in a tabular field": ("tabular", "/v1/predict",
                                          '{"model": "tab", "inputs": [{"island": "\\ud800"}]}', {400}),
    "feature 1e30": ("tabular", "/v1/predict", '{"model": "tab", "inputs": [{"bill_length_mm": 1e30}]}',
                     {200, 422}),
    "feature 1e308": ("tabular", "/v1/predict", '{"model": "tab", "inputs": [{"bill_length_mm": 1e308}]}',
                      {422}),
    "feature Infinity": ("tabular", "/v1/predict",
                         '{"model": "tab", "inputs": [{"bill_length_mm": Infinity}]}', {400}),
    "feature NaN": ("tabular", "/v1/predict", '{"model": "tab", "inputs": [{"bill_length_mm": NaN}]}', {400}),
    "feature of 30 digits": ("tabular", "/v1/predict",
                             '{"model": "tab", "inputs": [{"bill_length_mm": 123456789012345678901234567890}]}',
                             {200, 422}),
    "feature 1e400": ("tabular", "/v1/predict", '{"model": "tab", "inputs": [{"body_mass_g": 1e400}]}', {400}),
    "png with a broken checksum": ("image", "/v1/predict",
                                   json.dumps({"model": "img", "inputs": [_b64(_broken_crc(_png()))]}), {422}),
    "png with a truncated header": ("image", "/v1/predict",
                                    json.dumps({"model": "img", "inputs": [_b64(_truncated_header())]}), {422}),
    "gif": ("image", "/v1/predict", json.dumps({"model": "img", "inputs": [_b64(_png(fmt="GIF"))]}), {422}),
    "tiff": ("image", "/v1/predict", json.dumps({"model": "img", "inputs": [_b64(_png(fmt="TIFF"))]}), {422}),
    "mutated tiff": ("image", "/v1/predict",
                     json.dumps({"model": "img", "inputs": [_b64(_png(fmt="TIFF")[:40] + b"\xff" * 60)]}), {422}),
    "truncated jpeg": ("image", "/v1/predict",
                       json.dumps({"model": "img", "inputs": [_b64(_png(fmt="JPEG")[:200])]}), {422}),
    "long stop strings": ("generate", "/v1/generate",
                          json.dumps({"model": "gpt", "prompt": "the", "stop": ["x" * 200_000] * 8}), {400, 413}),
    "many sequences": ("completions", "/v1/completions",
                       json.dumps({"model": "gpt", "prompt": ["a"] * 256, "n": 16, "max_tokens": 4}), {400}),
    "many messages": ("chat", "/v1/chat/completions",
                      json.dumps({"model": "gpt", "messages": [{"role": "user", "content": ""}] * 1000}), {400}),
}


async def _storm(url: str, good: tuple[str, dict], bad: tuple[str, str], n: int = 30) -> tuple[list, Any]:
    """n good requests and one bad one at the same time (the bad one sent in the middle)."""
    path, body = good
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        goods = [c.post(path, json=body) for _ in range(n)]
        worst = c.post(bad[0], content=bad[1].encode(), headers={"Content-Type": "application/json"})
        responses = await asyncio.gather(*goods[:n // 2], worst, *goods[n // 2:])
    return responses[:n // 2] + responses[n // 2 + 1:], responses[n // 2]


@pytest.fixture(scope="module")
def live(bundles, make_live):
    models = {k: bundles[k] for k in ("clf", "tab", "img", "gpt")}
    with make_live(models, max_wait_ms=50) as (url, state):
        yield url, state


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_request_fails_alone(name, live, check_error):
    url, _ = live
    route, path, body, statuses = BAD[name]
    goods, bad = asyncio.run(_storm(url, GOOD[route], (path, body)))
    failed = [(r.status_code, r.text[:200]) for r in goods if r.status_code != 200]
    assert not failed, failed
    assert bad.status_code in statuses, bad.text[:300]
    if bad.status_code != 200:
        check_error(bad, bad.status_code)


def test_client_errors_log_one_line_and_no_traceback(live, caplog):
    url, _ = live
    with caplog.at_level("INFO", logger="practicum"):
        r = httpx.post(f"{url}/v1/predict", json={"model": "img", "inputs": [_b64(_png(fmt="GIF"))]}, timeout=30)
    assert r.status_code == 422 and "PNG or JPEG" in r.json()["error"]["message"]
    refused = [rec for rec in caplog.records if "422" in rec.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None


# ---------------------------------------------------------------- sampling and decoding


@pytest.mark.parametrize("settings", [dict(temperature=1e-300), dict(temperature=1e-45),
                                      dict(top_p=1e-300), dict(repetition_penalty=1e-300),
                                      dict(repetition_penalty=1e300, temperature=0.5)])
def test_degenerate_sampling_values_still_give_a_token(settings):
    torch.manual_seed(0)
    logits = torch.randn(3, 50) * 5
    history = torch.tensor([[1, 2, 3], [4, 5, -1], [6, -1, -1]])
    token = sample_next(logits, history, GenerationConfig(**settings), torch.Generator().manual_seed(0))
    assert token.shape == (3,) and bool(((token >= 0) & (token < 50)).all())
    if settings.get("temperature", 1.0) < 1e-5:
        assert token.tolist() == logits.argmax(-1).tolist()


def test_a_row_whose_sampling_fails_ends_alone(tiny_causal_source, monkeypatch):
    """The rows decoding beside a failing one finish normally; only its stream gets the error."""
    from practicum.bundle import Bundle
    from practicum.serve import decoding

    lm = Bundle.load(tiny_causal_source)
    real = decoding.sample_next

    def flaky(logits, history, cfg, generator=None):
        if cfg.seed == 666:
            raise RuntimeError("probability tensor contains either inf, nan or element < 0")
        return real(logits, history, cfg, generator)

    monkeypatch.setattr(decoding, "sample_next", flaky)
    engine = DecodeEngine("gpt", lm.model, lm.tokenizer, max_batch=16, max_wait_s=0.05)
    engine.start()
    ids, eos = lm.tokenizer.encode("the card"), frozenset()

    async def run() -> list[Any]:
        good = [engine.open([ids], GenerationConfig(max_new_tokens=20, temperature=0.7, seed=i), eos)
                for i in range(7)]
        bad = engine.open([ids], GenerationConfig(max_new_tokens=20, temperature=0.7, seed=666), eos)
        return await asyncio.gather(*(s.collect() for s in [*good, bad]), return_exceptions=True)

    try:
        results = asyncio.run(run())
    finally:
        engine.stop()
    assert isinstance(results[-1], RuntimeError)
    assert all(isinstance(r, list) and r[0].tokens == 20 for r in results[:-1]), results


def test_stop_matcher_finds_what_a_search_finds():
    rng = np.random.default_rng(0)
    for _ in range(300):
        text = "".join(rng.choice(list("aab"), size=40))
        stops = ["".join(rng.choice(list("ab"), size=int(rng.integers(1, 5)))) for _ in range(3)]
        matcher, found, at = StopMatcher(stops), None, 0
        while found is None and at < len(text):
            piece = text[at:at + int(rng.integers(1, 6))]
            found = matcher.feed(piece)
            at += len(piece)
        ends = [(k + len(s), k) for s in stops if (k := text.find(s)) >= 0]
        assert found == (min(ends)[1] if ends else None), (text, stops)
        if found is None:  # what is held back is the longest end that starts a stop string
            assert matcher.held == max((n for s in stops for n in range(1, len(s)) if text.endswith(s[:n])),
                                       default=0)


def test_stop_strings_are_limited(make_client, tiny_causal_source, check_error):
    with make_client({"gpt": tiny_causal_source}, max_stops=2, max_stop_chars=10) as c:
        body = {"model": "gpt", "prompt": "the", "max_new_tokens": 4}
        assert "--max-stops" in check_error(c.post("/v1/generate", json={**body, "stop": ["a", "b", "c"]}),
                                            400)["message"]
        assert "--max-stop-chars" in check_error(c.post("/v1/generate", json={**body, "stop": "x" * 11}),
                                                 400)["message"]
        assert c.post("/v1/generate", json={**body, "stop": ["x" * 10, "y"]}).status_code == 200


def test_what_a_request_may_buy_is_limited(make_client, tiny_causal_source, check_error):
    with make_client({"gpt": tiny_causal_source}, max_sequences=8, max_request_tokens=64, max_messages=3) as c:
        error = check_error(c.post("/v1/completions", json={"model": "gpt", "prompt": ["a", "b", "c"], "n": 3,
                                                            "max_tokens": 2}), 400)
        assert error["code"] == "too_many_sequences" and "--max-sequences" in error["message"]
        error = check_error(c.post("/v1/completions", json={"model": "gpt", "prompt": "a", "n": 4,
                                                            "max_tokens": 20}), 400)
        assert error["code"] == "too_many_tokens" and "80" in error["message"]
        chat = {"model": "gpt", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}] * 4}
        assert check_error(c.post("/v1/chat/completions", json=chat), 400)["code"] == "too_many_messages"
        assert c.post("/v1/completions", json={"model": "gpt", "prompt": ["a", "b"], "n": 4,
                                               "max_tokens": 8}).status_code == 200


def test_the_rendered_conversation_is_limited(make_client, tiny_causal_source, check_error):
    """Empty messages cost template text although their content is empty."""
    with make_client({"gpt": tiny_causal_source}, max_input_chars=100) as c:
        chat = {"model": "gpt", "max_tokens": 2, "messages": [{"role": "user", "content": ""}] * 40}
        error = check_error(c.post("/v1/chat/completions", json=chat), 400)
        assert error["code"] == "input_too_long" and "chat template renders" in error["message"]


@pytest.fixture(scope="module")
def hostile_template(tiny_causal_source, tmp_path_factory) -> Path:
    """The tiny LM with a template that reaches for Python internals on one message, and refuses
    a conversation that does not start with the user."""
    folder = tmp_path_factory.mktemp("hostile") / "bundle"
    shutil.copytree(tiny_causal_source, folder)
    info = json.loads((folder / "bundle.json").read_text())
    info["chat_template"] = (
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('the first message must be the user') }}"
        "{% endif %}{% for m in messages %}{% if m['content'] == 'attack' %}"
        "{{ ''.__class__.__mro__[1].__subclasses__() }}{% endif %}{{ m['content'] }}\n{% endfor %}")
    (folder / "bundle.json").write_text(json.dumps(info))
    return folder


def test_a_chat_template_refusal_is_a_client_error(make_client, hostile_template, check_error):
    with make_client({"gpt": hostile_template}) as c:
        def chat(messages: list[dict]) -> Any:
            return c.post("/v1/chat/completions", json={"model": "gpt", "max_tokens": 2, "messages": messages})

        error = check_error(chat([{"role": "user", "content": "attack"}]), 400)
        assert error["code"] == "chat_template_error" and "SecurityError" in error["message"]
        error = check_error(chat([{"role": "assistant", "content": "hi"}]), 400)
        assert "the first message must be the user" in error["message"]
        assert chat([{"role": "user", "content": "hello"}]).status_code == 200


def test_images_in_a_request_are_limited_in_pixels(make_client, image_classifier_bundle, check_error):
    with make_client({"img": image_classifier_bundle}, max_image_pixels=400, max_request_pixels=500) as c:
        big = _b64(_png((21, 20)))
        assert check_error(c.post("/v1/predict", json={"inputs": [big]}), 400)["code"] == "image_too_large"
        error = check_error(c.post("/v1/predict", json={"inputs": [_b64(_png((16, 16)))] * 2}), 400)
        assert error["code"] == "images_too_large" and "--max-request-pixels" in error["message"]
        assert c.post("/v1/predict", json={"inputs": [_b64(_png((20, 20)))]}).status_code == 200


# ---------------------------------------------------------------- abandoned work


def _metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize("transport", ["practicum", "plain uvicorn"])
def test_an_abandoned_generation_is_cancelled(transport, tiny_causal_source, make_live):
    """A client that leaves a large non-streaming request: its sequences are dropped (queued and
    running), so a short request right after does not wait behind them. practicum's transport
    reports the lost connection itself; under plain uvicorn a watcher sees http.disconnect."""
    plain = transport == "plain uvicorn"
    with make_live({"gpt": tiny_causal_source}, plain_uvicorn=plain, max_batch=8, max_new_tokens=512) as (url, _):
        body = json.dumps({"model": "gpt", "prompt": ["the card", "a refund"], "n": 16, "max_tokens": 512,
                           "temperature": 1.0}).encode()
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.5)  # the 32 sequences are decoding, 8 at a time
        before = _metric(url, "practicum_generated_tokens_total", model="gpt")
        start = time.perf_counter()
        r = httpx.post(f"{url}/v1/generate", json={"model": "gpt", "prompt": "hi", "max_new_tokens": 4,
                                                   "temperature": 0}, timeout=30)
        waited = time.perf_counter() - start
        time.sleep(0.2)
        made = _metric(url, "practicum_generated_tokens_total", model="gpt") - before
        cancelled = _metric(url, "practicum_cancelled_total", model="gpt", kind="sequences")
        gone = _metric(url, "practicum_requests_total", route="/v1/completions", status="499")
        errors = _metric(url, "practicum_requests_total", status="500")
    assert r.status_code == 200 and r.json()["tokens"] == 4
    assert (gone, errors) == (1, 0)  # the client closed the request; the server did not fail
    assert cancelled >= 16, cancelled  # at least the sequences never admitted (8 rows, 32 asked)
    assert made < 8 * 4 * 2, made  # nothing like the 16,384 tokens the abandoned request asked for
    assert waited < 2.0, waited


def test_a_stream_whose_client_leaves_is_cancelled(tiny_causal_source, make_live):
    with make_live({"gpt": tiny_causal_source}, max_new_tokens=512) as (url, _):
        body = json.dumps({"model": "gpt", "prompt": "the card", "max_new_tokens": 512, "stream": True,
                           "temperature": 1.0}).encode()
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            seen = b""
            while b"data:" not in seen:  # the stream has started
                chunk = sock.recv(4096)
                assert chunk, seen
                seen += chunk
        deadline = time.monotonic() + 10
        while _metric(url, "practicum_cancelled_total", model="gpt", kind="sequences") < 1:
            assert time.monotonic() < deadline, "the abandoned stream was not cancelled"
            time.sleep(0.05)
        made = _metric(url, "practicum_generated_tokens_total", model="gpt")
        time.sleep(0.3)
        assert _metric(url, "practicum_generated_tokens_total", model="gpt") == made
