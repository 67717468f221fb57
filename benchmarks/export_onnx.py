"""ONNX export of a Transformer text classifier: does onnxruntime compute what PyTorch computes,
and how fast, at batch 1 and batch 32?

The transformer_text recipe is trained on Financial PhraseBank (../shared/data; skipped with a
message when absent), or --bundle is used; then `practicum export --format onnx` runs (its own
parity check included), and on the bundle's whole test split this script compares the logits
of PyTorch and onnxruntime (max abs diff, prediction agreement) and times both, same thread
count, p50/p95 over --runs calls after warm-up. Target (issue 5): max abs diff < 1e-4.
Writes benchmarks/results/export_onnx.json.

    .venv/bin/python benchmarks/export_onnx.py                 # train the recipe, export, measure
    .venv/bin/python benchmarks/export_onnx.py --quick         # a smoke run with tiny settings
    .venv/bin/python benchmarks/export_onnx.py --bundle runs/transformer_text/bundle
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from machine import CpuWatch, machine_info

ROOT = Path(__file__).resolve().parents[1]
PHRASEBANK = ROOT.parent / "shared" / "data" / "financial_phrasebank" / "train.csv"
RESULTS = ROOT / "benchmarks" / "results"
TARGET = 1e-4


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = _bundle(args)
    if bundle is None:
        return 0
    with CpuWatch() as watch:
        result = measure(bundle, Path(args.work) / "onnx", args.runs)
    result.update(machine=machine_info(), settings=vars(args), wall_s=round(watch.wall_s, 1),
                  other_cores=watch.other_cores)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(report(result))
    print(f"wrote {out}")
    return 0


def _bundle(args: argparse.Namespace) -> Path | None:
    import practicum

    if args.bundle:
        return Path(args.bundle)
    if not PHRASEBANK.is_file():
        print(f"skipped: {PHRASEBANK} is not there (../shared/data beside the project); "
              "pass --bundle to use a trained Transformer text classifier")
        return None
    quick = ["train.epochs=1", "data.limit=600"] if args.quick else []
    epochs = [f"train.epochs={args.epochs}"] if args.epochs else []
    return practicum.train("transformer_text", [f"out_dir={Path(args.work) / 'transformer_text'}",
                                                f"data.path={PHRASEBANK}", *quick, *epochs,
                                                "train.progress=never"]).bundle


def measure(bundle_path: Path, out: Path, runs: int) -> dict[str, Any]:
    """Export, then the whole-test-split comparison and batch 1 / batch 32 latencies."""
    import torch

    from practicum.bundle import Bundle
    from practicum.compress.export import export_bundle, timed
    from practicum.compress.onnx_runtime import onnx_session, run_session
    from practicum.data import raw_split

    result = export_bundle(bundle_path, "onnx", out, latency_runs=runs)
    bundle = Bundle.load(bundle_path)
    batch, _, _ = bundle.preprocessor.load_inputs(raw_split(bundle.config.data, bundle.config.task, "test"))
    batch = {k: v for k, v in batch.items() if k != "target"}
    session = onnx_session(result.path / "model.onnx")
    with torch.no_grad():
        want = bundle.model(**batch)
    got = run_session(session, batch)
    rows = len(want)

    def torch_fn(b: dict) -> Any:
        with torch.no_grad():
            return bundle.model(**b)

    latency = {}
    for size in (1, 32):
        part = {k: v[:size] for k, v in batch.items()}
        t, o = timed(torch_fn, part, runs), timed(lambda b: run_session(session, b), part, runs)
        latency[f"batch_{size}"] = {"torch_ms": t, "onnxruntime_ms": o,
                                    "speedup_p50": round(t["p50"] / max(o["p50"], 1e-9), 2)}
    diff = float((want - got).abs().max())
    return {
        "bundle": str(bundle_path), "export": {k: result.info[k] for k in ("exporter", "opset", "inputs",
                                                                          "outputs", "dynamic_axes")},
        "model_onnx_bytes": (result.path / "model.onnx").stat().st_size,
        "parity_check": result.parity,
        "test_split": {"rows": rows, "seq_len": int(batch["tokens"].shape[1]), "max_abs_diff": diff,
                       "prediction_agreement": float((want.argmax(1) == got.argmax(1)).float().mean())},
        "latency": latency, "threads": torch.get_num_threads(), "runs": runs,
        "checks": {f"max abs diff < {TARGET:.0e} (test split)": diff < TARGET,
                   "parity check passed": bool(result.parity["ok"])},
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def report(r: dict[str, Any]) -> str:
    t = r["test_split"]
    lines = [f"ONNX export of {r['bundle']} ({r['export']['exporter']} exporter, opset {r['export']['opset']}) "
             f"on {r['machine']['cpu']}, {r['threads']} thread(s), other processes {r['other_cores']} cores",
             f"test split: {t['rows']} rows x {t['seq_len']} tokens: max abs diff {t['max_abs_diff']:.1e}, "
             f"predictions agree {t['prediction_agreement']:.1%}",
             "", "| batch | PyTorch p50 / p95 ms | onnxruntime p50 / p95 ms | onnxruntime speed-up (p50) |",
             "|---|---|---|---|"]
    for key, row in r["latency"].items():
        tt, oo = row["torch_ms"], row["onnxruntime_ms"]
        lines.append(f"| {key.split('_')[1]} | {tt['p50']:.3f} / {tt['p95']:.3f} | {oo['p50']:.3f} / {oo['p95']:.3f} "
                     f"| {row['speedup_p50']}x |")
    lines += [""] + [f"{'ok  ' if ok else 'FAIL'} {name}" for name, ok in r["checks"].items()]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default=None, help="a trained text classifier bundle instead of training transformer_text")
    p.add_argument("--epochs", type=int, default=None, help="override transformer_text's epochs")
    p.add_argument("--runs", type=int, default=50, help="timed calls per latency figure (after 5 warm-up calls)")
    p.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="tiny settings: 1 epoch on 600 rows")
    p.add_argument("--work", default=str(ROOT / "runs" / "benchmark_export_onnx"), help="where the runs go")
    p.add_argument("--out", default=str(RESULTS / "export_onnx.json"))
    return p


if __name__ == "__main__":
    sys.exit(main())
