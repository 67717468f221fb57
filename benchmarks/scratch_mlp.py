"""Training speed of the NumPy scratch MLP beside its PyTorch twin, on scikit-learn's digits.

Both sides run the same `fit` signature (practicum.scratch.fit / practicum.scratch.twins.fit):
MLP 64 -> 128 (ReLU) -> 10, Adam lr 2e-3, the same initial weights (copied), the same
mini-batch order (the same NumPy seed), 1,437 training digits (stratified 80%), tested on
the other 360. Three runs, alternating in order:
  scratch        NumPy float64, every backward written out (the only dtype scratch has)
  torch float64  the twin on the same dtype: the like-for-like comparison
  torch float32  the twin as one would normally run it
What is timed: the whole `fit` call (forward, loss, backward, optimizer, batch slicing);
the ratio is samples/s of torch over scratch, per batch size and thread count (torch's
intra-op threads and NumPy's BLAS threads set alike). No target: an honest figure.
Each run records `other_cores` (CPU used by other processes): run it on a quiet machine,
since a busy neighbour slows torch's multi-threaded small ops many-fold.

    .venv/bin/python benchmarks/scratch_mlp.py [--epochs 30] [--repeats 3] [--threads 1,2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import CpuWatch, machine_info
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from practicum import scratch
from practicum.scratch import twins

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "scratch_mlp.json"
SIZES = [64, 128, 10]


def run(side: str, data: tuple[np.ndarray, ...], batch_size: int, epochs: int) -> dict[str, Any]:
    X_train, X_test, y_train, y_test = data
    model = scratch.MLP(SIZES, seed=0)
    lib = scratch
    if side != "scratch":
        twin = twins.MLP(SIZES)
        twins.copy_to_torch(model, twin)
        model, lib = (twin.float() if side == "torch float32" else twin), twins
    with CpuWatch() as watch:
        lib.fit(model, X_train, y_train, optimizer="adam", lr=2e-3, epochs=epochs, batch_size=batch_size)
    return {"seconds": watch.wall_s, "samples_per_s": len(X_train) * epochs / watch.wall_s,
            "test_accuracy": lib.accuracy(model, X_test, y_test), "other_cores": watch.other_cores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="32,256")
    parser.add_argument("--threads", default="1,2", help="thread counts to run, for torch and BLAS alike")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    data = train_test_split(X / 16.0, y, test_size=0.2, stratify=y, random_state=0)
    sides = ["scratch", "torch float64", "torch float32"]
    results: dict[str, Any] = {"machine": machine_info(), "numpy": np.__version__,
                               "blas": _blas(), "epochs": args.epochs, "runs": {}}
    print(f"MLP {SIZES} on digits, {args.epochs} epochs, median of {args.repeats} repeats")
    print(f"{'threads':>7} {'batch':>5}  {'side':<14} {'samples/s':>10} {'seconds':>8} {'test acc':>8}  "
          "vs scratch  other cores")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        with _blas_threads(threads):
            for side in sides:  # warm-up: first calls pay for allocations and kernel selection
                run(side, data, 256, 1)
            for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
                summary = _measure(sides, data, batch_size, args.epochs, args.repeats)
                for side, row in summary.items():
                    print(f"{threads:>7} {batch_size:>5}  {side:<14} {row['samples_per_s']:>10,.0f} "
                          f"{row['seconds']:>8.2f} {row['test_accuracy']:>8.3f}  "
                          f"{row['speed_vs_scratch']:>9.2f}x  {row['max_other_cores']}")
                results["runs"][f"threads={threads},batch={batch_size}"] = summary
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


def _measure(sides: list[str], data: tuple[np.ndarray, ...], batch_size: int, epochs: int,
             repeats: int) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    for r in range(repeats):
        for side in sides if r % 2 == 0 else sides[::-1]:  # alternate so drift hits all sides
            rows[side].append(run(side, data, batch_size, epochs))
    summary = {side: {"samples_per_s": statistics.median(x["samples_per_s"] for x in runs),
                      "seconds": statistics.median(x["seconds"] for x in runs),
                      "test_accuracy": runs[0]["test_accuracy"],
                      "max_other_cores": max((x["other_cores"] or 0.0) for x in runs), "repeats": runs}
               for side, runs in rows.items()}
    for row in summary.values():
        row["speed_vs_scratch"] = row["samples_per_s"] / summary["scratch"]["samples_per_s"]
    return summary


def _blas_threads(threads: int) -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def _blas() -> list[dict[str, Any]]:
    """Which BLAS NumPy runs on, and its threads (threadpoolctl ships with scikit-learn)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: i.get(k) for k in ("internal_api", "num_threads", "version", "architecture")}
            for i in threadpool_info()]


if __name__ == "__main__":
    main()
