"""The pre-flight planner: will a recipe fit, how fast will it run, how long will it take.

`plan_run(cfg)` builds the model, task and data exactly as `practicum train` does, then:

- counts parameters (total, trainable) and the bytes of weights, gradients (trainable only)
  and optimizer state (AdamW/Adam: 2 fp32 moments + a step scalar per tensor; SGD with
  momentum: 1 buffer);
- estimates activation memory ANALYTICALLY from module shapes (see `estimate_activations`),
  at the configured micro-batch (padded text: its widest batch), and adds a stated overhead
  (OVERHEAD of the rest);
- counts FLOPs of one optimizer step with torch.utils.flop_counter.FlopCounterMode on one
  real forward+backward, scaled to the micro-batch and accumulation;
- times a few real Trainer steps (warm-up excluded) for step time, samples/s (tokens/s for
  language models) and the time to finish;
- compares the peak with what the device has (CUDA: total memory; CPU: MemAvailable) and,
  when it would not fit, suggests a micro-batch, accumulation and checkpointing setting.

"Measured" activation memory (`measure_saved_bytes`) is the bytes of the distinct tensors
autograd saves for backward during one training forward (torch.autograd.graph.saved_tensors_hooks,
parameters excluded): what a step holds at its peak, before backward frees it.
"""

from __future__ import annotations

import logging
import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from practicum.config import RunConfig
from practicum.errors import UserError
from practicum.plan.memory import (
    OVERHEAD,
    device_memory,
    memory_estimate,
    suggest,
)

log = logging.getLogger(__name__)

PROBE_ROWS = 2
"""Rows of the forward that the analytic activation estimate reads shapes from."""
GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "T4": 65.0}
"""Dense bf16 tensor-core peak per GPU, TFLOP/s (vendor sheets), for MFU."""


@dataclass
class Plan:
    """What `practicum plan` reports; sizes in bytes, times in seconds."""

    recipe: str
    model: str
    device: str
    nproc: int
    micro_batch: int
    grad_accum: int
    global_batch: int
    tokens_per_sample: int
    params_total: int
    params_trainable: int
    memory: dict[str, int] = field(default_factory=dict)
    available: int | None = None
    fits: bool = True
    flops_per_step: float = 0.0
    flops_method: str = "torch.utils.flop_counter.FlopCounterMode (one forward+backward)"
    flops_analytic: float | None = None
    """Language models: (6 N + 12 L d T) x tokens per step (PaLM / nanoGPT), beside the count."""
    step_time_s: float = 0.0
    samples_per_s: float = 0.0
    tokens_per_s: float | None = None
    total_steps: int = 0
    time_to_finish_s: float = 0.0
    mfu: float | None = None
    suggestion: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- setup: as `practicum train`


def build_setup(cfg: RunConfig, work_dir: Path) -> tuple[nn.Module, Any, Any, Any]:
    """(model, task, train rows, augment) built exactly as `practicum.api.train` builds them."""
    from practicum.pretraining import is_lm_run

    if is_lm_run(cfg):
        return _lm_setup(cfg, work_dir)
    if cfg.task.type == "token_classification" or (cfg.model.type == "pretrained" and cfg.task.type == "sft"):
        raise UserError(f"plan does not cover task.type {cfg.task.type} yet; "
                        "plan a classification, regression or language-model recipe")
    if cfg.model.type == "pretrained":
        from practicum.finetuning import finetune_setup

        cfg, data, task, model = finetune_setup(cfg)
    else:
        from practicum.api import _build_task
        from practicum.data import load_data
        from practicum.models import build_model

        data = load_data(cfg.data, cfg.task)
        task = _build_task(data, cfg)
        model = build_model(cfg.model, data.spec, task.num_outputs())
    augment = data.preprocessor.augment if cfg.data.image.augment.enabled else None
    return model, task, data.train, augment


def _lm_setup(cfg: RunConfig, work_dir: Path) -> tuple[nn.Module, Any, Any, Any]:
    from practicum.models.lm import TransformerLM
    from practicum.pretraining import (
        build_lm_task,
        lm_splits,
        lm_task_type,
        prepare_corpus,
        prepare_tokenizer,
        vocab_size_for,
    )

    task_type = lm_task_type(cfg)
    cfg = cfg.model_copy(update={"task": cfg.task.model_copy(update={"type": task_type})})
    tokenizer = prepare_tokenizer(cfg, work_dir)
    vocab = vocab_size_for(cfg.model, tokenizer, cfg.data.corpus.token_dtype)
    model = TransformerLM(cfg.model, vocab_size=vocab)
    prepare_corpus(cfg, tokenizer, work_dir)
    train, _ = lm_splits(cfg, task_type, tokenizer, work_dir)
    return model, build_lm_task(task_type, cfg, tokenizer, vocab), train, None


