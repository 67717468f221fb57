"""The quickstart's test accuracy over training seeds and thread counts: the figure a user gets.

`practicum quickstart` trains a LeNet on 1,437 digits and tests on 180 held-out ones, so one
image is 0.56 points, and the seed (weights, batch order, augmentation) and the thread count
(the order of floating-point sums) each move the result by a few images. This trains the
recipe as shipped with `train.seed` 0..N-1 at 1 and 2 threads (the data split stays the
recipe's), and records every test accuracy and training time.

    .venv/bin/python benchmarks/quickstart_seeds.py               # seeds 0-9, 1 and 2 threads
    .venv/bin/python benchmarks/quickstart_seeds.py --seeds 3 --threads 1

Writes benchmarks/results/quickstart_seeds.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from machine import CpuWatch, machine_info  # noqa: E402

import practicum  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--threads", type=int, action="append", help="thread counts (default 1 and 2)")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads or [1, 2]:
            torch.set_num_threads(threads)
            for seed in range(args.seeds):
                with CpuWatch() as watch:
                    result = practicum.train("quickstart", [f"out_dir={tmp}/s{seed}t{threads}", f"train.seed={seed}",
                                                            "train.progress=never"])
                test = result.metrics["test"]
                runs.append({"threads": threads, "seed": seed, "accuracy": round(test["accuracy"], 4),
                             "train_time_s": result.summary["train_time_s"], "other_cores": watch.other_cores})
                print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for threads in sorted({r["threads"] for r in runs}):
        acc = [r["accuracy"] for r in runs if r["threads"] == threads]
        summary[str(threads)] = {"median": statistics.median(acc), "min": min(acc), "max": max(acc),
                                 "mean": round(statistics.mean(acc), 4)}
    every = [r["accuracy"] for r in runs]
    summary["all"] = {"median": statistics.median(every), "min": min(every), "max": max(every),
                      "mean": round(statistics.mean(every), 4)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "quickstart_seeds.json"
    out.write_text(json.dumps({"machine": machine_info(), "summary": summary, "runs": runs}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
