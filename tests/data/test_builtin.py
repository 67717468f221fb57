"""Built-in data sets: the registry, list_datasets, and each loader (no downloads)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from practicum.config import TaskConfig
from practicum.data import DATASETS, list_datasets, load_data
from practicum.data import builtin as builtin_module
from practicum.data.builtin import load_builtin
from practicum.data.corpus import iter_documents
from practicum.data.formats import read_source
from practicum.errors import UserError

NAMES = {"digits", "iris", "wine", "breast_cancer", "diabetes", "penguins", "chatterbot", "chatterbot_pairs",
         "fashion_mnist", "pydoc"}
ROOT = Path(__file__).resolve().parents[2]


def test_list_datasets_rows() -> None:
    rows = list_datasets()
    assert {r["name"] for r in rows} == NAMES
    for row in rows:
        assert {"name", "kind", "task", "rows", "description", "source", "available"} <= set(row)
        assert row["kind"] in ("tabular", "text", "image") and row["rows"] > 0
        assert row["task"] in ("classification", "regression", "sft", "pretraining")


def test_every_builtin_name_in_code_recipes_and_readme_is_listed() -> None:
    """`data list` is the registry, so a builtin:NAME used anywhere must be registered there."""
    files = [*(ROOT / "src").rglob("*.py"), *(ROOT / "configs").glob("*.yaml"), ROOT / "README.md"]
    used = {name: path for path in files
            for name in re.findall(r"builtin:([a-z0-9_]+)", path.read_text(encoding="utf-8"))}
    assert {"pydoc", "chatterbot_pairs", "digits"} <= set(used)
    listed = {r["name"] for r in list_datasets()}
    assert {name: str(path) for name, path in used.items() if name not in listed} == {}


def test_every_loader_takes_exactly_the_listed_names() -> None:
    for row in list_datasets():
        if row["available"]:
            loaded = read_source(f"builtin:{row['name']}")
            assert len(loaded.train) + (0 if loaded.test is None else len(loaded.test)) == row["rows"]
    with pytest.raises(UserError, match="unknown data set 'pydocs' \\(did you mean 'pydoc'"):
        read_source("builtin:pydocs")
    with pytest.raises(UserError, match="unknown data set 'pydocs'"):
        list(iter_documents("builtin:pydocs"))


def test_pydoc_is_the_stdlib_topics_one_row_each() -> None:
    from pydoc_data.topics import topics

    loaded = load_builtin("pydoc")
    frame = loaded.train.frame
    assert loaded.kind == "text" and list(frame.columns) == ["topic", "text"]
    assert frame["topic"].tolist() == sorted(topics) and frame["text"].tolist() == [topics[k] for k in sorted(topics)]
    assert DATASETS.get("pydoc").task == "pretraining"


def test_unknown_builtin_suggests_a_name() -> None:
    with pytest.raises(UserError, match="did you mean 'iris'"):
        load_builtin("irsi")


def test_digits_is_the_image_default(gen: SimpleNamespace) -> None:
    splits = load_data(gen.config("builtin:digits"), TaskConfig())
    assert splits.spec.image_shape == (1, 8, 8)
    assert splits.label_names == [str(i) for i in range(10)]
    total = sum(len(getattr(splits, s)["target"]) for s in ("train", "val", "test"))
    assert total == DATASETS.get("digits").rows == 1797


@pytest.mark.parametrize(
    ("name", "task", "target", "rows"),
    [("iris", "classification", "species", 150), ("wine", "classification", "cultivar", 178),
     ("breast_cancer", "classification", "diagnosis", 569), ("diabetes", "regression", "progression", 442)],
)
def test_sklearn_tables(gen: SimpleNamespace, name: str, task: str, target: str, rows: int) -> None:
    loaded = load_builtin(name)
    assert loaded.target == target and len(loaded.train) == rows
    splits = load_data(gen.config(f"builtin:{name}"), TaskConfig())
    assert splits.task == task and splits.spec.kind == "tabular"


def test_penguins_through_the_csv_reader(gen: SimpleNamespace) -> None:
    loaded = load_builtin("penguins")
    frame = loaded.train.frame
    assert len(frame) == 344 and loaded.target == "species"
    assert loaded.train.source.endswith("penguins.csv")
    assert frame["sex"].isna().sum() > 0 and frame["bill_length_mm"].isna().sum() > 0
    splits = load_data(gen.config("builtin:penguins"), TaskConfig())
    assert splits.label_names == ["Adelie", "Chinstrap", "Gentoo"]
    assert splits.spec.num_features == 5 + 3 + 2  # numerics + island one-hot + sex one-hot


def test_chatterbot_pairs_are_consecutive_turns() -> None:
    pytest.importorskip("chatterbot_corpus", reason="chatterbot-corpus is not installed")
    frame = load_builtin("chatterbot_pairs").train.frame
    assert list(frame.columns) == ["prompt", "response", "topic"]
    assert len(frame) == DATASETS.get("chatterbot_pairs").rows
    first = frame.iloc[0]
    assert first.prompt and first.response and first.prompt != first.response


def test_chatterbot_text_classes(gen: SimpleNamespace) -> None:
    loaded = load_builtin("chatterbot")
    frame = loaded.train.frame
    assert loaded.kind == "text" and list(frame.columns) == ["text", "label"]
    assert frame["label"].nunique() == 21
    assert not frame.duplicated().any()
    assert len(frame) == DATASETS.get("chatterbot").rows
    splits = load_data(gen.config("builtin:chatterbot"), TaskConfig())
    assert splits.spec.kind == "text" and len(splits.label_names or []) == 21


def test_fashion_mnist_from_a_fake_install(gen: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        gen.write_idx_pair(tmp_path, prefix, rng.integers(0, 255, (n, 28, 28), dtype=np.uint8),
                       (np.arange(n) % 10).astype(np.uint8), gz=prefix == "train")
    monkeypatch.setattr(builtin_module, "FASHION_MNIST_DIR", tmp_path)
    loaded = load_builtin("fashion_mnist")
    assert len(loaded.train) == 30 and loaded.test is not None and len(loaded.test) == 10
    splits = load_data(gen.config("builtin:fashion_mnist", split={"method": "random"}), TaskConfig())
    assert splits.test is not None and len(splits.test["target"]) == 10  # the official test split
    assert "Trouser" in (splits.label_names or [])


def test_fashion_mnist_missing_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builtin_module, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    assert not next(r for r in list_datasets() if r["name"] == "fashion_mnist")["available"]
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        load_builtin("fashion_mnist")


@pytest.mark.skipif(not builtin_module._fashion_available(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_counts() -> None:
    loaded = load_builtin("fashion_mnist")
    assert len(loaded.train) == 60000 and loaded.test is not None and len(loaded.test) == 10000
