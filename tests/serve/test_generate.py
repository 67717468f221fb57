"""/v1/generate against practicum.generate as oracle: greedy and seeded text, stop strings, the
server-sent event stream (pieces join to the whole text, then finish and [DONE]), and chat
prompts rendered with the bundle's template."""

from __future__ import annotations

import json

import pytest

from practicum.bundle import Bundle
from practicum.data.sft import render_chat
from practicum.generate import GenerationConfig, generate


@pytest.fixture(scope="module")
def lm(tiny_causal_source):
    return Bundle.load(tiny_causal_source)


@pytest.fixture(scope="module")
def api(tiny_causal_source, make_client):
    with make_client({"gpt": tiny_causal_source}) as c:
        yield c


def _expected(lm, prompt: str, **cfg) -> str:
    return generate(lm.model, lm.tokenizer, [prompt], GenerationConfig(**cfg))[0]


def sse_events(text: str) -> list:
    """The data of each server-sent event: parsed JSON, or the string [DONE]."""
    out = []
    for block in text.strip().split("\n\n"):
        assert block.startswith("data: "), block
        data = block[len("data: "):]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_greedy_generation_matches_the_library(api, lm):
    want = _expected(lm, "the card", max_new_tokens=20, temperature=0)
    r = api.post("/v1/generate", json={"prompt": "the card", "max_new_tokens": 20, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "gpt", "text": want.text, "tokens": want.new_tokens,
                        "finish_reason": "stop" if want.finish_reason == "eos" else want.finish_reason}


def test_seeded_sampling_matches_the_library_and_repeats(api, lm):
    body = {"model": "gpt", "prompt": "a refund", "max_new_tokens": 15, "temperature": 0.9, "top_k": 20,
            "top_p": 0.95, "seed": 7}
    first = api.post("/v1/generate", json=body).json()
    assert api.post("/v1/generate", json=body).json() == first
    want = _expected(lm, "a refund", max_new_tokens=15, temperature=0.9, top_k=20, top_p=0.95, seed=7)
    assert first["text"] == want.text


def test_stop_string_cuts_the_text(api, lm):
    full = _expected(lm, "travel", max_new_tokens=30, temperature=0).text
    stop = full[len(full) // 2: len(full) // 2 + 2]
    assert stop.strip(), full  # a greedy random model repeats itself; the cut is where stop first shows
    r = api.post("/v1/generate", json={"prompt": "travel", "max_new_tokens": 30, "temperature": 0,
                                       "stop": [stop]}).json()
    assert r["finish_reason"] == "stop" and r["text"] == full[:full.index(stop)]


def test_stream_pieces_join_to_the_whole_text(api, lm):
    body = {"prompt": "the card", "max_new_tokens": 25, "temperature": 0}
    whole = api.post("/v1/generate", json=body).json()
    with api.stream("POST", "/v1/generate", json={**body, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    assert events[-1] == "[DONE]"
    assert events[-2] == {"finish_reason": whole["finish_reason"], "tokens": whole["tokens"]}
    pieces = [e["text"] for e in events[:-2]]
    assert len(pieces) > 1 and "".join(pieces) == whole["text"]


def test_generation_past_the_context_gives_every_token_asked_for(char_gpt, make_client):
    lm = Bundle.load(char_gpt)
    prompt = "the card was declined at the s"
    assert len(lm.tokenizer.encode(prompt)) == 30  # of the 32 positions
    want = _expected(lm, prompt, max_new_tokens=40, temperature=0)
    assert (want.new_tokens, want.finish_reason) == (40, "length")  # the library slides on
    body = {"prompt": prompt, "max_new_tokens": 40, "temperature": 0}
    with make_client({"char": char_gpt}) as api:
        r = api.post("/v1/generate", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"model": "char", "text": want.text, "tokens": 40, "finish_reason": "length"}
        with api.stream("POST", "/v1/generate", json={**body, "stream": True}) as r:
            events = sse_events(r.read().decode())
    assert events[-2:] == [{"finish_reason": "length", "tokens": 40}, "[DONE]"]
    assert "".join(e["text"] for e in events[:-2]) == want.text


def test_repetition_penalty_matches_the_library(api, lm):
    want = _expected(lm, "the card", max_new_tokens=20, temperature=0, repetition_penalty=1.5)
    r = api.post("/v1/generate", json={"prompt": "the card", "max_new_tokens": 20, "temperature": 0,
                                       "repetition_penalty": 1.5}).json()
    assert r["text"] == want.text


def test_chat_uses_the_bundle_template(api, lm):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "my card"}]
    prompt = render_chat(lm.info["chat_template"], messages, True, lm.tokenizer)
    want = _expected(lm, prompt, max_new_tokens=12, temperature=0)
    r = api.post("/v1/chat/completions", json={"model": "gpt", "messages": messages, "max_tokens": 12,
                                               "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"] == {"role": "assistant", "content": want.text}
    assert r.json()["usage"]["prompt_tokens"] == len(lm.tokenizer.encode(prompt))
