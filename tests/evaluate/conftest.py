"""A synthetic run folder, laid out as the trainer writes it, for the report tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from practicum.evaluate import classification_metrics, regression_metrics, scalar_metrics

LABELS = ["cat", "dog", "bird", "fish"]


def history(val_metric_names: tuple[str, ...], steps: int = 6) -> list[dict]:
    """metrics.jsonl rows: a train row and a val row every 10 steps."""
    rows = []
    for step in range(1, steps + 1):
        rows.append({"split": "train", "step": step * 10, "epoch": step, "loss": 2.0 / step,
                     "lr": 1e-3, "samples_per_s": 500.0})
        val = {"split": "val", "step": step * 10, "epoch": step, "loss": 2.2 / step}
        val.update({name: 1 - 0.5 / step for name in val_metric_names})
        rows.append(val)
    return rows


def _write(run: Path, cfg: dict, rows: list[dict], summary: dict, bundle: dict,
           predictions: list[dict]) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (run / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (run / "bundle").mkdir(exist_ok=True)
    (run / "bundle" / "metrics.json").write_text(json.dumps(bundle), encoding="utf-8")
    with (run / "predictions.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(predictions[0]))
        writer.writeheader()
        writer.writerows(predictions)
    return run


@pytest.fixture
def make_history():
    return history


@pytest.fixture
def classification_run(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 60
    y = rng.integers(0, 3, size=n)  # "fish" never occurs in the test split
    logits = rng.normal(size=(n, 4)) + 2.5 * np.eye(4)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = proba.argmax(1)
    test = classification_metrics(y, pred, proba, LABELS)
    val = classification_metrics(y[:30], pred[:30], proba[:30], LABELS)
    inputs = [f"sample text {i}" for i in range(n)]
    inputs[1] = "<script>alert('pwned')</script> & more"
    predictions = [
        {"input": inputs[i], "target": LABELS[y[i]], "prediction": LABELS[pred[i]],
         "confidence": f"{proba[i].max():.4f}"}
        for i in range(n)
    ]
    summary = {"task": "classification", "monitor": "accuracy", "best_step": 50,
               "best_value": val["accuracy"], "steps": 60, "epochs_run": 6,
               "stopped_early": True, "train_time_s": 83.4, "params": 1_234_567,
               "device": "cpu", "test": scalar_metrics(test), "val": scalar_metrics(val)}
    cfg = {"name": "pets-<demo>", "out_dir": "runs/pets", "data": {"path": "pets.csv"},
           "model": {"type": "mlp"}, "train": {"epochs": 6}, "task": {"type": "auto"}}
    return _write(tmp_path / "run", cfg, history(("accuracy", "f1_macro")), summary,
                  {"val": val, "test": test}, predictions)


@pytest.fixture
def regression_run(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    y = rng.normal(10, 3, size=80)
    pred = y + rng.normal(0, 1, size=80)
    test = regression_metrics(y, pred)
    predictions = [
        {"input": f"row {i}", "target": f"{y[i]:.4f}", "prediction": f"{pred[i]:.4f}",
         "error": f"{pred[i] - y[i]:.4f}"}
        for i in range(80)
    ]
    summary = {"task": "regression", "monitor": "loss", "best_step": 40, "best_value": 0.12,
               "steps": 40, "epochs_run": 4, "stopped_early": False, "train_time_s": 3.2,
               "params": 321, "device": "cpu", "test": test}
    cfg = {"name": "houses", "task": {"type": "regression"}}
    return _write(tmp_path / "reg", cfg, history(("mae", "r2"), steps=4), summary,
                  {"val": test, "test": test}, predictions)
