"""Splits: deterministic, stratified, carved or given as files, official test splits, limit."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from practicum.config import SplitConfig, TaskConfig
from practicum.data import load_data
from practicum.data.raw import Table
from practicum.data.splits import split_data
from practicum.errors import UserError


def _table(n: int) -> tuple[Table, np.ndarray]:
    frame = pd.DataFrame({"v": np.arange(n), "label": np.where(np.arange(n) % 5 == 0, "rare", "common")})
    return Table(frame, "t.csv"), frame["label"].to_numpy(dtype=object)


def _rows(table: Table) -> list[int]:
    return table.frame["v"].tolist()


def test_same_seed_same_split_other_seed_other_split() -> None:
    table, labels = _table(100)
    a = split_data(table, labels, SplitConfig(seed=1))
    b = split_data(table, labels, SplitConfig(seed=1))
    c = split_data(table, labels, SplitConfig(seed=2))
    assert _rows(a.val) == _rows(b.val) and _rows(a.test) == _rows(b.test)
    assert _rows(a.val) != _rows(c.val)


def test_fractions_and_disjoint() -> None:
    table, labels = _table(100)
    parts = split_data(table, labels, SplitConfig(method="random", val_fraction=0.2, test_fraction=0.1))
    assert (len(parts.train), len(parts.val), len(parts.test)) == (70, 20, 10)
    everything = _rows(parts.train) + _rows(parts.val) + _rows(parts.test)
    assert sorted(everything) == list(range(100))


def test_stratified_keeps_class_proportions() -> None:
    table, labels = _table(200)
    parts = split_data(table, labels, SplitConfig(method="stratified", val_fraction=0.25, test_fraction=0.25))
    for part in (parts.val, parts.test):
        counts = Counter(part.frame["label"])
        assert counts["rare"] == 10 and counts["common"] == 40


def test_singleton_class_stays_in_train() -> None:
    frame = pd.DataFrame({"v": np.arange(41), "label": ["x", "y"] * 20 + ["lonely"]})
    parts = split_data(Table(frame, "t"), frame["label"].to_numpy(dtype=object), SplitConfig())
    assert "lonely" in set(parts.train.frame["label"])


def test_files_method_uses_only_given_files() -> None:
    table, labels = _table(50)
    val, _ = _table(10)
    parts = split_data(table, labels, SplitConfig(method="files"), val=val)
    assert parts.train is table and parts.val is val and parts.test is None


def test_files_method_without_val_is_an_error() -> None:
    table, labels = _table(50)
    with pytest.raises(UserError, match="method is 'files' but data.val_path is not set"):
        split_data(table, labels, SplitConfig(method="files"))


def test_zero_val_fraction_without_val_path() -> None:
    table, labels = _table(50)
    with pytest.raises(UserError, match="val_fraction is 0"):
        split_data(table, labels, SplitConfig(val_fraction=0.0))


def test_load_data_split_is_deterministic(gen: SimpleNamespace, tab_csv: Path) -> None:
    a = load_data(gen.config(tab_csv, split={"seed": 3}), TaskConfig())
    b = load_data(gen.config(tab_csv, split={"seed": 3}), TaskConfig())
    for name in ("train", "val", "test"):
        for key in getattr(a, name):
            assert torch.equal(getattr(a, name)[key], getattr(b, name)[key])
    assert a.test_display == b.test_display


def test_val_and_test_paths(gen: SimpleNamespace, tmp_path: Path, tab_csv: Path) -> None:
    gen.tabular_frame(9, seed=1).to_csv(tmp_path / "val.csv", index=False)
    gen.tabular_frame(6, seed=2).to_csv(tmp_path / "test.csv", index=False)
    cfg = gen.config(tab_csv, val_path=str(tmp_path / "val.csv"), test_path=str(tmp_path / "test.csv"))
    splits = load_data(cfg, TaskConfig())
    assert len(splits.train["target"]) == 60  # nothing carved from train
    assert len(splits.val["target"]) == 9 and len(splits.test["target"]) == 6


def test_files_method_in_load_data(gen: SimpleNamespace, tmp_path: Path, tab_csv: Path) -> None:
    gen.tabular_frame(9, seed=1).to_csv(tmp_path / "val.csv", index=False)
    cfg = gen.config(tab_csv, val_path=str(tmp_path / "val.csv"), split={"method": "files"})
    splits = load_data(cfg, TaskConfig())
    assert len(splits.train["target"]) == 60 and splits.test is None and splits.test_display is None


def test_limit_uses_first_rows(gen: SimpleNamespace, tab_csv: Path) -> None:
    splits = load_data(gen.config(tab_csv, limit=30), TaskConfig())
    total = sum(len(getattr(splits, s)["target"]) for s in ("train", "val", "test"))
    assert total == 30


def test_missing_targets_are_dropped(gen: SimpleNamespace, tmp_path: Path) -> None:
    frame = gen.tabular_frame(30)
    frame.loc[[1, 2], "label"] = None
    frame.to_csv(tmp_path / "m.csv", index=False)
    splits = load_data(gen.config(tmp_path / "m.csv"), TaskConfig())
    assert sum(len(getattr(splits, s)["target"]) for s in ("train", "val", "test")) == 28
