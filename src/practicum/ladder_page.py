"""The ladder as a Markdown table (for READMEs) and a one-page HTML report with a chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from practicum.evaluate.page import (
    card,
    esc,
    figure,
    fmt_count,
    page,
    paragraph,
    png_data_uri,
    section,
    table,
)

COLUMNS = ["rung", "method", "accuracy", "macro F1", "trainable params", "train time", "peak RSS",
           "latency (1 text)"]


def _pm(mean: float, ci: float | None) -> str:
    return f"{100 * mean:.1f}%" + (f" ± {100 * ci:.1f}" if ci is not None else "")


def _row(r: Any) -> list[str]:
    return [r.name, r.method, _pm(r.accuracy, r.accuracy_ci), _pm(r.f1_macro, r.f1_ci),
            fmt_count(r.trainable_params) if r.trainable_params else "0",
            f"{r.train_time_s:.0f} s" if r.train_time_s else "-",
            f"{r.peak_rss_mb:.0f} MB" if r.peak_rss_mb else "-",
            f"{r.latency_ms:.1f} ms" if r.latency_ms is not None else "-"]


def ladder_markdown(ladder: Any) -> str:
    lines = [f"Ladder for `{ladder.recipe}`: {ladder.model} on {ladder.data} "
             f"({ladder.train_rows} train rows, {ladder.classes} classes; scored on {ladder.eval_rows} "
             f"{ladder.eval_split} rows; ± is the 95% interval over seeds where a rung ran several)",
             "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in ladder.rungs]
    return "\n".join(lines) + "\n"


def ladder_html(ladder: Any, out: Path) -> str:
    best = max(ladder.rungs, key=lambda r: r.accuracy)
    within = [r for r in ladder.rungs if r.accuracy >= best.accuracy - 0.01]
    cheapest = min(within, key=lambda r: (r.trainable_params, r.train_time_s))
    cards = "".join([
        card("best rung", best.name, _pm(best.accuracy, best.accuracy_ci), word=True),
        card("cheapest within 1 point", cheapest.name, _pm(cheapest.accuracy, cheapest.accuracy_ci), word=True),
        card("classes", str(ladder.classes)),
        card("train rows", fmt_count(ladder.train_rows)),
        card(f"{ladder.eval_split} rows", fmt_count(ladder.eval_rows)),
    ])
    chart = _chart(ladder, out / "ladder.png")
    uri = png_data_uri(chart) if chart else None
    body = (f"<header><h1>Fine-tuning ladder: {esc(ladder.recipe)}</h1><div class='sub'>"
            f"{esc(ladder.model)} on {esc(ladder.data)}</div></header>"
            f"<div class='cards'>{cards}</div>"
            + section("Every rung on the same split", table(COLUMNS, [[esc(c) for c in _row(r)] for r in ladder.rungs])
                      + paragraph(f"Accuracy and macro F1 on the {ladder.eval_split} split; ± is the "
                                  "half-width of the 95% Student-t interval over seeds (few-shot draws "
                                  f"other {ladder.shots}-shot samples per seed). Training rungs pick "
                                  "their best checkpoint on the validation split. Peak RSS is this "
                                  "process's resident memory during the rung; latency is the median "
                                  "of one-text predictions.")))
    if uri:
        body += section("Accuracy against what trains", figure(uri, "trainable parameters (log) vs accuracy"))
    return page(f"ladder: {ladder.recipe}", body)


def _chart(ladder: Any, path: Path) -> Path | None:
    from practicum.evaluate.plots import plot_points

    points = [(r.name, max(r.trainable_params, 1), 100 * r.accuracy,
               None if r.accuracy_ci is None else 100 * r.accuracy_ci) for r in ladder.rungs]
    return plot_points(points, "trainable parameters (0 shown as 1)",
                       f"{ladder.eval_split} accuracy (%)", path, log_x=True)
