"""Read a run folder (any file may be missing or damaged) and draw its plots.

Layout (written by the trainer): config.yaml, metrics.jsonl, summary.json,
predictions.csv, bundle/metrics.json and plots/*.png. `read_run` never raises for a
missing or malformed file: it records what is missing and what could not be read, so
the report can say so.
"""

from __future__ import annotations

import csv
import heapq
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from practicum.evaluate import plots

log = logging.getLogger(__name__)

HEAD_ROWS = 20
WORST_ROWS = 10


@dataclass
class Predictions:
    """What the report shows of predictions.csv, read in one pass."""

    columns: list[str]
    head: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (row number, row)
    worst: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    rows: int = 0
    mistakes: int | None = None  # classification rows with a target that was missed
    y_true: list[float] = field(default_factory=list)  # regression, for the scatter plot
    y_pred: list[float] = field(default_factory=list)


@dataclass
class RunFiles:
    run_dir: Path
    config_text: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    bundle_metrics: dict[str, Any] = field(default_factory=dict)
    predictions: Predictions | None = None
    plots: dict[str, Path] = field(default_factory=dict)  # file name -> path
    missing: list[str] = field(default_factory=list)  # run-relative paths not found
    problems: list[str] = field(default_factory=list)  # files found but not (fully) readable

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.run_dir.name)

    @property
    def test_metrics(self) -> dict[str, Any]:
        test = self.bundle_metrics.get("test") or self.summary.get("test")
        return test if isinstance(test, dict) else {}

    @property
    def val_metrics(self) -> dict[str, Any]:
        val = self.bundle_metrics.get("val") or self.summary.get("val")
        return val if isinstance(val, dict) else {}

    @property
    def task(self) -> str | None:
        """classification | regression, from summary, config, metrics or predictions."""
        task = self.summary.get("task")
        if task in ("classification", "regression"):
            return task
        cfg_task = self.config.get("task")
        if isinstance(cfg_task, dict) and cfg_task.get("type") in ("classification", "regression"):
            return cfg_task["type"]
        metrics = {**self.val_metrics, **self.test_metrics}
        if "accuracy" in metrics:
            return "classification"
        if "mae" in metrics or "mse" in metrics:
            return "regression"
        if self.predictions is not None:
            if "confidence" in self.predictions.columns:
                return "classification"
            if "error" in self.predictions.columns:
                return "regression"
        return None


def read_run(run_dir: Path) -> RunFiles:
    """Everything the report needs from a run folder, tolerating missing files."""
    run = RunFiles(run_dir=Path(run_dir))
    text = _read_text(run, "config.yaml")
    if text is not None:
        run.config_text = text
        try:
            loaded = yaml.safe_load(text)
            run.config = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError as exc:
            run.problems.append(f"config.yaml is not valid YAML ({exc.__class__.__name__})")
    run.history = _read_jsonl(run, "metrics.jsonl")
    run.summary = _read_json(run, "summary.json")
    run.bundle_metrics = _read_json(run, "bundle/metrics.json")
    run.predictions = _read_predictions(run, run.summary.get("task"))
    run.plots = _find_plots(run.run_dir / "plots")
    return run


def write_plots(run_dir: Path, only_missing: bool = False) -> list[Path]:
    """Draw run_dir/plots/*.png from the run's files: curves, confusion matrix, regression.

    only_missing: keep plots that already exist. Returns the paths written.
    """
    return draw_plots(read_run(run_dir), only_missing)


def draw_plots(run: RunFiles, only_missing: bool = False) -> list[Path]:
    """Draw the standard plots for an already-read run into run_dir/plots (see write_plots)."""
    out = run.run_dir / "plots"
    written: list[Path] = []

    def wanted(name: str) -> bool:
        return not (only_missing and name in run.plots)

    if run.history and (wanted(plots.LOSS_PNG) or wanted(plots.METRIC_PNG)):
        written += plots.plot_curves(run.history, out)
    task = run.task
    metrics = run.test_metrics if "confusion_matrix" in run.test_metrics else run.val_metrics
    matrix = metrics.get("confusion_matrix")
    if task != "regression" and matrix and wanted(plots.CONFUSION_PNG):
        labels = metrics.get("labels") or list(metrics.get("per_class") or range(len(matrix)))
        try:
            written.append(plots.plot_confusion(matrix, [str(x) for x in labels], out / plots.CONFUSION_PNG))
        except ValueError as exc:
            run.problems.append(f"confusion matrix could not be drawn ({exc})")
    pred = run.predictions
    if task == "regression" and pred is not None and pred.y_true and wanted(plots.REGRESSION_PNG):
        written.append(plots.plot_regression(pred.y_true, pred.y_pred, out / plots.REGRESSION_PNG))
    run.plots = _find_plots(out)
    return written


