"""The pre-flight planner: counts and estimates checked against the model, the optimizer,
autograd's saved tensors and a real Trainer run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from clitools import run_cli

from practicum.api import resolve_config
from practicum.plan import (
    build_setup,
    estimate_activations,
    measure_saved_bytes,
    optimizer_state_bytes,
    plan_run,
    real_optimizer_bytes,
    suggest,
)
from practicum.plan.check import measure_run
from practicum.train.optim import build_optimizer
from practicum.train.trainer import _inputs, _take

TINY = {
    "mlp": ("mlp_tabular", ["model.hidden_sizes=[16,8]", "train.batch_size=16"]),
    "cnn": ("quickstart", ["model.channels=[4,8]", "model.hidden_size=16", "train.batch_size=16"]),
    "lm": ("pretrain_char", ["model.n_layer=2", "model.n_embd=32", "model.n_head=2",
                             "model.block_size=32", "train.batch_size=8"]),
}


def _cfg(kind: str, *extra: str):
    name, overrides = TINY[kind]
    return resolve_config(name, [*overrides, "train.num_threads=1", *extra])


def _setup(kind: str, *extra: str):
    cfg = _cfg(kind, *extra)
    model, task, train, _ = build_setup(cfg, Path(tempfile.mkdtemp(prefix="plan-test-")))
    rows = _take(train, torch.arange(cfg.train.batch_size), 0)
    return cfg, model, task, task.prepare(rows, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind", ["mlp", "cnn", "lm"])
def test_activation_estimate_within_25_percent_of_saved_tensors(kind, one_thread):
    cfg, model, task, batch = _setup(kind)
    measured = measure_saved_bytes(model, task, batch)
    probe = {k: v[:2] for k, v in batch.items()}
    estimate = estimate_activations(model, task, probe, cfg.train.batch_size)
    assert measured > 0
    assert 0.75 <= estimate / measured <= 1.25, (estimate, measured)


def test_padded_text_is_planned_at_its_widest_batch(labelled_csv, one_thread):
    cfg = resolve_config("transformer_text", [f"data.path={labelled_csv}", "model.d_model=16",
                                              "model.n_heads=2", "model.d_ff=32", "train.batch_size=8",
                                              "train.num_threads=1"])
    model, task, train, _ = build_setup(cfg, Path(tempfile.mkdtemp(prefix="plan-test-")))
    widest = torch.argsort(train["mask"].sum(1), descending=True)[:8]
    batch = task.prepare(_take(train, widest, 0), torch.Generator().manual_seed(0))
    measured = measure_saved_bytes(model, task, batch)
    plan = plan_run(cfg, steps=1, warmup=1)
    assert 0.75 <= plan.memory["activations"] / measured <= 1.25, (plan.memory, measured)


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_optimizer_bytes_equal_the_real_state_after_one_step(optimizer, one_thread):
    cfg, model, task, batch = _setup("mlp", f"train.optimizer={optimizer}", "train.momentum=0.9")
    opt = build_optimizer(model, cfg.train)
    task.batch_loss(model(**_inputs(batch)), batch).backward()
    opt.step()
    real = real_optimizer_bytes(opt)
    assert real > 0
    assert optimizer_state_bytes(model, optimizer, 0.9) == real


def test_plan_counts_parameters_and_memory_parts(one_thread):
    cfg, model, _, _ = _setup("cnn")
    plan = plan_run(cfg, steps=2, warmup=1)
    n = sum(p.numel() for p in model.parameters())
    assert plan.params_total == n and plan.params_trainable == n
    mem = plan.memory
    assert mem["gradients"] == 4 * n
    assert mem["weights"] == sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    assert mem["peak"] == sum(v for k, v in mem.items() if k != "peak")
    assert plan.flops_per_step > 0 and plan.step_time_s > 0
    assert plan.samples_per_s == pytest.approx(cfg.train.batch_size / plan.step_time_s)
    assert plan.time_to_finish_s == pytest.approx(plan.total_steps * plan.step_time_s)
    assert plan.fits and plan.suggestion is None


def test_lm_plan_reports_tokens_and_analytic_flops(one_thread):
    cfg = _cfg("lm", "train.max_steps=40")
    plan = plan_run(cfg, steps=2, warmup=1)
    assert plan.total_steps == 40 and plan.tokens_per_sample == 32
    assert plan.tokens_per_s == pytest.approx(plan.samples_per_s * 32)
    # FlopCounterMode counts matmuls; 6N + 12LdT per token counts the same matmuls, give or take
    assert 0.5 <= plan.flops_per_step / plan.flops_analytic <= 2.0


def test_planned_peak_memory_within_25_percent_of_a_real_run(one_thread):
    cfg = _cfg("lm")
    plan = plan_run(cfg, steps=2, warmup=1)
    run = measure_run(cfg, steps=4)
    tracked = plan.memory["peak"] - plan.memory["overhead"]  # the CPU measure has no allocator slack
    assert 0.75 <= tracked / run["peak"] <= 1.25, (tracked, run)
    assert plan.memory["optimizer"] == run["memory"]["optimizer"]
    assert plan.memory["gradients"] == run["memory"]["gradients"]


def test_bf16_activation_estimate_follows_autocast(one_thread):
    cfg = _cfg("lm", "train.precision=bf16")
    plan = plan_run(cfg, steps=1, warmup=1)
    run = measure_run(cfg, steps=2)
    assert 0.75 <= plan.memory["activations"] / run["memory"]["activations"] <= 1.25
    fp32 = plan_run(_cfg("lm"), steps=1, warmup=1)
    assert plan.memory["activations"] < 0.8 * fp32.memory["activations"]  # bf16 copies are half


@pytest.mark.slow
def test_step_time_within_50_percent_of_a_real_run(one_thread):
    cfg = _cfg("lm", "model.n_embd=64", "model.block_size=64", "train.batch_size=16")
    plan = plan_run(cfg, steps=7, warmup=2)
    run = measure_run(cfg, steps=14)
    assert 0.5 <= plan.step_time_s / run["step_time_s"] <= 1.5, (plan.step_time_s, run)


def test_suggestion_on_a_small_device():
    mb = 1 << 20
    memory = {"weights": 10 * mb, "gradients": 10 * mb, "optimizer": 20 * mb, "activations": 64 * mb}
    # 40 MB fixed + 1 MB per row; 64 MB available -> budget 64/1.1 - 40 = 18.2 MB -> 16 rows
    out = suggest(memory, 64 * mb, micro_batch=64, grad_accum=2)
    assert out["micro_batch"] == 16 and out["grad_accum"] == 8  # 16 x 8 = 64 x 2 kept
    assert out["flags"] == "--train.batch_size 16 --train.grad_accum 8"
    assert not out["activation_checkpointing"]
    none = suggest(memory, 40 * mb, micro_batch=64, grad_accum=2, can_checkpoint=True)
    assert none["activation_checkpointing"] and none["grad_accum"] == 128
    assert "--train.activation_checkpointing true" in none["flags"]
    two = suggest(memory, 128 * mb, micro_batch=64, grad_accum=1, replicas=2)  # 2 CPU processes share it
    assert two["micro_batch"] == 16 and two["grad_accum"] == 4


def test_plan_that_does_not_fit_carries_a_suggestion(one_thread):
    cfg = _cfg("mlp")
    plan = plan_run(cfg, steps=1, warmup=1, available=1)
    assert not plan.fits and plan.suggestion is not None
    assert plan.suggestion["flags"].startswith("--train.batch_size 1")


@pytest.mark.slow
def test_cli_prints_the_table_and_json():
    done = run_cli("plan", "mlp_tabular", "--steps", "2", "--train.num_threads", "1",
                   "--model.hidden_sizes", "[8]", timeout=120)
    assert done.returncode == 0, done.stderr
    for label in ("parameters", "peak memory / process", "FLOPs / step", "step time", "time to finish"):
        assert label in done.stdout
    done = run_cli("plan", "mlp_tabular", "--steps", "2", "--format", "json", "--train.num_threads", "1",
                   "--model.hidden_sizes", "[8]", timeout=120)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["params_total"] > 0 and info["memory"]["peak"] > info["memory"]["activations"] > 0
    assert info["recipe"] == "mlp_tabular" and info["fits"] is True


def test_cli_rejects_a_bad_nproc():
    done = run_cli("plan", "mlp_tabular", "--nproc", "0", timeout=120)
    assert done.returncode == 2 and "error: --nproc must be at least 1" in done.stderr
