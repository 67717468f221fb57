"""End to end in a real browser: Debian's headless chromium, driven by Playwright, uses the
playground page of a real `practicum serve` subprocess to classify a text and to stream a
generation (issue 5, acceptance 5), and the page fits itself to text, image and tabular
classifiers. Skips with a message where chromium cannot be found; the test set-up
(`make browser`, part of `make test`) installs it where it can."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import ServerProcess, chromium_or_skip, chromium_page

TEXT = "my card was declined at the shop"
PROMPT = "hi"
"""Greedy decoding of the fixture's seeded random LM runs this prompt to the context limit (about
70 tokens, 70 SSE chunks); any prompt would check the rest."""
THROTTLE_BYTES_PER_S = 10_000
"""The tiny LM writes its whole reply in ~50 ms, often before a browser on a busy 2-core machine
reads once, so the page's download is slowed (DevTools network throttling) to ~1 s for the reply's
~13 KB: the page must then render the chunks as they arrive. That the server itself streams over
time is checked by tests/serve/test_cli_serve.py (events keep coming after SIGTERM)."""

# Records, inside the page, every change of #output: (ms, characters, mutation records).
WATCH_OUTPUT = """() => {
  const out = document.querySelector('#output');
  window.__lengths = [];
  const note = (records) => window.__lengths.push([performance.now(), out.textContent.length, records.length]);
  new MutationObserver(note).observe(out, {childList: true, characterData: true, subtree: true});
}"""
DONE = """() => !document.querySelector('#send').disabled
  && document.querySelector('#output').textContent.length > 0"""
CLEAR_LABEL = "() => { document.querySelector('#label').textContent = ''; }"
"""So that waiting for LABEL_SHOWN waits for this classification, not the one before."""
LABEL_SHOWN = "() => document.querySelector('#label').textContent.trim().length > 0"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Session-scoped so that a skip comes before the session's bundles are trained."""
    return chromium_or_skip()


@pytest.fixture
def server(chromium: Path, tmp_path, text_classifier_bundle: Path, tiny_causal_source: Path):
    with ServerProcess({"clf": text_classifier_bundle, "lm": tiny_causal_source},
                       log=tmp_path / "server.log") as srv:
        srv.wait_ready()
        yield srv


@pytest.fixture
def kinds_server(chromium: Path, tmp_path, text_classifier_bundle: Path, image_classifier_bundle: Path,
                 tabular_classifier_bundle: Path):
    """One classifier of each input kind: text (topics), image (8x8 digits), tabular (penguins)."""
    models = {"clf": text_classifier_bundle, "img": image_classifier_bundle, "tab": tabular_classifier_bundle}
    with ServerProcess(models, log=tmp_path / "server.log") as srv:
        srv.wait_ready()
        yield srv


