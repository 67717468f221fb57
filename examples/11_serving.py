"""Serving a model over HTTP.

Trains a small text classifier (the `lstm_text` recipe on the ChatterBot corpus's topics), runs
`practicum serve` on its bundle in a separate process on a free port, and talks to it with
nothing but the standard library's urllib: readiness and health checks, the model list, single
and batched predictions, a bad request, a burst of concurrent requests (which the server batches
together) and its Prometheus metrics. Then stops it with SIGTERM, which lets in-flight requests
finish before the server exits.
"""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import practicum
from practicum.learn import lesson_parser


def call(url: str, body: dict | None = None) -> tuple[int, dict | str]:
    """GET (no body) or POST a JSON body; returns (HTTP status, the decoded JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as err:  # 4xx and 5xx answers carry a JSON error body too
        status, text = err.code, err.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll /readyz until it answers 200: the model is loaded and warmed up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}; see its log")
        try:
            if call(f"{url}/readyz")[0] == 200:
                return
        except urllib.error.URLError:  # not listening yet
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the server was not ready after {timeout:.0f} s")


def burst(url: str, n: int, clients: int = 16) -> dict[str, float]:
    """n one-sentence predictions from `clients` threads at once: requests/s, latencies, errors."""
    def timed(i: int) -> tuple[int, float]:
        start = time.perf_counter()
        status, _ = call(f"{url}/v1/predict", {"inputs": [f"Question number {i}: what is AI?"]})
        return status, 1000 * (time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        answers = list(pool.map(timed, range(n)))
    elapsed = time.perf_counter() - start
    ms = sorted(latency for _, latency in answers)
    return {"rps": n / elapsed, "p50": ms[n // 2], "p99": ms[int(n * 0.99)],
            "errors": sum(status != 200 for status, _ in answers)}


def show_metrics(url: str) -> None:
    """The request counters of /metrics, and the mean batch the model ran (Prometheus text)."""
    _, text = call(f"{url}/metrics")
    print("GET  /metrics (Prometheus text), e.g. the request counters:")
    values = {}
    for line in text.splitlines():
        if line.startswith("practicum_requests_total"):
            print(f"  {line}")
        if line.startswith(("practicum_batch_size_sum", "practicum_batch_size_count")):
            values[line.split("{")[0]] = float(line.split()[-1])
    batches, inputs = values["practicum_batch_size_count"], values["practicum_batch_size_sum"]
    print(f"the model ran {batches:.0f} batches of {inputs / batches:.1f} inputs on average")


def show_routes(url: str) -> None:
    """One request to each route, printed with its answer."""
    print(f"GET  /healthz -> {call(url + '/healthz')}")
    status, models = call(url + "/v1/models")  # the OpenAI-style model list, with our details
    topics = models["data"][0]
    print(f"GET  /v1/models -> {status}: {topics['id']} ({topics['task']}, "
          f"{len(topics['labels'])} labels, endpoints {topics['endpoints']})")
    body = {"model": "topics", "inputs": ["Who wrote Romeo and Juliet?"]}
    status, answer = call(url + "/v1/predict", body)
    first = answer["predictions"][0]
    top3 = sorted(first["probabilities"].items(), key=lambda kv: -kv[1])[:3]
    print(f"POST /v1/predict {json.dumps(body)}\n  -> {status}: prediction "
          f"{first['prediction']!r}, confidence {first['confidence']:.2f}, probabilities of "
          f"all {len(first['probabilities'])} labels (top 3: {dict(top3)})")
    texts = ["How do I write a loop in Python?", "Do you like football?", "Are you a robot?"]
    status, answer = call(url + "/v1/predict", {"inputs": texts})  # one model: "model" optional
    print(f"POST /v1/predict with 3 sentences -> {status}")
    for text, p in zip(texts, answer["predictions"], strict=True):
        print(f"  {p['prediction']:>12} ({p['confidence']:.2f})  {text}")
    print(f"POST /v1/predict with no inputs -> {call(url + '/v1/predict', {'inputs': []})}")


def main() -> None:
    args = lesson_parser(__doc__).parse_args()
    overrides = ["data.path=builtin:chatterbot", "data.text.min_freq=1", "train.tensorboard=false",
                 f"out_dir={args.out / 'topics'}"]
    if args.fast:
        overrides += ["train.epochs=2", "model.embedding_dim=32", "model.hidden_size=32"]
    print("training a topic classifier ...")
    bundle = practicum.train("lstm_text", overrides).bundle

    with socket.socket() as probe:  # ask the OS for a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    # The same as typing `practicum serve topics=BUNDLE --port PORT` in a shell.
    command = [sys.executable, "-m", "practicum", "serve", f"topics={bundle}", "--port", str(port)]
    with (args.out / "server.log").open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(url, server)
            print(f"\nserver ready at {url} (log: {log.name})")
            show_routes(url)
            # A burst of concurrent clients: the server groups requests that arrive together
            # into one batch (up to --max-batch 32, waiting at most --max-wait-ms 5 for company).
            n = 40 if args.fast else 400
            load = burst(url, n)
            print(f"\n{n} requests from 16 threads: {load['rps']:.0f} requests/s, latency p50 "
                  f"{load['p50']:.1f} ms, p99 {load['p99']:.1f} ms, {load['errors']} errors")
            show_metrics(url)
        finally:
            server.terminate()  # SIGTERM: stop accepting, finish what is in flight, exit 0
            code = server.wait(timeout=60)
    print(f"\nserver stopped, exit code {code}")
    print(f"result: {n} concurrent requests, {load['errors']} errors, "
          f"{load['rps']:.0f} requests/s, p50 {load['p50']:.1f} ms")


if __name__ == "__main__":
    main()
