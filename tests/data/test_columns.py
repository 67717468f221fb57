"""Column decisions: target/feature resolution, column types, kind and task inference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from practicum.data.columns import (
    check_columns,
    closest_name,
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


PENGUIN_COLUMNS = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]


@pytest.mark.parametrize(("given", "meant"), [
    ("bill_len", "bill_length_mm"),
    ("bill_length", "bill_length_mm"),
    ("Bill Length (mm)", "bill_length_mm"),
    ("billLength", "bill_length_mm"),
    ("billlen", "bill_length_mm"),
    ("bill_lenght_mm", "bill_length_mm"),
    ("culmen_depth_mm", "bill_depth_mm"),
    ("flipper_len", "flipper_length_mm"),
    ("flipper", "flipper_length_mm"),
    ("body_mass", "body_mass_g"),
    ("mass", "body_mass_g"),
    ("islnd", "island"),
    ("Sex", "sex"),
])
def test_closest_name_reads_renames_and_abbreviations(given: str, meant: str) -> None:
    assert closest_name(given, PENGUIN_COLUMNS) == meant


def test_closest_name_is_none_when_nothing_is_close() -> None:
    assert closest_name("gender", PENGUIN_COLUMNS) is None
    assert closest_name("bill_len", []) is None


def test_missing_input_column_suggests_the_renamed_one_not_a_used_one() -> None:
    """bill_depth_mm is spelt like bill_length_mm but is in use as itself; bill_len is the rename."""
    frame = pd.DataFrame([{"island": "Dream", "bill_len": 40.0, "bill_depth_mm": 18.0,
                           "flipper_length_mm": 190, "body_mass_g": 3700, "sex": "male"}])
    with pytest.raises(UserError) as err:
        check_columns(frame, "input", PENGUIN_COLUMNS, "a feature column of the trained model")
    assert str(err.value) == (
        "input: no column 'bill_length_mm' (a feature column of the trained model); if 'bill_len' is it, "
        "rename that column to 'bill_length_mm'; available: island, bill_len, bill_depth_mm, "
        "flipper_length_mm, body_mass_g, sex")


def test_missing_target_suggests_a_column_that_is_not_a_feature() -> None:
    frame = pd.DataFrame({"species_name": ["Adelie"], "island": ["Dream"], "bill_length_mm": [40.0]})
    with pytest.raises(UserError) as err:
        check_columns(frame, "new.csv", ["species"], "the target column", taken=["island", "bill_length_mm"])
    assert "no column 'species' (the target column); if 'species_name' is it" in str(err.value)


def test_unknown_config_column_suggests_the_abbreviated_one() -> None:
    frame = pd.DataFrame({name: [1.0] for name in PENGUIN_COLUMNS} | {"species": ["Adelie"]})
    with pytest.raises(UserError, match="no column 'flipper' \\(data.features\\); did you mean 'flipper_length_mm'"):
        resolve_columns(frame, "p.csv", "species", ["bill_length_mm", "flipper"])


def test_closest_name_does_not_take_a_short_name_for_an_abbreviation() -> None:
    assert closest_name("lable", ["a", "b", "label"]) == "label"
    assert closest_name("y", ["year", "body"]) is None
