"""Char-level GPT pretraining on Tiny Shakespeare: quality, throughput beside Hugging Face GPT-2, MFU.

One process, four parts:
  peak        this machine's measured matmul rate: torch.mm GFLOP/s in fp32 and bf16 (the MFU
              denominators) on square sizes 1024-2048, best of several repeats, torch's default
              threads; oneDNN's fp32 linear beside them for context;
  quality     nanoGPT's "baby GPT" laptop-CPU run (4 layers, 4 heads, 128 wide, context 64,
              batch 12, 2,000 iterations, random windows; published: val loss ~1.88 in ~3 min)
              through practicum.api.train on configs/pretrain_char.yaml with nanoGPT's settings;
  throughput  tokens/s of practicum's Trainer (TransformerLM, TokenWindows, CausalLMTask) beside
              a minimal loop around transformers' GPT2LMHeadModel of the same size, fp32 and bf16
              autocast, at baby-GPT size and at 6 layers x 384 wide x context 256; a third loop
              runs our model in the minimal loop, splitting Trainer cost from model cost;
  reference   the baby-GPT setting in nanoGPT's own loop (train.py's get_batch, lr schedule and
              AdamW groups; its 65-character vocabulary, no specials) around our TransformerLM and
              around transformers' GPT2LMHeadModel (bias, tanh GELU: GPT-2's layout): val loss on the
              whole val split and nanoGPT's estimate (20 random batches); where the 1.88 comes from;
  profile     time per phase and the top ops (self CPU time) of one fp32 training step of our
              model and of GPT-2 at 6 x 384 x 256, both in the minimal loop.

MFU = model FLOP/s / measured torch.mm peak of the same precision, with nanoGPT's (PaLM appendix B)
FLOPs per token: 6 * N + 12 * n_layer * n_embd * block_size, N = parameters without the
position embedding (the tied token embedding counts: it is the output layer's matmul).

The machine is shared: each timing waits (up to --patience s) for a quiet spell and is stored
with other_cores, the CPU other processes used meanwhile (machine.CpuWatch); a repeat during
which they used more than --busy cores is redone.

    .venv/bin/python benchmarks/pretrain_char.py [--quick] [--only peak,quality,throughput,profile]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from machine import CpuWatch, machine_info
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "pretrain_char.json"
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
RECIPE = ROOT / "configs" / "pretrain_char.yaml"
BEST_RECIPE = ROOT / "configs" / "shakespeare_char.yaml"
PARTS = ("peak", "quality", "best", "reference", "throughput", "profile")
NANOGPT_REFERENCE = {"val_loss": 1.88, "minutes": 3, "where": "karpathy/nanoGPT README, laptop CPU"}
# nanoGPT's README command for a CPU: baby GPT, no dropout, 2,000 iterations, lr decay to 1e-4
QUALITY_SETTINGS = {
    "model.preset": "baby-gpt", "model.block_size": 64, "model.dropout": 0.0, "model.bias": False,
    "train.batch_size": 12, "train.max_steps": 2000, "train.epochs": 100, "train.lr": 1e-3,
    "train.warmup_steps": 100, "train.schedule": "cosine", "train.min_lr_ratio": 0.1,
    "train.betas": "[0.9, 0.99]", "train.weight_decay": 0.1, "train.grad_clip": 1.0,
    "train.optimizer": "adamw", "train.precision": "fp32", "train.device": "cpu",
    "train.eval_every": 500, "train.log_every": 50, "train.progress": "never",
    "train.tensorboard": False, "data.corpus.tokenizer": "char", "data.corpus.sampling": "random",
    "data.corpus.max_eval_tokens": "null", "data.split.val_fraction": 0.1, "task.type": "causal_lm",
}
PHASES = ("forward", "backward", "clip_grad_norm", "optimizer")


def flops_per_token(n_params: int, n_layer: int, n_embd: int, block: int) -> int:
    """Training FLOPs per token (forward + backward): nanoGPT's estimate_mfu / PaLM appendix B."""
    return 6 * n_params + 12 * n_layer * n_embd * block