# ---------------------------------------------------------------- readers


def _read_text(run: RunFiles, rel: str) -> str | None:
    path = run.run_dir / rel
    if not path.is_file():
        run.missing.append(rel)
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        run.problems.append(f"{rel} could not be read ({exc.strerror or exc})")
        return None


def _read_json(run: RunFiles, rel: str) -> dict[str, Any]:
    text = _read_text(run, rel)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        run.problems.append(f"{rel} line {exc.lineno}: not valid JSON ({exc.msg})")
        return {}
    if not isinstance(data, dict):
        run.problems.append(f"{rel}: expected a JSON object, got {type(data).__name__}")
        return {}
    return data


def _read_jsonl(run: RunFiles, rel: str) -> list[dict[str, Any]]:
    text = _read_text(run, rel)
    rows: list[dict[str, Any]] = []
    bad = 0
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    if bad:  # a run killed mid-write leaves a torn last line; skip it, say so
        run.problems.append(f"{rel}: skipped {bad} line(s) that are not JSON objects")
        log.warning("%s: skipped %d unreadable line(s)", run.run_dir / rel, bad)
    return rows


def _read_predictions(run: RunFiles, task: Any) -> Predictions | None:
    path = run.run_dir / "predictions.csv"
    if not path.is_file():
        run.missing.append("predictions.csv")
        return None
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.DictReader(fh)
            pred = Predictions(columns=list(reader.fieldnames or []))
            regression = task == "regression" or (task is None and "error" in pred.columns)
            _scan_predictions(reader, pred, regression)
    except (OSError, csv.Error) as exc:
        run.problems.append(f"predictions.csv could not be read ({exc})")
        return None
    return pred


def _scan_predictions(reader: csv.DictReader, pred: Predictions, regression: bool) -> None:
    """One pass: the first rows, a bounded heap of the worst rows, counts, plot data."""
    heap: list[tuple[float, int, dict[str, str]]] = []
    mistakes = 0
    for number, raw in enumerate(reader, start=1):
        row = {k: (v if isinstance(v, str) else "") for k, v in raw.items() if k is not None}
        pred.rows = number
        if number <= HEAD_ROWS:
            pred.head.append((number, row))
        if regression:
            target, guess = _float(row.get("target")), _float(row.get("prediction"))
            if target is None or guess is None:
                continue
            pred.y_true.append(target)
            pred.y_pred.append(guess)
            error = _float(row.get("error"))
            badness = abs(error if error is not None else guess - target)
        else:
            if not is_mistake(row, regression=False):
                continue
            mistakes += 1
            confidence = _float(row.get("confidence"))
            badness = confidence if confidence is not None else -number  # else: first ones
        item = (badness, -number, row)
        if len(heap) < WORST_ROWS:
            heapq.heappush(heap, item)
        elif item[:2] > heap[0][:2]:
            heapq.heapreplace(heap, item)
    if not regression:
        pred.mistakes = mistakes
    worst = sorted(heap, key=lambda t: (t[0], t[1]), reverse=True)
    pred.worst = [(-neg, row) for _, neg, row in worst]


def is_mistake(row: dict[str, str], regression: bool) -> bool:
    """A classification row whose known target differs from the prediction."""
    if regression:
        return False
    target = (row.get("target") or "").strip()
    return bool(target) and target != (row.get("prediction") or "").strip()


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _find_plots(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    found = {p.name: p for p in sorted(folder.glob("*.png")) if p.is_file()}
    for alias, name in _PLOT_ALIASES.items():
        if alias in found and name not in found:
            found[name] = found.pop(alias)
    return found


_PLOT_ALIASES = {"confusion.png": plots.CONFUSION_PNG, "loss_curve.png": plots.LOSS_PNG,
                 "metrics.png": plots.METRIC_PNG}
