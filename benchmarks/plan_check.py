"""The pre-flight planner against real runs (issue 6, acceptance 4).

For three shipped recipes of different sizes (mlp_tabular: an MLP on penguins, ~3k parameters;
quickstart: a LeNet on 8x8 digits, ~53k; pretrain_char: a char-level GPT, ~0.8M), run
`practicum plan` (practicum.plan.plan_run), then a real short training run with the same
Trainer (practicum.plan.check.measure_run, train.max_steps steps, no validation), and compare:

  peak memory  planned vs measured. On a CPU the measured peak is what the run's tensors hold
               at a step's peak (parameters + buffers, gradients at the optimizer step, the
               optimizer's state, the most bytes autograd saved in one forward), compared with
               the plan's peak without its allocator overhead; on CUDA it is
               torch.cuda.max_memory_allocated, compared with the full planned peak.
               Target: within 25%.
  step time    planned (median of a few timed steps) vs the run's median step (warm-up left
               out). Target: within 50%.

Writes benchmarks/results/plan_check.json and prints a table.

    .venv/bin/python benchmarks/plan_check.py                 # the real check (30-step runs)
    .venv/bin/python benchmarks/plan_check.py --quick         # a smoke run with tiny settings
    .venv/bin/python benchmarks/plan_check.py --device cuda   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from machine import CpuWatch, machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RECIPES = ("mlp_tabular", "quickstart", "pretrain_char")
QUICK = {  # tiny settings for a smoke run
    "mlp_tabular": ["model.hidden_sizes=[16]"],
    "quickstart": ["model.channels=[4,8]", "model.hidden_size=16"],
    "pretrain_char": ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.block_size=32"],
}
MEMORY_TOLERANCE, TIME_TOLERANCE = 0.25, 0.50


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [check_recipe(name, args) for name in args.recipes]
    out = {
        "benchmark": "plan_check",
        "machine": machine_info(),
        "device": args.device or "auto",
        "quick": args.quick,
        "run_steps": args.steps,
        "targets": {"peak_memory_within": MEMORY_TOLERANCE, "step_time_within": TIME_TOLERANCE},
        "recipes": rows,
        "all_within": all(r["memory_ok"] and r["time_ok"] for r in rows),
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(_table(rows))
    print(f"\n{'all within targets' if out['all_within'] else 'SOME OUTSIDE TARGETS'}; wrote {path}")
    return 0


def check_recipe(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Plan one recipe, run it, and put predicted beside measured."""
    from practicum.api import resolve_config
    from practicum.plan import plan_run
    from practicum.plan.check import measure_run

    overrides = QUICK[name] if args.quick else []
    if args.threads:
        overrides = [*overrides, f"train.num_threads={args.threads}"]
    cfg = resolve_config(name, overrides)
    with CpuWatch() as plan_watch:
        plan = plan_run(cfg, device=args.device, steps=args.plan_steps)
    with CpuWatch() as run_watch:
        run = measure_run(cfg, steps=args.steps, device=args.device)
    cuda = run["device"].startswith("cuda")
    predicted_peak = plan.memory["peak"] if cuda else plan.memory["peak"] - plan.memory["overhead"]
    mem_ratio = predicted_peak / run["peak"]
    time_ratio = plan.step_time_s / run["step_time_s"]
    return {
        "recipe": name, "model": plan.model, "device": run["device"], "params": plan.params_total,
        "micro_batch": plan.micro_batch,
        "predicted": {"peak_bytes": predicted_peak, "memory": plan.memory,
                      "step_time_s": plan.step_time_s, "samples_per_s": plan.samples_per_s,
                      "tokens_per_s": plan.tokens_per_s, "flops_per_step": plan.flops_per_step,
                      "flops_analytic": plan.flops_analytic, "mfu": plan.mfu,
                      "time_to_finish_s": plan.time_to_finish_s, "total_steps": plan.total_steps},
        "measured": {"peak_bytes": run["peak"], "memory": run["memory"],
                     "step_time_s": run["step_time_s"], "step_time_mean_s": run["step_time_mean_s"],
                     "steps": run["steps"]},
        "peak_ratio": round(mem_ratio, 4), "step_time_ratio": round(time_ratio, 4),
        "memory_ok": abs(mem_ratio - 1) <= MEMORY_TOLERANCE,
        "time_ok": abs(time_ratio - 1) <= TIME_TOLERANCE,
        "other_cores_busy": {"plan": plan_watch.other_cores, "run": run_watch.other_cores},
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'recipe':<14} {'params':>9} {'peak pred MiB':>14} {'peak run MiB':>13} {'ratio':>6} "
            f"{'step pred ms':>13} {'step run ms':>12} {'ratio':>6}")
    lines = [head, "-" * len(head)]
    mib = 1024 * 1024
    for r in rows:
        p, m = r["predicted"], r["measured"]
        lines.append(f"{r['recipe']:<14} {r['params']:>9,} {p['peak_bytes'] / mib:>14.2f} "
                     f"{m['peak_bytes'] / mib:>13.2f} {r['peak_ratio']:>6.2f} "
                     f"{p['step_time_s'] * 1000:>13.2f} {m['step_time_s'] * 1000:>12.2f} "
                     f"{r['step_time_ratio']:>6.2f}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    p.add_argument("--steps", type=int, default=30, help="optimizer steps of each measured run")
    p.add_argument("--plan-steps", type=int, default=5, help="steps the planner times")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: the recipe's, auto)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="tiny models and a few steps: a smoke run")
    p.add_argument("--out", default=str(RESULTS / "plan_check.json"))
    return p


if __name__ == "__main__":
    sys.exit(main())