def wait_quiet(busy: float, patience_s: float) -> float | None:
    """Wait (up to patience_s) for a 2-second spell in which other processes use <= busy cores;
    returns that spell's other_cores (neighbours' test runs come and go on this machine)."""
    deadline = time.monotonic() + patience_s
    while True:
        with CpuWatch() as watch:
            time.sleep(2.0)
        if watch.other_cores is None or watch.other_cores <= busy or time.monotonic() > deadline:
            return watch.other_cores


# ---------------------------------------------------------------- peak


def matmul_peak(sizes: list[int], repeats: int, args: argparse.Namespace) -> dict[str, Any]:
    """GFLOP/s of n x n matmuls, best of `repeats` per size (and of the redone attempts when a
    neighbour was busy). torch.mm fp32 runs in MKL, bf16 in oneDNN; oneDNN fp32 is context."""
    ops = {
        "fp32": lambda a, b: torch.mm(a, b),
        "bf16": lambda a, b: torch.mm(a, b),
        "fp32_onednn": lambda a, b: torch._C._nn.mkldnn_linear(a, b),  # a @ b.T, mkldnn tensors
    }
    out: dict[str, Any] = {}
    for name, op in ops.items():
        best: dict[int, float] = {}
        others = []
        for _ in range(1 + args.retries):
            wait_quiet(args.busy, args.patience)
            with CpuWatch() as watch:
                for n in sizes:
                    a, b = torch.randn(n, n), torch.randn(n, n)
                    a, b = (a.bfloat16(), b.bfloat16()) if name == "bf16" else (a, b)
                    a, b = (a.to_mkldnn(), b.to_mkldnn()) if name == "fp32_onednn" else (a, b)
                    op(a, b)  # first call: allocation, kernel choice
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        op(a, b)
                        best[n] = max(best.get(n, 0.0), 2 * n**3 / (time.perf_counter() - t0) / 1e9)
            others.append(watch.other_cores)
            if (watch.other_cores or 0) <= args.busy:
                break
        out[name] = {"gflops": round(max(best.values()), 1),
                     "by_size": {n: round(v, 1) for n, v in best.items()}, "other_cores": others}
    return out


# ---------------------------------------------------------------- quality (api.train)


def quality_run(corpus: Path, run_dir: Path, quick: bool, seed: int = 0) -> dict[str, Any]:
    from practicum import api

    settings = {**QUALITY_SETTINGS, "train.seed": seed}
    if quick:
        settings.update({"train.max_steps": 20, "train.eval_every": 10, "train.log_every": 5,
                         "data.corpus.max_eval_tokens": 12_800})
    overrides = [f"data.path={corpus}", f"out_dir={run_dir}"] + [f"{k}={v}" for k, v in settings.items()]
    with CpuWatch() as watch:
        result = api.train(RECIPE, overrides)
    s, cfg = result.summary, result.run_dir / "config.yaml"
    import yaml

    model = yaml.safe_load(cfg.read_text(encoding="utf-8"))["model"]
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps, bs, T = s["steps"], settings["train.batch_size"], model["block_size"]
    tokens_per_s = steps * bs * T / s["train_time_s"]
    rates = [r["samples_per_s"] * T for r in rows if r.get("split") == "train"][1:]  # after the 1st
    n = s["params"] - T * model["n_embd"]  # without the learned position embedding
    fpt = flops_per_token(n, model["n_layer"], model["n_embd"], T)
    return {
        "recipe": str(RECIPE.relative_to(ROOT)), "corpus": str(corpus), "overrides": settings,
        "val_loss": round(s["val"]["loss"], 4), "val_bpc": round(s["val"].get("bpc", float("nan")), 4),
        "val_curve": [(r["step"], round(r["loss"], 4)) for r in rows if r.get("split") == "val"],
        "steps": steps, "params": s["params"], "params_for_flops": n, "vocab_size": s["vocab_size"],
        "tokens": s["tokens"], "train_time_s": s["train_time_s"], "total_wall_s": round(watch.wall_s, 1),
        "tokens_per_s": round(tokens_per_s),
        "median_row_tokens_per_s": round(statistics.median(rates)) if rates else None,
        "flops_per_token": fpt, "model_gflops": round(fpt * tokens_per_s / 1e9, 2),
        "other_cores": watch.other_cores, "reference": NANOGPT_REFERENCE,
    }


