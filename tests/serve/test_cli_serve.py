"""`practicum serve` as a command: bundles that cannot be served fail before the port is bound
with one `error: cannot serve NAME: why` line; a taken port is a clear error; SIGTERM during a
streamed generation lets the stream finish, turns /readyz to 503, and exits 0."""

from __future__ import annotations

import json
import shutil
import signal
import socket
from pathlib import Path

import httpx
import pytest
import torch
from browser import ServerProcess

from practicum import api
from practicum.bundle import Bundle, save_lm_bundle
from practicum.cli import main
from practicum.config import LMConfig, RunConfig, TaskConfig
from practicum.errors import UserError
from practicum.models.lm import TransformerLM
from practicum.serve.settings import parse_models


def _one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line]
    assert err and err[-1].startswith("error: ") and not any("Traceback" in line for line in err), err
    return err[-1]


def test_a_missing_bundle_fails_with_one_line(capsys, tmp_path):
    assert main(["serve", f"x={tmp_path / 'nothing'}", "--port", "1"]) == 2
    line = _one_error(capsys)
    assert line.startswith("error: cannot serve x: ") and "does not exist" in line


def test_a_damaged_bundle_fails_before_the_port_is_bound(capsys, tmp_path, tiny_causal_source):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_causal_source, broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    with socket.socket() as taken:  # the port is taken: the load error must come first anyway
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", f"good={tiny_causal_source}", f"bad={broken}", "--port", str(port)]) == 2
    assert _one_error(capsys).startswith("error: cannot serve bad: ")


def test_a_taken_port_is_a_clear_error(capsys, text_classifier_bundle):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(text_classifier_bundle), "--port", str(port)]) == 2
    line = _one_error(capsys)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line


def test_names_and_settings_are_checked(tmp_path):
    run = tmp_path / "myrun" / "bundle"
    run.mkdir(parents=True)
    assert parse_models([str(run), f"b={run}"]) == {"myrun": run, "b": run}
    with pytest.raises(UserError, match="two models are named"):
        parse_models([f"a={run}", f"a={run}"])
    with pytest.raises(UserError, match="may hold only"):
        parse_models([f"a b={run}"])
    with pytest.raises(UserError, match="unknown setting 'max_batchh'"):
        api.serve([str(run)], max_batchh=3)
    with pytest.raises(UserError, match="--max-batch must be >= 1"):
        api.serve([str(run)], max_batch=0)


@pytest.fixture(scope="module")
def slow_bundle(tmp_path_factory, tiny_causal_source) -> Path:
    """The tiny LLaMA's tokenizer (less its eos, so nothing ends early) on a model with a long
    context: a generation of hundreds of tokens, slow enough to signal in the middle of."""
    from practicum.data.tokenizers import Tokenizer

    loaded = Bundle.load(tiny_causal_source).tokenizer
    tokenizer = Tokenizer(loaded.inner, {k: v for k, v in loaded.specials.items() if k != "eos"})
    torch.manual_seed(0)
    cfg = LMConfig(preset="llama-tiny", vocab_size=tokenizer.vocab_size, block_size=1024)
    run = RunConfig(name="slow", model=cfg, task=TaskConfig(type="causal_lm"))
    return save_lm_bundle(tmp_path_factory.mktemp("slow") / "bundle", run, TransformerLM(cfg), tokenizer, {})


def _not_ready(url: str) -> bool:
    """/readyz says 503, or the server no longer accepts connections."""
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 503
    except httpx.TransportError:
        return True


@pytest.mark.slow
def test_sigterm_finishes_the_stream_in_flight_then_exits_0(slow_bundle, tmp_path):
    with ServerProcess({"slow": slow_bundle}, log=tmp_path / "serve.log") as server:
        server.wait_ready()
        url, proc = server.url, server.proc
        body = {"prompt": "the card", "max_new_tokens": 500, "temperature": 0, "stream": True}
        events, after, refused = [], 0, False
        with httpx.stream("POST", f"{url}/v1/generate", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(line[len("data: "):])
                if len(events) == 1:
                    proc.send_signal(signal.SIGTERM)
                elif proc.returncode is None and len(events) > 1:
                    after += 1
                    if not refused and after % 20 == 0:
                        refused = _not_ready(url)
        assert events[-1] == "[DONE]", events[-3:]
        final = json.loads(events[-2])
        assert final == {"finish_reason": "length", "tokens": 500}
        assert after > 10  # the stream went on after the signal
        assert refused or _not_ready(url)
        assert proc.wait(timeout=60) == 0
        log = server.output()
        assert "serving slow at" in log and "finishing in-flight requests" in log
