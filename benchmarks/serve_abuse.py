"""Abuse test of `practicum serve`: how well-behaved clients fare while attackers send hostile
requests, and whether every attack gets a 4xx (never a 5xx).

The server runs as a real subprocess (`python -m practicum.cli serve ... --api-key KEY`, uvicorn)
on a free loopback port over four bundles trained here in a temporary folder, each for a few
steps (speed matters, not quality): `tab` (the mlp_tabular recipe, penguins), `img` (the
quickstart LeNet on digits: the image attacks need an image model), `clf` (the transformer_text
classifier, as serve_load.py trains it) and `lm` (a char GPT, pretrain_char with context 256).

  without   --clients (32) well-behaved clients on keep-alive connections for --duration seconds,
            each cycling through /v1/predict on text and on a tabular record, /v1/embed on the
            classifier and on the LM, /v1/generate and /v1/completions of 4 tokens (temperature
            0); latency p50/p99/mean, requests done, errors (anything but a 200 with the expected
            JSON);
  with      the same load while a separate attacker process replays the attacks of
            serve_attacks.py, each a few times over the phase: degenerate sampling values,
            malformed inputs (lone surrogates, huge numbers, nested objects, broken JSON and
            images), amplification (huge stop strings, prompts x n, 120,000 messages or
            prompts), clients that leave a large generation or a stream, 220 slowloris
            connections, images beyond PNG/JPEG and too many pixels, foreign content types,
            origins and missing API keys; what each attack got back is tallied;
  after     a 4-token generation in the quiet, then a large generation abandoned after 0.5 s
            and at once a 4-token generation: its latency shows whether the abandoned work was
            cancelled; /metrics' cancelled-work counter (practicum_cancelled_total, None when
            the server has none) and its count of 5xx replies.

Checks: zero well-behaved errors in both phases; p99 with / without attacks <= 3; no 5xx for
any attack; the 4-token generation after the abandoned one within 2 s. The 2-core machine is
shared by client, attacker and server, so each phase also records the cores each used.

    .venv/bin/python benchmarks/serve_abuse.py [--duration 20] [--clients 32] [--out FILE] [--check]

Writes benchmarks/results/serve_abuse.json and prints a table; --check exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from machine import machine_info
from serve_attacks import (
    GRACE_S,
    IMAGE,
    LM,
    TABULAR,
    TEXT,
    abandon,
    attacker_process,
    big_generation,
    exchange,
    http_request,
    json_body,
    read_response,
)
from serve_load import (
    ROOT,
    Server,
    Usage,
    _pct,
    _proc_cpu_s,
    classifier_bundle,
    lm_bundle,
    request_texts,
)

RESULTS = ROOT / "benchmarks" / "results"
PROMPTS = ["The return statement ", "A class definition ", "Exceptions are raised ", "In Python, a list "]
log = logging.getLogger("serve_abuse")


# ---------------------------------------------------------------- bundles


def train_bundles(work: Path) -> tuple[dict[str, Path], list[str]]:
    """The four bundles, each trained for a few steps; and the classifier's sentences."""
    import practicum

    quiet = ["train.progress=never", "train.tensorboard=false", "train.seed=0"]
    log.info("training mlp_tabular and quickstart for a few steps")
    tab = practicum.train("mlp_tabular", [f"out_dir={work / 'tab'}", "train.max_steps=20", *quiet]).bundle
    img = practicum.train("quickstart", [f"out_dir={work / 'img'}", "train.max_steps=10", *quiet]).bundle
    clf, source = classifier_bundle(work, quick=True)
    lm = lm_bundle(work, quick=True)
    return {TABULAR: tab, IMAGE: img, TEXT: clf, LM: lm}, request_texts(source)


# ---------------------------------------------------------------- well-behaved clients


