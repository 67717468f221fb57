"""The PNG files of an explanation, drawn from its JSON-ready numbers (Agg canvas, no pyplot).

Attributions use one diverging scale per figure: red pushes towards the target class, blue
away from it, white is no effect.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from practicum.evaluate.plots import _new_figure, _save

MAX_TICKS = 40
"""Token labels are written on attention axes up to this many positions."""
LENS_POSITIONS = 16
"""The logit-lens table shows at most the last this many positions."""


def draw_item(kind: str, item: dict[str, Any], out: Path) -> list[Path]:
    """Every PNG of one explained input; returns the paths written."""
    i, files = item["index"], []
    attr = item.get("attributions")
    if kind == "text" and attr is not None:
        files.append(token_strip(item["tokens"], attr["scores"], _title(item), out / f"tokens_{i}.png"))
    if kind == "image":
        files.append(image_panels(item, out / f"image_{i}.png"))
    if kind == "tabular":
        files.append(feature_bars(item, out / f"features_{i}.png"))
    if "logit_lens" in item:
        files.append(lens_table(item, out / f"logit_lens_{i}.png"))
    view = item.get("attention")
    if view is not None:
        for layer, maps in enumerate(view["maps"]):
            files.append(attention_grid(np.asarray(maps), view["tokens"], f"layer {layer + 1}",
                                        out / f"attention_{i}_layer{layer + 1}.png"))
        files.append(rollout_plot(view, out / f"rollout_{i}.png"))
    return files


def _title(item: dict[str, Any]) -> str:
    pred = item.get("prediction")
    shown = f"{pred:.4g}" if isinstance(pred, float) else str(pred)
    return f"input {item['index']}: predicted {shown}; attributions to {item['target']}"


def _short(text: str, width: int = 12) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def diverging(scores: Any) -> tuple[np.ndarray, float]:
    """Scores scaled to [-1, 1] by the largest magnitude, and that magnitude."""
    s = np.asarray(scores, dtype=np.float64)
    top = float(np.abs(s).max()) if s.size else 0.0
    return (s / top if top > 0 else s), top


def token_strip(tokens: list[str], scores: list[float], title: str, path: Path) -> Path:
    """Tokens as coloured boxes in reading order, wrapped into lines."""
    from matplotlib import colormaps

    scaled, top = diverging(scores)
    cmap = colormaps["RdBu_r"]
    per_line = 64  # characters of monospace text per line
    lines, line, used = [], [], 0
    for tok, s in zip(tokens, scaled, strict=True):
        width = len(_short(tok, 24)) + 1
        if line and used + width > per_line:
            lines.append(line)
            line, used = [], 0
        line.append((tok, s, used))
        used += width
    lines.append(line)
    chars = max(used if len(lines) == 1 else per_line, 40)  # room for the title
    fig = _new_figure(0.09 * chars + 0.3, 0.9 + 0.38 * len(lines))  # ~0.09 in per 10 pt character
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    ax.set_xlim(0, chars)
    ax.set_ylim(len(lines), -0.2)
    for row, entries in enumerate(lines):
        for tok, s, x in entries:
            ax.text(x, row + 0.5, _short(tok, 24), family="monospace", fontsize=10, va="center",
                    color="white" if abs(s) > 0.6 else "#111111",
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": cmap(0.5 + 0.5 * s), "edgecolor": "none"})
    ax.set_title(f"{title}\n(red: towards the target, blue: against; max |attribution| {top:.3g})",
                 fontsize=9)
    return _save(fig, path)


def image_panels(item: dict[str, Any], path: Path) -> Path:
    """The image, its saliency and its integrated gradients side by side."""
    image = np.asarray(item["image"], dtype=np.float64)  # (H, W, C)
    ig = np.asarray(item["attributions"]["scores"], dtype=np.float64).sum(axis=0)  # (H, W)
    scaled, top = diverging(ig)
    fig = _new_figure(9.0, 3.4)
    panels = [("input", image[..., 0] if image.shape[-1] == 1 else image, "gray" if image.shape[-1] == 1 else None, None),
              ("saliency |d logit / d pixel|", np.asarray(item["saliency"]), "magma", (0, None)),
              (f"integrated gradients (max {top:.3g})", scaled, "RdBu_r", (-1, 1))]
    for n, (name, data, cmap, limits) in enumerate(panels):
        ax = fig.add_subplot(1, 3, n + 1)
        lo, hi = limits or (None, None)
        shown = ax.imshow(data, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        if n:
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(_title(item), fontsize=10)
    return _save(fig, path)


def feature_bars(item: dict[str, Any], path: Path) -> Path:
    """One horizontal bar per input column, largest magnitude on top."""
    names = [f"{n} = {_short(v, 14)}" for n, v in zip(item["features"], item["values"], strict=True)]
    scores = np.asarray(item["attributions"]["scores"], dtype=np.float64)
    order = np.argsort(np.abs(scores))
    fig = _new_figure(6.4, 1.2 + 0.32 * len(names))
    ax = fig.add_subplot(1, 1, 1)
    colours = ["#d62728" if s > 0 else "#1f77b4" for s in scores[order]]
    ax.barh(np.arange(len(order)), scores[order], color=colours)
    ax.set_yticks(np.arange(len(order)), [names[j] for j in order], fontsize=8)
    ax.axvline(0, color="#444444", linewidth=0.8)
    ax.set_xlabel("integrated gradients (to the target output)")
    ax.set_title(_title(item), fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def _token_axes(ax: Any, labels: list[str], fontsize: float) -> None:
    if len(labels) > MAX_TICKS:
        return
    ticks = np.arange(len(labels))
    shown = [_short(t, 10) for t in labels]
    ax.set_xticks(ticks, shown, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, shown, fontsize=fontsize)


def attention_grid(maps: np.ndarray, labels: list[str], title: str, path: Path) -> Path:
    """One panel per head: rows are queries, columns keys, colour the weight (0..1)."""
    heads = maps.shape[0]
    cols = min(heads, 4)
    rows = math.ceil(heads / cols)
    side = 2.2 + 0.08 * min(len(labels), MAX_TICKS)
    fig = _new_figure(side * cols, side * rows + 0.4)
    font = 7 if len(labels) <= 16 else 5
    for h in range(heads):
        ax = fig.add_subplot(rows, cols, h + 1)
        ax.imshow(maps[h], cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"head {h + 1}", fontsize=8)
        _token_axes(ax, labels, font)
    fig.suptitle(f"attention, {title} (row: query, column: key)", fontsize=10)
    return _save(fig, path)


def rollout_plot(view: dict[str, Any], path: Path) -> Path:
    """The rollout matrix and, below it, the row the model reads out (its relevance per token)."""
    labels, rollout = view["tokens"], np.asarray(view["rollout"])
    side = 3.2 + 0.12 * min(len(labels), MAX_TICKS)
    fig = _new_figure(side, side + 1.4)
    grid = fig.add_gridspec(2, 1, height_ratios=[side, 1.0])
    ax = fig.add_subplot(grid[0])
    shown = ax.imshow(rollout, cmap="Blues", vmin=0.0, interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
    _token_axes(ax, labels, 7)
    ax.set_title(f"attention rollout over {view['layers']} layers", fontsize=10)
    bar = fig.add_subplot(grid[1])
    bar.bar(np.arange(len(labels)), view["relevance"], color="#1f77b4")
    bar.set_title(f"relevance of each token to the {view['pooling']} readout", fontsize=9)
    if len(labels) <= MAX_TICKS:
        bar.set_xticks(np.arange(len(labels)), [_short(t, 10) for t in labels], rotation=90, fontsize=7)
    bar.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def lens_table(item: dict[str, Any], path: Path) -> Path:
    """Layers (rows, last on top) x positions: the top-1 token, coloured by its probability."""
    lens, tokens = item["logit_lens"], item["tokens"]
    first = max(0, len(tokens) - LENS_POSITIONS)
    top = [[pos[0] for pos in layer[first:]] for layer in lens["top"]]  # (L + 1, P)
    probs = np.array([[c["probability"] for c in layer] for layer in top])
    L, P = probs.shape
    fig = _new_figure(1.6 + 0.95 * P, 1.2 + 0.42 * L)
    ax = fig.add_subplot(1, 1, 1)
    shown = ax.imshow(probs, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", origin="lower")
    for r in range(L):
        for c in range(P):
            colour = "white" if probs[r, c] > 0.55 else "#222222"
            ax.text(c, r, _short(top[r][c]["token"], 8), ha="center", va="center", fontsize=7,
                    color=colour, family="monospace")
    ax.set_yticks(np.arange(L), lens["layers"], fontsize=8)
    ax.set_xticks(np.arange(P), [_short(t, 8) for t in tokens[first:]], rotation=45, ha="right",
                  rotation_mode="anchor", fontsize=8, family="monospace")
    ax.set_xlabel("input position (each column predicts the token after it)")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03, label="top-1 probability")
    ax.set_title(f"logit lens: {item.get('summary', '')}", fontsize=9)
    return _save(fig, path)
