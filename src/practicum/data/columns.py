"""Column-level decisions: which columns are features and target, their types, the kind, the task."""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd

from practicum.data.spec import Kind, Task
from practicum.errors import UserError

log = logging.getLogger(__name__)

ColumnType = Literal["numeric", "categorical", "text", "bool"]
TARGET_GUESSES = ("label", "target", "category", "class", "labels", "y")
MIN_PART = 3
"""closest_name: a name shorter than this (without separators) is too short to abbreviate another."""
REGRESSION_MIN_DISTINCT = 20
"""task auto: a float target with more distinct values than this is a regression target."""


def unknown_column(
    source: str, name: str, available: Iterable[str], field: str, taken: Iterable[str] = ()
) -> UserError:
    """'no column X (field); did you mean Y? available: ...' as a UserError.

    Y is never one of `taken`: columns already used under their own name cannot be X renamed.
    """
    available = [str(c) for c in available]
    used = {str(c) for c in taken}
    close = closest_name(name, [c for c in available if c not in used])
    hint = f"did you mean {close!r}? " if close else ""
    return UserError(f"{source}: no column {name!r} ({field}); {hint}available: {', '.join(available)}")


def _name_tokens(name: str) -> list[str]:
    """'Bill Length (mm)', 'billLength_mm', 'bill-length-mm' -> ['bill', 'length', 'mm']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def _covers(short: list[str], long: list[str]) -> bool:
    """Every token of `short` starts a different token of `long` ('len' starts 'length')."""
    free = list(long)
    for token in short:
        match = next((t for t in free if t.startswith(token)), None)
        if match is None:
            return False
        free.remove(match)
    return True


def closest_name(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate that `name` most likely means, or None when none is close.

    Ranked: the same words ('Bill Length (mm)' for bill_length_mm); one name's words abbreviating
    the other's ('bill_len', 'body_mass'); one name starting or containing the other with the
    separators removed ('billlen'); then difflib's similarity (typos such as 'lable').
    Ties, and the last rank, go by difflib's ratio.
    """
    tokens = _name_tokens(name)
    flat = "".join(tokens)
    best: tuple[int, float, str] | None = None
    for cand in candidates:
        other = _name_tokens(cand)
        other_flat = "".join(other)
        ratio = difflib.SequenceMatcher(None, name, cand).ratio()
        shorter = min(len(flat), len(other_flat))
        if tokens and tokens == other:
            rank = 3
        elif shorter >= MIN_PART and (_covers(tokens, other) or _covers(other, tokens)):
            rank = 2
        elif shorter >= MIN_PART and (flat in other_flat or other_flat in flat):
            rank = 1
        elif ratio >= 0.6:
            rank = 0
        else:
            continue
        if best is None or (rank, ratio) > best[:2]:
            best = (rank, ratio, cand)
    return best[2] if best else None


def resolve_columns(
    frame: pd.DataFrame,
    source: str,
    target: str | None,
    features: list[str] | None,
    default_target: str | None = None,
) -> tuple[str, list[str]]:
    """(target, features) for a table: data.target, else the source's own, else 'label' (or kin)."""
    cols = [str(c) for c in frame.columns]
    if target is None:
        target = default_target or next((c for c in TARGET_GUESSES if c in cols), None)
        if target is None:
            raise UserError(
                f"{source}: no 'label' column and data.target is not set; set data.target to "
                f"one of: {', '.join(cols)}"
            )
        if target != "label" and target != default_target:
            log.info("data.target not set: using column %r", target)
    elif target not in cols:
        raise unknown_column(source, target, cols, "data.target", taken=features or ())
    if features is None:
        features = [c for c in cols if c != target]
    else:
        for name in features:
            if name not in cols:
                raise unknown_column(source, name, cols, "data.features", taken=[target, *features])
        if target in features:
            raise UserError(f"data.features lists the target {target!r}; remove it from data.features")
    if not features:
        raise UserError(f"{source}: no feature columns besides the target {target!r}; add input columns")
    return target, list(features)


def check_columns(
    frame: pd.DataFrame, source: str, needed: Iterable[str], field: str, taken: Iterable[str] = ()
) -> None:
    """Every column of `needed` must be in `frame` (val/test/predict files). A suggestion for a
    missing one comes from the other columns: not `needed`, not `taken` (used for something else)."""
    needed = list(needed)
    available = [str(c) for c in frame.columns]
    used = {*needed, *taken}
    for name in needed:
        if name not in available:
            close = closest_name(name, [c for c in available if c not in used])
            hint = f"if {close!r} is it, rename that column to {name!r}; " if close else ""
            raise UserError(f"{source}: no column {name!r} ({field}); {hint}available: {', '.join(available)}")


def value_key(v: Any) -> str | None:
    """A category or label as a string: 3.0 -> '3', True -> 'True', missing -> None."""
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        return str(v)
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, float | np.floating) and math.isfinite(v) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def value_keys(values: Iterable[Any]) -> list[str | None]:
    """value_key of each value (a list, so pandas cannot turn None back into NaN)."""
    return [value_key(v) for v in values]


def sort_labels(keys: Iterable[str]) -> list[str]:
    """Sorted label strings: numerically when they are all numbers, else alphabetically."""
    keys = sorted(set(keys))
    try:
        return sorted(keys, key=float)
    except ValueError:
        return keys


def column_type(series: pd.Series) -> ColumnType:
    """numeric, bool, text (free text) or categorical (other strings)."""
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    values = series.dropna()
    if values.empty:
        return "categorical"
    if values.map(lambda v: isinstance(v, bool | np.bool_)).all():
        return "bool"
    strings = values.astype(str)
    return "text" if is_free_text(strings) else "categorical"


def is_free_text(strings: pd.Series) -> bool:
    """Several words per value, or mostly unique longish strings."""
    words = strings.str.split().str.len().mean()
    unique = strings.nunique() / max(len(strings), 1)
    return bool(words >= 3 or (unique >= 0.5 and strings.str.len().mean() >= 15))


def infer_table_kind(data_kind: str, frame: pd.DataFrame, features: list[str], hint: Kind | None) -> Kind:
    """data.kind for a table: as set, else the source's own, else text for one free-text column."""
    if data_kind == "image":
        raise UserError("data.kind is 'image' but data.path holds a table; set data.kind to auto")
    if data_kind in ("tabular", "text"):
        return data_kind  # type: ignore[return-value]
    if hint is not None:
        return hint
    if len(features) == 1 and column_type(frame[features[0]]) == "text":
        return "text"
    return "tabular"


def infer_task(task_type: str, values: pd.Series, source: str, target: str) -> Task:
    """The task: as set, or auto -> regression for a float target with many distinct values."""
    values = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if task_type == "regression":
        if not numeric:
            sample = values.astype(str).head(1).tolist()
            raise UserError(
                f"{source}: task.type is regression but target {target!r} is not numeric "
                f"(e.g. {sample[0] if sample else '?'!r}); set task.type classification"
            )
        return "regression"
    if task_type == "classification":
        return "classification"
    if numeric and pd.api.types.is_float_dtype(values) and values.nunique() > REGRESSION_MIN_DISTINCT:
        log.info("task auto: target %r is float with %d distinct values -> regression", target, values.nunique())
        return "regression"
    return "classification"


def numeric_values(series: pd.Series, source: str, what: str, fix: str) -> np.ndarray:
    """Float64 values of `series`, missing as NaN; a non-number is a UserError naming its row."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & ~series.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(
            f"{source}: {what} row {series.index[i]} holds {series.iloc[i]!r}, not a number; {fix}"
        )
    return values
