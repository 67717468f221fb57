"""The trade-off table of a compression: what the smaller model costs in quality and gains in
size and speed.

One row per bundle (the original first): size on disk of model.safetensors and of the whole
bundle folder, parameters and non-zero parameters (quantized weights dequantized), latency
p50/p95 of one forward pass at batch 1 and batch 32 (real preprocessed rows of the evaluation
data; warm-up calls excluded; a fixed number of timed calls), the task metric, and the change
against the original. Classifiers are scored on the bundle's own test split (the rows its run
held out, re-created from its config) or on a labelled file; regressors likewise (MAE, RMSE,
R^2); language models by loss and perplexity on token windows of their run's validation
corpus or of a text file.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from practicum.errors import UserError

log = logging.getLogger(__name__)

BATCHES = (1, 32)
WARMUP = 3
LM_WINDOWS = 128
"""Validation windows (of block_size tokens) a language model is scored on."""
HEADLINE = {"classification": ("accuracy", "f1_macro"), "regression": ("mae", "rmse", "r2"),
            "causal_lm": ("loss", "perplexity"), "masked_lm": ("loss", "perplexity")}


@dataclass
class Evaluation:
    """What every row is measured on: rows of a classifier's data, or an LM's token windows."""

    name: str
    source: Any = None
    """Classifiers: a raw split (Table / ImageSet) or a file path, read by each bundle's preprocessor."""
    windows: torch.Tensor | None = None
    """Language models: (N, T + 1) token ids."""


# ---------------------------------------------------------------- the evaluation data


def evaluation_for(bundle: Any, data: str | Path | None = None, split: str | None = None) -> Evaluation:
    """The data the table scores on: `data` (a file; with `split`, that split of it under the
    bundle's split settings), else the bundle's own test split (its val split when it has none)."""
    if bundle.is_language_model:
        return _lm_evaluation(bundle, data)
    from practicum.data import raw_split

    if data is not None and split is None:
        return Evaluation(str(data), source=str(data))
    cfg = bundle.config.data if data is None else bundle.config.data.model_copy(update={"path": str(data)})
    if split is not None:
        return Evaluation(f"{split} split of {cfg.path}", source=raw_split(cfg, bundle.config.task, split))
    try:
        return Evaluation(f"test split of {cfg.path}", source=raw_split(cfg, bundle.config.task, "test"))
    except UserError as exc:
        if "no test split" not in str(exc):
            raise
        log.info("%s has no test split with the bundle's config: scoring on its val split", cfg.path)
        return Evaluation(f"val split of {cfg.path}", source=raw_split(cfg, bundle.config.task, "val"))


def _lm_evaluation(bundle: Any, data: str | Path | None) -> Evaluation:
    from practicum.data.corpus import TokenWindows, iter_documents, load_corpus

    T = int(bundle.config.model.block_size)
    eos = bundle.tokenizer.eos_id
    if data is not None:
        ids: list[int] = []
        for text in iter_documents(str(data)):
            ids += bundle.tokenizer.encode(text) + ([eos] if eos is not None else [])
        tokens, name = np.asarray(ids, dtype=np.int64), str(data)
    elif (bundle.path.parent / "corpus" / "meta.json").is_file():
        tokens, name = load_corpus(bundle.path.parent / "corpus")[1], f"val split of {bundle.config.data.path}"
    else:
        tokens, name = _rebuilt_val(bundle), f"val split of {bundle.config.data.path}"
    windows = TokenWindows(tokens, T, limit=LM_WINDOWS, split="evaluation")
    rows = windows.take(torch.arange(len(windows)), 0)
    return Evaluation(name, windows=torch.cat([rows["tokens"], rows["target"][:, -1:]], dim=1))


def _rebuilt_val(bundle: Any) -> np.ndarray:
    """The validation tokens of the bundle's corpus, re-tokenized (its run folder is gone)."""
    from practicum.data.corpus import build_corpus, load_corpus

    cfg = bundle.config.data
    with tempfile.TemporaryDirectory() as tmp:
        try:
            build_corpus(cfg.path, bundle.tokenizer, tmp, val_fraction=cfg.split.val_fraction or 0.1,
                         text_field=cfg.corpus.text_field, seed=cfg.split.seed)
        except (UserError, OSError, ValueError) as exc:
            raise UserError(f"no evaluation text for {bundle.path}: its run's corpus/ is not beside it "
                            f"and data.path {cfg.path} cannot be read as a corpus ({exc}); "
                            "pass --data FILE.txt") from None
        return np.array(load_corpus(tmp)[1])


# ---------------------------------------------------------------- one row