class Client:
    """One well-behaved keep-alive connection (raw asyncio: httpx's CPU per request would load the
    2-core machine more than the server does)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(raw)
        await self.writer.drain()
        status, headers, body = await read_response(self.reader)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def polite_requests(key: str, texts: list[str], features: list[dict[str, Any]]) -> dict[str, list[bytes]]:
    """Pre-encoded valid requests of each kind (several variants each)."""
    def post(path: str, body: dict[str, Any]) -> bytes:
        return http_request(path, json_body(body), key=key, close=False)

    record = {f["name"]: f["example"] for f in features}
    records = [{k: (v * (1 + i / 100) if isinstance(v, float) else v) for k, v in record.items()}
               for i in range(8)]
    sentences = texts[:64]
    return {
        "predict text": [post("/v1/predict", {"model": TEXT, "inputs": [t]}) for t in sentences],
        "predict tabular": [post("/v1/predict", {"model": TABULAR, "inputs": [r]}) for r in records],
        "embed text": [post("/v1/embed", {"model": TEXT, "inputs": [t]}) for t in sentences],
        "embed lm": [post("/v1/embed", {"model": LM, "inputs": [p]}) for p in PROMPTS],
        "generate 4": [post("/v1/generate", {"model": LM, "prompt": p, "max_new_tokens": 4, "temperature": 0})
                       for p in PROMPTS],
        "completions 4": [post("/v1/completions", {"model": LM, "prompt": p, "max_tokens": 4, "temperature": 0})
                          for p in PROMPTS],
    }


EXPECTED_FIELD = {"predict": "predictions", "embed": "embeddings", "generate": "text", "completions": "choices"}


def _error(kind: str, status: int, body: bytes) -> str | None:
    """Why a reply is not the well-formed 200 the request deserves (None when it is)."""
    if status != 200:
        return f"{kind}: {status} {body[:160]!r}"
    try:
        reply = json.loads(body)
    except ValueError:
        return f"{kind}: 200 but not JSON: {body[:160]!r}"
    field = EXPECTED_FIELD[kind.split()[0]]
    return None if reply.get(field) else f"{kind}: 200 without {field!r}: {body[:160]!r}"


async def polite_load(port: int, requests: dict[str, list[bytes]], clients: int,
                      duration: float) -> dict[str, Any]:
    """`clients` connections, each cycling through the request kinds until `duration` ends."""
    kinds = list(requests)
    rows: list[tuple[str, float, str | None]] = []  # kind, seconds, error
    stop_at = time.monotonic() + duration

    async def worker(w: int) -> None:
        client, i = Client(port), w
        try:
            while time.monotonic() < stop_at:
                kind = kinds[i % len(kinds)]
                raw = requests[kind][(i // len(kinds)) % len(requests[kind])]
                t0 = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(client.post(raw), 60)
                    error = _error(kind, status, body)
                except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                    error = f"{kind}: {type(exc).__name__}: {exc}"
                    client.close()
                rows.append((kind, time.perf_counter() - t0, error))
                i += 1
        finally:
            client.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    return _latency_summary(rows, time.perf_counter() - t0)


def _latency_summary(rows: list[tuple[str, float, str | None]], wall_s: float) -> dict[str, Any]:
    def stats(part: list[tuple[str, float, str | None]]) -> dict[str, Any]:
        ms = [1000 * s for _, s, _ in part]
        return {"requests": len(part), "errors": sum(e is not None for *_, e in part),
                "p50_ms": round(_pct(ms, 50), 1), "p99_ms": round(_pct(ms, 99), 1),
                "mean_ms": round(statistics.fmean(ms), 1) if ms else None}

    errors = [e for *_, e in rows if e is not None]
    return {**stats(rows), "req_per_s": round(len(rows) / wall_s, 1),
            "by_kind": {k: stats([r for r in rows if r[0] == k]) for k in dict.fromkeys(r[0] for r in rows)},
            "first_errors": list(dict.fromkeys(errors))[:8]}


# ---------------------------------------------------------------- the phases


def phase_without(server: Server, requests: dict[str, list[bytes]], args: argparse.Namespace) -> dict[str, Any]:
    asyncio.run(polite_load(server.port, requests, args.clients, min(3.0, args.duration)))  # warm-up
    with Usage(server.proc.pid) as usage:
        out = asyncio.run(polite_load(server.port, requests, args.clients, args.duration))
    return {**out, **usage.figures}


def phase_with(server: Server, requests: dict[str, list[bytes]], models: dict[str, Any],
               args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The well-behaved load beside the attacker process; (load figures, attack tallies)."""
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    attacker = spawn.Process(target=attacker_process, daemon=True,
                             args=(theirs, server.port, args.key, models, args.duration))
    attacker.start()
    try:
        ready = ours.recv() if ours.poll(120) else "no word in 120 s"
        if ready != "ready":
            raise SystemExit(f"the attacker process did not start: {ready}")
        cpu0 = _proc_cpu_s(attacker.pid)
        ours.send("go")
        with Usage(server.proc.pid) as usage:
            out = asyncio.run(polite_load(server.port, requests, args.clients, args.duration))
            attacker_cpu = _proc_cpu_s(attacker.pid) - cpu0
        figures = dict(usage.figures)
        figures["attacker_cores"] = round(attacker_cpu / figures["wall_s"], 2)
        figures["other_cores"] = round(max(0.0, figures["other_cores"] - figures["attacker_cores"]), 2)
        tallies = ours.recv() if ours.poll(GRACE_S + 60) else {"error": "no tallies from the attacker"}
    finally:
        attacker.join(10)
        if attacker.is_alive():
            attacker.terminate()
    return {**out, **figures}, tallies


