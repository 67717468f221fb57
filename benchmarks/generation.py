"""Generation speed (tokens/s) of practicum's decoding loop, with and without the KV cache,
beside transformers' GPT2LMHeadModel.generate on the same weights.

For each model, in one process, timed runs interleave (the order rotates every repeat):
  ours cache     practicum.generate.generate_ids (left-padded batch, prefill, then one token a
                 step through the preallocated KVCache), every step consumed;
  ours no-cache  the same with use_cache=False: the whole sequence runs again every step;
  ours text      practicum.generate.generate on the prompts' text (cache on): adds encoding and
                 the incremental decode of every new token, i.e. what a user calls;
  HF cache       GPT2LMHeadModel.generate(do_sample=False, max_new_tokens=N, min_new_tokens=N,
                 use_cache=True) on the folder practicum.models.hf.export_hf wrote;
  HF no-cache    the same with use_cache=False.
Greedy decoding (temperature 0) in fp32, torch's default threads, torch.inference_mode. Every
run generates exactly N new tokens a prompt (ours: stop_at_eos=False; Hugging Face:
min_new_tokens=N). tokens/s = batch * N / wall time of the whole call (prefill included).
One short warm-up run per runner, then the median of --repeats timed runs; a runner stops
repeating once its timed runs add up to --budget seconds, so the no-cache runs at batch 8 on the
larger model (about a minute each) run once. Default run: ~10 min on 2 cores (~22 min with
--budget 1e9, all runners 3 times).

Speed does not depend on the weights: the baby GPT is trained for 200 steps first (about a
minute) only so that its greedy output is text rather than one repeated token, which makes the
agreement check meaningful; the larger model keeps its random (seeded) weights. The tokenizer is
a char tokenizer trained on Tiny Shakespeare (../shared/data/tinyshakespeare/input.txt; else the
stdlib pydoc topics text), and prompts are 32-character slices of that text. Greedy tokens of
every runner are compared with ours-cache's (agreement), and our logits with Hugging Face's.

    .venv/bin/python benchmarks/generation.py [--quick] [--repeats 3] [--budget 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from machine import CpuWatch, machine_info

from practicum.config import LMConfig
from practicum.data.tokenizers import Tokenizer, train_tokenizer
from practicum.generate import GenerationConfig, generate, generate_ids
from practicum.models.hf import export_hf
from practicum.models.lm import TransformerLM

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "generation.json"
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
MODELS = {  # GPT-2 layout; the context must hold the prompt and 256 new tokens
    "baby-gpt": dict(preset="baby-gpt", block_size=512),
    "gpt-6x384": dict(preset="gpt2", n_layer=6, n_head=6, n_embd=384, block_size=512),
}
TRAIN_STEPS = {"baby-gpt": 200, "gpt-6x384": 0}
"""AdamW steps on the corpus before measuring (speed does not depend on the weights; trained
weights give greedy outputs that are not one repeated token, a fairer agreement check)."""
PROMPT_LEN = 32
MIXED_LENGTHS = [32, 12, 28, 16, 24, 20, 30, 14]
RUNNERS = ("ours cache", "ours no-cache", "ours text", "HF cache", "HF no-cache")
Tokens = list[list[int]]


@dataclass
class Setting:
    """One batch of prompts: ids and their text."""

    name: str
    prompts: Tokens
    texts: list[str]

    @property
    def batch(self) -> int:
        return len(self.prompts)


def corpus_text(path: Path) -> tuple[str, str]:
    """(text, where it came from): Tiny Shakespeare if present, else the stdlib pydoc topics."""
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path)
    from pydoc_data.topics import topics

    return "\n".join(topics.values()), "pydoc_data.topics"


def settings(text: str, tokenizer: Tokenizer) -> list[Setting]:
    """batch 1, batch 8 (same length) and batch 8 of mixed lengths: slices spread over the text."""
    step = len(text) // 8

    def prompt(i: int, n: int) -> tuple[list[int], str]:
        piece = text[i * step:i * step + n]
        ids = tokenizer.encode(piece)
        if len(ids) != n or tokenizer.decode(ids) != piece:
            raise RuntimeError(f"char tokenizer did not round-trip {piece!r} into {n} tokens")
        return ids, piece

    def make(name: str, lengths: list[int]) -> Setting:
        pairs = [prompt(i, n) for i, n in enumerate(lengths)]
        return Setting(name, [p for p, _ in pairs], [t for _, t in pairs])

    return [make("batch 1", [PROMPT_LEN]), make("batch 8", [PROMPT_LEN] * 8),
            make(f"batch 8, lengths {min(MIXED_LENGTHS)}-{max(MIXED_LENGTHS)}", MIXED_LENGTHS)]


# ---------------------------------------------------------------- runners


def ours_ids(model: TransformerLM, use_cache: bool) -> Callable[[Setting, int], Tokens]:
    def run(s: Setting, new: int) -> Tokens:
        cfg = GenerationConfig(max_new_tokens=new, temperature=0.0, stop_at_eos=False,
                               use_cache=use_cache)
        out: Tokens = [[] for _ in s.prompts]
        for step in generate_ids(model, s.prompts, cfg):
            for i, token in step.tokens.items():
                out[i].append(token)
        return out
    return run


def ours_text(model: TransformerLM, tokenizer: Tokenizer) -> Callable[[Setting, int], Tokens]:
    def run(s: Setting, new: int) -> Tokens:
        cfg = GenerationConfig(max_new_tokens=new, temperature=0.0, stop_at_eos=False)
        return [c.token_ids for c in generate(model, tokenizer, s.texts, cfg)]
    return run


def hf_generate(hf: Any, pad_id: int, use_cache: bool) -> Callable[[Setting, int], Tokens]:
    def run(s: Setting, new: int) -> Tokens:
        P = max(len(p) for p in s.prompts)
        ids = torch.full((s.batch, P), pad_id, dtype=torch.long)  # left padding
        mask = torch.zeros(s.batch, P, dtype=torch.long)
        for row, p in enumerate(s.prompts):
            ids[row, P - len(p):] = torch.tensor(p)
            mask[row, P - len(p):] = 1
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=new,
                              min_new_tokens=new, use_cache=use_cache, pad_token_id=pad_id)
        return out[:, P:].tolist()
    return run


# ---------------------------------------------------------------- measuring


def timed(run: Callable[[Setting, int], Tokens], s: Setting, new: int) -> dict:
    with CpuWatch() as watch:
        tokens = run(s, new)
    if any(len(t) != new for t in tokens):
        raise RuntimeError(f"expected {new} new tokens a prompt, got {[len(t) for t in tokens]}")
    return {"s": watch.wall_s, "tokens_per_s": s.batch * new / watch.wall_s,
            "other_cores": watch.other_cores, "tokens": tokens}


def bench_setting(runners: dict[str, Callable], s: Setting, args: argparse.Namespace,
                  decode: Callable[[list[int]], str]) -> dict:
    """Warm up each runner once, then interleaved timed repeats (a busy repeat is redone)."""
    for run in runners.values():
        run(s, args.warmup_tokens)
    names = list(runners)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    busy: dict[str, list[list[float | None]]] = {n: [] for n in names}
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if args.budget is not None and runs[name] and sum(x["s"] for x in runs[name]) >= args.budget:
                continue  # slow runner (no cache, large batch): fewer repeats
            for attempt in range(1 + args.retries):
                run = timed(runners[name], s, args.new_tokens)
                if run["other_cores"] is None or run["other_cores"] <= args.busy or attempt == args.retries:
                    break
                busy[name].append([round(run["tokens_per_s"], 1), run["other_cores"]])
            runs[name].append(run)
    reference = runs["ours cache"][0]["tokens"]
    out: dict[str, Any] = {"batch": s.batch, "prompt_lengths": [len(p) for p in s.prompts],
                           "tokens_per_s": {}, "repeats": {}, "other_cores": {},
                           "agreement": {}, "discarded_busy": {}}
    for name, rs in runs.items():
        out["tokens_per_s"][name] = round(statistics.median(x["tokens_per_s"] for x in rs), 1)
        out["repeats"][name] = [round(x["tokens_per_s"], 1) for x in rs]
        out["other_cores"][name] = max((x["other_cores"] or 0.0) for x in rs)
        out["agreement"][name] = agreement(reference, rs[0]["tokens"])
        if busy[name]:
            out["discarded_busy"][name] = busy[name]
    tps = out["tokens_per_s"]
    out["cache_speedup"] = round(tps["ours cache"] / tps["ours no-cache"], 2) if "ours no-cache" in tps else None
    out["ours_over_hf"] = round(tps["ours cache"] / tps["HF cache"], 3) if "HF cache" in tps else None
    out["sample"] = reference[0][:64]
    out["sample_text"] = decode(reference[0][:64])
    return out


def agreement(reference: Tokens, tokens: Tokens) -> dict:
    """Rows whose greedy tokens equal the reference's, and where the first difference is."""
    first = [next((j for j, (a, b) in enumerate(zip(r, t, strict=True)) if a != b), None)
             for r, t in zip(reference, tokens, strict=True)]
    return {"equal_rows": sum(f is None for f in first), "rows": len(first),
            "first_difference": [f for f in first if f is not None]}


