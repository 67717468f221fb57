"""The HTTP transport: slow clients are cut off (head: closed, body: 408), the connection cap
refuses only the extra connection, the API key covers every route that reveals the API, other
web origins are refused unless allowed (then CORS), and POST /v1/* must declare JSON."""

from __future__ import annotations

import json
import select
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
ALLOWED = "https://app.example.com"
READ_TIMEOUT = 0.5
PREDICT = b'{"model": "clf", "inputs": ["my card was declined"]}'


@pytest.fixture(scope="module")
def live(text_classifier_bundle, make_live):
    with make_live({"clf": text_classifier_bundle}, read_timeout=READ_TIMEOUT, keep_alive_timeout=0.3,
                   max_connections=4) as (url, _):
        yield url


@pytest.fixture(scope="module")
def api(text_classifier_bundle, make_client):
    with make_client({"clf": text_classifier_bundle}, api_key=KEY, cors_origins=(ALLOWED,)) as c:
        yield c


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


def _closed_after(sock: socket.socket, start: float) -> float:
    """Seconds from `start` until the server closed `sock` (reads and drops what it sends)."""
    while sock.recv(4096):
        pass
    return time.monotonic() - start


def _reply(sock: socket.socket) -> tuple[int, dict, bytes]:
    """Status, headers and body of one response read up to the server's close."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    fields = {"Host": "127.0.0.1", "Content-Length": str(len(body)), **headers}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in fields.items())
    return head.encode() + b"\r\n" + body


def test_a_stalled_request_head_is_closed_after_the_read_timeout(live):
    silent, partial = _connect(live), _connect(live)
    start = time.monotonic()
    partial.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the head never ends
    for sock in (silent, partial):
        with sock:
            assert READ_TIMEOUT * 0.8 < _closed_after(sock, start) < READ_TIMEOUT + 0.7


def test_keep_alive_connections_are_closed_when_idle_or_stalled(live):
    for then in (b"", b"GET /healthz HTTP/1.1\r\n"):  # idle after a response, or a head that stalls
        with _connect(live) as sock:
            sock.sendall(_request("GET", "/healthz"))
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            start = time.monotonic()
            sock.sendall(then)
            assert 0.2 < _closed_after(sock, start) < READ_TIMEOUT + 0.7


def test_a_stalled_body_gets_408(live, check_error):
    with _connect(live) as sock:
        start = time.monotonic()
        sock.sendall(_request("POST", "/v1/predict", PREDICT, Content_Type="application/json")[:-10])
        status, headers, body = _reply(sock)
        assert READ_TIMEOUT * 0.8 < time.monotonic() - start < READ_TIMEOUT + 0.7
    assert status == 408 and headers["connection"] == "close"
    check_error(httpx.Response(status, content=body), 408)
    assert json.loads(body)["error"]["code"] == "request_timeout"


def test_requests_are_served_while_many_connections_stall(text_classifier_bundle, make_live):
    with make_live({"clf": text_classifier_bundle}, read_timeout=1.0) as (url, _):
        stalled = [_connect(url) for _ in range(50)]
        start = time.monotonic()
        for sock in stalled[::2]:
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nContent-Type: application/json\r\n")
        for _ in range(5):
            r = httpx.post(f"{url}/v1/predict", content=PREDICT, headers={"Content-Type": "application/json"})
            assert r.status_code == 200 and r.json()["predictions"][0]["prediction"]
        assert time.monotonic() - start < 1.0  # the stalled ones were all still open
        while stalled:  # and they are closed by the read timeout
            readable, _, _ = select.select(stalled, [], [], 2.0)
            assert readable, f"{len(stalled)} stalled connections still open"
            for sock in readable:
                assert sock.recv(4096) == b""
                sock.close()
                stalled.remove(sock)
        assert time.monotonic() - start < 2.0


def test_the_connection_cap_refuses_only_the_extra_connection(live, check_error):
    held = [_connect(live) for _ in range(4)]
    time.sleep(0.05)  # the server has taken all four
    with _connect(live) as extra:
        status, headers, body = _reply(extra)
    error = check_error(httpx.Response(status, content=body), 503)
    assert error["code"] == "too_many_connections" and "--max-connections" in error["message"]
    assert headers["content-type"] == "application/json"
    for sock in held:  # the four open ones are served
        with sock:
            sock.sendall(_request("GET", "/healthz", Connection="close"))
            assert _reply(sock)[0] == 200
    time.sleep(0.05)
    assert httpx.get(f"{live}/healthz").status_code == 200  # room again


@pytest.mark.parametrize("path", ["/v1/models", "/docs", "/openapi.json", "/metrics"])
def test_the_api_key_guards_every_route_that_reveals_the_api(api, check_error, path):
    assert check_error(api.get(path), 401)["code"] == "invalid_api_key"
    assert api.get(path, headers=AUTH).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/", "/static/app.js"])
def test_probes_and_the_playground_need_no_key(api, path):
    assert api.get(path).status_code == 200


def test_a_foreign_origin_is_refused(api, check_error):
    foreign = {"Origin": "https://evil.example", **AUTH}
    for r in (api.post("/v1/predict", content=PREDICT, headers={**foreign, "Content-Type": "application/json"}),
              api.get("/v1/models", headers=foreign),
              api.options("/v1/predict", headers={**foreign, "Access-Control-Request-Method": "POST"})):
        error = check_error(r, 403)
        assert "https://evil.example" in error["message"] and "--cors-origin https://evil.example" in error["message"]
        assert "access-control-allow-origin" not in r.headers
    own = api.post("/v1/predict", content=PREDICT,
                   headers={"Origin": "http://testserver", "Content-Type": "application/json", **AUTH})
    assert own.status_code == 200  # the playground's own page
    assert api.get("/healthz", headers={"Origin": "https://evil.example"}).status_code == 200


def test_an_allowed_origin_gets_cors(api):
    preflight = api.options("/v1/predict", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    r = api.post("/v1/predict", content=PREDICT,
                 headers={"Origin": ALLOWED, "Content-Type": "application/json", **AUTH})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
    refused = api.get("/v1/models", headers={"Origin": ALLOWED})  # no key: the page can read the 401
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ALLOWED


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_declared_json_is_415(api, check_error, content_type):
    headers = {**AUTH, "Content-Type": content_type} if content_type else AUTH
    r = api.post("/v1/predict", content=PREDICT, headers=headers)
    error = check_error(r, 415)
    assert error["code"] == "unsupported_media_type"
    assert "send the header Content-Type: application/json" in error["message"]


def test_json_with_a_charset_is_accepted(api):
    r = api.post("/v1/predict", content=PREDICT, headers={**AUTH, "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text