def measure(path: str | Path, evaluation: Evaluation, name: str, repeats: int = 30) -> dict[str, Any]:
    """Load the bundle at `path` (as a user would) and measure one row of the table."""
    from practicum.bundle import Bundle
    from practicum.compress.quantize import weight_tensors

    bundle = Bundle.load(path)
    folder = bundle.path
    inputs, metrics = _score(bundle, evaluation)
    tensors = list(weight_tensors(bundle.model))
    row = {
        "name": name, "bundle": str(folder),
        "weights_bytes": (folder / "model.safetensors").stat().st_size,
        "bundle_bytes": sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()),
        "parameters": sum(t.numel() for t in tensors),
        "nonzero_parameters": sum(int(torch.count_nonzero(t)) for t in tensors),
        "latency_ms": {str(b): latency(bundle.model, _rows(inputs, b), repeats) for b in BATCHES},
        "metrics": metrics,
    }
    log.info("%s: %s weights, %s", name, _size(row["weights_bytes"]),
             ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return row


def _score(bundle: Any, evaluation: Evaluation) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """(model inputs of every evaluation row, the headline metrics)."""
    task = bundle.info.get("task")
    keys = HEADLINE.get(task, ())
    if bundle.is_language_model:
        metrics = _lm_metrics(bundle, evaluation.windows)
        return {"tokens": evaluation.windows[:, :-1]}, {k: metrics[k] for k in keys if k in metrics}
    batch, _, _ = bundle.preprocessor.load_inputs(evaluation.source)
    if "target" not in batch:
        raise UserError(f"{evaluation.name}: no target column to score against; give labelled data "
                        f"(the column {bundle.preprocessor.target!r})")
    metrics = bundle.task.metrics(bundle.outputs(batch), batch["target"])
    return {k: v for k, v in batch.items() if k != "target"}, {k: float(metrics[k]) for k in keys if k in metrics}


@torch.no_grad()
def _lm_metrics(bundle: Any, windows: torch.Tensor, batch_size: int = 16) -> dict[str, Any]:
    from practicum.pretraining import build_lm_task

    task = build_lm_task(bundle.info["task"], bundle.config, bundle.tokenizer, int(bundle.info["vocab_size"]))
    totals = task.stream_start()
    for b, lo in enumerate(range(0, len(windows), batch_size)):
        rows = {"tokens": windows[lo : lo + batch_size, :-1], "target": windows[lo : lo + batch_size, 1:]}
        rows = task.prepare(rows, torch.Generator().manual_seed(b))  # masked LM: the same masks every row
        outputs = bundle.model(tokens=rows["tokens"])
        task.stream_add(totals, outputs, rows)
    return task.stream_result(totals)


def _rows(inputs: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """The first n rows (repeated when there are fewer)."""
    have = len(next(iter(inputs.values())))
    index = torch.arange(n) % max(have, 1)
    return {k: v[index] for k, v in inputs.items()}


@torch.no_grad()
def latency(model: torch.nn.Module, inputs: dict[str, torch.Tensor], repeats: int = 30) -> dict[str, float]:
    """p50 and p95 milliseconds of model(**inputs) over `repeats` timed calls after WARMUP ones."""
    for _ in range(WARMUP):
        model(**inputs)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        model(**inputs)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))}


# ---------------------------------------------------------------- the table


def tradeoff(rows: list[dict[str, Any]], evaluation: Evaluation, repeats: int) -> dict[str, Any]:
    """The table as JSON: rows with their change against the first (the original)."""
    base = rows[0]
    for row in rows:
        row["delta"] = _delta(base, row)
    return {"evaluation": evaluation.name, "threads": torch.get_num_threads(),
            "latency": {"batches": list(BATCHES), "warmup": WARMUP, "repeats": repeats,
                        "what": "one forward pass (language models: block_size tokens per row)"},
            "rows": rows}


def _delta(base: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"size_ratio": base["weights_bytes"] / max(row["weights_bytes"], 1)}
    for b in map(str, BATCHES):
        out[f"speedup_b{b}"] = base["latency_ms"][b]["p50"] / max(row["latency_ms"][b]["p50"], 1e-9)
    for key, value in row["metrics"].items():
        if key in base["metrics"]:
            out[key] = value - base["metrics"][key]
    return out


def write_table(folder: Path, table: dict[str, Any]) -> str:
    """compress.json and compress.md in `folder`; returns the markdown."""
    text = markdown(table)
    (folder / "compress.json").write_text(json.dumps(table, indent=2), encoding="utf-8")
    (folder / "compress.md").write_text(text, encoding="utf-8")
    return text


def markdown(table: dict[str, Any]) -> str:
    rows = table["rows"]
    keys = list(rows[0]["metrics"])
    head = ["model", "weights", "bundle", "smaller", "params", "non-zero",
            *[f"b{b} p50/p95 ms" for b in table["latency"]["batches"]], *keys, *[f"Δ {k}" for k in keys]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["name"], _size(row["weights_bytes"]), _size(row["bundle_bytes"]),
                 f"{row['delta']['size_ratio']:.2f}x", f"{row['parameters']:,}", f"{row['nonzero_parameters']:,}"]
        cells += [f"{row['latency_ms'][str(b)]['p50']:.2f} / {row['latency_ms'][str(b)]['p95']:.2f}"
                  for b in table["latency"]["batches"]]
        cells += [_metric(k, row["metrics"].get(k)) for k in keys]
        cells += [_change(k, row["delta"].get(k)) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    lat = table["latency"]
    lines.append(f"\nScored on {table['evaluation']}; latency: {lat['what']}, {lat['repeats']} timed calls "
                 f"after {lat['warmup']} warm-up calls, {table['threads']} thread(s). "
                 "Δ: change against the first row (accuracy and F1 in points).")
    return "\n".join(lines) + "\n"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB"


def _metric(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if key in ("accuracy", "f1_macro") else f"{value:.4f}"


def _change(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.2f}" if key in ("accuracy", "f1_macro") else f"{value:+.4f}"
