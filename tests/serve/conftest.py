"""Server fixtures: apps over the session's tiny bundles, in-process (TestClient) or on a real
uvicorn in a thread (for the openai client, concurrency and streaming over a socket)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from practicum.serve import ServeSettings, create_app


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models lose to thread start-up on a busy 2-core CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def char_gpt(tmp_path_factory) -> Path:
    """A GPT (learned positions) with a char tokenizer, a 32-token context and no chat template,
    like a pretrained char GPT; its eos logit is pushed down, so greedy decoding always runs
    to max_new_tokens."""
    from practicum.bundle import save_lm_bundle
    from practicum.config import LMConfig, RunConfig, TaskConfig
    from practicum.data.tokenizers import train_tokenizer
    from practicum.models.lm import TransformerLM

    tok = train_tokenizer("char", ["the card was declined at the shop so I asked for a refund"], vocab_size=64)
    torch.manual_seed(0)
    cfg = LMConfig(preset="gpt-tiny", vocab_size=tok.vocab_size, block_size=32, tie_embeddings=False,
                   lm_head_bias=True)
    model = TransformerLM(cfg)
    with torch.no_grad():
        model.lm_head.bias[tok.eos_id] = -100.0
    run = RunConfig(name="char_gpt", model=cfg, task=TaskConfig(type="causal_lm"))
    return save_lm_bundle(tmp_path_factory.mktemp("char_gpt") / "bundle", run, model, tok, {})


@pytest.fixture(scope="module")
def bundles(text_classifier_bundle, tabular_classifier_bundle, image_classifier_bundle,
            tiny_causal_source, tiny_source) -> dict[str, Path]:
    return {"clf": text_classifier_bundle, "tab": tabular_classifier_bundle,
            "img": image_classifier_bundle, "gpt": tiny_causal_source, "bert": tiny_source}


@contextmanager
def client(models: dict[str, Path], **settings: Any) -> Iterator[Any]:
    """A TestClient over a fresh app (its lifespan runs: workers start, models warm up)."""
    from fastapi.testclient import TestClient

    app = create_app(models, ServeSettings(**settings))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@contextmanager
def live_server(models: dict[str, Path], plain_uvicorn: bool = False,
                **settings: Any) -> Iterator[tuple[str, Any]]:
    """uvicorn on a free port in a thread, with the server's own transport (timeouts, connection
    cap; plain_uvicorn: uvicorn's own protocol, as `uvicorn.run(app)` gives): (base URL, the
    app's ServeState)."""
    import uvicorn

    from practicum.serve.transport import uvicorn_config

    app = create_app(models, ServeSettings(**settings))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options = {"log_level": "warning", "lifespan": "on"}
    config = (uvicorn.Config(app, **options) if plain_uvicorn
              else uvicorn_config(app, app.state.serve.settings, **options))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.serve
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The response's status is `status` and its body the one JSON error shape; returns error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    return error


# test files import nothing from here (importlib mode): the helpers come as fixtures


@pytest.fixture(scope="session")
def make_client():
    return client


@pytest.fixture(scope="session")
def make_live():
    return live_server


@pytest.fixture(scope="session")
def check_error():
    return error_of
