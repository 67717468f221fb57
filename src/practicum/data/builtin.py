"""Built-in data sets (`builtin:NAME`), read from installed packages, never downloaded.

DATASETS is the one list of them: every loader that takes `builtin:NAME` (tables, images,
sft pairs, pretraining corpora) looks the name up here, and `practicum data list` shows it
(list_datasets). Each loader returns a `Loaded`, so a built-in name works anywhere a path does.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from pydoc_data import topics as pydoc_topics
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from practicum.data.idx import read_idx
from practicum.data.raw import ImageSet, Loaded, Table
from practicum.data.spec import Kind, Task
from practicum.data.tables import read_table
from practicum.errors import UserError
from practicum.registry import Registry

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where the Debian package dataset-fashion-mnist puts the IDX files."""
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


Use = Task | Literal["sft", "pretraining"]
"""What a built-in data set is for: a classifier or regressor, sft pairs, or a text corpus."""


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    kind: Kind
    task: Use
    rows: int
    description: str
    source: str
    loader: Callable[[], Loaded]
    available: Callable[[], bool]
    install_hint: str = ""


DATASETS: Registry[BuiltinDataset] = Registry("data set")


def _builtin(
    name: str, kind: Kind, task: Use, rows: int, description: str, source: str,
    available: Callable[[], bool] | None = None, install_hint: str = "",
) -> Callable[[Callable[[], Loaded]], Callable[[], Loaded]]:
    """Register the decorated loader as `builtin:NAME`."""
    def add(loader: Callable[[], Loaded]) -> Callable[[], Loaded]:
        DATASETS.register(name)(BuiltinDataset(
            name, kind, task, rows, description, source, loader, available or (lambda: True), install_hint,
        ))
        return loader
    return add


def load_builtin(name: str) -> Loaded:
    """The data of `builtin:NAME`; an unknown or uninstalled one is a UserError."""
    ds = DATASETS.get(name)
    if not ds.available():
        raise UserError(f"builtin:{name} is not installed; {ds.install_hint}")
    return ds.loader()


def list_datasets() -> list[dict[str, Any]]:
    """One row per built-in data set: name, kind, task, rows, description, source, available."""
    rows = []
    for name, ds in DATASETS.items():
        ok = ds.available()
        row = {"name": name, "kind": ds.kind, "task": ds.task, "rows": ds.rows,
               "description": ds.description, "source": ds.source, "available": ok}
        if not ok:
            row["note"] = ds.install_hint
        rows.append(row)
    return rows


# ---------------------------------------------------------------- scikit-learn


@_builtin("digits", "image", "classification", 1797,
          "8x8 grayscale handwritten digits, 10 classes (the embedded default)", "scikit-learn load_digits")
def _digits() -> Loaded:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1) in [0, 1]
    return Loaded(ImageSet(images, bunch.target.astype(np.int64), "builtin:digits"), kind="image")


def _sklearn_table(name: str, loader: str, target: str, classes: bool) -> Loaded:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    frame = bunch.data.copy()
    y = np.asarray(bunch.target)
    frame[target] = np.asarray(bunch.target_names)[y] if classes else y.astype(np.float64)
    return Loaded(Table(frame.reset_index(drop=True), f"builtin:{name}"), target=target, kind="tabular")


@_builtin("iris", "tabular", "classification", 150,
          "iris flowers: 4 measurements, 3 species", "scikit-learn load_iris")
def _iris() -> Loaded:
    return _sklearn_table("iris", "load_iris", "species", classes=True)


@_builtin("wine", "tabular", "classification", 178,
          "wine chemistry: 13 measurements, 3 cultivars", "scikit-learn load_wine")
def _wine() -> Loaded:
    return _sklearn_table("wine", "load_wine", "cultivar", classes=True)


@_builtin("breast_cancer", "tabular", "classification", 569,
          "breast mass cell nuclei: 30 features, malignant or benign", "scikit-learn load_breast_cancer")
def _breast_cancer() -> Loaded:
    return _sklearn_table("breast_cancer", "load_breast_cancer", "diagnosis", classes=True)


@_builtin("diabetes", "tabular", "regression", 442,
          "diabetes progression after one year from 10 baseline variables", "scikit-learn load_diabetes")
def _diabetes() -> Loaded:
    return _sklearn_table("diabetes", "load_diabetes", "progression", classes=False)


# ---------------------------------------------------------------- other packages