# ---------------------------------------------------------------- FLOPs and timing


def count_flops(model: nn.Module, task: Any, batch: dict[str, torch.Tensor]) -> float:
    """FLOPs of one forward + backward of `batch` (torch.utils.flop_counter: matmuls, convs, SDPA)."""
    from torch.utils.flop_counter import FlopCounterMode

    from practicum.train.trainer import _inputs

    model.train()
    with FlopCounterMode(display=False) as counter:
        task.batch_loss(model(**_inputs(batch)), batch).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def lm_flops_per_token(model: nn.Module) -> float | None:
    """PaLM / nanoGPT: 6 N + 12 L d T per trained token (N: non-embedding-table parameters)."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "n_layer"):
        return None
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return 6.0 * n + 12.0 * cfg.n_layer * cfg.n_embd * cfg.block_size


def time_steps(trainer: Any, warmup: int = 2, steps: int = 5) -> float:
    """Median seconds per optimizer step over `steps` real Trainer steps after `warmup` ones."""
    plan = trainer._batch_plan(0)
    accum = trainer.cfg.grad_accum
    groups = [[plan[(i * accum + j) % len(plan)] for j in range(accum)] for i in range(warmup + steps)]
    trainer.model.train()
    times = []
    for i, group in enumerate(groups):
        _sync(trainer.device)
        t0 = time.perf_counter()
        trainer._step(group)
        _sync(trainer.device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)  # robust to a step slowed by another process


def peak_flops(device: torch.device) -> float | None:
    """The device's dense peak FLOP/s where known (CUDA GPUs by name); None on CPUs."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in GPU_PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- the plan


def plan_run(cfg: RunConfig, device: str | None = None, nproc: int = 1, steps: int = 5,
             warmup: int = 2, available: int | None = None) -> Plan:
    """Plan a run of `cfg` on `device` (default: train.device) with `nproc` processes on this machine.

    `available` overrides the bytes the device offers (to plan for another machine)."""
    from practicum.train.trainer import Trainer, _take

    if nproc < 1:
        raise UserError(f"--nproc must be at least 1, got {nproc}")
    train_cfg = cfg.train.model_copy(update={"progress": "never", "tensorboard": False,
                                             **({"device": device} if device else {})})
    cfg = cfg.model_copy(update={"train": train_cfg})
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    with tempfile.TemporaryDirectory(prefix="practicum-plan-") as tmp:
        model, task, train, augment = build_setup(cfg, Path(tmp))
        trainer = Trainer(cfg.train, model, task, train, None, Path(tmp) / "run", augment=augment)
        mb = min(cfg.train.batch_size, trainer.n_train)
        batch = _device_batch(task, _take(train, torch.arange(mb), 0), trainer.device)
        longest = _longest_rows(train, min(PROBE_ROWS, mb))  # the peak comes with the widest batch
        probe = _device_batch(task, _take(train, longest, 0), trainer.device)
        memory = memory_estimate(model, cfg, task, probe, mb, trainer.autocast)
        flops = count_flops(model, task, batch) * cfg.train.grad_accum
        step_time = time_steps(trainer, warmup, steps)
        total_steps = _total_steps(trainer, nproc)
    return _assemble(cfg, trainer, model, batch, memory, flops, step_time, total_steps, nproc, available)