@pytest.mark.slow
def test_playground_classifies_and_streams(server: ServerProcess, tmp_path: Path) -> None:
    expected = _api_label(server.url, "clf", TEXT)
    with chromium_page(tmp_path / "profile") as page:
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{server.url}/", wait_until="load")
        assert page.title(), "the playground page has no title"

        _classify(page, TEXT)
        assert page.inner_text("#label").strip() == expected

        request, changes = _stream(page, PROMPT)
        shown = page.evaluate("() => document.querySelector('#output').textContent")
        page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
        assert not errors, f"JavaScript errors on the page: {errors}"
        assert not page.inner_text("#error").strip(), page.inner_text("#error")

    assert shown, "the streamed output is empty"
    assert shown == _whole_text(request), "the page's streamed text differs from the API's reply"
    lengths = [n for _, n, _ in changes]
    assert lengths[-1] == len(shown)
    assert len({n for n in lengths if 0 < n < len(shown)}) >= 2, f"#output did not grow: {changes}"
    assert sum(records for _, n, records in changes if n > 0) >= 5, "the page appended few chunks"
    assert (tmp_path / "playground.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_playground_fits_each_kind_of_model(kinds_server: ServerProcess, tmp_path: Path) -> None:
    """All labels shown, an image page with only the upload control, a tabular example record of
    the model's own columns; each model then classifies through the page like the API does."""
    described = {m["id"]: m for m in httpx.get(f"{kinds_server.url}/v1/models", timeout=30).json()["data"]}
    image = _digit_png(tmp_path / "digit.png")
    with chromium_page(tmp_path / "profile") as page:
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{kinds_server.url}/", wait_until="load")
        page.wait_for_selector("#model option[value=tab]", state="attached")

        page.select_option("#model", "clf")
        assert page.is_visible("#text") and page.is_visible("#classify")
        assert not page.is_visible("#image")
        assert page.inner_text("#model-info") == f"text; labels: {', '.join(described['clf']['labels'])}"
        _classify(page, TEXT)
        assert page.inner_text("#label").strip() == _api_label(kinds_server.url, "clf", TEXT)
        page.screenshot(path=str(tmp_path / "playground-text.png"), full_page=True)

        page.select_option("#model", "img")
        assert page.inner_text("#model-info") == "image; labels: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
        assert not page.is_visible("#text") and not page.is_visible("#classify")
        assert page.is_visible("#image")
        panel = page.inner_text("#classify-panel")
        assert "Image to classify" in panel and "or an image" not in panel, panel
        page.evaluate(CLEAR_LABEL)
        page.set_input_files("#image", str(image))
        page.wait_for_function(LABEL_SHOWN, timeout=30_000)
        assert page.inner_text("#label").strip() == _api_label(kinds_server.url, "img", _data_url(image))
        page.screenshot(path=str(tmp_path / "playground-image.png"), full_page=True)

        page.select_option("#model", "tab")
        assert page.input_value("#text") == "" and page.inner_text("#label") == ""
        page.screenshot(path=str(tmp_path / "playground-tabular-example.png"), full_page=True)
        placeholder = page.get_attribute("#text", "placeholder")
        assert placeholder.startswith("A JSON record, e.g. "), placeholder
        record = json.loads(placeholder.removeprefix("A JSON record, e.g. "))
        assert list(record) == [f["name"] for f in described["tab"]["features"]]
        assert record["island"] in {"Biscoe", "Dream", "Torgersen"} and isinstance(record["bill_length_mm"], float)
        _classify(page, json.dumps(record), model="tab")
        assert page.inner_text("#label").strip() == _api_label(kinds_server.url, "tab", record)
        page.screenshot(path=str(tmp_path / "playground-tabular.png"), full_page=True)

        many = page.evaluate("() => labelList(Array.from({length: 20}, (_, i) => 'c' + i))")
        assert many == ", ".join(f"c{i}" for i in range(12)) + ", … (20 labels)"
        assert not errors, f"JavaScript errors on the page: {errors}"
        assert not page.inner_text("#error").strip(), page.inner_text("#error")


def _digit_png(path: Path) -> Path:
    """An 8x8 grey PNG of a vertical bar (roughly a 1), as a user would upload."""
    from PIL import Image

    pixels = bytes(255 if 3 <= x <= 4 else 0 for y in range(8) for x in range(8))
    Image.frombytes("L", (8, 8), pixels).save(path)
    return path


def _data_url(path: Path) -> dict[str, str]:
    """The request input the page builds from an uploaded file (FileReader.readAsDataURL)."""
    return {"image": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()}


def _api_label(url: str, model: str, text: str | dict[str, Any]) -> str:
    """The label the server's own /v1/predict gives the input: the oracle for the page."""
    reply = httpx.post(f"{url}/v1/predict", json={"model": model, "inputs": [text]}, timeout=30)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["predictions"][0]["prediction"])


def _whole_text(request: dict[str, Any]) -> str:
    """The text of the page's own generation request sent again without streaming (greedy, so
    the same): the oracle for what the page showed."""
    reply = httpx.post(request["url"], json={**request["body"], "stream": False}, timeout=60)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    if "choices" in body:  # /v1/chat/completions or /v1/completions
        choice = body["choices"][0]
        return choice["message"]["content"] if "message" in choice else choice["text"]
    return body["text"]  # /v1/generate


def _classify(page, text: str, model: str = "clf") -> None:
    """Pick the classifier, type the text, click Classify, wait until #label shows something."""
    page.wait_for_selector(f"#model option[value={model}]", state="attached")  # filled from /v1/models
    page.select_option("#model", model)
    page.evaluate(CLEAR_LABEL)
    page.fill("#text", text)
    page.click("#classify")
    page.wait_for_function(LABEL_SHOWN, timeout=30_000)


def _stream(page, prompt: str) -> tuple[dict[str, Any], list[list[float]]]:
    """Pick the LM, send the prompt, wait for the streamed reply to end. Returns the request the
    page sent ({"url", "body"}) and every change of #output on the way."""
    page.select_option("#model", "lm")
    page.fill("#prompt", prompt)
    page.fill("#max-tokens", "80")
    page.fill("#temperature", "0")  # greedy: the API gives the same text again
    page.evaluate(WATCH_OUTPUT)
    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    devtools.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": THROTTLE_BYTES_PER_S, "uploadThroughput": -1})
    with page.expect_response(lambda r: r.request.method == "POST" and "/v1/" in r.url,
                              timeout=30_000) as reply:
        page.click("#send")
    response = reply.value
    assert response.status == 200, f"{response.url}: {response.status}"
    assert "text/event-stream" in response.headers.get("content-type", ""), response.headers
    assert response.request.post_data_json["stream"] is True
    assert response.finished() is None  # the whole stream arrived without a network error
    page.wait_for_function(DONE, timeout=30_000)
    request = {"url": response.url, "body": response.request.post_data_json}
    return request, page.evaluate("() => window.__lengths")
