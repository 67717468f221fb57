"""End to end through the real `practicum` command: quickstart, predict, SIGKILL + resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time

import pytest
import torch
from clitools import PRACTICUM, ROOT, run_cli
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def test_quickstart_accuracy_report_bundle_and_predict_parity(tmp_path):
    out = tmp_path / "quickstart"
    started = time.perf_counter()
    done = run_cli("quickstart", "--out_dir", str(out))
    wall = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["accuracy"] >= 0.97
    assert "test accuracy:" in done.stdout and "next:" in done.stdout
    assert wall < 240, f"quickstart took {wall:.0f}s (the target on a quiet 2-core machine is < 120s)"
    for name in ("report.html", "bundle/model.safetensors", "bundle/bundle.json",
                 "bundle/preprocess.json", "plots/confusion_matrix.png", "metrics.csv"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))

    predicted = run_cli("predict", str(out / "bundle"), "--input", "builtin:digits", "--split", "test",
                        "--output", str(tmp_path / "pred.csv"))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    with (out / "predictions.csv").open() as fh:
        during_run = [(r["input"], r["prediction"]) for r in csv.DictReader(fh)]
    with (tmp_path / "pred.csv").open() as fh:
        from_bundle = [(r["input"], r["prediction"]) for r in csv.DictReader(fh)]
    assert len(during_run) == 180 and from_bundle == during_run


RESUME_ARGS = ["train", "quickstart", "--model.channels", "[8, 16]", "--model.hidden_size", "32",
               "--train.batch_size", "16", "--train.epochs", "4", "--train.patience", "null",
               "--train.checkpoint_every", "5", "--train.num_threads", "1"]


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path):
    full = run_cli(*RESUME_ARGS, "--out_dir", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-2000:]

    killed_dir = tmp_path / "killed"
    last = killed_dir / "checkpoints" / "last.pt"
    proc = subprocess.Popen([*PRACTICUM, *RESUME_ARGS, "--out_dir", str(killed_dir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed_dir / "summary.json").exists()
    state = torch.load(last, weights_only=True)["state"]
    assert state["batch_in_epoch"] > 0, "the kill should land mid-epoch"

    resumed = run_cli("train", "quickstart", "--resume", str(killed_dir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr
    for name in ("checkpoints/last.pt",):
        a = torch.load(tmp_path / "full" / name, weights_only=True)["model"]
        b = torch.load(killed_dir / name, weights_only=True)["model"]
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    a, b = (load_file(d / "bundle" / "model.safetensors") for d in (tmp_path / "full", killed_dir))
    assert all(torch.equal(a[k], b[k]) for k in a)
    metrics = [json.loads((d / "summary.json").read_text())["test"] for d in (tmp_path / "full", killed_dir)]
    assert metrics[0] == metrics[1]
