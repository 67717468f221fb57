"""Transfer learning on real data: the fine-tuning ladder, few-shot intents, and SFT of SmolLM2.

Parts (each writes benchmarks/results/finetune_<part>.json):
  banking77   `practicum ladder banking77_minilm`: all-MiniLM-L6-v2 on Banking77 (77 intents), a
              stratified 10% of train.csv as validation; every rung, full fine-tuning and LoRA
              included (targets: full >= 90% within 20 min of training; LoRA within 2 points
              with < 5% of the parameters training);
  phrasebank  `practicum ladder phrasebank_minilm`: Financial PhraseBank sentiment, stratified
              15% validation (target: best rung >= 85%);
  clinc150    `practicum ladder clinc150_minilm --rungs zero_shot,few_shot`: CLINC150's own
              splits, in-scope test accuracy of 8 examples per class (target >= 80%);
  sft         `practicum train sft_smollm2`: LoRA SFT of SmolLM2-135M-Instruct (GGUF) on the
              ChatterBot dialogue turns: response loss on held-out pairs before and after, then
              `practicum generate` on the adapted bundle.

Every part records the machine and other_cores (CPU that other processes used meanwhile):
timings taken beside other work are slower than this machine can do.

    .venv/bin/python benchmarks/finetune.py [--only banking77,phrasebank,clinc150,sft] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from machine import CpuWatch, machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "data"
PARTS = ("banking77", "phrasebank", "clinc150", "sft")
LADDERS = {
    "banking77": ("banking77_minilm", SHARED / "banking77" / "train.csv", None),
    "phrasebank": ("phrasebank_minilm", SHARED / "financial_phrasebank" / "train.csv", None),
    "clinc150": ("clinc150_minilm", SHARED / "clinc150" / "data_full.json", "zero_shot,few_shot"),
}
QUICK = ["data.limit=400", "train.max_steps=6", "train.epochs=1", "ladder.seeds=2", "ladder.shots=2"]


def run_ladder(part: str, quick: bool, out: Path) -> dict[str, Any]:
    from practicum import api

    recipe, data, rungs = LADDERS[part]
    if not data.is_file():
        return {"skipped": f"{data} not found"}
    overrides = [f"data.path={data}"] + (QUICK if quick else [])
    if rungs:
        overrides.append(f"ladder.rungs=[{rungs}]")
    if quick and part == "clinc150":
        overrides.remove("data.limit=400")  # few-shot needs every class
    with CpuWatch() as watch:
        ladder = api.ladder(recipe, overrides, out)
    rungs_by_name = {r.name: r for r in ladder.rungs}
    result = {"command": f"practicum ladder {recipe}" + (f" --rungs {rungs}" if rungs else ""),
              "overrides": overrides, "wall_s": round(watch.wall_s, 1), "other_cores": watch.other_cores,
              "ladder": ladder.to_dict()}
    if part == "banking77" and {"full", "lora"} <= set(rungs_by_name):
        full, lora = rungs_by_name["full"], rungs_by_name["lora"]
        total = _total_params(full.run_dir)
        result["acceptance"] = {
            "full_accuracy": full.accuracy, "full_train_time_s": full.train_time_s,
            "full_ge_90_within_20_min": full.accuracy >= 0.90 and full.train_time_s <= 1200,
            "lora_accuracy": lora.accuracy, "lora_gap_points": round(100 * (full.accuracy - lora.accuracy), 2),
            "lora_trainable_fraction": lora.trainable_params / total,
            "lora_within_2_points_under_5_percent": (full.accuracy - lora.accuracy) <= 0.02
            and lora.trainable_params < 0.05 * total,
        }
    if part == "phrasebank":
        best = max(ladder.rungs, key=lambda r: r.accuracy)
        result["acceptance"] = {"best_rung": best.name, "best_accuracy": best.accuracy,
                                "best_ge_85": best.accuracy >= 0.85}
    if part == "clinc150" and "few_shot" in rungs_by_name:
        few = rungs_by_name["few_shot"]
        result["acceptance"] = {"few_shot_accuracy": few.accuracy, "few_shot_ci": few.accuracy_ci,
                                "shots": ladder.shots, "few_shot_ge_80": few.accuracy >= 0.80}
    return result


def _total_params(run_dir: str | None) -> int:
    return int(json.loads((Path(run_dir) / "summary.json").read_text())["params"])


def run_sft(quick: bool, out: Path) -> dict[str, Any]:
    from practicum import api

    overrides = [f"out_dir={out / 'sft'}"] + (["train.max_steps=4", "train.eval_every=2"] if quick else [])
    with CpuWatch() as watch:
        result = api.train("sft_smollm2", overrides)
    cmd = [sys.executable, "-m", "practicum", "generate", str(result.bundle), "--chat", "--prompt",
           "What is AI?", "--temperature", "0", "--max-new-tokens", "40", "--no-stream"]
    gen = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    s = result.summary
    return {
        "command": "practicum train sft_smollm2", "overrides": overrides,
        "examples": s["examples"], "steps": s["steps"], "train_time_s": s["train_time_s"],
        "trainable_params": s["trainable_params"], "params": s["params"],
        "val_response_loss_before": s["val_before"].get("loss"), "val_response_loss_after": s["val"].get("loss"),
        "lowered": s["val"].get("loss", 1e9) < s["val_before"].get("loss", 0),
        "generate_command": " ".join(cmd[2:4] + ["BUNDLE"] + cmd[5:]), "generate_rc": gen.returncode,
        "generated": gen.stdout.strip()[:400], "wall_s": round(watch.wall_s, 1), "other_cores": watch.other_cores,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny limits everywhere")
    p.add_argument("--keep", type=Path, default=None, help="folder for the runs (default: temporary)")
    args = p.parse_args(argv)
    parts = [x for x in args.only.split(",") if x]
    if bad := set(parts) - set(PARTS):
        p.error(f"--only: unknown part(s) {', '.join(sorted(bad))}; choose from {', '.join(PARTS)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="finetune-bench-") as tmp:
        base = args.keep or Path(tmp)
        for part in parts:
            out = base / part
            result = run_sft(args.quick, out) if part == "sft" else run_ladder(part, args.quick, out)
            record = {"benchmark": f"finetune_{part}", "quick": args.quick, "machine": machine_info(), **result}
            name = f"finetune_{part}{'_quick' if args.quick else ''}.json"
            (RESULTS / name).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            print(json.dumps({k: v for k, v in record.items() if k not in ("ladder", "machine")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