def _device_batch(task: Any, rows: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    batch = task.prepare(rows, torch.Generator().manual_seed(0))
    return {k: v.to(device) for k, v in batch.items()}


def _longest_rows(train: Any, n: int) -> torch.Tensor:
    """Indices of the n rows with the most real tokens (padded text: batches are cut to their
    longest row), else the first n rows."""
    mask = train.get("mask") if isinstance(train, dict) else None
    if mask is None or mask.dim() != 2:
        return torch.arange(n)
    return torch.argsort(mask.sum(1), descending=True, stable=True)[:n]


def _total_steps(trainer: Any, nproc: int) -> int:
    """Optimizer steps of the whole run when each of `nproc` processes reads 1/nproc of the rows."""
    from practicum.train.trainer import _batches_per_epoch

    cfg = trainer.cfg
    batches = _batches_per_epoch(math.ceil(trainer.n_train / nproc), cfg.batch_size)
    total = cfg.epochs * math.ceil(batches / cfg.grad_accum)
    return min(total, cfg.max_steps) if cfg.max_steps is not None else total


def _assemble(cfg: RunConfig, trainer: Any, model: nn.Module, batch: dict[str, torch.Tensor],
              memory: dict[str, int], flops: float, step_time: float, total_steps: int, nproc: int,
              available: int | None) -> Plan:
    mb, accum = cfg.train.batch_size, cfg.train.grad_accum
    tokens = batch["tokens"][0].numel() if "tokens" in batch else 0
    device = trainer.device
    available = available if available is not None else device_memory(device)
    replicas = nproc if device.type == "cpu" else 1  # N CPU processes share this machine's RAM
    fits = available is None or memory["peak"] * replicas <= available
    rate = mb * accum * nproc / step_time
    peak = peak_flops(device)
    plan = Plan(
        recipe=cfg.name, model=type(model).__name__, device=str(device), nproc=nproc,
        micro_batch=mb, grad_accum=accum, global_batch=mb * accum * nproc, tokens_per_sample=tokens,
        params_total=sum(p.numel() for p in model.parameters()),
        params_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        memory=memory, available=available, fits=fits, flops_per_step=flops,
        step_time_s=step_time, samples_per_s=rate, tokens_per_s=rate * tokens if tokens else None,
        total_steps=total_steps, time_to_finish_s=total_steps * step_time,
        mfu=flops / step_time / peak if peak else None,
    )
    per_token = lm_flops_per_token(model)
    if per_token and tokens:
        plan.flops_analytic = per_token * tokens * mb * accum
    if not fits and available is not None:
        plan.suggestion = suggest(memory, available, mb, accum, replicas,
                                  "activation_checkpointing" in type(cfg.train).model_fields)
    log.info("plan %s: %s parameters, peak %.1f MB, %.3f s/step", cfg.name, f"{plan.params_total:,}",
             memory["peak"] / 1e6, step_time)
    return plan


def format_plan(plan: Plan) -> str:
    """The table `practicum plan` prints."""
    mem = plan.memory
    mb = 1024 * 1024
    rows = [
        ("recipe", f"{plan.recipe} ({plan.model}) on {plan.device} x {plan.nproc}"),
        ("parameters", f"{plan.params_total:,} ({plan.params_trainable:,} trainable)"),
        ("batch", f"micro {plan.micro_batch} x accum {plan.grad_accum} x nproc {plan.nproc} "
                  f"= global {plan.global_batch}"),
        *[(f"  {k}", f"{mem[k] / mb:,.2f} MiB") for k in ("weights", "gradients", "optimizer", "activations")],
        (f"  overhead ({OVERHEAD:.0%})", f"{mem['overhead'] / mb:,.2f} MiB"),
        ("peak memory / process", f"{mem['peak'] / mb:,.2f} MiB"),
        ("device memory", "unknown" if plan.available is None else f"{plan.available / mb:,.0f} MiB"),
        ("fits", "yes" if plan.fits else "NO"),
        ("FLOPs / step", f"{plan.flops_per_step:.3g} (FlopCounterMode, forward+backward)"
                         + (f"; 6N+12LdT: {plan.flops_analytic:.3g}" if plan.flops_analytic else "")),
        ("step time", f"{plan.step_time_s * 1000:,.1f} ms"),
        ("throughput", f"{plan.samples_per_s:,.1f} samples/s"
                       + (f", {plan.tokens_per_s:,.0f} tokens/s" if plan.tokens_per_s else "")),
        ("MFU", "n/a (peak FLOP/s unknown)" if plan.mfu is None else f"{plan.mfu:.1%}"),
        ("steps", f"{plan.total_steps:,}"),
        ("time to finish", f"{_duration(plan.time_to_finish_s)} (training steps; validation extra)"),
    ]
    if plan.suggestion:
        rows.append(("suggestion", plan.suggestion["flags"]))
        if plan.suggestion.get("note"):
            rows.append(("", plan.suggestion["note"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