def best_recipe_run(corpus: Path, quick: bool, baby: dict[str, Any]) -> dict[str, Any]:
    """configs/shakespeare_char.yaml, run right after the baby GPT: val loss and wall time beside it."""
    from practicum import api

    extra = ["train.max_steps=20", "train.eval_every=20", "data.corpus.max_eval_tokens=12800"] if quick else []
    with tempfile.TemporaryDirectory() as tmp, CpuWatch() as watch:
        result = api.train(BEST_RECIPE, [f"data.path={corpus}", f"out_dir={tmp}/best",
                                         "train.progress=never", "train.tensorboard=false", *extra])
    s = result.summary
    return {
        "recipe": str(BEST_RECIPE.relative_to(ROOT)), "val_loss": round(s["val"]["loss"], 4),
        "steps": s["steps"], "params": s["params"], "train_time_s": s["train_time_s"],
        "total_wall_s": round(watch.wall_s, 1), "other_cores": watch.other_cores,
        "baby_train_time_s": baby["train_time_s"], "baby_total_wall_s": baby["total_wall_s"],
        "target": "val loss <= 1.75 in at most the baby GPT's wall time",
        "met": s["val"]["loss"] <= 1.75 and watch.wall_s <= baby["total_wall_s"],
    }


# ---------------------------------------------------------------- throughput


@dataclass(frozen=True)
class Setting:
    """One model size: GPT-2 layout (biases, tied embeddings) so GPT2LMHeadModel can match it."""

    name: str
    n_layer: int
    n_head: int
    n_embd: int
    block: int
    batch: int
    warmup: int
    steps: int
    window: int  # Trainer log_every: steps per train row
    repeats: int  # interleaved repeats of each loop (median)


SETTINGS = (
    Setting("baby 4x128 ctx64", 4, 4, 128, 64, 12, warmup=10, steps=60, window=10, repeats=7),
    Setting("6x384 ctx256", 6, 6, 384, 256, 12, warmup=4, steps=16, window=4, repeats=3),
)


def build_ours(s: Setting, vocab: int, seed: int) -> nn.Module:
    from practicum.config import LMConfig
    from practicum.models.lm import TransformerLM

    torch.manual_seed(seed)
    cfg = LMConfig.model_validate({"type": "lm", "n_layer": s.n_layer, "n_head": s.n_head,
                                   "n_embd": s.n_embd, "block_size": s.block, "dropout": 0.0,
                                   "bias": True, "tie_embeddings": True})
    return TransformerLM(cfg, vocab_size=vocab)


def build_gpt2(s: Setting, vocab: int, seed: int) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=s.n_layer, n_head=s.n_head, n_embd=s.n_embd, n_positions=s.block,
                     vocab_size=vocab, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=0, eos_token_id=0, attn_implementation="sdpa")
    return GPT2LMHeadModel(cfg)


