"""The Preprocessor: JSON state round-trip, targets, decode, and reading new inputs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from practicum.config import TaskConfig
from practicum.data import InputSpec, Preprocessor, load_data
from practicum.data.raw import ImageSet, Table
from practicum.errors import UserError


def _round_trip(pre: Preprocessor) -> Preprocessor:
    return Preprocessor.from_state(json.loads(json.dumps(pre.state_dict())))


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("encoding", ["onehot", "embedding"])
def test_tabular_state_round_trip(gen: SimpleNamespace, tab_csv: Path, encoding: str) -> None:
    splits = load_data(gen.config(tab_csv, categorical_encoding=encoding), TaskConfig())
    pre = splits.preprocessor
    again = _round_trip(pre)
    new = gen.tabular_frame(25, seed=3)
    _assert_same(pre.transform(new, with_target=True), again.transform(new, with_target=True))
    assert again.spec == pre.spec and again.label_names == ["a", "b", "c"]
    if encoding == "embedding":
        assert splits.train["x_cat"].shape[1] == 2  # color, member
        assert splits.spec.cat_cardinalities == [4, 3]  # 3 colours + unknown, 2 bools + unknown


def test_text_state_round_trip(gen: SimpleNamespace, text_csv: Path) -> None:
    pre = load_data(gen.config(text_csv), TaskConfig()).preprocessor
    again = _round_trip(pre)
    frame = gen.text_frame(10)
    _assert_same(pre.transform(frame, True), again.transform(frame, True))


def test_image_state_round_trip(gen: SimpleNamespace, image_npz: Path) -> None:
    cfg = gen.config(image_npz, image={"augment": {"enabled": True, "hflip": True}})
    pre = load_data(cfg, TaskConfig()).preprocessor
    again = _round_trip(pre)
    x, y = gen.image_arrays(7, seed=5)
    raw = ImageSet(x[..., None], y, "new")
    _assert_same(pre.transform(raw, True), again.transform(raw, True))
    assert again.augment_cfg.hflip
    batch = pre.transform(x, with_target=False)  # plain (N, H, W) numpy works too
    assert set(batch) == {"image"}


def test_regression_target_standardised_and_decoded(gen: SimpleNamespace, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=80), "price": rng.uniform(100, 900, 80)})
    frame.to_csv(tmp_path / "r.csv", index=False)
    splits = load_data(gen.config(tmp_path / "r.csv", target="price"), TaskConfig())
    assert splits.task == "regression" and splits.label_names is None
    y = splits.train["target"]
    assert y.dtype == torch.float32 and abs(float(y.mean())) < 1e-5
    pre = _round_trip(splits.preprocessor)
    decoded = pre.decode_target(splits.test["target"])
    original = frame["price"].iloc[[int(r.split()[1]) for r in splits.test_display]].tolist()
    assert decoded == pytest.approx(original, rel=1e-5)


def test_decode_classes(gen: SimpleNamespace, tab_csv: Path) -> None:
    pre = load_data(gen.config(tab_csv), TaskConfig()).preprocessor
    assert pre.decode_target(torch.tensor([2, 0])) == ["c", "a"]


def test_integer_labels_sorted_numerically(gen: SimpleNamespace, tmp_path: Path) -> None:
    frame = pd.DataFrame({"v": np.arange(60.0), "label": np.arange(60) % 12})
    frame.to_csv(tmp_path / "i.csv", index=False)
    splits = load_data(gen.config(tmp_path / "i.csv"), TaskConfig())
    assert splits.label_names == [str(i) for i in range(12)]


def test_load_inputs_file_with_and_without_target(gen: SimpleNamespace, tmp_path: Path, tab_csv: Path) -> None:
    pre = load_data(gen.config(tab_csv), TaskConfig()).preprocessor
    batch, display, targets = pre.load_inputs(str(tab_csv))
    assert "target" in batch and len(targets) == len(display) == 60 and display[0] == "row 0"
    gen.tabular_frame(5).drop(columns="label").to_json(tmp_path / "p.jsonl", orient="records", lines=True)
    batch, display, targets = pre.load_inputs(str(tmp_path / "p.jsonl"))
    assert "target" not in batch and targets is None and batch["x"].shape[0] == 5


def test_load_inputs_json_records(gen: SimpleNamespace, tab_csv: Path) -> None:
    pre = load_data(gen.config(tab_csv), TaskConfig()).preprocessor
    record = {"age": 30, "height": 180.5, "color": "red", "member": True}
    batch, _, _ = pre.load_inputs(record)
    assert batch["x"].shape == (1, pre.spec.num_features)
    batch, _, targets = pre.load_inputs([{**record, "label": "b"}, {**record, "label": "a"}])
    assert batch["target"].tolist() == [1, 0] and targets == ["b", "a"]
    with pytest.raises(UserError, match="no column 'height'"):
        pre.load_inputs({"age": 1, "color": "red", "member": True})


def test_transform_accepts_tables(gen: SimpleNamespace, tab_csv: Path) -> None:
    pre = load_data(gen.config(tab_csv), TaskConfig()).preprocessor
    frame = gen.tabular_frame(4)
    _assert_same(pre.transform(Table(frame, "x"), True), pre.transform(frame, True))


def test_input_spec_dict_round_trip() -> None:
    spec = InputSpec("image", image_shape=(1, 28, 28))
    assert InputSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    spec = InputSpec("tabular", num_features=4, cat_cardinalities=[3, 5])
    assert InputSpec.from_dict(spec.to_dict()) == spec


def test_unsupported_state_version() -> None:
    with pytest.raises(UserError, match="version"):
        Preprocessor.from_state({"version": 99})
