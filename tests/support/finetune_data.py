"""Labelled toy texts and a fine-tuning config for tests (fixtures live in tests/conftest.py)."""

from __future__ import annotations

import random
from pathlib import Path

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


def finetune_config(source: Path, data: Path, out: Path, strategy: str = "full", **train) -> dict:
    return {
        "name": f"ft_{strategy}", "out_dir": str(out),
        "data": {"path": str(data), "split": {"val_fraction": 0.2, "test_fraction": 0.0}},
        "model": {"type": "pretrained", "init_from": str(source), "max_length": 16, "dropout": 0.1},
        "peft": {"strategy": strategy, "lora_r": 4, "prompt_tokens": 4, "freeze_layers": 1},
        "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "progress": "never", "tensorboard": False,
                  "eval_every": 6, "checkpoint_every": 4, **train},
    }
