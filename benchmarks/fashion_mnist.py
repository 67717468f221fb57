"""Fashion-MNIST, the real-data image benchmark: test accuracy and time of a shipped recipe.

Trains configs/resnet_fashion_mnist.yaml through practicum.api.train (what `practicum train`
runs) on the official 60k training images (the recipe carves a small stratified validation
set from them) and reports accuracy on the official 10k test images, the training time the
run itself records (summary.json train_time_s) and the wall time of the whole call (data
loading, training, final evaluation, predictions, plots, report and bundle).

Target: >= 92% test accuracy within 10 minutes of training on a 2-core CPU.

The data are the IDX files of Debian's dataset-fashion-mnist package. When they are missing,
the script runs `apt-get install -y dataset-fashion-mnist` (as root, where apt-get exists;
`apt-get update` first if that fails), and otherwise exits 0 saying why it skipped.

    .venv/bin/python benchmarks/fashion_mnist.py [--set train.epochs=12 ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import CpuWatch, machine_info

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "fashion_mnist.json"
RECIPE = ROOT / "configs" / "resnet_fashion_mnist.yaml"
DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TARGET_ACCURACY = 0.92
TARGET_TRAIN_S = 600.0

log = logging.getLogger("fashion_mnist")


# ---------------------------------------------------------------- data set-up


def have_data() -> bool:
    def present(name: str) -> bool:
        return any(DATA_DIR.rglob(f"{name}*")) if DATA_DIR.is_dir() else False

    return all(present(name) for name in IDX_FILES)


def ensure_data(allow_install: bool) -> str | None:
    """None when the IDX files are there (installing them if allowed), else why they are not."""
    if have_data():
        return None
    if not allow_install:
        return f"the Fashion-MNIST IDX files are not under {DATA_DIR} (and --no-install was given)"
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return (f"the Fashion-MNIST IDX files are not under {DATA_DIR}; install them with "
                "`apt-get install dataset-fashion-mnist` (needs root and apt-get)")
    install = ["apt-get", "install", "-y", "dataset-fashion-mnist"]
    for commands in ([install], [["apt-get", "update"], install]):
        for command in commands:
            print("running:", " ".join(command), flush=True)
            subprocess.run(command, check=False, stdout=subprocess.DEVNULL,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if have_data():
            return None
    return f"`apt-get install -y dataset-fashion-mnist` did not put the IDX files under {DATA_DIR}"


# ---------------------------------------------------------------- the run


class Timeline(logging.Handler):
    """Keeps every practicum log line with its time since the start: where the wall time went."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.t0 = time.perf_counter()
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((round(time.perf_counter() - self.t0, 2), record.getMessage()))


def run(recipe: Path, overrides: list[str], run_dir: Path) -> dict[str, Any]:
    from practicum import api

    timeline = Timeline()
    logging.getLogger("practicum").addHandler(timeline)
    started = time.time()
    with CpuWatch() as watch:
        result = api.train(recipe, [f"out_dir={run_dir}", "train.progress=never", *overrides])
    logging.getLogger("practicum").removeHandler(timeline)
    summary, cfg = result.summary, _config(result.run_dir)
    rates = [r["samples_per_s"] for r in _rows(result.run_dir) if r.get("split") == "train"]
    test = summary.get("test") or {}
    # api.train writes config.yaml just before it builds the Trainer
    setup_s = (result.run_dir / "config.yaml").stat().st_mtime - started
    return {
        "test_accuracy": test.get("accuracy"),
        "test_loss": test.get("loss"),
        "test_rows": test.get("n"),
        "val_accuracy": (summary.get("val") or {}).get("accuracy"),
        "train_time_s": summary["train_time_s"],
        "total_wall_s": round(watch.wall_s, 1),
        "before_training_s": round(setup_s, 1),
        "after_training_s": round(watch.wall_s - setup_s - summary["train_time_s"], 1),
        "other_cores": watch.other_cores,
        "steps": summary["steps"],
        "epochs_run": summary["epochs_run"],
        "best_step": summary["best_step"],
        "params": summary["params"],
        "train_samples_per_s_median": round(statistics.median(rates), 1) if rates else None,
        "recipe": {"model": cfg["model"], "train": cfg["train"], "split": cfg["data"]["split"],
                   "image": cfg["data"]["image"]},
        "timeline": timeline.lines,
    }


def _config(run_dir: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=RECIPE, help="recipe to train")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="recipe override, e.g. --set train.epochs=10 (repeatable)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    p.add_argument("--keep-run", type=Path, default=None,
                   help="write the run folder here and keep it (default: a temporary folder)")
    p.add_argument("--no-install", action="store_true", help="never call apt-get")
    p.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = p.parse_args(argv)

    why = ensure_data(allow_install=not args.no_install)
    if why is not None:
        print(f"SKIPPED fashion_mnist benchmark: {why}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.keep_run or Path(tmp) / "run"
        outcome = run(args.config, args.set, run_dir)
    met = (outcome["test_accuracy"] or 0) >= TARGET_ACCURACY and outcome["train_time_s"] <= TARGET_TRAIN_S
    result = {
        "benchmark": "fashion_mnist",
        "compares": f"test accuracy and time of {args.config.name} against the target",
        "machine": machine_info(),
        "config": _shown(args.config), "overrides": args.set,
        "data": f"{DATA_DIR} (official 60k train, 10k test)",
        "target": {"test_accuracy": TARGET_ACCURACY, "train_time_s": TARGET_TRAIN_S, "met": met},
        **outcome,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['logical_cores']} cores, torch {m['torch']}, "
          f"{m['torch_threads']} threads")
    print(f"fashion-mnist {args.config.name}: test accuracy {outcome['test_accuracy']:.4f} "
          f"on {outcome['test_rows']} images; training {outcome['train_time_s']:.1f}s "
          f"({outcome['epochs_run']} epochs, {outcome['steps']} steps, "
          f"{outcome['train_samples_per_s_median']:.0f} samples/s median); "
          f"total wall {outcome['total_wall_s']:.1f}s ({outcome['before_training_s']:.1f}s before "
          f"training, {outcome['after_training_s']:.1f}s after)")
    print(f"target >= {TARGET_ACCURACY:.0%} within {TARGET_TRAIN_S:.0f}s of training: "
          f"{'met' if met else 'MISSED'} (other processes used {outcome['other_cores'] or 0:.2f} "
          f"cores on average)")
    print(f"wrote {args.out}")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
