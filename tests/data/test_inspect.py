"""inspect_file: the text report and the problems it finds."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from practicum.data import inspect_file, list_datasets
from practicum.errors import UserError


def test_table_report(tab_csv: Path) -> None:
    report = inspect_file(str(tab_csv))
    assert f"file: {tab_csv} (csv)" in report
    assert "rows: 60, columns: 5" in report
    lines = {line.split()[0]: line.split() for line in report.splitlines() if line.startswith("  ")}
    assert lines["age"][1:3] == ["numeric", "1"]  # type and missing count
    assert lines["color"][1:3] == ["categorical", "1"]
    assert lines["member"][1] == "bool"
    assert "target: label (guessed" in report and "class balance:" in report
    assert "problems: none found" in report


def test_problems_found(tmp_path: Path) -> None:
    n = 40
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "constant": 1,
            "city": [f"town{i}" for i in range(n)],
            "x": np.linspace(0, 1, n),
            "outcome": ["yes"] * 37 + ["no"] * 2 + [None],
        }
    )
    frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    frame.to_csv(tmp_path / "p.csv", index=False)
    report = inspect_file(str(tmp_path / "p.csv"), "outcome")
    assert "target: outcome\n" in report
    assert "column 'constant' is constant" in report
    assert "column 'customer_id' looks like an ID" in report
    assert "1 duplicate row(s)" in report
    assert "1 row(s) without a target 'outcome'" in report
    assert "classes are very imbalanced: 'yes' has 38 rows, 'no' has 2" in report


def test_guessed_target_is_last_column(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "x"]}).to_csv(tmp_path / "g.csv", index=False)
    assert "target: b (guessed" in inspect_file(str(tmp_path / "g.csv"))


def test_regression_target_summary(tmp_path: Path) -> None:
    pd.DataFrame({"a": range(50), "price": np.linspace(1.5, 99.5, 50)}).to_csv(tmp_path / "r.csv", index=False)
    assert "looks like regression" in inspect_file(str(tmp_path / "r.csv"), "price")


def test_unknown_target(tab_csv: Path) -> None:
    with pytest.raises(UserError, match="no column 'lable' .*did you mean 'label'"):
        inspect_file(str(tab_csv), "lable")


def test_image_arrays_report(image_npz: Path) -> None:
    report = inspect_file(str(image_npz))
    assert "(npz)" in report and "images: 30, shape: 8x8, channels: 1, dtype: uint8" in report
    assert "class balance:" in report and "problems: none found" in report


def test_image_folder_with_mixed_sizes(gen: SimpleNamespace, tmp_path: Path) -> None:
    root = gen.write_png_folder(tmp_path / "f", {"a": 2})
    gen.write_png_folder(root, {"b": 1}, size=(10, 6))
    report = inspect_file(str(root))
    assert "images: 3" in report and "8x8 L (2)" in report and "10x6 L (1)" in report
    assert "images differ in size" in report


def test_builtin_report() -> None:
    report = inspect_file("builtin:iris")
    assert "rows: 150" in report and "target: species" in report
    assert "(built-in tabular data for classification)" in report


def test_builtin_corpus_report_shows_documents_and_how_to_pretrain() -> None:
    from pydoc_data.topics import topics

    report = inspect_file("builtin:pydoc")
    assert report.startswith("file: builtin:pydoc (built-in text data for pretraining)")
    assert f"documents: {len(topics)} " in report and "target: none" in report
    assert "practicum pretrain --data builtin:pydoc" in report


def test_every_builtin_is_inspected_or_says_how_to_install_it() -> None:
    for row in list_datasets():
        if row["available"]:
            assert inspect_file(f"builtin:{row['name']}").startswith(f"file: builtin:{row['name']} (built-in ")
        else:
            with pytest.raises(UserError, match="is not installed"):
                inspect_file(f"builtin:{row['name']}")
