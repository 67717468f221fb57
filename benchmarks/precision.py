"""fp32 vs bf16 autocast training throughput on this CPU (issue 6: "bf16 on CPU where it is faster").

Two recipes through practicum.api.train: quickstart (LeNet on digits) and pretrain_char (the baby
GPT on the builtin corpus), a few dozen optimizer steps each, fp32 and bf16 interleaved over
`--repeats` rounds (so drift in machine load hits both alike). The figure is the median of the
logged training samples/s (validation excluded, the first log window dropped: warm-up).
Writes benchmarks/results/precision.json and prints whether bf16 is faster here.

    .venv/bin/python benchmarks/precision.py            # 40 steps x 3 repeats
    .venv/bin/python benchmarks/precision.py --quick    # a smoke run: 6 steps x 1 repeat
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
from pathlib import Path
from typing import Any

from machine import CpuWatch, machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RECIPES = ("quickstart", "pretrain_char")
PRECISIONS = ("fp32", "bf16")


def one_run(recipe: str, precision: str, steps: int, log_every: int, out: Path) -> dict[str, Any]:
    """Median training samples/s of a short run of `recipe` at `precision`."""
    from practicum import api

    overrides = [f"out_dir={out}", f"train.precision={precision}", f"train.max_steps={steps}",
                 f"train.log_every={log_every}", f"train.eval_every={steps}", "train.device=cpu",
                 "train.progress=never", "train.tensorboard=false"]
    with CpuWatch() as watch:
        result = api.train(recipe, overrides)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in rows if r.get("split") == "train"]
    rates = rates[1:] or rates
    return {"samples_per_s": round(statistics.median(rates), 1), "wall_s": round(watch.wall_s, 1),
            "other_cores": watch.other_cores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="6 steps, 1 repeat (a smoke run)")
    args = parser.parse_args()
    steps, repeats = (6, 1) if args.quick else (args.steps, args.repeats)
    logging.basicConfig(level=logging.WARNING)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {r: {p: [] for p in PRECISIONS} for r in RECIPES}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            for recipe in RECIPES:
                order = PRECISIONS if rep % 2 == 0 else PRECISIONS[::-1]
                for precision in order:
                    out = Path(tmp) / f"{recipe}_{precision}_{rep}"
                    runs[recipe][precision].append(one_run(recipe, precision, steps, max(1, steps // 8), out))
    summary = {}
    for recipe in RECIPES:
        med = {p: statistics.median(r["samples_per_s"] for r in runs[recipe][p]) for p in PRECISIONS}
        speedup = med["bf16"] / med["fp32"] if med["fp32"] else float("nan")
        summary[recipe] = {"fp32_samples_per_s": med["fp32"], "bf16_samples_per_s": med["bf16"],
                           "bf16_speedup": round(speedup, 3), "bf16_faster": speedup > 1.05}
        verdict = "faster" if speedup > 1.05 else "not faster"
        print(f"{recipe}: fp32 {med['fp32']:,.0f} vs bf16 {med['bf16']:,.0f} samples/s -> "
              f"bf16 is {verdict} here (x{speedup:.2f})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("precision_quick.json" if args.quick else "precision.json")
    path.write_text(json.dumps({"machine": machine_info(), "steps": steps, "repeats": repeats,
                                "summary": summary, "runs": runs}, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
