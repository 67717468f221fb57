"""Supervised fine-tuning of a causal LM end to end: LoRA lowers the response loss, the bundle
is a language model that `practicum generate` reads, and an interrupted run resumes exactly."""

from __future__ import annotations

import json
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

ANSWERS = {"card": "Freeze the card in the app.", "refund": "Refunds take five days.",
           "travel": "The card works abroad."}


def pairs_file(tmp_path: Path) -> Path:
    from finetune_data import labelled_rows

    rows = [{"prompt": text, "response": ANSWERS[label]} for text, label in labelled_rows(90)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def sft_config(source: Path, tmp_path: Path, sub: str, **train) -> dict:
    return {
        "name": "sft", "out_dir": str(tmp_path / sub),
        "data": {"path": str(pairs_file(tmp_path)), "split": {"val_fraction": 0.2}},
        "model": {"type": "pretrained", "init_from": str(source), "max_length": 64},
        "task": {"type": "sft"},
        "peft": {"strategy": "lora", "lora_r": 4, "lora_alpha": 8},
        "train": {"epochs": 4, "batch_size": 8, "lr": 1e-2, "progress": "never", "tensorboard": False,
                  "eval_every": 9, "checkpoint_every": 4, **train},
    }


def test_sft_with_lora_lowers_the_response_loss_and_generate_uses_it(tiny_causal_source, tmp_path):
    result = api.train(sft_config(tiny_causal_source, tmp_path, "run"))
    before, after = result.metrics["val_before"]["loss"], result.metrics["val"]["loss"]
    assert after < 0.9 * before
    assert result.summary["trainable_params"] < 0.2 * result.summary["params"]
    bundle = Bundle.load(result.bundle)
    assert bundle.is_language_model and bundle.info["chat_template"]
    assert (Path(result.bundle) / "adapter.safetensors").is_file()
    # the merged bundle computes what the adapted model computed: the same val response loss
    from practicum.config import load_config
    from practicum.data.sft import read_pairs, sft_rows
    from practicum.finetuning import _split
    from practicum.tasks.language import _token_mean

    cfg = load_config(Path(result.run_dir) / "config.yaml")
    val = _split(read_pairs(cfg.data.path), cfg)[1]
    rows = sft_rows(val, bundle.tokenizer, bundle.info["chat_template"], 64)
    with torch.no_grad():
        loss = float(_token_mean(bundle.model(rows["tokens"]), rows["target"]))
    assert loss == pytest.approx(after, rel=1e-4)
    out = run_cli("generate", str(result.bundle), "--chat", "--prompt", "my card was declined today",
                  "--temperature", "0", "--max-new-tokens", "12", "--no-stream")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and "<|im_start|>" not in out.stdout  # only the reply is shown
    plain = run_cli("generate", str(tiny_causal_source), "--chat", "--prompt", "hi", "--max-new-tokens", "2")
    assert plain.returncode == 0, plain.stderr  # the source bundle carries the template too
    peft_out = run_cli("export-peft", str(result.bundle), "--out", str(tmp_path / "adapter"))
    assert peft_out.returncode == 0, peft_out.stderr
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["task_type"] == "CAUSAL_LM"


def test_sft_resume_after_interruption_is_exact(tiny_causal_source, tmp_path, monkeypatch):
    full = api.train(sft_config(tiny_causal_source, tmp_path, "a", max_steps=14))
    cfg = sft_config(tiny_causal_source, tmp_path, "b", max_steps=14)
    resumed = interrupted_then_resumed(cfg, 9, monkeypatch)
    a, b = (load_file(Path(r.bundle) / "adapter.safetensors") for r in (full, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["val"] == full.metrics["val"]


def test_sft_needs_a_causal_model(tiny_source, tmp_path):
    with pytest.raises(UserError, match="task.type sft needs a causal"):
        api.train(sft_config(tiny_source, tmp_path, "x"))
