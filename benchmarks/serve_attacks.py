"""The hostile side of serve_abuse.py: raw HTTP/1.1 over asyncio sockets, the catalogue of attacks
on `practicum serve`, and the attacker process that replays them while well-behaved clients run.

Every attack is bounded: a fixed number of rounds spread over the phase, each round a fixed list
of requests (or held connections). What each one got back is tallied per attack as a status code
or as what happened to the connection: `closed` (the server hung up without a reply), `timeout`
(no reply in time), `abandoned` (the client hung up, as planned), `open_at_end` (a stalled
connection the server still held when the phase ended), `refused` (no connection), `ended before
the client left` (a stream that finished before the client could leave it).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"
TABULAR, IMAGE, TEXT, LM = "tab", "img", "clf", "lm"
"""The names the served bundles get (serve_abuse.py starts the server with them)."""
REPLY_TIMEOUT_S = 30.0


# ---------------------------------------------------------------- raw HTTP


def http_request(path: str, body: bytes | None = None, *, key: str | None = None,
                 content_type: str | None = "application/json", headers: dict[str, str] | None = None,
                 method: str = "POST", close: bool = True) -> bytes:
    """One HTTP/1.1 request as bytes; nothing is checked or escaped, so anything can be sent."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    if content_type and body is not None:
        lines.append(f"Content-Type: {content_type}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def json_body(value: Any) -> bytes:
    """JSON with Python's extensions left in: Infinity/NaN tokens, lone surrogates as \\ud800."""
    return json.dumps(value, separators=(",", ":")).encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one response: by Content-Length, chunked,
    or up to the end of the connection."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("closed before a reply")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
            body += await reader.readexactly(size + 2)
            del body[-2:]
        await reader.readline()
        return status, headers, bytes(body)
    return status, headers, await reader.read()


def outcome(status: int, headers: dict[str, str]) -> str:
    """A tally label: the status, marked when the reply lets a foreign web origin read it."""
    cors = headers.get("access-control-allow-origin", "")
    return f"{status}+cors" if cors and cors != "null" else str(status)


async def exchange(port: int, raw: bytes, timeout: float = REPLY_TIMEOUT_S) -> str:
    """Send one request on a fresh connection; the tally label of what came back."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return "refused"
    try:
        writer.write(raw)
        await writer.drain()
        status, headers, _ = await asyncio.wait_for(read_response(reader), timeout)
        return outcome(status, headers)
    except TimeoutError:
        return "timeout"
    except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
        return "closed"
    finally:
        writer.close()


async def abandon(port: int, raw: bytes, after_s: float, stream: bool = False) -> str:
    """Send a request and hang up after `after_s` (or, for a stream, after its first events);
    a reply that comes sooner (a refusal) is tallied as its status."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return "refused"
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), after_s)
        if not head:
            return "closed"
        status = int(head.split()[1])
        if status != 200 or not stream:
            return str(status)
        seen = b""
        while seen.count(b"data:") < 2:
            chunk = await asyncio.wait_for(reader.read(4096), after_s)
            if not chunk:
                return "ended before the client left"
            seen += chunk
        return "abandoned"
    except TimeoutError:
        return "abandoned"
    except (ConnectionError, ValueError, IndexError):
        return "closed"
    finally:
        writer.close()


# ---------------------------------------------------------------- the catalogue

Send = Callable[[int, Counter], Awaitable[None]]


@dataclass
class Attack:
    """A named, bounded attack: `rounds` rounds spread evenly over the phase, each one
    `send(port, tally)`; `expect` is what a hardened server answers."""

    name: str
    expect: str
    rounds: int
    send: Send


def replay(requests: list[bytes]) -> Send:
    """A round that sends the requests one after another, each on its own connection."""
    async def send(port: int, tally: Counter) -> None:
        for raw in requests:
            tally[await exchange(port, raw)] += 1
    return send


def catalogue(key: str, models: dict[str, Any]) -> list[Attack]:
    """Every attack but slowloris, its bodies built now (before the phase starts)."""
    chat = bool(models[LM].get("chat"))
    return [*sampling_attacks(key), *malformed_attacks(key, models[TABULAR]["features"]),
            *amplification_attacks(key, chat), *disconnect_attacks(key), *image_attacks(key),
            *header_attacks(key)]


