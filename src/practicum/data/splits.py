"""Deterministic train/val/test splits: carved at random or stratified, or given as files.

The same seed gives the same split on every machine (scikit-learn's train_test_split
with the seed as random_state). Test is carved first, then val from the rest, so each
fraction is a fraction of the whole training file.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np

from practicum.config import SplitConfig
from practicum.data.raw import RawData
from practicum.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class Parts:
    train: RawData
    val: RawData
    test: RawData | None


def split_data(
    train: RawData,
    labels: np.ndarray | None,
    split: SplitConfig,
    val: RawData | None = None,
    test: RawData | None = None,
) -> Parts:
    """Carve whatever val/test is not given out of `train`; `labels` (class keys) enable stratifying."""
    if split.method == "files":
        if val is None:
            raise UserError(
                "data.split.method is 'files' but data.val_path is not set; set data.val_path "
                "(and optionally data.test_path) or use split method random or stratified"
            )
        return Parts(train, val, test)
    n = len(train)
    rest = np.arange(n)
    strat = labels if split.method == "stratified" else None
    test_idx = val_idx = None
    if test is None and split.test_fraction > 0:
        rest, test_idx = _carve(rest, _count(n, split.test_fraction), strat, split.seed, "test")
    if val is None:
        if split.val_fraction == 0:
            raise UserError(
                "no validation data: data.split.val_fraction is 0 and data.val_path is not set; "
                "set one of them"
            )
        rest, val_idx = _carve(rest, _count(n, split.val_fraction), strat, split.seed, "val")
    if labels is not None:
        rest, val_idx, test_idx = _cover_classes(rest, val_idx, test_idx, labels)
    log.info(
        "split %s: %d train, %s val, %s test (seed %d)", split.method, len(rest),
        len(val_idx) if val_idx is not None else "given", len(test_idx) if test_idx is not None else "given/none",
        split.seed,
    )
    return Parts(
        train.take(rest),
        val if val_idx is None else train.take(val_idx),
        test if test_idx is None else train.take(test_idx),
    )


def _count(n: int, fraction: float) -> int:
    return max(1, int(round(n * fraction)))


def _carve(
    idx: np.ndarray, count: int, labels: np.ndarray | None, seed: int, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split `count` rows off `idx`: (kept, carved), both sorted; stratified when it can be."""
    from sklearn.model_selection import train_test_split  # lazy: keeps `import practicum` fast

    if count >= len(idx):
        raise UserError(
            f"too few rows ({len(idx)}) to carve a {name} split of {count}; lower "
            f"data.split.{name}_fraction or give data.{name}_path"
        )
    if labels is None:
        kept, carved = train_test_split(idx, test_size=count, random_state=seed)
        return np.sort(kept), np.sort(carved)
    # classes with a single row cannot be stratified: they stay in train
    counts = Counter(labels[idx].tolist())
    single = np.array([counts[y] < 2 for y in labels[idx].tolist()], dtype=bool)
    pool, fixed = idx[~single], idx[single]
    if count >= len(pool):
        pool, fixed = idx, idx[:0]
    try:
        kept, carved = train_test_split(pool, test_size=count, random_state=seed, stratify=labels[pool])
    except ValueError as exc:
        log.warning("cannot stratify the %s split (%s); splitting at random", name, exc)
        kept, carved = train_test_split(pool, test_size=count, random_state=seed)
    return np.sort(np.concatenate([kept, fixed])), np.sort(carved)


def _cover_classes(
    train_idx: np.ndarray, val_idx: np.ndarray | None, test_idx: np.ndarray | None, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Move carved rows whose class has no training row back to train (rare classes)."""
    seen = set(labels[train_idx].tolist())
    moved: list[np.ndarray] = []
    out = []
    for idx in (val_idx, test_idx):
        if idx is None:
            out.append(None)
            continue
        unseen = np.array([labels[i] not in seen for i in idx], dtype=bool)
        moved.append(idx[unseen])
        out.append(idx[~unseen])
    extra = np.concatenate(moved) if moved else np.zeros(0, dtype=np.int64)
    if len(extra):
        log.warning("%d carved rows of classes absent from train moved back to train", len(extra))
        train_idx = np.sort(np.concatenate([train_idx, extra]))
    return train_idx, out[0], out[1]
