"""report.html: one self-contained page that tells the story of a run.

Inline CSS, PNGs embedded as base64 data URIs, no scripts and no external assets, so
the file can be mailed, archived or opened offline. Any run file may be missing; the
page still renders and says what is missing.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from practicum.errors import UserError
from practicum.evaluate import plots
from practicum.evaluate.metrics import higher_is_better, scalar_metrics
from practicum.evaluate.page import (
    card,
    esc,
    figure,
    fmt,
    fmt_count,
    fmt_duration,
    num,
    page,
    paragraph,
    png_css_width,
    png_data_uri,
    section,
    table,
)
from practicum.evaluate.run_files import Predictions, RunFiles, draw_plots, is_mistake, read_run

log = logging.getLogger(__name__)

REPORT_HTML = "report.html"
_METRIC_ORDER = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_weighted",
                 "precision_weighted", "recall_weighted", "f1_micro", "precision_micro",
                 "recall_micro", "roc_auc", "log_loss", "mae", "rmse", "mse", "r2", "loss")
_CELL_CHARS = 300
_KNOWN_PLOTS = {plots.LOSS_PNG, plots.METRIC_PNG, plots.CONFUSION_PNG, plots.REGRESSION_PNG}


def write_report(run_dir: Path, make_plots: bool = True) -> Path:
    """Write run_dir/report.html from the run's files and return its path.

    make_plots: first draw any standard plot (curves, confusion matrix, regression
    scatter) that plots/ lacks but the run's data allows; existing PNGs are kept.
    """
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir} is not a folder; pass a run folder (the out_dir of a training run)")
    run = read_run(Path(run_dir))
    if make_plots:
        try:
            draw_plots(run, only_missing=True)
        except Exception as exc:  # a broken plot must not cost the user the whole report
            log.warning("could not draw plots for %s: %s", run.run_dir, exc)
            run.problems.append(f"plots could not be drawn ({exc.__class__.__name__}: {exc})")
    body = "".join([
        _header(run),
        _notice(run),
        _headline(run),
        _metrics_section(run),
        _curves_section(run),
        _errors_section(run),
        _per_class_section(run),
        _predictions_section(run),
        _other_plots_section(run),
        _files_section(run),
        _footer(),
    ])
    path = run.run_dir / REPORT_HTML
    tmp = path.with_name(f".{REPORT_HTML}.tmp")
    tmp.write_text(page(f"{run.name} · practicum report", body), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a page
    return path


# ---------------------------------------------------------------- top of the page


def _header(run: RunFiles) -> str:
    task = run.task or "unknown task"
    return (f"<header><h1>{esc(run.name)}</h1>"
            f'<div class="sub">practicum run report · {esc(task)} · '
            f"<code>{esc(run.run_dir)}</code></div></header>")


def _notice(run: RunFiles) -> str:
    items = [f"<li><code>{esc(rel)}</code> not found</li>" for rel in run.missing]
    items += [f"<li>{esc(problem)}</li>" for problem in run.problems]
    if not items:
        return ""
    return (f'<div class="notice"><strong>Parts of this run are missing or unreadable</strong>; '
            f"the sections that need them say so.<ul>{''.join(items)}</ul></div>")


def _headline(run: RunFiles) -> str:
    s = run.summary
    split, metrics = ("test", run.test_metrics) if run.test_metrics else ("val", run.val_metrics)
    cards = [card("Task", run.task or "unknown", word=True)]
    keys = (("mae", "MAE"), ("r2", "R²")) if run.task == "regression" else (
        ("accuracy", "accuracy"), ("f1_macro", "F1 (macro)"))
    for key, label in keys:
        cards.append(card(f"{split} {label}", fmt(metrics.get(key))))
    if s.get("best_step") is not None:
        note = f"{s.get('monitor', 'monitor')} = {fmt(s.get('best_value'))}"
        cards.append(card("Best validation", f"step {fmt(s.get('best_step'))}", note))
    else:
        cards.append(card("Best validation", "—"))
    run_note = " · ".join(x for x in (
        f"{fmt(s['steps'])} steps" if "steps" in s else "",
        f"{fmt(s['epochs_run'])} epochs" if "epochs_run" in s else "",
        "stopped early" if s.get("stopped_early") else "",
    ) if x)
    cards.append(card("Training time", fmt_duration(s.get("train_time_s")), run_note))
    params = s.get("params")
    cards.append(card("Parameters", fmt_count(params),
                      title=f"{params:,}" if isinstance(params, int) else ""))
    cards.append(card("Device", str(s.get("device") or "—"), word=True))
    return f'<div class="cards">{"".join(cards)}</div>'


# ---------------------------------------------------------------- metrics and plots


def _metrics_section(run: RunFiles) -> str:
    splits = {"val": scalar_metrics(run.val_metrics), "test": scalar_metrics(run.test_metrics)}
    names = [m for m in _METRIC_ORDER if any(m in v for v in splits.values())]
    names += sorted({m for v in splits.values() for m in v} - set(names))
    if not names:
        return section("Metrics", paragraph(
            "No metrics: bundle/metrics.json and summary.json hold no val or test scores."))
    rows = []
    for name in names:
        arrow = "↑" if higher_is_better(name) else "↓"
        label = f'{esc(name)} <span class="muted" title="{"higher" if arrow == "↑" else "lower"} is better">{arrow}</span>'
        rows.append([label, *(num(splits[s].get(name)) for s in splits)])
    note = "" if run.test_metrics else paragraph("No test split was evaluated.")
    return section("Metrics", table(["metric", "val", "test"], rows, [False, True, True],
                                    compact=True) + note)


def _plot_figures(run: RunFiles, names: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """(<div class=plots> of the PNGs found, names not found)."""
    figs, missing = [], []
    for name, caption in names:
        uri = png_data_uri(run.plots[name]) if name in run.plots else None
        if uri:
            figs.append(figure(uri, caption, max_width=png_css_width(uri)))  # never upscaled
        else:
            missing.append(name)
    return (f'<div class="plots">{"".join(figs)}</div>' if figs else ""), missing


def _curves_section(run: RunFiles) -> str:
    figs, missing = _plot_figures(run, [(plots.LOSS_PNG, "Training and validation loss"),
                                        (plots.METRIC_PNG, "Validation metrics")])
    if not figs:
        why = "metrics.jsonl is missing" if "metrics.jsonl" in run.missing else (
            f"plots/{' and plots/'.join(missing)} not found")
        return section("Training curves", paragraph(f"No training curves: {why}."))
    return section("Training curves", figs)


def _errors_section(run: RunFiles) -> str:
    if run.task == "regression":
        figs, _ = _plot_figures(run, [(plots.REGRESSION_PNG, "Predicted vs true on the test split")])
        why = "predictions.csv has no numeric target and prediction columns"
        return section("Predicted vs true", figs or paragraph(f"No regression plot: {why}."))
    figs, _ = _plot_figures(run, [(plots.CONFUSION_PNG,
                                   "Rows: true class, columns: prediction; colour is the row-normalised rate")])
    if figs:
        return section("Confusion matrix", figs)
    return section("Confusion matrix", paragraph(
        "No confusion matrix: bundle/metrics.json and summary.json hold none."))


def _per_class_section(run: RunFiles) -> str:
    if run.task == "regression":
        return ""
    split, metrics = ("test", run.test_metrics) if "per_class" in run.test_metrics else (
        "val", run.val_metrics)
    per_class = metrics.get("per_class")
    if not isinstance(per_class, dict) or not per_class:
        return section("Per-class scores", paragraph("No per-class scores in bundle/metrics.json."))
    items = [(str(k), v) for k, v in per_class.items() if isinstance(v, dict)]
    # weakest classes first; classes with no examples in this split go last
    items.sort(key=lambda kv: (not kv[1].get("support"), _num(kv[1].get("f1"))))
    rows, classes = [], []
    for label, v in items:
        f1 = _num(v.get("f1"))
        width = max(2, round(70 * min(max(f1, 0.0), 1.0)))
        bar = f'<span class="bar{" low" if f1 < 0.5 else ""}" style="width:{width}px"></span>'
        absent = not v.get("support")
        name = esc(label) + (f' <span class="muted">(not in the {split} split)</span>' if absent else "")
        rows.append([name, num(v.get("precision")), num(v.get("recall")),
                     bar + num(v.get("f1")), num(v.get("support"))])
        classes.append("absent" if absent else "")
    intro = paragraph(f"{split} split, {len(rows)} classes, sorted by F1 ascending so the "
                      "weakest classes come first.")
    return section("Per-class scores", intro + table(
        ["class", "precision", "recall", "F1", "support"], rows,
        [False, True, True, True, True], classes, scroll=len(rows) > 15))


# ---------------------------------------------------------------- predictions


def _predictions_section(run: RunFiles) -> str:
    pred = run.predictions
    if pred is None:
        return section("Predictions", paragraph("No predictions: predictions.csv is missing."))
    if not pred.rows:
        return section("Predictions", paragraph("predictions.csv holds no rows."))
    regression = run.task == "regression"
    parts = []
    if pred.mistakes is not None:
        rate = pred.mistakes / pred.rows
        parts.append(paragraph(f"{pred.rows:,} rows, {pred.mistakes:,} mistakes "
                               f"({rate:.1%}). Rows in red are mistakes."))
    else:
        parts.append(paragraph(f"{pred.rows:,} rows."))
    parts.append(f"<h3>First {len(pred.head)} rows</h3>")
    parts.append(_prediction_table(pred, pred.head, regression))
    if pred.worst:
        title = "Largest errors" if regression else (
            "Most confident mistakes" if "confidence" in pred.columns else "Mistakes")
        parts.append(f"<h3>{esc(title)} ({len(pred.worst)} of "
                     f"{pred.rows if regression else pred.mistakes:,})</h3>")
        parts.append(_prediction_table(pred, pred.worst, regression))
    elif pred.mistakes == 0:
        parts.append(paragraph("No mistakes on the rows with a known target."))
    return section("Predictions", "".join(parts))


def _prediction_table(pred: Predictions, rows: list[tuple[int, dict[str, str]]],
                      regression: bool) -> str:
    numeric_cols = {"confidence", "error"} | ({"target", "prediction"} if regression else set())
    headers = ["#", *pred.columns]
    numeric = [True, *(c in numeric_cols for c in pred.columns)]
    cells, classes = [], []
    for number, row in rows:
        cells.append([num(number), *(_cell(row.get(c, ""), c in numeric_cols) for c in pred.columns)])
        classes.append("mistake" if is_mistake(row, regression) else "")
    return table(headers, cells, numeric, classes)


def _cell(value: str, numeric: bool) -> str:
    if numeric:
        try:
            return num(float(value))
        except ValueError:
            return esc(value)
    if len(value) <= _CELL_CHARS:
        return f'<div class="text">{esc(value)}</div>'
    short = value[:_CELL_CHARS] + "…"
    return f'<div class="text" title="{esc(value[:4000])}">{esc(short)}</div>'


# ---------------------------------------------------------------- the rest


def _other_plots_section(run: RunFiles) -> str:
    others = [(name, name) for name in run.plots if name not in _KNOWN_PLOTS]
    figs, _ = _plot_figures(run, others)
    return section("More plots", figs) if figs else ""


def _files_section(run: RunFiles) -> str:
    parts = []
    if run.config_text is not None:
        parts.append("<details><summary>Resolved config (config.yaml)</summary>"
                     f"<pre>{esc(run.config_text)}</pre></details>")
    else:
        parts.append(paragraph("No resolved config: config.yaml is missing."))
    if run.summary:
        text = json.dumps(run.summary, indent=2, default=str)
        parts.append("<details><summary>Run summary (summary.json)</summary>"
                     f"<pre>{esc(text)}</pre></details>")
    return section("Configuration", "".join(parts))


def _footer() -> str:
    try:
        version = metadata.version("practicum")
    except metadata.PackageNotFoundError:
        version = "dev"
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"<footer>Generated by practicum {esc(version)} on {esc(stamp)}</footer>"


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