def train_briefly(model: TransformerLM, ids: torch.Tensor, steps: int, batch: int = 8,
                  context: int = 256, lr: float = 3e-3) -> float:
    """A few AdamW steps of next-token prediction on random windows of ids; the last loss."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - context - 1, (batch, 1), generator=gen)
        rows = ids[starts + torch.arange(context + 1)]  # (B, context + 1)
        logits = model(rows[:, :-1])  # (B, context, V)
        loss = F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return round(float(loss.detach()), 3)


def logits_difference(model: TransformerLM, hf: Any, s: Setting) -> float:
    """Max |our logits - Hugging Face's| over the same-length batch (export sanity check)."""
    ids = torch.tensor(s.prompts)
    with torch.inference_mode():
        return float((model(ids) - hf(ids).logits).abs().max())


def bench_model(name: str, fields: dict, tokenizer: Tokenizer, cases: list[Setting],
                corpus_ids: torch.Tensor, args: argparse.Namespace) -> dict:
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    model = TransformerLM(LMConfig(**fields, vocab_size=tokenizer.vocab_size)).eval()
    steps = min(TRAIN_STEPS[name], args.train_steps)
    weights = "random (torch.manual_seed(0))"
    if steps:
        with CpuWatch() as watch:
            loss = train_briefly(model, corpus_ids, steps)
        weights = (f"trained {steps} AdamW steps (batch 8 x 256 tokens, lr 3e-3) in "
                   f"{watch.wall_s:.0f} s, last loss {loss}")
    with tempfile.TemporaryDirectory() as folder:
        export_hf(model, tokenizer, folder)
        hf = GPT2LMHeadModel.from_pretrained(folder, dtype=torch.float32).eval()
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    every = {"ours cache": ours_ids(model, True), "ours no-cache": ours_ids(model, False),
             "ours text": ours_text(model, tokenizer), "HF cache": hf_generate(hf, pad, True),
             "HF no-cache": hf_generate(hf, pad, False)}
    runners = {n: every[n] for n in RUNNERS if n in args.runners}
    result: dict[str, Any] = {
        "config": {k: v for k, v in model.cfg.model_dump().items() if v is not None},
        "params": model.num_parameters(), "weights": weights,
        "hf_attention": hf.config._attn_implementation,
        "max_abs_logits_diff_vs_hf": logits_difference(model, hf, cases[1]), "settings": {}}
    for s in cases:
        with CpuWatch() as watch:
            result["settings"][s.name] = bench_setting(runners, s, args, tokenizer.decode)
        result["settings"][s.name]["other_cores_mean"] = watch.other_cores
        _print_row(name, s.name, result["settings"][s.name], list(runners))
    return result


