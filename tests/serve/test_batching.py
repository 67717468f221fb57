"""Dynamic batching: concurrent requests really run together (batch-size histogram, engine steps
with several rows) and give what they give alone (Bundle.predict, practicum.generate); one bad
request in a batch fails alone; sequences join a running decoding batch between steps."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import torch

from practicum.bundle import Bundle
from practicum.config import LMConfig
from practicum.data.tokenizers import train_tokenizer
from practicum.errors import UserError
from practicum.generate import GenerationConfig, generate
from practicum.models.lm import TransformerLM
from practicum.serve.batching import Job, MicroBatcher
from practicum.serve.decoding import DecodeEngine
from practicum.serve.metrics import ServeMetrics
from practicum.serve.models import Predictor
from practicum.serve.settings import ServeSettings

PROMPTS = ["the card", "a refund for", "travel to", "my", "the goalkeeper saved the", "flight"]


def test_micro_batcher_gathers_waiting_jobs_into_one_batch():
    release, sizes = threading.Event(), []

    def run(jobs: list[Job]) -> None:
        sizes.append([len(j.items) for j in jobs])
        release.wait(10)
        for j in jobs:
            j.future.set_result([x * 2 for x in j.items])

    batcher = MicroBatcher("m", run, max_batch=8, max_wait_s=0.0)
    batcher.start()
    first = batcher.submit_nowait("predict", [1])
    while not sizes:  # the worker holds the first job; the next ones queue up meanwhile
        threading.Event().wait(0.005)
    later = [batcher.submit_nowait("predict", [i, i]) for i in range(5)]  # 10 inputs: 4 jobs fit in 8
    release.set()
    assert first.result(10) == [2] and [f.result(10) for f in later] == [[2 * i, 2 * i] for i in range(5)]
    batcher.stop()
    assert sizes == [[1], [2, 2, 2, 2], [2]]


def test_one_bad_request_in_a_batch_fails_alone(tabular_classifier_bundle):
    bundle = Bundle.load(tabular_classifier_bundle)
    model = Predictor("tab", bundle, ServeSettings(), ServeMetrics())
    good = {"island": "Dream", "bill_length_mm": 39.0}

    def job(op: str, items: list) -> Job:  # as a request makes it: its inputs checked alone first
        return Job(op, items, prepared=asyncio.run(model.prepare(items)))

    jobs = [job("predict", [good]), job("predict", [{"island": "Dream", "bill_length_mm": "long"}]),
            job("embed", [good])]
    model.batcher._run(jobs)  # the batch fails in the model; each job is run again alone
    assert jobs[0].future.result()[0]["prediction"] == bundle.predict([{**good, "bill_depth_mm": None,
        "flipper_length_mm": None, "body_mass_g": None, "sex": None, "year": None}])[0]["prediction"]
    with pytest.raises(UserError, match="bill_length_mm"):
        jobs[1].future.result()
    assert len(jobs[2].future.result()[0]) == 16  # the MLP's hidden width: what the head reads


async def _concurrently(url: str, requests: list[tuple[str, dict]]) -> list[dict]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        responses = await asyncio.gather(*(c.post(path, json=body) for path, body in requests))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    return [r.json() for r in responses]


def test_concurrent_predictions_are_batched_and_equal_unbatched(bundles, make_live):
    texts = [f"{t} number {i}" for i in range(6) for t in ("my card was declined", "a cheap flight")]
    with make_live({"clf": bundles["clf"]}, max_wait_ms=100) as (url, state):
        served = asyncio.run(_concurrently(url, [("/v1/predict", {"model": "clf", "inputs": [t]})
                                                 for t in texts]))
        counts = state.metrics.batches("clf", "predict")
    assert counts[1.0] < counts[float("inf")], counts  # at least one batch held several requests
    expected = Bundle.load(bundles["clf"]).predict(texts)
    for got, want in zip(served, expected, strict=True):
        p = got["predictions"][0]
        assert p["prediction"] == want["prediction"]
        assert p["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)


def test_concurrent_generations_share_decoding_steps(tiny_causal_source, make_live):
    lm = Bundle.load(tiny_causal_source)
    lengths = [5, 30, 12, 40, 20, 8]
    requests = [("/v1/generate", {"prompt": p, "max_new_tokens": n, "temperature": 0})
                for p, n in zip(PROMPTS, lengths, strict=True)]
    with make_live({"gpt": tiny_causal_source}, max_wait_ms=100) as (url, state):
        served = asyncio.run(_concurrently(url, requests))
        steps = state.metrics.batches("gpt", "generate")
    assert steps[1.0] < steps[float("inf")], steps  # some steps decoded several sequences
    for (_, body), got in zip(requests, served, strict=True):
        want = generate(lm.model, lm.tokenizer, [body["prompt"]],
                        GenerationConfig(max_new_tokens=body["max_new_tokens"], temperature=0))[0]
        assert got["text"] == want.text and got["tokens"] == want.new_tokens


def test_sequences_join_a_running_batch_between_steps(tiny_causal_source):
    """Continuous batching: a prompt submitted while another is decoding joins it mid-way."""
    lm = Bundle.load(tiny_causal_source)
    rows: list[int] = []
    engine = DecodeEngine("gpt", lm.model, lm.tokenizer, max_batch=8, max_wait_s=0.0, on_step=rows.append)
    engine.start()
    cfg_long, cfg_short = GenerationConfig(max_new_tokens=60, temperature=0), GenerationConfig(
        max_new_tokens=10, temperature=0)
    encode, eos = lm.tokenizer.encode, frozenset({lm.tokenizer.eos_id})

    async def run() -> tuple[str, str]:
        first = engine.open([encode("the goalkeeper saved the")], cfg_long, eos)
        events = first.events()
        text = [(await events.__anext__()).text]  # the first sequence is decoding now
        second = engine.open([encode("a refund")], cfg_short, eos)
        (short,) = await second.collect()
        async for event in events:
            text.append(event.text)
        return "".join(text), short.text

    long_text, short_text = asyncio.run(run())
    engine.stop()
    assert 2 in rows and rows[0] == 1  # alone at first, then two rows in the same steps
    want = generate(lm.model, lm.tokenizer, ["the goalkeeper saved the", "a refund"], cfg_long)
    assert long_text == want[0].text
    assert short_text == generate(lm.model, lm.tokenizer, ["a refund"], cfg_short)[0].text


@pytest.mark.parametrize("preset", ["gpt-tiny", "llama-tiny"])  # learned positions; rotary + GQA
def test_sequences_past_the_context_slide_beside_the_others(preset):
    """A 16-token context: sequences fill it at different steps (one prompt fills it alone),
    keep decoding from a window of their last 16 tokens while others join, and each gives
    what practicum.generate gives alone, with every token asked for."""
    tok = train_tokenizer("char", PROMPTS, vocab_size=64)
    torch.manual_seed(0)
    model = TransformerLM(LMConfig(preset=preset, vocab_size=tok.vocab_size, block_size=16,
                                   tie_embeddings=False)).eval()
    rows: list[int] = []
    engine = DecodeEngine("lm", model, tok, max_batch=8, max_wait_s=0.0, on_step=rows.append)
    engine.start()
    cfg_long, cfg_short = (GenerationConfig(max_new_tokens=n, temperature=0, stop_at_eos=False)
                           for n in (120, 30))
    first, later = "the goalkeeper", ["a refund", "travel to flight", "my"]  # 14; 8, 16 and 2 chars

    async def run():
        running = engine.open([tok.encode(first)], cfg_long, frozenset())
        deadline = time.monotonic() + 10
        while len(rows) < 5:  # the first sequence is past the context now
            assert time.monotonic() < deadline, f"the first sequence stopped after {len(rows)} steps"
            await asyncio.sleep(0.001)
        joined = await engine.open([tok.encode(p) for p in later], cfg_short, frozenset()).collect()
        return (await running.collect())[0], joined

    long, short = asyncio.run(run())
    engine.stop()
    assert 4 in rows  # the later three decoded in the same steps as the first
    for prompt, cfg, got in [(first, cfg_long, long), *zip(later, [cfg_short] * 3, short, strict=True)]:
        want = generate(model, tok, [prompt], cfg)[0]
        assert (got.text, got.tokens, got.finish_reason) == (want.text, cfg.max_new_tokens, "length")


def test_a_client_that_leaves_frees_its_row(tiny_causal_source):
    lm = Bundle.load(tiny_causal_source)
    engine = DecodeEngine("gpt", lm.model, lm.tokenizer, max_batch=4, max_wait_s=0.0)
    engine.start()
    cfg = GenerationConfig(max_new_tokens=80, temperature=0)

    async def run() -> tuple[str, int]:
        left = engine.open([lm.tokenizer.encode("the card")], cfg, frozenset())
        events = left.events()
        await events.__anext__()
        await events.aclose()  # the client went away after one piece
        assert left.sequences[0].cancelled
        (after,) = await engine.open([lm.tokenizer.encode("travel")], GenerationConfig(
            max_new_tokens=5, temperature=0), frozenset()).collect()
        return after.text, left.sequences[0].made

    text, made = asyncio.run(run())
    engine.stop()
    assert made < 40 and not engine.rows  # dropped long before its 80 tokens
    assert text == generate(lm.model, lm.tokenizer, ["travel"], GenerationConfig(
        max_new_tokens=5, temperature=0, stop_at_eos=False))[0].text
