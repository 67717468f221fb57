"""Compression on real data: what each way of shrinking a trained model costs and gains.

text   the transformer_text recipe trained on Financial PhraseBank (../shared/data; skipped with
       a message when absent), or --bundle; on its own test split:
         original | int8 (dynamic) | prune 50% (global magnitude), no recovery |
         prune 50% + recovery fine-tune | distilled student (transformer_text_student,
         half the parameters) | the student + int8
       Targets (issue 5): int8 file >= 3x smaller, <= 1 point of accuracy lost; prune 50% +
       recovery <= 1 point lost; the student keeps >= 97% of the teacher's accuracy.
image  the quickstart LeNet on scikit-learn's digits, static int8 (FX, calibrated).
lm     pretrain_char (a short run) with int8-weight (torchao), on its validation corpus.

Every row comes from practicum.compress (what `practicum compress` runs): sizes of the real
files, parameters, latency p50/p95 at batch 1 and 32, the metric, the change vs the original.
Writes benchmarks/results/compress.json and compress.md.

    .venv/bin/python benchmarks/compress.py                  # the full run
    .venv/bin/python benchmarks/compress.py --quick          # a smoke run with tiny settings
    .venv/bin/python benchmarks/compress.py --bundle runs/transformer_text/bundle --only text
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
SHARED = ROOT.parent / "shared" / "data"
PHRASEBANK = SHARED / "financial_phrasebank" / "train.csv"
RESULTS = ROOT / "benchmarks" / "results"
SECTIONS = ("text", "image", "lm")

log = logging.getLogger("compress_benchmark")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work)
    result: dict[str, Any] = {"machine": machine_info(), "settings": vars(args), "sections": {}}
    for name in args.only.split(","):
        if name not in SECTIONS:
            raise SystemExit(f"--only: unknown section {name!r}; choose from {', '.join(SECTIONS)}")
        with CpuWatch() as watch:
            section = {"text": text_section, "image": image_section, "lm": lm_section}[name](args, work)
        if section is not None:
            section.update(wall_s=round(watch.wall_s, 1), other_cores=watch.other_cores)
            result["sections"][name] = section
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    text = report(result)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


# ---------------------------------------------------------------- sections


def text_section(args: argparse.Namespace, work: Path) -> dict[str, Any] | None:
    import practicum

    if args.bundle:
        teacher = Path(args.bundle)
    elif not PHRASEBANK.is_file():
        print(f"text: skipped: {PHRASEBANK} is not there (../shared/data beside the project); "
              "pass --bundle to use a trained bundle")
        return None
    else:
        quick = ["train.epochs=2", "data.limit=600"] if args.quick else []
        epochs = [f"train.epochs={args.epochs}"] if args.epochs else []
        teacher = practicum.train("transformer_text", [f"out_dir={work / 'transformer_text'}", f"data.path={PHRASEBANK}",
                                                       *quick, *epochs,
                                                       "train.progress=never"]).bundle
    student = ["train.progress=never", *(["train.epochs=2"] if args.quick else [])]
    variants = [
        ("int8", {"quantize": "int8"}),
        ("prune 50%", {"prune": 0.5}),
        ("prune 50% + recovery", {"prune": 0.5, "recover_epochs": args.recover_epochs,
                                  "overrides": ["train.progress=never"]}),
        ("student (half size)", {"distill": "transformer_text_student", "overrides": student}),
        ("student + int8", {"distill": "transformer_text_student", "overrides": student, "quantize": "int8"}),
    ]
    table = run_variants(teacher, variants, work / "text", args.repeats)
    rows = {r["name"]: r for r in table["rows"]}
    base = rows["original"]["metrics"]["accuracy"]
    table["checks"] = {
        "int8: file >= 3x smaller": rows["int8"]["delta"]["size_ratio"] >= 3.0,
        "int8: <= 1 point of accuracy lost": rows["int8"]["delta"]["accuracy"] >= -0.01,
        "prune 50% + recovery: <= 1 point lost": rows["prune 50% + recovery"]["delta"]["accuracy"] >= -0.01,
        "student: half the parameters or fewer": rows["student (half size)"]["parameters"]
        <= rows["original"]["parameters"] / 2 + 1000,
        "student: >= 97% of the teacher's accuracy": rows["student (half size)"]["metrics"]["accuracy"]
        >= 0.97 * base,
    }
    return table


def image_section(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import practicum

    quick = ["train.epochs=2"] if args.quick else []
    bundle = practicum.train("quickstart", [f"out_dir={work / 'quickstart'}", "train.progress=never", *quick]).bundle
    return run_variants(bundle, [("static-int8", {"quantize": "static-int8"}),
                                 ("int8 (dynamic)", {"quantize": "int8"})], work / "image", args.repeats)


def lm_section(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import practicum

    steps = 20 if args.quick else args.lm_steps
    bundle = practicum.pretrain("pretrain_char", [f"out_dir={work / 'pretrain_char'}", f"train.max_steps={steps}",
                                                  f"train.eval_every={max(steps // 2, 1)}",
                                                  "train.progress=never"]).bundle
    return run_variants(bundle, [("int8-weight", {"quantize": "int8-weight"})], work / "lm", args.repeats)


def run_variants(bundle: Path, variants: list[tuple[str, dict[str, Any]]], work: Path,
                 repeats: int) -> dict[str, Any]:
    """One compress() per variant; the table keeps the first call's original row."""
    from practicum.compress.pipeline import compress
    from practicum.compress.tradeoff import Evaluation, tradeoff

    rows: list[dict[str, Any]] = []
    evaluation = ""
    for name, kwargs in variants:
        start = time.perf_counter()
        result = compress(bundle, out=work / name.replace(" ", "_").replace("%", ""), repeats=repeats, **kwargs)
        original, row = result.table["rows"]
        row.update(name=name, compress_s=round(time.perf_counter() - start, 1))
        rows = rows or [original]
        rows.append(row)
        evaluation = result.table["evaluation"]
        log.info("%s: done in %.0f s", name, row["compress_s"])
    return tradeoff(rows, Evaluation(evaluation), repeats)


# ---------------------------------------------------------------- output


def report(result: dict[str, Any]) -> str:
    from practicum.compress.tradeoff import markdown

    m = result["machine"]
    lines = [f"# Compression benchmark\n\n{m['cpu']}, {m['usable_cores']} cores, torch {m['torch']}, "
             f"{m['torch_threads']} thread(s).\n"]
    for name, section in result["sections"].items():
        lines.append(f"## {name}\n\n{markdown(section)}")
        lines.append(f"Wall time {section['wall_s']} s; other processes used {section['other_cores']} cores "
                     "meanwhile.\n")
        for check, ok in section.get("checks", {}).items():
            lines.append(f"- [{'x' if ok else ' '}] {check}")
        lines.append("")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default=None, help="a trained text classifier bundle instead of training transformer_text")
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: text,image,lm")
    p.add_argument("--epochs", type=int, default=None, help="override transformer_text's epochs")
    p.add_argument("--recover-epochs", type=float, default=1.0, help="recovery fine-tune after pruning")
    p.add_argument("--lm-steps", type=int, default=300, help="pretrain_char training steps")
    p.add_argument("--repeats", type=int, default=50, help="timed calls per latency figure")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="tiny settings: a smoke run of every section")
    p.add_argument("--work", default=str(ROOT / "runs" / "benchmark_compress"), help="where the runs go")
    p.add_argument("--out", default=str(RESULTS / "compress.json"))
    return p


if __name__ == "__main__":
    sys.exit(main())