async def after_abandon(port: int, key: str) -> dict[str, Any]:
    """A 4-token generation in the quiet; then one right after a large generation was abandoned."""
    four = http_request("/v1/generate", json_body({"model": LM, "prompt": "The ", "max_new_tokens": 4,
                                                   "temperature": 0}), key=key)

    async def timed() -> tuple[str, float]:
        t0 = time.perf_counter()
        status = await exchange(port, four)
        return status, round(time.perf_counter() - t0, 3)

    quiet_status, quiet_s = await timed()
    left = await abandon(port, big_generation(key), 0.5)
    status, seconds = await timed()
    return {"quiet_status": quiet_status, "quiet_s": quiet_s, "large_request": left,
            "status": status, "latency_s": seconds}


def scrape(url: str, key: str) -> dict[str, Any]:
    """The cancelled-work counter (any practicum_*cancel* sample; None when the server has none)
    and the 5xx replies /metrics counted, by route and status."""
    try:
        reply = httpx.get(f"{url}/metrics", timeout=10, headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        return {"error": repr(exc)}
    if reply.status_code != 200:
        return {"error": f"GET /metrics: {reply.status_code} {reply.text[:160]}"}
    text = reply.text
    cancelled: float | None = None
    server_5xx: Counter = Counter()
    for line in text.splitlines():
        if re.match(r"^# TYPE practicum_\w*cancel\w* counter", line):
            cancelled = cancelled or 0.0  # the counter exists, with no samples until work is cancelled
        m = re.match(r"^(practicum_\w+)(?:\{(.*)\})?\s+(\S+)$", line)
        if not m or m.group(1).endswith("_created"):
            continue
        name, labels, value = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")), float(m.group(3))
        if "cancel" in name:
            cancelled = (cancelled or 0.0) + value
        if name == "practicum_requests_total" and labels.get("status", "").startswith("5") and value:
            server_5xx[f"{labels.get('route')} {labels['status']}"] += int(value)
    return {"cancelled_total": cancelled, "server_5xx": dict(server_5xx)}


def log_errors(server: Server) -> list[str]:
    """The distinct error lines of the server's log (exceptions, 'internal error on ...')."""
    lines = server.log_file.read_text(errors="replace").splitlines()
    hits = [ln.strip() for ln in lines if not ln.startswith(" ") and re.search(
        r"Traceback|internal error|Exception in|^[\w.]*(Error|Exception)\b", ln)]
    return list(dict.fromkeys(hits))[:15]


# ---------------------------------------------------------------- report


def attack_5xx(tallies: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Every attack that got a 5xx, with how many of which."""
    out = {}
    for name, t in tallies.items():
        bad = {code: n for code, n in t.get("outcomes", {}).items() if code[:1] == "5"} if isinstance(t, dict) else {}
        if bad:
            out[name] = bad
    return out


def summary(without: dict[str, Any], with_: dict[str, Any], tallies: dict[str, Any],
            after: dict[str, Any]) -> dict[str, Any]:
    ratio = round(with_["p99_ms"] / without["p99_ms"], 2) if without["p99_ms"] else None
    checks = {
        "well_behaved_errors_zero": without["errors"] == 0 and with_["errors"] == 0,
        "p99_ratio_le_3": ratio is not None and ratio <= 3,
        "no_5xx_from_attacks": not attack_5xx(tallies) and "error" not in tallies,
        "generate_after_abandon_le_2s": after["status"] == "200" and after["latency_s"] <= 2.0,
    }
    return {"p99_ratio": ratio, "checks": checks, "passed": all(checks.values())}


def _markdown(columns: list[str], rows: list[list[Any]], numeric: bool = True) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|---" + ("|---:" if numeric else "|---") * (len(columns) - 1) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows])


def table(result: dict[str, Any]) -> str:
    cores = ("client_cores", "server_cores", "attacker_cores", "other_cores")
    phases = [[name, p["requests"], p["errors"], p["p50_ms"], p["p99_ms"], p["mean_ms"], p["req_per_s"],
               *(p.get(k, "") for k in cores)] for name, p in result["phases"].items()]
    attacks = [[name, t.get("expect", ""), ", ".join(f"{k}: {v}" for k, v in sorted(t.get("outcomes", {}).items()))]
               for name, t in result["attacks"].items() if isinstance(t, dict)]
    return (_markdown(["well-behaved", "requests", "errors", "p50 ms", "p99 ms", "mean ms", "req/s",
                       "client cores", "server cores", "attacker cores", "other cores"], phases)
            + "\n\n" + _markdown(["attack", "expected", "got"], attacks, numeric=False))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=20.0, help="seconds of each phase (default 20)")
    p.add_argument("--clients", type=int, default=32, help="well-behaved concurrent clients (default 32)")
    p.add_argument("--out", type=Path, default=RESULTS / "serve_abuse.json")
    p.add_argument("--check", action="store_true", help="exit 1 when a check fails")
    args = p.parse_args(argv)
    args.key = secrets.token_hex(16)
    return args


def run(models_paths: dict[str, Path], texts: list[str], args: argparse.Namespace,
        log_file: Path) -> dict[str, Any]:
    """Start the server, run both phases and the after-abandon check; the raw figures."""
    with Server(models_paths, ["--api-key", args.key], log_file) as server:
        models = {m["id"]: m for m in httpx.get(f"{server.url}/v1/models", timeout=10, headers={
            "Authorization": f"Bearer {args.key}"}).json()["data"]}
        requests = polite_requests(args.key, texts, models[TABULAR]["features"])
        log.info("server ready at %s; %.0f s without attacks", server.url, args.duration)
        without = phase_without(server, requests, args)
        log.info("%.0f s with attacks", args.duration)
        with_, tallies = phase_with(server, requests, models, args)
        metrics_after_attacks = scrape(server.url, args.key)
        log.info("a 4-token generation after an abandoned large one")
        after = asyncio.run(after_abandon(server.port, args.key))
        time.sleep(1.0)  # the engine notices the abandoned request at its next step
        metrics = scrape(server.url, args.key)
        alive = server.proc.poll() is None
        errors = log_errors(server)
    return {"phases": {"without attacks": without, "with attacks": with_}, "attacks": tallies,
            "after_abandon": after, "metrics_after_attacks": metrics_after_attacks, "metrics_at_end": metrics,
            "server_alive_at_end": alive, "server_log_errors": errors}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    os.chdir(ROOT)  # the recipes' data paths are relative to the project root
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="serve_abuse_") as tmp:
        paths, texts = train_bundles(Path(tmp))
        raw = run(paths, texts, args, Path(tmp) / "server.log")
    phases = raw["phases"]
    result = {"machine": {**machine_info(), "cores_shared_by_client_attacker_and_server": os.cpu_count()},
              "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
              "duration_s": args.duration, "clients": args.clients,
              "summary": summary(phases["without attacks"], phases["with attacks"], raw["attacks"],
                                 raw["after_abandon"]),
              "attack_5xx": attack_5xx(raw["attacks"]), **raw,
              "total_wall_s": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    s, after = result["summary"], raw["after_abandon"]
    print(table(result))
    print(f"\np99 with / without attacks: {s['p99_ratio']}; 4-token generation after an abandoned large "
          f"one: {after['status']} in {after['latency_s']} s (quiet: {after['quiet_s']} s); cancelled work "
          f"counter: {raw['metrics_at_end'].get('cancelled_total')}; attacks with 5xx: "
          f"{len(result['attack_5xx'])}")
    print("checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in s["checks"].items()))
    print(f"wrote {args.out} ({result['total_wall_s']:.0f} s)")
    return 1 if args.check and not s["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