def _post(key: str, path: str, body: Any) -> bytes:
    return http_request(path, body if isinstance(body, bytes) else json_body(body), key=key)


def _both_routes(key: str, fields: dict[str, Any]) -> list[bytes]:
    """The same sampling fields on /v1/generate and /v1/completions, 4 new tokens."""
    return [_post(key, "/v1/generate", {"model": LM, "prompt": "The ", "max_new_tokens": 4, **fields}),
            _post(key, "/v1/completions", {"model": LM, "prompt": "The ", "max_tokens": 4, **fields})]


def sampling_attacks(key: str) -> list[Attack]:
    values = {"temperature 1e-300": {"temperature": 1e-300}, "temperature 1e-45": {"temperature": 1e-45},
              "top_p 1e-300": {"top_p": 1e-300}, "repetition_penalty 1e-300": {"repetition_penalty": 1e-300},
              "seed 2**64": {"seed": 2**64}, "seed -2**63-1": {"seed": -2**63 - 1},
              "temperature 1e308": {"temperature": 1e308},
              "temperature Infinity": {"temperature": float("inf")}}
    return [Attack(f"sampling: {name}", "200 or 4xx", 3, replay(_both_routes(key, fields)))
            for name, fields in values.items()]


def malformed_attacks(key: str, features: list[dict[str, Any]]) -> list[Attack]:
    record = {f["name"]: f["example"] for f in features}
    numeric = next(f["name"] for f in features if f["type"] == "numeric")
    text_field = next((f["name"] for f in features if f["type"] != "numeric"), numeric)
    lone = "\ud800"  # json.dumps writes it as the escape \ud800
    surrogates = [
        _post(key, "/v1/predict", {"model": TABULAR, "inputs": [{**record, text_field: lone}]}),
        _post(key, "/v1/predict", {"model": TEXT, "inputs": [lone]}),
        _post(key, "/v1/embed", {"model": TEXT, "inputs": [lone]}),
        _post(key, "/v1/embed", {"model": LM, "inputs": [lone]}),
        _post(key, "/v1/embeddings", {"model": LM, "input": lone}),
        _post(key, "/v1/generate", {"model": LM, "prompt": lone, "max_new_tokens": 4}),
        _post(key, "/v1/completions", {"model": LM, "prompt": lone, "max_tokens": 4})]
    numbers = [_post(key, "/v1/predict", {"model": TABULAR, "inputs": [{**record, numeric: value}]})
               for value in (1e30, 1e308, float("inf"), float("-inf"), float("nan"), 10**29)]
    nested = [_post(key, "/v1/predict", {"model": TEXT, "inputs": [{"text": {"a": {"b": 1}}}]}),
              _post(key, "/v1/predict", {"model": TABULAR, "inputs": [{**record, text_field: {"a": 1}}]}),
              _post(key, "/v1/generate", {"model": LM, "prompt": {"a": 1}, "max_new_tokens": 4}),
              _post(key, "/v1/completions", {"model": LM, "prompt": [{"a": 1}], "max_tokens": 4})]
    broken = [_post(key, "/v1/predict", b'{"model": "clf", "inputs": ["unfinished'),
              _post(key, "/v1/predict", b"[" * 50_000 + b"]" * 50_000),
              _post(key, "/v1/predict", b'{"model": "clf", "inputs": ["\xff\xfe\xc3\x28"]}')]
    return [
        Attack("malformed: embed on the LM, dict input", "4xx", 3, replay(
            [_post(key, "/v1/embed", {"model": LM, "inputs": [{"a": 1}]}),
             _post(key, "/v1/embeddings", {"model": LM, "input": [{"a": 1}]})])),
        Attack("malformed: lone surrogate \\ud800 (field, text, embed, prompt)", "4xx", 3, replay(surrogates)),
        Attack("malformed: feature 1e30, 1e308, +-Infinity, NaN, 30 digits", "4xx (or 200)", 3, replay(numbers)),
        Attack("malformed: nested object where a string goes", "4xx", 3, replay(nested)),
        Attack("malformed: broken, 50,000-deep or non-UTF-8 JSON", "4xx", 3, replay(broken)),
    ]


