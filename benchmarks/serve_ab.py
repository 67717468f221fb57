"""Did a change slow `practicum serve` down? This tree's server beside another revision's, side by
side on the same bundles, in alternating rounds.

Both servers run at once (each a `practicum serve` subprocess on its own loopback port, default
batching settings; the other revision from a temporary `git worktree`, on PYTHONPATH). Each
round loads one, then the other (the order swaps every round, so a machine that speeds up or
slows down during the run favours neither):

  classify   --requests (1,000) single-text POST /v1/predict from --concurrency (32) keep-alive
             connections (serve_load.py's client): req/s;
  generate   --streams (8) concurrent streamed generations of 128 tokens, 8 prompts: tokens/s.

Reported: each side's figures per round, their medians, and this tree / the revision (a ratio
below 1 is a slowdown). Run-to-run noise on a shared 2-core machine is several percent: compare
a revision with itself (`--ref HEAD` on a clean tree) to see how much.

    .venv/bin/python benchmarks/serve_ab.py --ref REV [--rounds 12] [--bundle DIR] [--lm-bundle DIR]
        [--out FILE]

Bundles: as serve_load.py (the transformer_text classifier trained for one epoch on Financial
PhraseBank, a char GPT trained for a few steps), unless given. Writes
benchmarks/results/serve_ab.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import serve_load as sl  # noqa: E402  (benchmarks/ is not a package)
from machine import machine_info  # noqa: E402

ROOT = HERE.parent


def start(models: dict[str, Path], src: Path | None, log: Path) -> sl.Server:
    """A server from this tree (src None) or from another revision's source folder."""
    before = os.environ.pop("PYTHONPATH", None)
    if src is not None:
        os.environ["PYTHONPATH"] = str(src)
    try:
        return sl.Server(models, [], log).__enter__()
    finally:
        os.environ.pop("PYTHONPATH", None)
        if before is not None:
            os.environ["PYTHONPATH"] = before


def one_round(server: sl.Server, texts: list[str], args: argparse.Namespace) -> dict[str, float]:
    clf = asyncio.run(sl.classify_load(server, "clf", texts, args.requests, args.concurrency))
    gen = asyncio.run(sl.generate_load(server, args.streams, args.streams, 128))
    if clf["errors"] or gen["errors"]:
        raise SystemExit(f"errors under load: {clf['first_errors'] or gen['first_errors']}")
    return {"classify_req_per_s": clf["req_per_s"], "generate_tokens_per_s": gen["tokens_per_s"]}


def compare(rounds: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for figure in ("classify_req_per_s", "generate_tokens_per_s"):
        ours = [r[figure] for r in rounds["this tree"]]
        theirs = [r[figure] for r in rounds["ref"]]
        out[figure] = {"this tree": ours, "ref": theirs,
                       "median this tree": statistics.median(ours), "median ref": statistics.median(theirs),
                       "ratio of medians": round(statistics.median(ours) / statistics.median(theirs), 3),
                       "ratio per round": [round(a / b, 3) for a, b in zip(ours, theirs, strict=True)]}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", required=True, help="the revision to compare with (a commit, tag or branch)")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--bundle", type=Path, default=None, help="text classifier bundle (default: train one)")
    p.add_argument("--lm-bundle", type=Path, default=None, help="causal LM bundle (default: train one)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "serve_ab.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    rev = subprocess.run(["git", "rev-parse", "--short", args.ref], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="serve_ab_") as tmp:
        work = Path(tmp)
        ref_tree = work / "ref"
        subprocess.run(["git", "worktree", "add", "--detach", str(ref_tree), rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            clf = args.bundle or sl.classifier_bundle(work, False)[0]
            lm = args.lm_bundle or sl.lm_bundle(work, False)
            models = {"clf": Path(clf), "lm": Path(lm)}
            texts = sl.request_texts(str(sl.PHRASEBANK) if sl.PHRASEBANK.is_file() else "builtin:chatterbot")
            servers = {"this tree": start(models, None, work / "this.log"),
                       "ref": start(models, ref_tree / "src", work / "ref.log")}
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            try:
                for server in servers.values():  # warm-up, untimed
                    asyncio.run(sl.classify_load(server, "clf", texts, 200, args.concurrency))
                for i in range(args.rounds):
                    order = list(servers) if i % 2 == 0 else list(reversed(servers))
                    for name in order:
                        rounds[name].append(one_round(servers[name], texts, args))
                    print(f"round {i + 1}/{args.rounds}: " + ", ".join(
                        f"{n} {r[-1]['classify_req_per_s']:.0f} req/s {r[-1]['generate_tokens_per_s']:.0f} tok/s"
                        for n, r in rounds.items()), flush=True)
            finally:
                for server in servers.values():
                    server.__exit__()
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(ref_tree)], cwd=ROOT, check=False,
                           capture_output=True)
    result = {"machine": machine_info(), "ref": rev, "command": " ".join(["serve_ab.py", *(argv or sys.argv[1:])]),
              "rounds": args.rounds, "requests": args.requests, "concurrency": args.concurrency,
              "streams": args.streams, "compare": compare(rounds),
              "total_wall_s": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for figure, c in result["compare"].items():
        print(f"{figure}: this tree {c['median this tree']:.1f}, {rev} {c['median ref']:.1f}, "
              f"ratio {c['ratio of medians']:.3f}")
    print(f"wrote {args.out} ({result['total_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
