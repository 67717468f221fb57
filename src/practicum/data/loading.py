"""load_data: read the sources, infer kind and task, split, fit on train, transform every split."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from practicum.config import DataConfig, TaskConfig
from practicum.data.columns import (
    check_columns,
    infer_table_kind,
    infer_task,
    resolve_columns,
    unknown_column,
    value_keys,
)
from practicum.data.formats import read_source
from practicum.data.preprocess import Preprocessor
from practicum.data.raw import ImageSet, Loaded, RawData, Table
from practicum.data.spec import DataSplits, Kind
from practicum.data.splits import split_data
from practicum.errors import UserError

log = logging.getLogger(__name__)

IMAGE_TARGET = "label"


def load_data(data: DataConfig, task: TaskConfig, tokenizer: Any = None,
              max_length: int | None = None, preprocessor: Preprocessor | None = None) -> DataSplits:
    """Read data.path (+ val_path/test_path), split deterministically, fit on train, transform all.

    With `tokenizer` (fine-tuning a pretrained model) text is read with it, train/val/test are
    checked for shared rows first (data.leakage, data.dedupe), and data.shots applies.
    With `preprocessor` (an earlier run's: a distillation teacher's) nothing is fitted; every
    split is transformed with it, so the inputs match that run's exactly.
    """
    parts, kind, resolved, features, target = _split_raw(data, task)
    leakage = None
    if tokenizer is not None and kind == "text":
        parts, leakage = _check_leakage(parts, data, features)
    if data.shots is not None:
        parts = _few_shot(parts, data, resolved, target)
    pre = preprocessor or Preprocessor.fit(parts.train, data, kind, resolved, features, target,
                                           tokenizer, max_length)
    return DataSplits(
        train=pre.transform(parts.train, with_target=True, source=parts.train.source),
        val=pre.transform(parts.val, with_target=True, source=parts.val.source),
        test=None if parts.test is None else pre.transform(parts.test, True, parts.test.source),
        preprocessor=pre,
        spec=pre.spec,
        task=resolved,
        label_names=pre.label_names,
        test_display=None if parts.test is None else pre.display(parts.test),
        leakage=leakage,
    )


def text_splits(data: DataConfig, task: TaskConfig) -> dict[str, tuple[list[str], list[str]]]:
    """{"train" | "val" | "test": (texts, labels as strings)} of a text classification data set:
    the rows a fine-tuning run with this config uses (leakage check, dedupe and shots included)."""
    from practicum.data.text import column_text

    parts, kind, resolved, features, target = _split_raw(data, task)
    if kind != "text" or resolved != "classification":
        raise UserError(f"{data.path}: needs one text column and a class target (got {kind} data, "
                        f"a {resolved} task)")
    parts = _check_leakage(parts, data, features)[0]
    if data.shots is not None:
        parts = _few_shot(parts, data, resolved, target)
    out = {}
    for name in ("train", "val", "test"):
        raw = getattr(parts, name)
        if raw is not None and len(raw):
            out[name] = (column_text(raw.frame, features),
                         [str(v) for v in target_values(raw, target).tolist()])
    return out


def raw_split(data: DataConfig, task: TaskConfig, split: str) -> RawData:
    """One split (train, val or test) of the data, before preprocessing: the same rows a run
    with this config trained, validated or tested on (splits are deterministic)."""
    parts = _split_raw(data, task)[0]
    chosen = getattr(parts, split)
    if chosen is None:
        raise UserError(f"{data.path} has no {split} split with this config (data.split.{split}_fraction is 0)")
    return chosen


def _split_raw(data: DataConfig, task: TaskConfig) -> tuple[Any, Kind, str, list[str], str]:
    loaded = read_source(data.path, data.format, "data.path")
    train = loaded.train if data.limit is None else loaded.train.head(data.limit)
    val = _read_other(data.val_path, data, "data.val_path", train)
    test = _read_other(data.test_path, data, "data.test_path", train)
    if val is None and loaded.val is not None:
        val = loaded.val
        log.info("using the official validation split of %s (%d rows)", data.path, len(val))
    if test is None and loaded.test is not None:
        test = loaded.test
        log.info("using the official test split of %s (%d rows)", data.path, len(test))
    kind, target, features = _describe(train, loaded, data)
    for other, field in ((val, "data.val_path"), (test, "data.test_path")):
        if isinstance(other, Table):
            check_columns(other.frame, other.source, [*features, target], f"needed by {field}")
    train, val, test = (_drop_missing_target(r, target) for r in (train, val, test))
    resolved = infer_task(task.type, target_values(train, target), train.source, target)
    labels = None
    if resolved == "classification":
        labels = np.array(value_keys(target_values(train, target)), dtype=object)
    return split_data(train, labels, data.split, val, test), kind, resolved, features, target


def _check_leakage(parts: Any, data: DataConfig, features: list[str]) -> tuple[Any, dict | None]:
    """Report rows of val/test that (nearly) repeat a training row; stop, warn or dedupe.
    Returns the parts (train deduplicated when asked) and the report as a dict (None: off)."""
    from practicum.data.leakage import check_splits, drop_leaks
    from practicum.data.text import column_text

    if data.leakage == "off":
        return parts, None
    train = column_text(parts.train.frame, features)
    others = {name: column_text(getattr(parts, name).frame, features)
              for name in ("val", "test") if getattr(parts, name) is not None}
    report = check_splits(train, others, allow=data.leakage == "warn" or data.dedupe,
                          near_threshold=data.leakage_threshold)
    for line in report.summary().splitlines():
        log.info("leakage check: %s", line)
    dropped = 0
    if data.dedupe:
        keep = drop_leaks(train, report)
        dropped = len(train) - len(keep)
        if dropped:
            log.warning("data.dedupe: dropped %d training row(s) that repeat val/test rows", dropped)
            parts.train = parts.train.take(keep)
    return parts, {**report.to_dict(), "dropped_train_rows": dropped}


def _few_shot(parts: Any, data: DataConfig, task: str, target: str) -> Any:
    """Keep K training examples per class (seeded by data.split.seed); val/test stay whole."""
    from practicum.fewshot import sample_k_shot

    if task != "classification":
        raise UserError("data.shots draws K examples per class; it needs a classification target")
    labels = target_values(parts.train, target).astype(str).to_numpy()
    parts.train = parts.train.take(sample_k_shot(labels, data.shots, data.split.seed))
    log.info("few-shot: %d training rows (%d per class)", len(parts.train), data.shots)
    return parts


def _read_other(path: str | None, data: DataConfig, field: str, train: RawData) -> RawData | None:
    """A val/test file: same format family as the training data."""
    if path is None:
        return None
    other = read_source(path, data.format, field).train
    if isinstance(other, ImageSet) != isinstance(train, ImageSet):
        what = "images" if isinstance(other, ImageSet) else "a table"
        raise UserError(f"{field}: {path} holds {what} but data.path does not; give the same kind of data")
    return other


def _describe(train: RawData, loaded: Loaded, data: DataConfig) -> tuple[Kind, str, list[str]]:
    """(kind, target, features) of the training data."""
    if isinstance(train, ImageSet):
        if data.kind not in ("auto", "image"):
            raise UserError(
                f"data.kind is {data.kind!r} but {train.source} holds images; set data.kind to auto or image"
            )
        if train.labels is None:
            raise UserError(
                f"{train.source}: no labels found; give class subfolders, an NPZ key y/labels, a "
                "labels .npy beside the images, or the *-labels-idx1-ubyte file beside the images"
            )
        return "image", IMAGE_TARGET, []
    frame = train.frame
    target, features = resolve_columns(frame, train.source, data.target, data.features, loaded.target)
    for name in data.categorical or []:
        if name not in features:
            raise unknown_column(train.source, name, features, "data.categorical, not a feature")
    kind = infer_table_kind(data.kind, frame, features, loaded.kind)
    log.info("data %s: kind %s, target %r, %d feature column(s)", train.source, kind, target, len(features))
    return kind, target, features


def target_values(raw: RawData, target: str) -> pd.Series:
    """The target column, or image labels, as a Series."""
    if isinstance(raw, ImageSet):
        return pd.Series(raw.labels)
    return raw.frame[target]


def _drop_missing_target(raw: RawData | None, target: str) -> RawData | None:
    if raw is None:
        return None
    missing = target_values(raw, target).isna().to_numpy()
    if not missing.any():
        return raw
    log.warning("%s: %d row(s) without a target %r dropped", raw.source, int(missing.sum()), target)
    kept = raw.take(np.flatnonzero(~missing))
    if len(kept) == 0:
        raise UserError(f"{raw.source}: every row lacks the target {target!r}; fill in the target column")
    return kept