def amplification_attacks(key: str, chat: bool) -> list[Attack]:
    stops = ["x" * 200_000] * 8  # 1.6 MB, under the 2 MB body limit
    many = (_post(key, "/v1/chat/completions", {"model": LM, "messages": [{"role": "user"}] * 120_000,
                                                 "max_tokens": 4}) if chat else
            _post(key, "/v1/completions", {"model": LM, "prompt": [""] * 120_000, "max_tokens": 4}))
    fan_out = {"model": LM, "prompt": ["The "] * 256, "n": 16, "max_tokens": 4}
    return [
        Attack("amplify: 8 stop strings of 200,000 characters", "4xx, fast", 2,
               replay(_both_routes(key, {"stop": stops}))),
        Attack("amplify: 256 prompts x n=16", "4xx", 3, replay([_post(key, "/v1/completions", fan_out)])),
        Attack(f"amplify: 120,000 empty {'chat messages' if chat else 'prompts (no chat template)'}",
               "4xx", 2, replay([many])),
    ]


def big_generation(key: str, stream: bool = False) -> bytes:
    """The most work one request may ask for under the default limits: 4 prompts x n=16 x 512 tokens."""
    return _post(key, "/v1/completions", {"model": LM, "prompt": ["The ", "A ", "In ", "Each "], "n": 16,
                                          "max_tokens": 512, "temperature": 1.0, "stream": stream})


def disconnect_attacks(key: str) -> list[Attack]:
    big, big_stream = big_generation(key), big_generation(key, stream=True)
    one_stream = _post(key, "/v1/generate", {"model": LM, "prompt": "The ", "max_new_tokens": 512,
                                             "stream": True})

    async def leave_big(port: int, tally: Counter) -> None:
        tally[await abandon(port, big, 0.5)] += 1

    async def leave_streams(port: int, tally: Counter) -> None:
        tally.update(await asyncio.gather(abandon(port, big_stream, 5.0, stream=True),
                                          *(abandon(port, one_stream, 5.0, stream=True) for _ in range(3))))

    return [Attack("disconnect: large generation, client leaves after 0.5 s", "abandoned", 3, leave_big),
            Attack("disconnect: 4 streams left after their first events", "abandoned", 3, leave_streams)]


