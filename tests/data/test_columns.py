"""Column decisions: target/feature resolution, column types, kind and task inference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from practicum.data.columns import (
    column_type,
    infer_table_kind,
    infer_task,
    resolve_columns,
    sort_labels,
    value_key,
)
from practicum.errors import UserError


def test_target_defaults_to_label_then_kin() -> None:
    frame = pd.DataFrame({"a": [1], "label": [0]})
    assert resolve_columns(frame, "f", None, None) == ("label", ["a"])
    frame = pd.DataFrame({"text": ["x"], "category": ["y"]})
    assert resolve_columns(frame, "f", None, None) == ("category", ["text"])
    assert resolve_columns(frame, "f", None, None, default_target="text") == ("text", ["category"])


def test_no_target_column() -> None:
    with pytest.raises(UserError, match="no 'label' column and data.target is not set; set data.target to one of: a, b"):
        resolve_columns(pd.DataFrame({"a": [1], "b": [2]}), "f.csv", None, None)


def test_target_in_features_is_an_error() -> None:
    with pytest.raises(UserError, match="data.features lists the target"):
        resolve_columns(pd.DataFrame({"a": [1], "label": [2]}), "f", None, ["a", "label"])


def test_column_types() -> None:
    assert column_type(pd.Series([1.0, 2.0])) == "numeric"
    assert column_type(pd.Series([True, False])) == "bool"
    assert column_type(pd.Series(["a", "b", "a"])) == "categorical"
    assert column_type(pd.Series(["the quick brown fox", "jumps over the lazy dog"])) == "text"


def test_kind_as_set_wins() -> None:
    frame = pd.DataFrame({"t": ["a b c d", "e f g h"]})
    assert infer_table_kind("tabular", frame, ["t"], None) == "tabular"
    assert infer_table_kind("auto", frame, ["t"], "tabular") == "tabular"
    with pytest.raises(UserError, match="data.kind is 'image'"):
        infer_table_kind("image", frame, ["t"], None)


def test_task_inference() -> None:
    rng = np.random.default_rng(0)
    assert infer_task("auto", pd.Series(rng.normal(size=50)), "f", "y") == "regression"
    assert infer_task("auto", pd.Series([0.0, 1.0] * 25), "f", "y") == "classification"
    assert infer_task("auto", pd.Series(np.arange(50)), "f", "y") == "classification"
    assert infer_task("auto", pd.Series(["a", "b"]), "f", "y") == "classification"
    assert infer_task("regression", pd.Series([1, 2, 3]), "f", "y") == "regression"
    with pytest.raises(UserError, match="target 'y' is not numeric"):
        infer_task("regression", pd.Series(["a", "b"]), "f.csv", "y")


def test_value_keys_and_label_order() -> None:
    assert [value_key(v) for v in (3.0, 3, np.int64(3), True, "x", None, np.nan)] == [
        "3", "3", "3", "True", "x", None, None,
    ]
    assert sort_labels(["10", "2", "1"]) == ["1", "2", "10"]
    assert sort_labels(["b", "a", "10"]) == ["10", "a", "b"]
