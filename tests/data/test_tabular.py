"""Table readers and the tabular encoder: CSV/TSV/JSONL/JSON/Parquet, imputation, one-hot, embeddings."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from practicum.data.formats import read_source
from practicum.data.tables import read_table
from practicum.data.tabular import TabularEncoder


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl", "json", "parquet", "csv.gz"])
def test_readers_agree(gen: SimpleNamespace, tmp_path: Path, ext: str) -> None:
    frame = gen.tabular_frame(12)
    path = tmp_path / f"t.{ext}"
    if ext in ("csv", "tsv"):
        frame.to_csv(path, index=False, sep="\t" if ext == "tsv" else ",")
    elif ext == "csv.gz":
        path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    elif ext == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif ext == "json":
        frame.to_json(path, orient="records")
    else:
        frame.to_parquet(path)
    table = read_source(str(path)).train
    assert list(table.frame.columns) == list(frame.columns)
    assert len(table) == 12
    assert table.frame["height"].tolist() == pytest.approx(frame["height"].tolist())
    assert table.frame["color"].iloc[0] == frame["color"].iloc[0]


def test_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "hi", "label": 1}\n\n{"text": "yo", "label": 0}\n')
    assert read_table(path, "jsonl").frame["label"].tolist() == [1, 0]


def test_encoder_imputes_median_and_standardises() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, 5.0], "label": [0, 1, 0, 1]})
    enc = TabularEncoder.fit(frame, ["a"], None, "onehot", normalize=True)
    assert enc.numeric == ["a"] and enc.medians == [2.0]
    x = enc.transform(frame, "t")["x"]
    filled = np.array([1.0, 2.0, 2.0, 5.0])
    expected = (filled - filled.mean()) / filled.std()
    assert torch.allclose(x[:, 0], torch.tensor(expected, dtype=torch.float32))


def test_normalize_off_keeps_units() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0]})
    x = TabularEncoder.fit(frame, ["a"], None, "onehot", normalize=False).transform(frame, "t")["x"]
    assert x[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_onehot_unknown_category_is_all_zeros() -> None:
    train = pd.DataFrame({"color": ["red", "blue", "red"], "n": [1, 2, 3]})
    enc = TabularEncoder.fit(train, ["n", "color"], None, "onehot", normalize=True)
    assert enc.categorical == ["color"] and enc.categories == [["blue", "red"]]
    assert enc.num_features == 3
    new = pd.DataFrame({"color": ["blue", "green", None], "n": [1, 2, 3]})
    x = enc.transform(new, "new")["x"]
    assert x[:, 1:].tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]


def test_embedding_indices_reserve_zero_for_unknown() -> None:
    train = pd.DataFrame({"color": ["red", "blue"], "flag": [True, False], "n": [1.0, 2.0]})
    enc = TabularEncoder.fit(train, ["n", "color", "flag"], None, "embedding", normalize=True)
    assert enc.cardinalities == [3, 3] and enc.num_features == 1
    out = enc.transform(pd.DataFrame({"color": ["red", "pink"], "flag": [False, True], "n": [1.0, 1.0]}), "t")
    assert out["x"].shape == (2, 1)
    assert out["x_cat"].dtype == torch.int64
    assert out["x_cat"].tolist() == [[2, 1], [0, 2]]


def test_unseen_categories_warn_once_per_column_and_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    train = pd.DataFrame({"color": ["red", "blue", "red"], "size": ["S", "M", "S"], "n": [1.0, 2.0, 3.0]})
    enc = TabularEncoder.fit(train, ["n", "color", "size"], None, "onehot", normalize=True)
    new = pd.DataFrame({"color": ["green", "green", "pink", None, "red"], "size": ["S", "M", "XL", "M", None],
                        "n": [1.0] * 5})
    with caplog.at_level(logging.WARNING, logger="practicum.data.tabular"):
        enc.transform(new, "new.csv")
    assert [r.getMessage() for r in caplog.records] == [
        "new.csv: color: 3 values not seen in training ('green', 'pink'); encoded as unknown "
        "(all zeros in the one-hot)",
        "new.csv: size: 1 value not seen in training ('XL'); encoded as unknown (all zeros in the one-hot)",
    ]
    assert enc.unknown_counts(new) == {"color": 3, "size": 1}  # missing cells are not unknown
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="practicum.data.tabular"):
        enc.transform(train, "train.csv")
    assert caplog.records == [] and enc.unknown_counts(train) == {}


def test_unseen_category_warning_names_a_few_values(caplog: pytest.LogCaptureFixture) -> None:
    train = pd.DataFrame({"city": ["a", "b"], "n": [1.0, 2.0]})
    enc = TabularEncoder.fit(train, ["n", "city"], None, "embedding", normalize=True)
    new = pd.DataFrame({"city": [f"c{i}" for i in range(8)], "n": [1.0] * 8})
    with caplog.at_level(logging.WARNING, logger="practicum.data.tabular"):
        out = enc.transform(new, "t")
    assert out["x_cat"].tolist() == [[0]] * 8
    assert [r.getMessage() for r in caplog.records] == [
        "t: city: 8 values not seen in training ('c0', 'c1', 'c2', 'c3', 'c4' and 3 more); "
        "encoded as unknown (the embedding's unknown index)"]


def test_fields_describe_each_column_with_a_typical_value() -> None:
    train = pd.DataFrame({"color": ["red", "blue", "red"], "n": [1.0, 2.5, 30.0], "flag": [True, False, True]})
    enc = TabularEncoder.fit(train, ["n", "color", "flag"], None, "onehot", normalize=True)
    assert enc.fields(["color", "n", "flag"]) == [
        {"name": "color", "type": "categorical", "example": "blue"},
        {"name": "n", "type": "numeric", "example": 2.5},
        {"name": "flag", "type": "categorical", "example": "False"},
    ]
    example = pd.DataFrame([{f["name"]: f["example"] for f in enc.fields(["color", "n", "flag"])}])
    assert enc.unknown_counts(example) == {}  # the examples are valid inputs


def test_listed_numeric_column_becomes_categorical() -> None:
    train = pd.DataFrame({"zip": [1000, 2000, 1000], "n": [1.0, 2.0, 3.0]})
    enc = TabularEncoder.fit(train, ["zip", "n"], ["zip"], "onehot", normalize=True)
    assert enc.categorical == ["zip"] and enc.categories == [["1000", "2000"]]
    # a float 1000.0 read back from JSON maps to the same category
    x = enc.transform(pd.DataFrame({"zip": [1000.0], "n": [1.0]}), "t")["x"]
    assert x[0, 1:].tolist() == [1.0, 0.0]


def test_constant_column_gets_unit_std() -> None:
    frame = pd.DataFrame({"c": [4.0, 4.0, 4.0]})
    enc = TabularEncoder.fit(frame, ["c"], None, "onehot", normalize=True)
    assert enc.stds == [1.0]
    assert enc.transform(frame, "t")["x"].abs().sum() == 0


def test_json_variants(tmp_path: Path) -> None:
    (tmp_path / "cols.json").write_text('{"text": ["a", "b"], "label": [0, 1]}')
    assert read_table(tmp_path / "cols.json", "jsonl").frame["label"].tolist() == [0, 1]
    (tmp_path / "lines.json").write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    assert len(read_table(tmp_path / "lines.json", "jsonl")) == 2
    (tmp_path / "pretty.json").write_text('[\n  {"text": "a", "label": 0},\n  {"text": "b", "label": 1}\n]\n')
    assert len(read_table(tmp_path / "pretty.json", "jsonl")) == 2