def _image(fmt: str, size: tuple[int, int] = (32, 32)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", size, 200).save(buffer, format=fmt)
    return buffer.getvalue()


def _mutations(data: bytes, n: int, seed: int) -> list[bytes]:
    """n copies of `data` with 4 random bytes past the signature replaced, and one cut in half."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        b = bytearray(data)
        for pos in rng.sample(range(8, len(b)), 4):
            b[pos] = rng.randrange(256)
        out.append(bytes(b))
    return out + [data[: len(data) // 2]]


def _bad_crc_png() -> bytes:
    png = bytearray(_image("PNG"))
    png[29] ^= 0xFF  # the IHDR chunk's CRC (8-byte signature, 4 length, 4 type, 13 data)
    return bytes(png)


def image_attacks(key: str) -> list[Attack]:
    def predict(*images: bytes) -> bytes:
        return _post(key, "/v1/predict", {"model": IMAGE, "inputs": [
            {"image": base64.b64encode(im).decode()} for im in images]})

    others = [predict(_image(fmt)) for fmt in ("GIF", "TIFF", "BMP", "WEBP", "ICO", "PPM")]
    mutated = [predict(m) for i, fmt in enumerate(("GIF", "TIFF", "BMP"))
               for m in _mutations(_image(fmt), 4, seed=i)]
    large = _image("PNG", (4000, 4000))
    return [
        Attack("image: PNG with a broken chunk CRC", "4xx", 3, replay([predict(_bad_crc_png())])),
        Attack("image: GIF, TIFF, BMP, WebP, ICO, PPM", "4xx (PNG/JPEG only) or 200", 2, replay(others)),
        Attack("image: mutated or cut GIF/TIFF/BMP bytes", "4xx", 2, replay(mutated)),
        Attack("image: 8 images of 4000x4000 in one request", "4xx (request pixel limit)", 2,
               replay([predict(*[large] * 8)])),
        Attack("image: one image of 5000x5000", "4xx (image pixel limit)", 2,
               replay([predict(_image("PNG", (5000, 5000)))])),
    ]


def header_attacks(key: str) -> list[Attack]:
    body = json_body({"model": TEXT, "inputs": ["Operating profit rose."]})
    origin = {"Origin": "https://evil.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    return [
        Attack("headers: no JSON content type (none, text/plain, form)", "200 or 415", 3, replay(
            [http_request("/v1/predict", body, key=key, content_type=ct)
             for ct in (None, "text/plain", "application/x-www-form-urlencoded")])),
        Attack("headers: foreign Origin (POST and preflight)", "no CORS grant (200/4xx, no +cors)", 3, replay(
            [http_request("/v1/predict", body, key=key, headers=origin),
             http_request("/v1/predict", None, headers=preflight, method="OPTIONS")])),
        Attack("headers: no or wrong API key", "401", 3, replay(
            [http_request("/v1/predict", body), http_request("/v1/predict", body, key=key + "x")])),
    ]


# ---------------------------------------------------------------- slowloris


async def stall_connections(port: int, key: str, hold_s: float, heads: int = 200,
                            bodies: int = 20) -> dict[str, Counter]:
    """Connections that send part of a request and stall until `hold_s` ends or the server hangs
    up: `heads` stop inside the request head, `bodies` inside the body (the head promised 100 kB)."""
    partial_head = b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"
    partial_body = http_request("/v1/predict", b"x" * 100_000, key=key, close=False)[:-100_000] + \
        b'{"model": "clf", "inputs": ["'
    results = await asyncio.gather(*(_stall(port, partial_head, hold_s) for _ in range(heads)),
                                   *(_stall(port, partial_body, hold_s) for _ in range(bodies)))
    return {f"slowloris: {heads} connections stalled in the head": Counter(results[:heads]),
            f"slowloris: {bodies} connections stalled in the body": Counter(results[heads:])}


async def _stall(port: int, raw: bytes, hold_s: float) -> str:
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return "refused"
    t0 = time.monotonic()
    try:
        writer.write(raw)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(256), hold_s)
        what = reply.split()[1].decode() if reply.startswith(b"HTTP/") else "closed"
        return f"{what} after {_bucket(time.monotonic() - t0)}"
    except TimeoutError:
        return "open_at_end"
    except (ConnectionError, IndexError):
        return f"closed after {_bucket(time.monotonic() - t0)}"
    finally:
        writer.close()


def _bucket(seconds: float) -> str:
    """Coarse, so that the histogram stays short."""
    for bound in (1, 5, 10, 20):
        if seconds < bound:
            return f"<{bound} s"
    return "20+ s"


# ---------------------------------------------------------------- the attacker process

GRACE_S = 20.0
"""How long attacks started in the phase may go on after it before they are cut (`unfinished`)."""


async def run_attacks(port: int, key: str, attacks: list[Attack], duration: float) -> dict[str, Any]:
    """Every attack at once for `duration` seconds: each one's rounds spread over the phase, and
    the stalled connections held until its end. The tally of every attack."""
    start = time.monotonic()
    tallies = {a.name: Counter() for a in attacks}

    async def rounds(attack: Attack) -> None:
        for i in range(attack.rounds):
            await asyncio.sleep(max(0.0, start + i * duration / attack.rounds - time.monotonic()))
            await attack.send(port, tallies[attack.name])

    tasks = {a.name: asyncio.create_task(rounds(a)) for a in attacks}
    stalled = asyncio.create_task(stall_connections(port, key, duration))
    await asyncio.wait([*tasks.values(), stalled], timeout=duration + GRACE_S)
    for name, task in tasks.items():
        if not task.done():
            task.cancel()
            tallies[name]["unfinished"] += 1
    expect = {a.name: a.expect for a in attacks}
    out = {name: {"expect": expect[name], "outcomes": dict(tally)} for name, tally in tallies.items()}
    for name, tally in (await stalled).items():
        out[name] = {"expect": "closed or 408 after --read-timeout, or open_at_end", "outcomes": dict(tally)}
    return out


def attacker_process(conn: Any, port: int, key: str, models: dict[str, Any], duration: float) -> None:
    """The entry of the attacker process: build the attacks, say "ready", wait for "go", attack,
    send the tallies back (or the error that stopped it)."""
    try:
        attacks = catalogue(key, models)
        conn.send("ready")
        conn.recv()
        conn.send(asyncio.run(run_attacks(port, key, attacks, duration)))
    except Exception as exc:  # the parent reports it instead of waiting forever
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