def run_trainer(s: Setting, windows: Any, vocab: int, precision: str, seed: int) -> dict[str, Any]:
    """Trainer.fit over warmup + steps; the rate of the train rows after the warm-up."""
    from practicum.config import TrainConfig
    from practicum.tasks import build_task
    from practicum.train.trainer import Trainer

    cfg = TrainConfig.model_validate({
        "epochs": 100, "max_steps": s.warmup + s.steps, "batch_size": s.batch, "lr": 1e-3,
        "betas": (0.9, 0.99), "weight_decay": 0.1, "grad_clip": 1.0, "warmup_steps": 100,
        "min_lr_ratio": 0.1, "log_every": s.window, "eval_every": None, "progress": "never",
        "tensorboard": False, "device": "cpu", "precision": precision, "seed": seed,
    })
    task = build_task("causal_lm", vocab_size=vocab, char_level=True)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, build_ours(s, vocab, seed), task, windows, None, Path(tmp))
        with CpuWatch() as watch:
            trainer.fit()
        rows = [r for r in trainer.runlog.rows() if r.get("split") == "train"][s.warmup // s.window:]
    if len(rows) * s.window != s.steps:
        raise RuntimeError(f"expected {s.steps // s.window} timed train rows, got {len(rows)}")
    seconds = sum(s.window * s.batch / r["samples_per_s"] for r in rows)
    return {"tokens_per_s": s.steps * s.batch * s.block / seconds, "other_cores": watch.other_cores}


def run_loop(model: nn.Module, logits_of: Callable, s: Setting, windows: Any, precision: str,
             seed: int) -> dict[str, Any]:
    """The minimal loop: torch AdamW (decay / no-decay groups, PyTorch's default implementation),
    forward, cross_entropy, backward, clip_grad_norm_(1.0), step, zero_grad; timed by
    perf_counter from the end of the warm-up. Same random windows as the Trainer's."""
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with CpuWatch() as watch:
        for i in range(s.warmup + s.steps):
            if i == s.warmup:
                t0 = time.perf_counter()
            batch = windows.take(torch.arange(i * s.batch, (i + 1) * s.batch), 0)
            with amp:
                logits = logits_of(model, batch["tokens"])  # (B, T, V)
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["target"].reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - t0
    return {"tokens_per_s": s.steps * s.batch * s.block / seconds, "other_cores": watch.other_cores}


def _ours_logits(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    return model(tokens)


def _gpt2_logits(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    return model(input_ids=tokens).logits


LOOPS: dict[str, Callable[..., dict[str, Any]]] = {
    "ours": run_trainer,
    "peer": lambda s, w, v, p, seed: run_loop(build_gpt2(s, v, seed), _gpt2_logits, s, w, p, seed),
    "ours_model_min_loop": lambda s, w, v, p, seed: run_loop(build_ours(s, v, seed), _ours_logits, s, w, p, seed),
}


def train_windows(train_ids: np.ndarray, block: int) -> Any:
    from practicum.data.corpus import TokenWindows

    return TokenWindows(train_ids, block, sampling="random", seed=0, split="train")


def bench_setting(s: Setting, train_ids: np.ndarray, vocab: int, peak: dict, args: argparse.Namespace) -> dict:
    windows = train_windows(train_ids, s.block)
    n = build_ours(s, vocab, 0).num_parameters() - s.block * s.n_embd  # without wpe
    fpt = flops_per_token(n, s.n_layer, s.n_embd, s.block)
    out: dict[str, Any] = {"setting": dataclasses.asdict(s), "params_for_flops": n, "flops_per_token": fpt,
                           "params": {"ours": build_ours(s, vocab, 0).num_parameters(),
                                      "peer": sum(p.numel() for p in build_gpt2(s, vocab, 0).parameters())}}
    for precision in args.precisions:
        runs: dict[str, list[dict]] = {k: [] for k in LOOPS}
        discarded: dict[str, list] = {k: [] for k in LOOPS}
        for r in range(s.repeats):
            for name in list(LOOPS) if r % 2 == 0 else list(reversed(LOOPS)):  # drift hits each
                for attempt in range(1 + args.retries):
                    wait_quiet(args.busy, args.patience)
                    run = LOOPS[name](s, windows, vocab, precision, r)
                    if (run["other_cores"] or 0) <= args.busy or attempt == args.retries:
                        break
                    discarded[name].append((round(run["tokens_per_s"]), run["other_cores"]))
                runs[name].append(run)
        med = {k: statistics.median(x["tokens_per_s"] for x in v) for k, v in runs.items()}
        gflops = {k: v * fpt / 1e9 for k, v in med.items()}
        out[precision] = {
            "tokens_per_s": {k: round(v) for k, v in med.items()},
            "ratio_ours_peer": round(med["ours"] / med["peer"], 3),
            "ratio_ours_vs_our_model_in_min_loop": round(med["ours"] / med["ours_model_min_loop"], 3),
            "model_gflops": {k: round(v, 2) for k, v in gflops.items()},
            "mfu": {k: round(v / peak[precision]["gflops"], 3) for k, v in gflops.items()} if peak else None,
            "repeats": {k: [round(x["tokens_per_s"]) for x in v] for k, v in runs.items()},
            "other_cores_max": max((x["other_cores"] or 0) for v in runs.values() for x in v),
            "discarded_busy": discarded,
        }
    return out


# ---------------------------------------------------------------- profile


def train_step(model: nn.Module, logits_of: Callable, opt: torch.optim.Optimizer,
               batch: dict[str, torch.Tensor]) -> None:
    """One minimal-loop step, its phases labelled for the profiler."""
    from torch.profiler import record_function

    with record_function("forward"):
        logits = logits_of(model, batch["tokens"])  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["target"].reshape(-1))
    with record_function("backward"):
        loss.backward()
    with record_function("clip_grad_norm"):
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    with record_function("optimizer"):
        opt.step()
        opt.zero_grad(set_to_none=True)


def profile_step(s: Setting, train_ids: np.ndarray, vocab: int, top: int, args: argparse.Namespace) -> dict:
    """Time per phase and top ops by self CPU time of one fp32 step (after two warm-up steps);
    both models with the same AdamW as the Trainer builds (practicum.train.optim)."""
    from torch.profiler import ProfilerActivity, profile

    from practicum.config import TrainConfig
    from practicum.train.optim import build_optimizer

    batch = train_windows(train_ids, s.block).take(torch.arange(s.batch), 0)
    cfg = TrainConfig(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    out: dict[str, Any] = {}
    for name, model, logits_of in (("ours", build_ours(s, vocab, 0), _ours_logits),
                                   ("peer", build_gpt2(s, vocab, 0), _gpt2_logits)):
        opt = build_optimizer(model, cfg)
        for _ in range(2):
            train_step(model, logits_of, opt, batch)
        wait_quiet(args.busy, args.patience)
        with CpuWatch() as watch, profile(activities=[ProfilerActivity.CPU]) as prof:
            train_step(model, logits_of, opt, batch)
        averages = prof.key_averages()
        events = sorted((e for e in averages if e.key not in PHASES),
                        key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        out[name] = {
            "step_ms": round(total / 1e3, 1), "other_cores": watch.other_cores,
            "phases_ms": {e.key: round(e.cpu_time_total / 1e3, 1) for e in averages if e.key in PHASES},
            "top": [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 2), "calls": e.count,
                     "share": round(e.self_cpu_time_total / total, 3)} for e in events[:top]],
        }
    return out


# ---------------------------------------------------------------- driver


def nanogpt_loop(kind: str, corpus: Path, seed: int, iters: int) -> dict[str, Any]:
    """nanoGPT train.py's loop for the baby GPT (config/train_shakespeare_char.py + the README's
    CPU flags), rewritten from its description: chars of the file as ids (65 for Tiny
    Shakespeare), first 90% train; random windows (torch.randint); lr 1e-3 linear warmup
    (it + 1) / 101, cosine to 1e-4 at 2,000; AdamW betas (0.9, 0.99), weight decay 0.1 on
    parameters of 2+ dims; clip 1.0; fp32. Returns the val loss over the whole val split (every
    position of non-overlapping 64-windows) and nanoGPT's estimate_loss (mean of 20 random batches)."""
    import math

    text = corpus.read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    B, T, V = 12, 64, len(chars)
    setting = Setting("baby", 4, 4, 128, T, B, 0, 0, 0, 0)
    torch.manual_seed(seed)
    if kind == "ours":
        from practicum.config import LMConfig
        from practicum.models.lm import TransformerLM

        model: nn.Module = TransformerLM(LMConfig(preset="baby-gpt", vocab_size=V, block_size=T, bias=False))
        logits_of = _ours_logits
    else:
        model, logits_of = build_gpt2(setting, V, seed), _gpt2_logits
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed)

    def batch(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(d) - T, (B,), generator=gen)
        return torch.stack([d[i : i + T] for i in ix]), torch.stack([d[i + 1 : i + 1 + T] for i in ix])

    def lr_at(it: int) -> float:
        if it < 100:
            return 1e-3 * (it + 1) / 101
        return 1e-4 + 0.5 * (1 + math.cos(math.pi * (it - 100) / (iters - 100))) * (1e-3 - 1e-4)

    start = time.perf_counter()
    model.train()
    for it in range(iters):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        x, y = batch(train)
        loss = F.cross_entropy(logits_of(model, x).reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        m = (len(val) - 1) // T
        x, y = val[: m * T].view(m, T), val[1 : m * T + 1].view(m, T)
        total = sum(float(F.cross_entropy(logits_of(model, x[i : i + 256]).reshape(-1, V),
                                          y[i : i + 256].reshape(-1), reduction="sum"))
                    for i in range(0, m, 256))
        estimate = statistics.fmean(float(F.cross_entropy(logits_of(model, a).reshape(-1, V), b.reshape(-1)))
                                    for a, b in (batch(val) for _ in range(20)))
    return {"model": kind, "seed": seed, "iters": iters, "vocab": V, "val_loss_whole": round(total / (m * T), 4),
            "val_loss_nanogpt_estimate": round(estimate, 4), "train_s": round(seconds, 1)}


def corpus_ids(corpus: Path) -> tuple[np.ndarray, int]:
    """Train token ids (practicum's char tokenizer, first 90% of the file) and the vocabulary."""
    from practicum.data.corpus import build_corpus, iter_documents, load_corpus
    from practicum.data.tokenizers import train_tokenizer

    tok = train_tokenizer("char", iter_documents(corpus), vocab_size=256, min_frequency=1)
    with tempfile.TemporaryDirectory() as tmp:
        build_corpus(corpus, tok, Path(tmp), val_fraction=0.1)
        train_ids = np.array(load_corpus(Path(tmp))[0])  # into memory: the folder goes
    return train_ids, tok.vocab_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: a few small steps of everything")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="Tiny Shakespeare input.txt")
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    p.add_argument("--settings", default="baby,6x384", help="throughput sizes: baby, 6x384")
    p.add_argument("--busy", type=float, default=0.25,
                   help="a timing during which other processes used more cores than this is redone")
    p.add_argument("--retries", type=int, default=1, help="redos of a busy timing at most")
    p.add_argument("--patience", type=float, default=120.0,
                   help="seconds to wait for a quiet spell (others <= --busy) before each timing")
    p.add_argument("--seeds", default="0", help="comma-separated train.seed values of quality runs")
    p.add_argument("--keep-run", type=Path, default=None, help="first quality run's folder (default: temporary)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = p.parse_args(argv)
    parts = [x for x in args.only.split(",") if x]
    if bad := set(parts) - set(PARTS):
        p.error(f"--only: unknown part(s) {', '.join(sorted(bad))}; choose from {', '.join(PARTS)}")
    args.precisions = [x for x in args.precisions.split(",") if x]
    args.seeds = [int(x) for x in args.seeds.split(",") if x]
    settings = [s for s in SETTINGS if s.name.split()[0] in args.settings.split(",")]
    big = SETTINGS[1]
    if args.quick:
        settings = [dataclasses.replace(s, name=s.name.split()[0] + " quick", block=min(s.block, 64),
                                        batch=4, warmup=2, steps=4, window=2, repeats=1) for s in settings]
        big = dataclasses.replace(big, name="6x384 quick", block=64, batch=2)
        args.retries, args.patience = 0, 0.0

    result: dict[str, Any] = {
        "benchmark": "pretrain_char", "quick": args.quick, "machine": machine_info(),
        "compares": "practicum Trainer + TransformerLM vs a minimal loop around transformers "
                    "GPT2LMHeadModel (sdpa); quality vs nanoGPT's published baby-GPT figure",
        "flops_per_token": "6*N + 12*n_layer*n_embd*block_size; N = params without the position embedding",
        "settings": {"busy_threshold_cores": args.busy, "retries": args.retries, "patience_s": args.patience},
    }
    if "peak" in parts or "throughput" in parts or "quality" in parts:
        sizes, reps = ([256, 512], 2) if args.quick else ([1024, 1536, 2048], 5)
        result["peak"] = matmul_peak(sizes, reps, args)
    if not args.corpus.is_file():
        print(f"skipping quality, throughput and profile: {args.corpus} not found")
        parts = [x for x in parts if x == "peak"]
    for i, seed in enumerate(args.seeds if "quality" in parts else []):
        wait_quiet(args.busy, args.patience)
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = args.keep_run if args.keep_run and i == 0 else Path(tmp) / "run"
            q = quality_run(args.corpus, run_dir, args.quick, seed)
        q["mfu_fp32"] = round(q["model_gflops"] / result["peak"]["fp32"]["gflops"], 3)
        if i == 0:
            result["quality"] = q
        else:  # further seeds: how much the val loss moves with the initialisation and batches
            result.setdefault("quality_other_seeds", []).append({"seed": seed, **{
                k: q[k] for k in ("val_loss", "val_curve", "train_time_s", "tokens_per_s", "other_cores")}})
    if "best" in parts and "quality" in result:
        wait_quiet(args.busy, args.patience)
        result["best"] = best_recipe_run(args.corpus, args.quick, result["quality"])
    if "reference" in parts:
        runs = []
        for seed in args.seeds:
            for kind in ("ours", "gpt2"):
                wait_quiet(args.busy, args.patience)
                with CpuWatch() as watch:
                    runs.append(nanogpt_loop(kind, args.corpus, seed, 20 if args.quick else 2000))
                runs[-1]["other_cores"] = watch.other_cores
        result["reference"] = {"what": "nanoGPT's baby-GPT loop, 65-char vocabulary", "runs": runs}
    if {"throughput", "profile"} & set(parts):
        train_ids, vocab = corpus_ids(args.corpus)
        result["vocab_size"] = vocab
    if "throughput" in parts:
        result["throughput"] = {"statistic": "median over interleaved repeats", "settings": {
            s.name: bench_setting(s, train_ids, vocab, result["peak"], args) for s in settings}}
    if "profile" in parts:
        result["profile"] = {"setting": big.name, "precision": "fp32",
                             **profile_step(big, train_ids, vocab, 12, args)}
    _print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def _print_table(result: dict) -> None:
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['logical_cores']} cores, torch {m['torch']}, {m['torch_threads']} threads")
    for name, what in (("fp32", "torch.mm fp32 (MFU denominator)"), ("bf16", "torch.mm bf16 (bf16 MFU)"),
                       ("fp32_onednn", "oneDNN fp32 linear (context)")):
        if pk := result.get("peak", {}).get(name):
            print(f"peak {what}: {pk['gflops']} GFLOP/s, by size {pk['by_size']}, others {pk['other_cores']}")
    if q := result.get("quality"):
        print(f"quality (baby GPT, {q['steps']} steps): val loss {q['val_loss']} (nanoGPT ~1.88); "
              f"train {q['train_time_s']:.0f} s, whole call {q['total_wall_s']:.0f} s; "
              f"{q['tokens_per_s']:,} tokens/s (median row {q['median_row_tokens_per_s']:,}); "
              f"{q['model_gflops']} GFLOP/s, MFU {q['mfu_fp32']:.1%}; others {q['other_cores']}")
    for q in result.get("quality_other_seeds", []):
        print(f"  seed {q['seed']}: val loss {q['val_loss']}, train {q['train_time_s']:.0f} s, "
              f"{q['tokens_per_s']:,} tokens/s, others {q['other_cores']}")
    if t := result.get("throughput"):
        print("training tokens/s (median); peer = minimal loop + HF GPT2LMHeadModel; "
              "min-loop = our model in that loop; MFU against the torch.mm peak of the precision")
        print(f"{'setting':<18}{'prec':>5}{'ours':>9}{'peer':>9}{'min-loop':>10}{'ours/peer':>10}"
              f"{'MFU ours':>9}{'MFU peer':>9}{'others':>8}")
        for name, r in t["settings"].items():
            for prec in ("fp32", "bf16"):
                if prec in r:
                    x, mfu = r[prec]["tokens_per_s"], r[prec]["mfu"] or {}
                    print(f"{name:<18}{prec:>5}{x['ours']:>9,}{x['peer']:>9,}{x['ours_model_min_loop']:>10,}"
                          f"{r[prec]['ratio_ours_peer']:>10.3f}{mfu.get('ours', 0):>9.1%}"
                          f"{mfu.get('peer', 0):>9.1%}{r[prec]['other_cores_max']:>8.2f}")
    if pr := result.get("profile"):
        for who in ("ours", "peer"):
            tops = ", ".join(f"{e['op'].removeprefix('aten::')} {e['self_ms']:.0f}" for e in pr[who]["top"][:6])
            phases = ", ".join(f"{k} {v:.0f}" for k, v in pr[who]["phases_ms"].items())
            print(f"profile {who} ({pr['setting']}, fp32 step {pr[who]['step_ms']:.0f} ms: {phases}); "
                  f"top ops (ms): {tops}")


if __name__ == "__main__":
    sys.exit(main())