def _has(package: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(package) is not None


@_builtin("penguins", "tabular", "classification", 344,
          "Palmer penguins: species from island, bill, flipper, mass, sex (with missing values)",
          "palmerpenguins package (penguins.csv)", _has("palmerpenguins"), "pip install palmerpenguins")
def _penguins() -> Loaded:
    csv = importlib.resources.files("palmerpenguins") / "data" / "penguins.csv"
    with importlib.resources.as_file(csv) as path:
        table = read_table(Path(path), "csv")
    return Loaded(table, target="species", kind="tabular")


@_builtin("chatterbot", "text", "classification", 751,
          "ChatterBot English corpus: columns text (first utterance of each conversation), label (its topic); 21 classes",
          "chatterbot-corpus package (english/*.yml)", _has("chatterbot_corpus"), "pip install chatterbot-corpus")
def _chatterbot() -> Loaded:
    rows = []
    for category, conversation in _chatterbot_conversations():
        if str(conversation[0]).strip():
            rows.append((str(conversation[0]).strip(), category))
    frame = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates().reset_index(drop=True)
    return Loaded(Table(frame, "builtin:chatterbot"), target="label", kind="text")


@_builtin("chatterbot_pairs", "text", "sft", 1176,
          "ChatterBot English corpus as dialogue turns: columns prompt, response, topic (for task.type sft)",
          "chatterbot-corpus package (english/*.yml)", _has("chatterbot_corpus"), "pip install chatterbot-corpus")
def _chatterbot_pairs() -> Loaded:
    rows = []
    for category, conversation in _chatterbot_conversations():
        for prompt, response in zip(conversation, conversation[1:], strict=False):  # each turn, the next
            if str(prompt).strip() and str(response).strip():
                rows.append((str(prompt).strip(), str(response).strip(), category))
    frame = pd.DataFrame(rows, columns=["prompt", "response", "topic"]).drop_duplicates(["prompt", "response"])
    return Loaded(Table(frame.reset_index(drop=True), "builtin:chatterbot_pairs"), kind="text")


def _chatterbot_conversations() -> list[tuple[str, list]]:
    """(category, conversation) for every conversation of the English ChatterBot corpus."""
    root = importlib.resources.files("chatterbot_corpus") / "data" / "english"
    out = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith((".yml", ".yaml")):
            continue
        doc = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
        category = str((doc.get("categories") or [Path(entry.name).stem])[0])
        out += [(category, c) for c in doc.get("conversations") or [] if isinstance(c, list) and c]
    return out


@_builtin("pydoc", "text", "pretraining", len(pydoc_topics.topics),
          "the standard library's pydoc help topics, one document per topic: columns topic, text "
          "(a corpus for `practicum pretrain`)", "Python's pydoc_data.topics")
def _pydoc() -> Loaded:
    names = sorted(pydoc_topics.topics)
    frame = pd.DataFrame({"topic": names, "text": [pydoc_topics.topics[n] for n in names]})
    return Loaded(Table(frame, "builtin:pydoc"), kind="text")


def _fashion_file(prefix: str) -> Path | None:
    """FASHION_MNIST_DIR/<prefix>-images-idx3-ubyte, plain or .gz, at the top or in a subfolder."""
    for name in (f"{prefix}-images-idx3-ubyte", f"{prefix}-images-idx3-ubyte.gz"):
        if (FASHION_MNIST_DIR / name).is_file():
            return FASHION_MNIST_DIR / name
    if FASHION_MNIST_DIR.is_dir():
        found = sorted(FASHION_MNIST_DIR.rglob(f"{prefix}-images-idx3-ubyte*"))
        return found[0] if found else None
    return None


def _fashion_available() -> bool:
    return _fashion_file("train") is not None and _fashion_file("t10k") is not None


@_builtin("fashion_mnist", "image", "classification", 70000,
          "Fashion-MNIST 28x28 clothing images, 10 classes; official 60k train / 10k test",
          f"Debian package dataset-fashion-mnist ({FASHION_MNIST_DIR})", _fashion_available,
          f"run `apt-get install dataset-fashion-mnist` (IDX files under {FASHION_MNIST_DIR})")
def _fashion_mnist() -> Loaded:
    train_path, test_path = _fashion_file("train"), _fashion_file("t10k")
    if train_path is None or test_path is None:
        raise UserError(
            f"builtin:fashion_mnist: IDX files not found under {FASHION_MNIST_DIR}; "
            "run `apt-get install dataset-fashion-mnist`"
        )
    names = np.array(FASHION_MNIST_CLASSES)
    splits = []
    for path in (train_path, test_path):
        images = read_idx(path)
        if images.labels is None:
            raise UserError(f"{path}: its labels file is missing; reinstall dataset-fashion-mnist")
        images.labels = names[images.labels.astype(np.int64)]
        splits.append(images)
    return Loaded(splits[0], test=splits[1], kind="image")
