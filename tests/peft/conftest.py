"""A tiny pretrained source (a BERT-style LM bundle) and a small labelled text file for
fine-tuning tests; nothing here reads shared data or downloads anything."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from practicum.bundle import save_lm_bundle
from practicum.config import LMConfig, RunConfig, TaskConfig
from practicum.data.tokenizers import train_tokenizer
from practicum.models.lm import TransformerLM

TOPICS = {
    "card": ["my card was declined", "the card does not work", "card payment failed at the shop",
             "new card has not arrived", "how do i activate my card"],
    "refund": ["i want my money back", "refund for the order please", "the refund is late",
               "when will the refund arrive", "cancel and refund the payment"],
    "travel": ["can i use it abroad", "fees for travel in europe", "exchange rate when abroad",
               "card abroad in the usa", "travel money in another country"],
}


def labelled_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % len(TOPICS)]
        base = rng.choice(TOPICS[label])
        rows.append((f"{base} {rng.choice(['please', 'today', 'now', 'thanks', ''])} {i}".strip(), label))
    return rows


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT-style bundle with a WordPiece tokenizer on the topic words."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    texts = [t for rows in TOPICS.values() for t in rows] * 4 + [str(i) for i in range(400)]
    tok = train_tokenizer("wordpiece", texts, 160, 1)
    torch.manual_seed(0)
    cfg = LMConfig(preset="bert-tiny", n_layer=2, n_head=2, n_embd=32, intermediate_size=64,
                   block_size=64, vocab_size=tok.vocab_size)
    model = TransformerLM(cfg)
    run = RunConfig(name="tiny", model=cfg, task=TaskConfig(type="masked_lm"))
    return save_lm_bundle(folder / "bundle", run, model, tok, {})


@pytest.fixture(scope="session")
def labelled_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labelled") / "topics.csv"
    lines = ["text,label"] + [f"{t},{lab}" for t, lab in labelled_rows(180)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def finetune_config(source: Path, data: Path, out: Path, strategy: str = "full", **train) -> dict:
    return {
        "name": f"ft_{strategy}", "out_dir": str(out),
        "data": {"path": str(data), "split": {"val_fraction": 0.2, "test_fraction": 0.0}},
        "model": {"type": "pretrained", "init_from": str(source), "max_length": 16, "dropout": 0.1},
        "peft": {"strategy": strategy, "lora_r": 4, "prompt_tokens": 4, "freeze_layers": 1},
        "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "progress": "never", "tensorboard": False,
                  "eval_every": 6, "checkpoint_every": 4, **train},
    }
