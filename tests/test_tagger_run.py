"""Token classification end to end on a tiny pretrained encoder: training, the bundle's
predict/evaluate, the CLI, and exact resume."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from clitools import run_cli
from interrupt import interrupted_then_resumed
from safetensors.torch import load_file

from practicum import api
from practicum.bundle import Bundle
from practicum.errors import UserError

pytestmark = pytest.mark.slow

CITIES = ["paris", "london", "rome", "madrid"]
OTHER = ["my", "card", "was", "declined", "in", "the", "refund", "from", "today", "travel"]


def tagged_file(path: Path, n: int = 120) -> Path:
    rng = random.Random(0)
    lines = []
    for _ in range(n):
        words = rng.sample(OTHER, 4)
        at = rng.randrange(5)
        words.insert(at, rng.choice(CITIES))
        tags = ["B-LOC" if w in CITIES else "O" for w in words]
        lines.append(json.dumps({"tokens": words, "tags": tags}))
    path.write_text("\n".join(lines) + "\n")
    return path


def config(source: Path, tmp_path: Path, sub: str, strategy: str = "full", **train) -> dict:
    return {
        "name": "tagger", "out_dir": str(tmp_path / sub),
        "data": {"path": str(tagged_file(tmp_path / "tags.jsonl")),
                 "split": {"val_fraction": 0.2, "test_fraction": 0.1}},
        "model": {"type": "pretrained", "init_from": str(source), "max_length": 24},
        "task": {"type": "token_classification"},
        "peft": {"strategy": strategy, "lora_r": 4},
        "train": {"epochs": 6, "batch_size": 16, "lr": 3e-3, "progress": "never", "tensorboard": False,
                  "eval_every": 5, "checkpoint_every": 3, **train},
    }


def test_tagger_learns_and_its_bundle_predicts(tiny_source, tmp_path):
    result = api.train(config(tiny_source, tmp_path, "run"))
    assert result.metrics["test"]["f1"] >= 0.8, result.metrics["test"]
    assert result.summary["tags"] == ["O", "B-LOC", "I-LOC"]
    bundle = Bundle.load(result.bundle)
    rows = bundle.predict(["my card was declined in paris", "refund from london today"])
    assert rows[0]["prediction"] == ["O", "O", "O", "O", "O", "B-LOC"]
    assert rows[1]["entities"] == [{"type": "LOC", "start": 2, "end": 3, "text": "london"}]
    metrics = bundle.evaluate(str(tmp_path / "tags.jsonl"))
    assert metrics["f1"] >= 0.8
    out = run_cli("predict", str(result.bundle), "--input", "travel to rome today")
    assert out.returncode == 0, out.stderr
    assert "rome/B-LOC" in out.stdout


def test_tagger_resume_with_lora_is_exact(tiny_source, tmp_path, monkeypatch):
    full = api.train(config(tiny_source, tmp_path, "a", "lora", max_steps=12))
    cfg = config(tiny_source, tmp_path, "b", "lora", max_steps=12)
    resumed = interrupted_then_resumed(cfg, 7, monkeypatch)
    a, b = (load_file(Path(r.bundle) / "model.safetensors") for r in (full, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["val"] == full.metrics["val"]


def test_tagging_needs_a_pretrained_model(tmp_path):
    cfg = {"data": {"path": str(tagged_file(tmp_path / "t.jsonl"))}, "task": {"type": "token_classification"},
           "model": {"type": "mlp"}, "out_dir": str(tmp_path / "x")}
    with pytest.raises(UserError, match="needs model.type pretrained"):
        api.train(cfg)
