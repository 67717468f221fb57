"""Quality of every shipped recipe: train each as shipped and record its test metrics.

    .venv/bin/python benchmarks/recipes.py [--only lstm_text transformer_text] [--out FILE]

Recipes whose data is absent here (the ../shared text CSV, Debian's Fashion-MNIST) are
skipped with the reason. JSON goes to benchmarks/results/recipes.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_info  # noqa: E402

import practicum  # noqa: E402
from practicum.errors import UserError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ("accuracy", "f1_macro", "roc_auc", "mae", "rmse", "r2")


def run(recipe: str, out_dir: Path) -> dict:
    started = time.perf_counter()
    try:
        result = practicum.train(recipe, [f"out_dir={out_dir / recipe}", "train.progress=never"])
    except UserError as exc:
        return {"recipe": recipe, "skipped": str(exc)}
    test = result.metrics.get("test", {})
    return {
        "recipe": recipe,
        "model": _cfg(result).model.type,
        "data": _cfg(result).data.path,
        "test": {k: round(test[k], 4) for k in HEADLINE if k in test},
        "test_rows": test.get("n"),
        "steps": result.summary["steps"],
        "train_time_s": result.summary["train_time_s"],
        "wall_s": round(time.perf_counter() - started, 1),
        "params": result.summary["params"],
    }


def _cfg(result: practicum.RunResult) -> practicum.RunConfig:
    return practicum.load_config(result.run_dir / "config.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="recipe names (default: all in configs/)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recipes.json"))
    args = parser.parse_args()
    names = args.only or sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(name, Path(tmp)) for name in names]
    for r in rows:
        shown = r.get("skipped") or "  ".join(f"{k} {v}" for k, v in r["test"].items())
        timing = f"  ({r['train_time_s']:.0f}s training)" if "train_time_s" in r else ""
        print(f"{r['recipe']:22} {shown}{timing}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine_info(), "recipes": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
