"""`practicum resume-check`: a classifier, a GPT pretraining run and a LoRA fine-tune all resume
bit-exactly after a SIGKILL, and a resume that loses the optimizer state is caught and named."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from finetune_data import finetune_config, labelled_rows

from practicum import api
from practicum.cli import main
from practicum.resume_check import choose_kill_step

pytestmark = pytest.mark.slow

STEPS = ["--steps", "12"]


def tiny_mlp_recipe(tmp_path: Path) -> Path:
    recipe = {"name": "rc_mlp", "out_dir": str(tmp_path / "unused"), "data": {"path": "builtin:wine"},
              "model": {"type": "mlp", "hidden_sizes": [16], "dropout": 0.2},
              "train": {"epochs": 20, "batch_size": 16, "lr": 3e-3, "num_threads": 1}, "task": {"type": "classification"}}
    path = tmp_path / "mlp.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def assert_all_equal(result) -> None:
    assert result.ok, [c for c in result.comparisons if not c.equal]
    names = " ".join(c.what for c in result.comparisons)
    for part in ("checkpoint model weights", "optimizer state", "bundle model.safetensors", "val metrics",
                 "metrics.jsonl train rows"):
        assert part in names
    assert result.resume_step < result.kill_step < result.total_steps


def test_a_classifier_passes_and_the_kept_runs_really_match(tmp_path, capsys):
    keep = tmp_path / "keep"
    assert main(["resume-check", str(tiny_mlp_recipe(tmp_path)), *STEPS, "--keep", str(keep)]) == 0
    out = capsys.readouterr().out
    assert "resume check passed" in out and "killed (SIGKILL) at step" in out
    # the oracle: the two run folders themselves
    from safetensors.torch import load_file

    a, b = (load_file(keep / run / "bundle" / "model.safetensors") for run in ("full", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (keep / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 13))  # no duplicated steps
    last = torch.load(keep / "killed" / "checkpoints" / "last.pt", weights_only=True)
    assert last["state"]["step"] == 12


def toy_corpus(path: Path, docs: int = 30) -> Path:
    rng = random.Random(0)
    words = ["the cat", "a dog", "my bird", "sees", "eats", "likes", "the fish", "some bread", "a ball"]
    lines = [json.dumps({"text": " ".join(rng.choice(words) for _ in range(40)) + "."}) for _ in range(docs)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_gpt_pretraining_run_passes(tmp_path):
    cfg = {"name": "rc_gpt", "out_dir": str(tmp_path / "unused"),
           "data": {"path": str(toy_corpus(tmp_path / "toy.jsonl")), "corpus": {"tokenizer": "char"}},
           "model": {"type": "lm", "preset": "gpt-tiny", "block_size": 32},
           "task": {"type": "causal_lm"}, "train": {"batch_size": 8, "lr": 3e-3, "num_threads": 1}}
    result = api.resume_check(cfg, steps=12)
    assert_all_equal(result)


def test_a_lora_fine_tune_passes(tiny_source, tmp_path):
    data = tmp_path / "topics.csv"
    data.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in labelled_rows(60)), encoding="utf-8")
    cfg = finetune_config(tiny_source, data, tmp_path / "unused", "lora", epochs=3, num_threads=1)
    result = api.resume_check(cfg, steps=12)
    assert_all_equal(result)
    assert "bundle adapter.safetensors" in [c.what for c in result.comparisons]


def damage_optimizer(run_dir: Path) -> None:
    """What a resume that forgot the optimizer's moments would amount to."""
    path = run_dir / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    for slot in ckpt["optimizer"]["state"].values():
        slot["exp_avg"].zero_()
        slot["exp_avg_sq"].zero_()
    torch.save(ckpt, path)


def test_a_broken_resume_fails_with_exit_1_and_names_what_differs(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(api, "resume_check", functools.partial(api.resume_check, between=damage_optimizer))
    assert main(["resume-check", str(tiny_mlp_recipe(tmp_path)), *STEPS]) == 1
    captured = capsys.readouterr()
    assert "resume check FAILED" in captured.err
    assert "checkpoint model weights differs" in captured.err and "optimizer state differs" in captured.err
    table = {line.split("  ")[0]: line for line in captured.out.splitlines()}
    assert " NO " in table["checkpoint model weights"] and " yes " in table["scheduler state"]


def test_the_kill_lands_mid_epoch_between_checkpoints():
    steps = list(range(1, 25))
    epochs = [(s - 1) // 9 for s in steps]  # 9 steps an epoch
    kill, resume_at, mid = choose_kill_step(steps, epochs, 4, 8)
    assert resume_at in (8, 12, 16) and mid and resume_at < kill < resume_at + 4
    assert epochs[resume_at - 1] == epochs[resume_at]
    # the checkpoints sit on epoch boundaries only: it still kills, and says so
    kill, resume_at, mid = choose_kill_step(steps, [(s - 1) // 4 for s in steps], 4, None)
    assert not mid and resume_at < kill < resume_at + 4


def test_too_few_steps_is_a_clear_error(tmp_path, capsys):
    assert main(["resume-check", str(tiny_mlp_recipe(tmp_path)), "--steps", "2"]) == 2
    assert "needs at least 4 steps" in capsys.readouterr().err