# ---------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: baby-gpt only, 32 new tokens, 1 repeat; writes only with --out")
    p.add_argument("--new-tokens", type=int, default=256, help="new tokens per prompt")
    p.add_argument("--warmup-tokens", type=int, default=32, help="new tokens of the warm-up run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per runner and setting (median)")
    p.add_argument("--budget", type=float, default=30.0,
                   help="seconds of timed runs after which a runner gets no further repeats "
                        "(e.g. 30: the no-cache runs at batch 8 on the larger model run once)")
    p.add_argument("--busy", type=float, default=0.25,
                   help="a run during which other processes used more cores than this is redone")
    p.add_argument("--retries", type=int, default=2, help="redos of a busy run at most")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--runners", default=",".join(RUNNERS), help=f"comma list of {', '.join(RUNNERS)}")
    p.add_argument("--train-steps", type=int, default=max(TRAIN_STEPS.values()),
                   help=f"at most this many training steps per model ({TRAIN_STEPS}); 0 = random")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="text for tokenizer and prompts")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--out", type=Path, default=None, help=f"JSON result file (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    args.runners = [r.strip() for r in args.runners.split(",")]
    args.models = [m.strip() for m in args.models.split(",")]
    unknown = [r for r in args.runners if r not in RUNNERS] + [m for m in args.models if m not in MODELS]
    if unknown or "ours cache" not in args.runners:
        p.error(f"unknown runner/model {unknown}; 'ours cache' is always needed (the reference)")
    if args.quick:
        args.new_tokens, args.warmup_tokens, args.models = 32, 4, ["baby-gpt"]
        args.train_steps = min(args.train_steps, 10)
        args.repeats = 1
    out = args.out or (None if args.quick else DEFAULT_OUT)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    import transformers

    transformers.utils.logging.disable_progress_bar()

    text, source = corpus_text(args.corpus)
    tokenizer = train_tokenizer("char", [text], vocab_size=256, source=source)
    cases = settings(text, tokenizer)
    corpus_ids = torch.tensor(tokenizer.encode(text[:500_000]))
    result: dict[str, Any] = {
        "benchmark": "generation",
        "compares": "practicum generate_ids/generate (KV cache on/off) vs transformers "
                    "GPT2LMHeadModel.generate on the same exported weights; greedy, fp32",
        "machine": {**machine_info(), "transformers": transformers.__version__},
        "settings": {"new_tokens": args.new_tokens, "warmup_tokens": args.warmup_tokens,
                     "repeats": args.repeats, "statistic": "median over repeats",
                     "tokens_per_s": "batch * new_tokens / wall time of the whole call",
                     "busy_threshold_cores": args.busy, "retries": args.retries,
                     "corpus": source, "tokenizer": f"char, vocab {tokenizer.vocab_size}"},
        "models": {},
    }
    if args.budget is not None:
        result["settings"].update(budget_s=args.budget, statistic="median over repeats (fewer "
                                  "once a runner's timed runs add up to budget_s)")
    _print_header(result)
    for name in args.models:
        result["models"][name] = bench_model(name, MODELS[name], tokenizer, cases, corpus_ids, args)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


def _print_header(result: dict) -> None:
    m, s = result["machine"], result["settings"]
    print(f"machine: {m['cpu']}, {m['logical_cores']} cores, torch {m['torch']}, "
          f"{m['torch_threads']} threads, transformers {m['transformers']}")
    fewer = f", fewer past {s['budget_s']:.0f} s" if "budget_s" in s else ""
    print(f"greedy generation of {s['new_tokens']} new tokens, tokens/s (median of {s['repeats']} "
          f"runs{fewer}); "
          "speed-up = ours cache / ours no-cache; vs HF = ours cache / HF cache; "
          "agree = rows equal to ours cache; busy = max cores used by other processes")


def _print_row(model: str, setting: str, r: dict, runners: list[str]) -> None:
    tps, agree = r["tokens_per_s"], r["agreement"]
    cells = "  ".join(f"{n} {tps[n]:,.0f}" for n in runners)
    agrees = ", ".join(f"{n} {a['equal_rows']}/{a['rows']}" for n, a in agree.items() if n != "ours cache")
    ratio = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
    print(f"{model:<10} {setting:<22} {cells}  speed-up {ratio(r['cache_speedup'])}  "
          f"vs HF {ratio(r['ours_over_hf'])}  agree: {agrees}  "
          f"busy {max(r['other_cores'].values()):.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
