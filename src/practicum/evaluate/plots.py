"""Training curves, confusion matrices and regression scatter plots as PNG files.

Figures are built with `matplotlib.figure.Figure` on an Agg canvas, never pyplot: no
display is needed, no global backend is switched, and plotting is safe from threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LOSS_PNG = "loss.png"
METRIC_PNG = "metric.png"
CONFUSION_PNG = "confusion_matrix.png"
REGRESSION_PNG = "regression.png"

# Validation metrics worth a panel (classification, regression); any others are a fallback.
_PREFERRED = ("accuracy", "f1_macro", "mae", "r2")
_NOT_METRICS = {"split", "step", "epoch", "loss", "lr", "samples_per_s", "n", "time", "elapsed_s"}
_MAX_PANELS = 3
_TRAIN, _VAL = "#1f77b4", "#d62728"
_DPI = 120


def plot_curves(history: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write loss.png (train and val loss vs step) and metric.png (val metrics vs step).

    history: the rows of metrics.jsonl. Rows or keys that are missing or not finite are
    skipped; a plot with nothing to show is not written. Returns the paths written.
    """
    out_dir = Path(out_dir)
    train = [r for r in history if r.get("split") == "train"]
    val = [r for r in history if r.get("split") == "val"]
    written: list[Path] = []

    series = {"train loss": _series(train, "loss"), "val loss": _series(val, "loss")}
    if any(xs for xs, _ in series.values()):
        fig, ax = _figure(6.4, 4.0)
        for (label, (xs, ys)), colour in zip(series.items(), (_TRAIN, _VAL), strict=True):
            if xs:
                _line(ax, xs, ys, label, colour)
        ax.set_title("Loss")
        _finish_axes(ax, "step", "loss", legend=True)
        written.append(_save(fig, out_dir / LOSS_PNG))

    names = _val_metric_names(val)
    if names:
        fig = _new_figure(max(3.2 * len(names), 4.0), 4.0)  # 2 panels: the size of loss.png
        for i, name in enumerate(names):
            ax = fig.add_subplot(1, len(names), i + 1)
            xs, ys = _series(val, name)
            _line(ax, xs, ys, f"val {name}", _VAL)
            ax.set_title(f"val {name}")
            _finish_axes(ax, "step", name, legend=False)
        written.append(_save(fig, out_dir / METRIC_PNG))
    return written


def plot_confusion(matrix: Any, labels: Sequence[str], path: Path) -> Path:
    """Confusion matrix: colour is the row-normalised rate, text the raw count.

    Rows are true classes, columns predictions. Stays readable up to ~80 classes: the
    figure grows with the class count, tick labels shrink and long ones are shortened,
    and per-cell counts are hidden when there are more than 20 classes.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    k = counts.shape[0]
    if counts.shape != (k, k) or k != len(labels):
        raise ValueError(f"matrix must be {len(labels)}x{len(labels)}, got {counts.shape}")
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)

    side = float(np.clip(2.5 + 0.3 * k, 4.5, 12.0))  # inches; about page width at most
    fig, ax = _figure(side + 1.2, side)
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, shrink=0.8)
    cbar.set_label("fraction of the true class", fontsize=8)
    cbar.ax.tick_params(labelsize=7)

    cell_pt = side * 72 * 0.75 / k  # roughly the height of one row, in points
    font = float(np.clip(0.6 * cell_pt, 4.5, 9.0))
    short = [_shorten(str(n), 18 if k <= 30 else 12) for n in labels]
    ticks = np.arange(k)
    ax.set_xticks(ticks, short, fontsize=font, rotation=45 if k <= 10 else 90,
                  ha="right" if k <= 10 else "center", rotation_mode="anchor" if k <= 10 else "default")
    ax.set_yticks(ticks, short, fontsize=font)
    ax.set_xlabel("predicted", fontsize=9)
    ax.set_ylabel("true", fontsize=9)
    ax.set_title(f"Confusion matrix ({int(counts.sum())} examples)", fontsize=10)
    if k <= 20:
        cell_font = 9 if k <= 10 else 7
        for i in range(k):
            for j in range(k):
                if counts[i, j] or i == j:
                    colour = "white" if rates[i, j] > 0.55 else "#222222"
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center",
                            fontsize=cell_font, color=colour)
    return _save(fig, Path(path))


def plot_regression(y_true: Any, y_pred: Any, path: Path) -> Path:
    """Predicted vs true scatter with the identity line y = x (perfect predictions)."""
    yt = np.asarray(y_true, dtype=np.float64).reshape(-1)
    yp = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has {yt.size} values but y_pred has {yp.size}")
    keep = np.isfinite(yt) & np.isfinite(yp)
    yt, yp = yt[keep], yp[keep]
    n = yt.size
    if n > 20000:  # a fixed, even subsample keeps large test sets fast to draw
        idx = np.linspace(0, n - 1, 20000).astype(np.int64)
        yt, yp = yt[idx], yp[idx]

    fig, ax = _figure(5.2, 5.0)
    alpha = 0.8 if n <= 200 else 0.5 if n <= 2000 else 0.25
    ax.scatter(yt, yp, s=14 if n <= 2000 else 6, alpha=alpha, color=_TRAIN,
               edgecolors="none", rasterized=n > 2000, label="test examples")
    if n:
        lo = float(min(yt.min(), yp.min()))
        hi = float(max(yt.max(), yp.max()))
        pad = (hi - lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
        ax.plot([lo, hi], [lo, hi], color=_VAL, linewidth=1.2, linestyle="--", label="y = x")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(f"Predicted vs true (n={n})")
    _finish_axes(ax, "true", "predicted", legend=True)
    return _save(fig, Path(path))


# ---------------------------------------------------------------- helpers


def plot_points(points: Sequence[tuple[str, float, float, float | None]], xlabel: str, ylabel: str,
                path: Path, log_x: bool = False) -> Path:
    """Labelled points (name, x, y, y error or None) with error bars: e.g. the ladder's rungs."""
    fig, ax = _figure(6.4, 3.8)
    for name, x, y, err in points:  # one colour per point, named in the legend (labels would collide)
        ax.errorbar([x], [y], yerr=None if err is None else [err], fmt="o", capsize=3, label=name)
    if log_x:
        ax.set_xscale("log")
    ax.grid(True, alpha=0.3)
    _finish_axes(ax, xlabel, ylabel, legend=True)
    return _save(fig, path)


def _new_figure(width: float, height: float) -> Figure:
    """A Figure on its own Agg canvas: no pyplot, no global backend, no display."""
    # lazy: matplotlib is slow to import and `import practicum` must stay fast
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    fig = _new_figure(width, height)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI, facecolor="white", bbox_inches="tight", pad_inches=0.15)
    return path


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) for `key`; a row without a step gets its position."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        y = _number(row.get(key))
        if y is not None:
            x = _number(row.get("step"))
            xs.append(float(i) if x is None else x)
            ys.append(y)
    return xs, ys


def _val_metric_names(val: list[dict[str, Any]]) -> list[str]:
    present: dict[str, None] = {}
    for row in val:
        for key, value in row.items():
            if key not in _NOT_METRICS and _number(value) is not None:
                present[key] = None
    preferred = [m for m in _PREFERRED if m in present]
    return (preferred or list(present))[:_MAX_PANELS]


def _line(ax: Any, xs: list[float], ys: list[float], label: str, colour: str) -> None:
    marker = "o" if len(xs) <= 40 else None
    ax.plot(xs, ys, label=label, color=colour, marker=marker, markersize=3.5, linewidth=1.5)


def _finish_axes(ax: Any, xlabel: str, ylabel: str, legend: bool) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
