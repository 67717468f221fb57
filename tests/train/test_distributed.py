"""Distributed training (torchrun, DDP on CPU with gloo): a 2-process run ends on the weights of a
1-process run with the same global batch; a killed group resumes exactly, on another world size too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.support.clitools import ROOT

from practicum import api
from practicum.errors import UserError
from practicum.train import distributed
from practicum.train.checkpoint import load_checkpoint

WORKER = Path(__file__).with_name("ddp_worker.py")
# A layer-norm MLP on penguins without dropout (each rank draws its own dropout masks): 16 steps of
# 2 micro-batches of 16 rows, a checkpoint every 4 steps, validation after each epoch. SGD without
# clipping, so a wrongly scaled gradient (Adam would hide it) moves the weights elsewhere.
RECIPE = ["mlp_tabular", "--model.dropout", "0", "--train.batch_size", "16", "--train.grad_accum", "2",
          "--train.optimizer", "sgd", "--train.lr", "0.05", "--train.grad_clip", "null",
          "--train.epochs", "3", "--train.max_steps", "16", "--train.checkpoint_every", "4",
          "--train.tensorboard", "false", "--train.progress", "never", "--train.num_threads", "1"]


def _overrides(out: Path) -> list[str]:
    pairs = RECIPE[1:]
    return [f"{k[2:]}={v}" for k, v in zip(pairs[::2], pairs[1::2], strict=True)] + [f"out_dir={out}"]


def _torchrun(out: Path, nproc: int = 2, extra: list[str] = (), env: dict | None = None,
              max_restarts: int = 0) -> subprocess.CompletedProcess:
    """The worker script under torchrun (what `practicum train --nproc 2` runs, plus a kill switch)."""
    cmd = distributed.torchrun_command(["train", *RECIPE, "--out_dir", str(out), *extra], nproc,
                                       max_restarts=max_restarts)
    cmd[cmd.index("-m", 3): cmd.index("practicum.cli") + 1] = [str(WORKER)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=300)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=tol, rtol=0, msg=k)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """The uninterrupted 1-process run every distributed run must end on."""
    before = torch.get_num_threads()
    run = tmp_path_factory.mktemp("single") / "run"
    api.train("mlp_tabular", _overrides(run))
    torch.set_num_threads(before)
    return run


@pytest.mark.slow
def test_two_processes_end_on_the_one_process_weights(single, tmp_path):
    run = tmp_path / "ddp"
    done = subprocess.run([sys.executable, "-m", "practicum.cli", "train", *RECIPE, "--out_dir", str(run),
                           "--nproc", "2"], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["state"]["step"] == 16 and not any(k.startswith("module.") for k in ckpt["model"])
    _assert_same(ckpt["model"], _weights(single))
    # only rank 0 wrote: the same files as one process, one metrics row per event, no second folder
    files = {p.relative_to(run) for p in run.rglob("*") if "plots" not in p.parts}
    assert files == {p.relative_to(single) for p in single.rglob("*") if "plots" not in p.parts}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ones = [json.loads(line) for line in (single / "metrics.jsonl").read_text().splitlines()]
    assert [(r["split"], r["step"]) for r in rows] == [(r["split"], r["step"]) for r in ones]
    for r, o in zip(rows, ones, strict=True):  # the logged train loss is the global mean
        assert r["loss"] == pytest.approx(o["loss"], abs=1e-5)
    assert not list(tmp_path.glob("ddp-*"))
    assert done.stderr.count("run folder") == 1, done.stderr[-3000:]  # only rank 0 logs


@pytest.mark.slow
def test_fsdp_on_two_cpu_processes_ends_on_the_one_process_weights(single, tmp_path):
    run = tmp_path / "fsdp"
    done = _torchrun(run, extra=["--strategy", "fsdp"])
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["optimizer"]["by_name"] and set(ckpt["model"]) == set(_weights(single))
    _assert_same(ckpt["model"], _weights(single))
    assert (run / "bundle").is_dir()


@pytest.mark.slow
def test_a_killed_fsdp_run_resumes_on_one_process(single, tmp_path, one_thread):
    run = tmp_path / "fsdp_killed"
    done = _torchrun(run, extra=["--strategy", "fsdp"], env={"KILL_AT_STEP": "10", "KILL_RANK": "1"})
    assert done.returncode != 0
    api.train("mlp_tabular", _overrides(run), resume=run)  # parameter-keyed optimizer state, 1 process
    _assert_same(_weights(run), _weights(single))


@pytest.mark.slow
def test_a_killed_rank_restarts_elastically_and_ends_the_same(single, tmp_path):
    run = tmp_path / "elastic"
    done = _torchrun(run, env={"KILL_AT_STEP": "10", "KILL_RANK": "1"}, max_restarts=1)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "elastic restart: resuming" in done.stderr
    _assert_same(_weights(run), _weights(single))


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_on_one_process(single, tmp_path, one_thread):
    run = tmp_path / "killed"
    done = _torchrun(run, env={"KILL_AT_STEP": "10", "KILL_RANK": "0"})
    assert done.returncode != 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["state"]["step"] == 8
    torch.manual_seed(999)  # the checkpoint must restore the RNG
    api.train("mlp_tabular", _overrides(run), resume=run)
    _assert_same(_weights(run), _weights(single))


def test_torchrun_command_carries_the_launch_flags():
    cmd = distributed.torchrun_command(["train", "r.yaml", "--train.lr", "0.1"], 4, nnodes=2, node_rank=1,
                                       rdzv_endpoint="10.0.0.1:29400", max_restarts=3)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[3:] == ["--nproc-per-node", "4", "--nnodes", "2", "--node-rank", "1", "--rdzv-backend", "c10d",
                       "--rdzv-endpoint", "10.0.0.1:29400", "--max-restarts", "3",
                       "-m", "practicum.cli", "train", "r.yaml", "--train.lr", "0.1"]
    assert "--standalone" in distributed.torchrun_command(["train", "r"], 2)
    with pytest.raises(UserError, match="rdzv-endpoint"):
        distributed.torchrun_command(["train", "r"], 2, nnodes=2)


def test_cli_nproc_relaunches_itself_through_torchrun(monkeypatch):
    from practicum import cli

    seen = []
    monkeypatch.setattr(distributed, "launch", lambda cmd: seen.append(cmd) or 7)
    code = cli.main(["train", "mlp_tabular", "--nproc", "2", "--strategy", "ddp", "--train.lr", "0.1",
                     "--resume", "--max-restarts", "2"])
    assert code == 7
    (cmd,) = seen
    i = cmd.index("practicum.cli")
    assert cmd[cmd.index("--nproc-per-node") + 1] == "2" and cmd[cmd.index("--max-restarts") + 1] == "2"
    assert cmd[i + 1:] == ["train", "mlp_tabular", "--train.lr", "0.1", "--resume=", "--strategy", "ddp"]


def test_a_batch_that_does_not_split_across_processes_is_refused():
    with pytest.raises(UserError, match=r"batch_size 30 .* 4 processes.*--train.batch_size 32"):
        distributed.check_batch(30, 4)
    distributed.check_batch(32, 4)
    batch = {"x": torch.arange(10).reshape(5, 2)}
    parts = [distributed.shard(batch, distributed.Dist(r, 2))["x"] for r in range(2)]
    assert torch.equal(torch.cat(parts), batch["x"]) and len(parts[0]) == 3


@pytest.mark.slow
def test_fsdp_shards_a_gpt_by_block_and_ends_on_the_one_process_weights(tmp_path, one_thread):
    """FSDP over a TransformerLM (blocks in a ModuleList, tied embeddings) on 2 processes."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 300, encoding="utf-8")
    args = ["pretrain", "pretrain_char", "--data", str(corpus), "--model.n_layer", "2", "--model.n_head", "2",
            "--model.n_embd", "32", "--model.block_size", "32", "--model.dropout", "0",
            "--train.batch_size", "8", "--train.max_steps", "6", "--train.eval_every", "6",
            "--train.optimizer", "sgd", "--train.lr", "0.1", "--train.grad_clip", "null",
            "--train.tensorboard", "false", "--train.progress", "never", "--train.num_threads", "1"]
    single = tmp_path / "single"
    api.pretrain("pretrain_char", [f"data.path={corpus}", *(f"{k[2:]}={v}" for k, v in
                                                           zip(args[4::2], args[5::2], strict=True)),
                                   f"out_dir={single}"])
    sharded = tmp_path / "fsdp"
    cmd = distributed.torchrun_command([*args, "--out_dir", str(sharded), "--strategy", "fsdp"], 2)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same(_weights(sharded), _weights(single))
