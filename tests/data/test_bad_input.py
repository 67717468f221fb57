"""Every bad input is a one-line UserError naming the file (line/column) and the fix."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from practicum.config import DataConfig, TaskConfig
from practicum.data import load_data
from practicum.data.formats import read_source
from practicum.errors import UserError


def _error(cfg_path: Path | str, **fields: object) -> str:
    with pytest.raises(UserError) as info:
        load_data(DataConfig.model_validate({"path": str(cfg_path), **fields}), TaskConfig())
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    msg = _error(tmp_path / "nope.csv")
    assert "data.path" in msg and "nope.csv" in msg and "not found" in msg and "check the path" in msg


def test_missing_val_file(tab_csv: Path) -> None:
    assert "data.val_path: file 'v.csv' not found" in _error(tab_csv, val_path="v.csv")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(b"")
    assert f"{tmp_path / 'e.csv'}: file is empty (0 bytes)" in _error(tmp_path / "e.csv")


def test_header_only(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,b,label\n")
    assert "has a header but no data rows" in _error(tmp_path / "h.csv")


def test_unknown_column_suggests_close_match(tab_csv: Path) -> None:
    msg = _error(tab_csv, target="lable")
    assert "no column 'lable' (data.target); did you mean 'label'?" in msg
    assert "available: age, height, color, member, label" in msg
    assert "no column 'hieght' (data.features); did you mean 'height'?" in _error(tab_csv, features=["hieght"])


def test_non_utf8(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes("text,label\nok,1\ncaf\u00e9,0\n".encode("latin-1"))
    msg = _error(tmp_path / "l.csv")
    assert f"{tmp_path / 'l.csv'}:3: not valid UTF-8 (byte 0xe9 at offset 19)" in msg
    assert "re-save the file as UTF-8" in msg


@pytest.mark.parametrize("row", ["1,2,3,4", "1,2"])
def test_ragged_csv_names_the_line(tmp_path: Path, row: str) -> None:
    (tmp_path / "r.csv").write_text(f"a,b,label\n1,2,x\n4,5,y\n{row}\n7,8,y\n")
    msg = _error(tmp_path / "r.csv")
    assert f"{tmp_path / 'r.csv'}:4: expected 3 fields" in msg and f"found {len(row.split(','))}" in msg


def test_unclosed_quote(tmp_path: Path) -> None:
    (tmp_path / "q.csv").write_text('a,label\n1,x\n"2,y\n')
    assert "q.csv:3: expected 2 fields (as in the header) but found 1; fix that row (a quote opened on this line is never closed)" in _error(tmp_path / "q.csv")


def test_bad_jsonl_line(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text('{"a": 1, "label": 0}\n{"a": 2, "label": 1\n')
    msg = _error(tmp_path / "b.jsonl")
    assert f"{tmp_path / 'b.jsonl'}:2: not valid JSON" in msg and "one JSON object" in msg


def test_jsonl_line_not_an_object(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text('{"a": 1, "label": 0}\n[1, 2]\n')
    assert "b.jsonl:2: line 2 is a JSON list, not an object" in _error(tmp_path / "b.jsonl")


def test_unseen_label_in_val_file(gen: SimpleNamespace, tmp_path: Path, tab_csv: Path) -> None:
    val = gen.tabular_frame(6, seed=1)
    val.loc[2, "label"] = "zebra"
    val.to_csv(tmp_path / "val.csv", index=False)
    msg = _error(tab_csv, val_path=str(tmp_path / "val.csv"))
    assert f"{tmp_path / 'val.csv'}: label 'zebra' (row 2) does not occur in the training data" in msg


def test_val_file_missing_a_column(gen: SimpleNamespace, tmp_path: Path, tab_csv: Path) -> None:
    gen.tabular_frame(6).drop(columns="height").to_csv(tmp_path / "val.csv", index=False)
    assert "val.csv: no column 'height' (needed by data.val_path)" in _error(tab_csv, val_path=str(tmp_path / "val.csv"))


def test_images_of_mixed_sizes(gen: SimpleNamespace, tmp_path: Path) -> None:
    root = gen.write_png_folder(tmp_path / "f", {"a": 2})
    gen.write_png_folder(root, {"b": 1}, size=(10, 6))
    msg = _error(root)
    assert "images differ in size: a/0.png is 8x8 but b/0.png is 10x6" in msg and "resize" in msg


def test_unsupported_extension(tmp_path: Path) -> None:
    (tmp_path / "d.xlsx").write_bytes(b"PK")
    msg = _error(tmp_path / "d.xlsx")
    assert "d.xlsx: unsupported file type '.xlsx'; use .csv" in msg


def test_npz_without_known_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "k.npz", pixels=np.zeros((2, 4, 4)), classes=np.zeros(2))
    msg = _error(tmp_path / "k.npz")
    assert "no image array found; expected a key x, images or X (found: pixels, classes)" in msg


def test_images_without_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "pics.npy", np.zeros((4, 5, 5), dtype=np.uint8))
    assert "pics.npy: no labels found" in _error(tmp_path / "pics.npy")


def test_label_count_mismatch(tmp_path: Path) -> None:
    np.savez(tmp_path / "m.npz", x=np.zeros((4, 5, 5)), y=np.zeros(3))
    assert "4 images but 3 labels" in _error(tmp_path / "m.npz")


def test_bad_image_shape(tmp_path: Path) -> None:
    np.savez(tmp_path / "s.npz", x=np.zeros((4, 25)), y=np.zeros(4))
    assert "images must be an (N, H, W) or (N, H, W, C) array" in _error(tmp_path / "s.npz")


def test_not_an_idx_file(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"hello world")
    assert "not an IDX file" in _error(tmp_path / "train-images-idx3-ubyte")


def test_files_method_without_val(tab_csv: Path) -> None:
    assert "method is 'files' but data.val_path is not set" in _error(tab_csv, split={"method": "files"})


def test_non_numeric_regression_target(gen: SimpleNamespace, tab_csv: Path) -> None:
    with pytest.raises(UserError, match="target 'label' is not numeric"):
        load_data(gen.config(tab_csv), TaskConfig(type="regression"))


def test_single_class(gen: SimpleNamespace, tmp_path: Path) -> None:
    frame = gen.tabular_frame(20)
    frame["label"] = "only"
    frame.to_csv(tmp_path / "one.csv", index=False)
    assert "classification needs at least 2" in _error(tmp_path / "one.csv")


def test_image_kind_for_a_table(tab_csv: Path) -> None:
    assert "data.kind is 'image' but data.path holds a table" in _error(tab_csv, kind="image")


def test_non_numeric_value_at_predict_time(gen: SimpleNamespace, tab_csv: Path) -> None:
    pre = load_data(gen.config(tab_csv), TaskConfig()).preprocessor
    with pytest.raises(UserError, match="column 'age' row 0 holds 'old', not a number"):
        pre.load_inputs({"age": "old", "height": 1.0, "color": "red", "member": True})


def test_loaders_write_nothing(gen: SimpleNamespace, tmp_path: Path) -> None:
    gen.tabular_frame(30).to_csv(tmp_path / "t.csv", index=False)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    load_data(gen.config(tmp_path / "t.csv"), TaskConfig())
    read_source(str(tmp_path / "t.csv"))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_json_object_of_splits_is_read_and_bad_pairs_are_named(tmp_path: Path) -> None:
    from practicum.data.formats import read_source

    good = tmp_path / "d.json"
    good.write_text('{"train": [["hi", "greet"], ["bye", "leave"]], "val": [["hey", "greet"]], '
                    '"test": [["ciao", "leave"]], "oos_test": [["x", "oos"]]}')
    loaded = read_source(str(good))
    assert loaded.train.frame.to_dict("list") == {"text": ["hi", "bye"], "label": ["greet", "leave"]}
    assert len(loaded.val) == 1 and len(loaded.test) == 1 and loaded.target == "label"
    (tmp_path / "bad.json").write_text('{\n "train": [["hi", "greet", 3]],\n "test": []\n}\n')
    assert "split 'train' must be a list of [text, label] pairs" in _error(tmp_path / "bad.json")


