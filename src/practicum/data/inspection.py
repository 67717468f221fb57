"""`practicum data inspect FILE`: a plain-text report of a data file and the problems in it."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pandas as pd

from practicum.data.builtin import DATASETS
from practicum.data.columns import column_type, sort_labels, unknown_column, value_key, value_keys
from practicum.data.formats import BUILTIN_PREFIX, check_exists, detect_format, read_source
from practicum.data.image_files import is_image_file
from practicum.data.raw import ImageSet, Table

INSPECT_TARGETS = ("label", "target", "category")
IMBALANCE_RATIO = 10.0
HIGH_CARDINALITY = 50
_SHOWN_CLASSES = 20
_ID_NAME = re.compile(r"(^|[_\s-])id$|^id", re.IGNORECASE)


def inspect_file(path: str, target: str | None = None) -> str:
    """Format, rows, column types, missing values, target balance and problems, as text
    (for a built-in corpus: its documents and how to pretrain on it)."""
    if path.startswith(BUILTIN_PREFIX):
        ds = DATASETS.get(path[len(BUILTIN_PREFIX):])
        fmt = f"built-in {ds.kind} data for {ds.task}"
    else:
        ds, fmt = None, detect_format(check_exists(path, "path"))
    if fmt == "image_folder":
        return "\n".join(_inspect_folder(Path(path)))
    loaded = read_source(path, field="path")
    lines = [f"file: {path} ({fmt})", *([f"about: {ds.description}"] if ds is not None else [])]
    if ds is not None and ds.task == "pretraining" and target is None:
        lines += _inspect_corpus(loaded.train, path)
    elif isinstance(loaded.train, ImageSet):
        lines += _inspect_images(loaded.train)
    else:
        lines += _inspect_table(loaded.train, target or loaded.target)
    if loaded.test is not None:
        lines.append(f"official test split: {len(loaded.test)} rows")
    return "\n".join(lines)


# ---------------------------------------------------------------- tables


def _inspect_corpus(table: Table, path: str) -> list[str]:
    """A pretraining corpus has no target: its documents, their lengths, and the command."""
    lengths = table.frame["text"].astype(str).str.len()
    return [
        f"documents: {len(lengths)} (one per row; column 'text'), columns: "
        + ", ".join(map(str, table.frame.columns)),
        f"characters: {int(lengths.sum()):,}; per document min {int(lengths.min()):,}, "
        f"median {int(lengths.median()):,}, max {int(lengths.max()):,}",
        "target: none (a language-model corpus)",
        f"use: practicum pretrain --data {path}   (or data.path: {path} in an LM recipe)",
    ]


def _inspect_table(table: Table, target: str | None) -> list[str]:
    frame = table.frame
    cols = [str(c) for c in frame.columns]
    if target is not None and target not in cols:
        raise unknown_column(table.source, target, cols, "--target")
    guessed = target is None
    target = target or next((c for c in INSPECT_TARGETS if c in cols), cols[-1])
    types = {c: column_type(frame[c]) for c in cols}
    width = max(len(c) for c in cols)
    lines = [f"rows: {len(frame)}, columns: {len(cols)}", "columns:"]
    lines.append(f"  {'name':<{width}}  {'type':<11}  {'missing':>7}  {'distinct':>8}  example")
    for c in cols:
        example = next(iter(frame[c].dropna().astype(str)), "")[:30]
        lines.append(
            f"  {c:<{width}}  {types[c]:<11}  {int(frame[c].isna().sum()):>7}  "
            f"{frame[c].nunique():>8}  {example}"
        )
    lines.append(f"target: {target}{' (guessed; pass --target to choose)' if guessed else ''}")
    lines += _target_summary(frame[target])
    problems = _table_problems(frame, types, target)
    lines.append("problems:" if problems else "problems: none found")
    lines += [f"  - {p}" for p in problems]
    return lines


def _target_summary(y: pd.Series) -> list[str]:
    values = y.dropna()
    numeric = pd.api.types.is_float_dtype(values) and values.nunique() > 20
    if numeric:
        return [f"  numeric: min {values.min():.4g}, mean {values.mean():.4g}, max {values.max():.4g} "
                "(looks like regression)"]
    return ["class balance:", *_balance([k or "" for k in value_keys(values)])]


def _balance(labels: list[str]) -> list[str]:
    counts = Counter(labels)
    total = max(sum(counts.values()), 1)
    width = max((len(str(k)) for k in counts), default=1)
    order = {k: i for i, k in enumerate(sort_labels(counts))}
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], order[kv[0]]))[:_SHOWN_CLASSES]
    lines = [f"  {k:<{width}}  {n:>7}  {100 * n / total:5.1f}%" for k, n in ranked]
    if len(counts) > _SHOWN_CLASSES:
        lines.append(f"  ... and {len(counts) - _SHOWN_CLASSES} more classes ({len(counts)} in all)")
    return lines


def _table_problems(frame: pd.DataFrame, types: dict[str, str], target: str) -> list[str]:
    out = []
    n = len(frame)
    for c, kind in types.items():
        distinct = frame[c].nunique()
        if distinct <= 1:
            out.append(f"column {c!r} is constant; drop it (data.features)")
        elif c != target and _id_like(frame[c], c, kind):
            out.append(f"column {c!r} looks like an ID (one value per row); leave it out of data.features")
        elif kind == "categorical" and (distinct > HIGH_CARDINALITY or (n >= 20 and distinct > n / 2)):
            out.append(f"column {c!r} is categorical with {distinct} distinct values; one-hot would be wide")
    dups = int(frame.astype(str).duplicated().sum())
    if dups:
        out.append(f"{dups} duplicate row(s); drop them or they may land in both train and test")
    missing = int(frame[target].isna().sum())
    if missing:
        out.append(f"{missing} row(s) without a target {target!r}; they are dropped when training")
    out += _imbalance(frame[target], types[target])
    return out


def _id_like(series: pd.Series, name: str, kind: str) -> bool:
    values = series.dropna()
    if len(values) < 10 or values.nunique() < 0.95 * len(values):
        return False
    if _ID_NAME.search(name):
        return True
    if kind == "categorical":
        return True
    return pd.api.types.is_integer_dtype(values) and values.is_monotonic_increasing


def _imbalance(y: pd.Series, kind: str) -> list[str]:
    values = y.dropna()
    if kind == "numeric" and pd.api.types.is_float_dtype(values) and values.nunique() > 20:
        return []
    counts = pd.Series(value_keys(values), dtype=object).value_counts()
    if len(counts) < 2:
        return [f"the target has {len(counts)} class(es); classification needs at least 2"]
    top, low = counts.iloc[0], counts.iloc[-1]
    if top / low >= IMBALANCE_RATIO:
        return [f"classes are very imbalanced: {counts.index[0]!r} has {top} rows, "
                f"{counts.index[-1]!r} has {low} ({top / low:.0f}:1); use a stratified split, "
                "more data or monitor f1_macro"]
    return []


# ---------------------------------------------------------------- images


def _inspect_images(images: ImageSet) -> list[str]:
    n, h, w, c = images.images.shape
    arr = images.images
    lines = [
        f"images: {n}, shape: {h}x{w}, channels: {c}, dtype: {arr.dtype}, "
        f"pixel range: {arr.min():.4g}..{arr.max():.4g}"
    ]
    if images.labels is None:
        return [*lines, "labels: none found", "problems:", "  - no labels; training needs them"]
    lines += ["class balance:", *_balance([value_key(v) or "" for v in images.labels])]
    problems = _imbalance(pd.Series(images.labels), "categorical")
    lines.append("problems:" if problems else "problems: none found")
    return lines + [f"  - {p}" for p in problems]


def _inspect_folder(root: Path) -> list[str]:
    """Sizes come from the image headers, so a folder of mixed sizes is reported, not refused."""
    from PIL import Image

    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(f, d.name) for d in subdirs for f in sorted(d.iterdir()) if is_image_file(f)]
    if not subdirs:
        files = [(f, "") for f in sorted(root.iterdir()) if is_image_file(f)]
    shapes: Counter[str] = Counter()
    for f, _ in files:
        with Image.open(f) as im:
            shapes[f"{im.size[0]}x{im.size[1]} {im.mode}"] += 1
    lines = [f"file: {root} (image_folder)", f"images: {len(files)}",
             "shapes (W x H mode): " + ", ".join(f"{s} ({k})" for s, k in shapes.most_common())]
    problems = []
    if len({s.split()[0] for s in shapes}) > 1:
        problems.append("images differ in size; resize them all to one size before training")
    if subdirs:
        lines += ["class balance:", *_balance([c for _, c in files])]
        problems += _imbalance(pd.Series([c for _, c in files]), "categorical")
    else:
        problems.append("no class subfolders; training needs one subfolder per class")
    if not files:
        problems.append("no image files found")
    lines.append("problems:" if problems else "problems: none found")
    return lines + [f"  - {p}" for p in problems]
