"""Acceptance 3: the official `openai` client, unchanged, against a real server with a tiny
LLaMA-style bundle: models, completions and chat (streaming and not), embeddings, errors."""

from __future__ import annotations

import numpy as np
import pytest

from practicum.bundle import Bundle
from practicum.data.sft import render_chat
from practicum.generate import GenerationConfig, generate

openai = pytest.importorskip("openai")
KEY = "test-key"


@pytest.fixture(scope="module")
def server(bundles, char_gpt, make_live):
    with make_live({"gpt": bundles["gpt"], "clf": bundles["clf"], "char": char_gpt}, api_key=KEY) as (url, state):
        yield url, state


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def lm(bundles):
    return Bundle.load(bundles["gpt"])


def _greedy(lm, prompt: str, n: int) -> str:
    return generate(lm.model, lm.tokenizer, [prompt], GenerationConfig(max_new_tokens=n, temperature=0))[0].text


def test_models_list(client):
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"gpt", "clf", "char"}
    assert models["gpt"].owned_by == "practicum" and models["gpt"].object == "model"


def test_completions_plain_and_streamed(client, lm):
    done = client.completions.create(model="gpt", prompt="the card", max_tokens=12, temperature=0)
    assert done.object == "text_completion" and done.id.startswith("cmpl-")
    assert done.choices[0].text == _greedy(lm, "the card", 12)
    assert done.choices[0].finish_reason in ("stop", "length")
    assert done.usage.prompt_tokens == len(lm.tokenizer.encode("the card"))
    assert done.usage.completion_tokens + done.usage.prompt_tokens == done.usage.total_tokens
    stream = client.completions.create(model="gpt", prompt="the card", max_tokens=12, temperature=0,
                                       stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == done.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == done.choices[0].finish_reason
    assert chunks[-1].usage.total_tokens == done.usage.total_tokens


def test_completions_past_the_context_give_every_token_asked_for(client, char_gpt):
    lm = Bundle.load(char_gpt)
    prompt = "the card was declined at the s"
    assert len(lm.tokenizer.encode(prompt)) == 30  # of the 32 positions
    want = _greedy(lm, prompt, 40)
    done = client.completions.create(model="char", prompt=prompt, max_tokens=40, temperature=0)
    assert (done.choices[0].text, done.choices[0].finish_reason) == (want, "length")
    assert done.usage.completion_tokens == 40
    chunks = list(client.completions.create(model="char", prompt=prompt, max_tokens=40, temperature=0,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks) == want
    assert chunks[-1].choices[0].finish_reason == "length"


def test_completions_several_prompts_and_choices(client, lm):
    done = client.completions.create(model="gpt", prompt=["a refund", "travel"], max_tokens=6,
                                     temperature=0, n=2)
    assert [c.index for c in done.choices] == [0, 1, 2, 3]
    assert [c.text for c in done.choices] == [_greedy(lm, "a refund", 6)] * 2 + [_greedy(lm, "travel", 6)] * 2


def test_chat_plain_and_streamed(client, lm):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "my card"}]
    prompt = render_chat(lm.info["chat_template"], messages, True, lm.tokenizer)
    done = client.chat.completions.create(model="gpt", messages=messages, max_tokens=10, temperature=0)
    assert done.object == "chat.completion" and done.id.startswith("chatcmpl-")
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content == _greedy(lm, prompt, 10)
    stream = client.chat.completions.create(model="gpt", messages=messages, max_tokens=10, temperature=0,
                                            stream=True)
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == done.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == done.choices[0].finish_reason


def test_seeded_chat_repeats(client):
    ask = {"model": "gpt", "messages": [{"role": "user", "content": "travel"}], "max_tokens": 8,
           "temperature": 1.0, "seed": 3, "extra_body": {"top_k": 30}}
    first = client.chat.completions.create(**ask).choices[0].message.content
    assert client.chat.completions.create(**ask).choices[0].message.content == first


def test_embeddings_float_and_base64(client, server):
    import httpx

    texts = ["my card", "a flight to rome"]
    floats = client.embeddings.create(model="clf", input=texts, encoding_format="float")
    packed = client.embeddings.create(model="clf", input=texts)  # the client asks for base64
    native = httpx.post(f"{server[0]}/v1/embed", json={"model": "clf", "inputs": texts},
                        headers={"Authorization": f"Bearer {KEY}"}).json()["embeddings"]
    for a, b, c in zip(floats.data, packed.data, native, strict=True):
        assert np.allclose(a.embedding, c, atol=1e-6) and np.allclose(b.embedding, c, atol=1e-6)


def test_client_errors(client, server):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="a", max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="max_new_tokens_exceeded|more than"):
        client.completions.create(model="gpt", prompt="a", max_tokens=100_000)
    wrong = openai.OpenAI(base_url=f"{server[0]}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
