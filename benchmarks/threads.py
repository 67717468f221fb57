"""Thread count and OpenMP wait policy, on an idle machine and with one core held by another program.

Three commands a user runs, each in a fresh process (as a user starts them), timed from start to
exit: `practicum train mlp_tabular`, `practicum quickstart`, and `practicum generate` with two
prompts (256 new tokens, greedy, on a randomly initialised baby GPT bundle made here). Every
command runs under each setting:

    threads 1 or 2  x  OMP_WAIT_POLICY unset (libgomp spins, then sleeps), PASSIVE, or ACTIVE

and under each load: idle; "busy", a second Python process spinning on one core (as a
compiler or a browser tab would); and "torch", another PyTorch job with its default threads. The settings are passed as environment variables, which
practicum honours over its own defaults. `--default` adds a row with no variable set: what a
user gets. Writes benchmarks/results/threads.json and prints a table.

    .venv/bin/python benchmarks/threads.py                # every setting, 1 repeat
    .venv/bin/python benchmarks/threads.py --repeats 3 --only generate
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import CpuWatch, machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PRACTICUM = [sys.executable, "-m", "practicum.cli"]
SETTINGS = [(1, "unset"), (2, "unset"), (1, "PASSIVE"), (2, "PASSIVE"), (2, "ACTIVE")]
UNSET = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "PRACTICUM_THREADS", "GOMP_SPINCOUNT")


def make_lm_bundle(folder: Path) -> Path:
    """A randomly initialised baby GPT (pretrain_char's 4 layers x 128, context 320) with a char tokenizer."""
    import torch

    from practicum.bundle import save_lm_bundle
    from practicum.config import LMConfig, RunConfig, TaskConfig
    from practicum.data.tokenizers import train_tokenizer
    from practicum.models.lm import TransformerLM

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tok = train_tokenizer("char", [text], 256, 1)
    torch.manual_seed(0)
    cfg = LMConfig(preset="baby-gpt", block_size=320, vocab_size=tok.vocab_size)
    run = RunConfig(name="threads_lm", model=cfg, task=TaskConfig(type="causal_lm"))
    return save_lm_bundle(folder / "lm", run, TransformerLM(cfg), tok, {})


def commands(tmp: Path, lm: Path) -> dict[str, list[str]]:
    return {
        "mlp_tabular": [*PRACTICUM, "train", "mlp_tabular", "--out_dir", str(tmp / "mlp"),
                        "--train.progress", "never"],
        "quickstart": [*PRACTICUM, "quickstart", "--out_dir", str(tmp / "qs"), "--train.progress", "never"],
        "generate": [*PRACTICUM, "generate", str(lm), "--prompt", "The model ", "--prompt", "def train(",
                     "--max-new-tokens", "256", "--temperature", "0"],
    }


def env_for(threads: int | None, policy: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = "" if policy == "unset" else policy  # empty: libgomp's own default
    return env


def timed(cmd: list[str], env: dict[str, str], spinner_cores: float | None) -> dict[str, Any]:
    """Wall time of `cmd`, and the cores that processes other than it used (less the
    neighbour's, when known: None reports the neighbour's share too)."""
    before = _children_cpu_s()
    with CpuWatch() as watch:
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    command_cores = (_children_cpu_s() - before) / watch.wall_s
    others = None if watch.other_cores is None else round(max(0.0, watch.other_cores - command_cores
                                                              - (spinner_cores or 0.0)), 2)
    return {"wall_s": round(watch.wall_s, 2), "command_cores": round(command_cores, 2), "other_cores": others}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


NEIGHBOURS = {
    # one core held by a single-threaded program
    "busy": "while True: pass",
    # another PyTorch job with its defaults (2 threads, libgomp's spinning wait): small
    # matrix products in a loop, as a second training run or a test suite would be
    "torch": ("import torch\nx = torch.randn(256, 256)\nwhile True:\n    x = torch.tanh(x @ x)"),
}


class Spinner:
    """A second process that keeps the CPU busy in the way `load` names."""

    def __init__(self, load: str) -> None:
        self.code = NEIGHBOURS[load]

    def __enter__(self) -> Spinner:
        env = {k: v for k, v in os.environ.items() if k not in UNSET}
        self.proc = subprocess.Popen([sys.executable, "-c", self.code], env=env)
        time.sleep(2.0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", action="append", help="mlp_tabular, quickstart or generate (repeatable)")
    parser.add_argument("--loads", default="idle,busy,torch", help="idle, busy (one core spinning), "
                        "torch (another PyTorch job with 2 spinning threads)")
    parser.add_argument("--default", action="store_true", help="also run with no variable set")
    parser.add_argument("--out", default=str(RESULTS / "threads.json"))
    args = parser.parse_args()
    settings: list[tuple[int | None, str | None]] = list(SETTINGS)
    if args.default:
        settings.append((None, None))
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cmds = commands(tmp, make_lm_bundle(tmp))
        names = args.only or list(cmds)
        for load in args.loads.split(","):
            for name in names:
                for threads, policy in settings:
                    walls, others = [], []
                    for _ in range(args.repeats):
                        if load in NEIGHBOURS:
                            with Spinner(load):
                                out = timed(cmds[name], env_for(threads, policy), None)
                        else:
                            out = timed(cmds[name], env_for(threads, policy), 0.0)
                        walls.append(out["wall_s"])
                        others.append(out["other_cores"])
                    row = {"load": load, "command": name, "threads": threads or "default",
                           "wait_policy": policy or "default", "wall_s": statistics.median(walls),
                           "runs": walls, "other_cores": others}
                    rows.append(row)
                    print(f"{load:5} {name:12} threads={row['threads']!s:7} policy={row['wait_policy']:8} "
                          f"{row['wall_s']:7.2f} s  (other cores {others})", flush=True)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
