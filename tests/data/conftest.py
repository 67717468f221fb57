"""Small generated data for the data tests, handed out as fixtures (not imported).

`gen` holds the generator functions (frames, image arrays, IDX files, PNG folders,
configs); `tab_csv`, `text_csv` and `image_npz` are ready-made files in tmp_path.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from practicum.config import DataConfig


def make_config(path: Path | str, **fields: object) -> DataConfig:
    """A DataConfig for `path` with field overrides (nested sections as dicts)."""
    return DataConfig.model_validate({"path": str(path), **fields})


def tabular_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Numeric, categorical and boolean columns, a few missing values, a 3-class label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "height": rng.normal(170, 10, n).round(1),
            "color": rng.choice(["red", "green", "blue"], n),
            "member": rng.choice([True, False], n),
            "label": np.array(["a", "b", "c"])[np.arange(n) % 3],
        }
    )
    if n > 5:
        frame.loc[3, "age"] = np.nan
        frame.loc[5, "color"] = None
    return frame


def text_frame(n: int = 40) -> pd.DataFrame:
    """Free-text sentences with a 2-class sentiment label."""
    good = ["what a great day it is", "i love this nice movie", "such a good and happy time"]
    bad = ["this is a terrible awful film", "i hate the bad weather today", "what a sad and dull story"]
    rows = [(good[i % 3] + f" number {i}", "pos") if i % 2 else (bad[i % 3] + f" number {i}", "neg")
            for i in range(n)]
    return pd.DataFrame(rows, columns=["text", "label"])


def image_arrays(n: int = 30, size: int = 8, channels: int | None = None, seed: int = 0):
    """uint8 images (N, H, W[, C]) and int labels 0..2."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size) if channels is None else (n, size, size, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8), np.arange(n) % 3


def idx_bytes(arr: np.ndarray) -> bytes:
    """An array as IDX bytes: magic (0, 0, dtype code, ndim), big-endian dims, data."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}
    code = codes[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx_pair(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> Path:
    """MNIST-named images + labels IDX files; returns the images path."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    pairs = ((f"{prefix}-images-idx3-ubyte{suffix}", images), (f"{prefix}-labels-idx1-ubyte{suffix}", labels))
    for name, arr in pairs:
        data = idx_bytes(arr)
        (folder / name).write_bytes(gzip.compress(data) if gz else data)
    return folder / pairs[0][0]


def write_png_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (8, 8), mode: str = "L") -> Path:
    """root/CLASS/i.png with random pixels; size is (W, H)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, count in classes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / cls / f"{i}.png")
    return root


@pytest.fixture
def gen() -> SimpleNamespace:
    """The generator functions above, for tests to call."""
    return SimpleNamespace(
        config=make_config, tabular_frame=tabular_frame, text_frame=text_frame,
        image_arrays=image_arrays, idx_bytes=idx_bytes, write_idx_pair=write_idx_pair,
        write_png_folder=write_png_folder,
    )


@pytest.fixture
def tab_csv(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    tabular_frame().to_csv(path, index=False)
    return path


@pytest.fixture
def text_csv(tmp_path: Path) -> Path:
    path = tmp_path / "text.csv"
    text_frame().to_csv(path, index=False)
    return path


@pytest.fixture
def image_npz(tmp_path: Path) -> Path:
    path = tmp_path / "images.npz"
    x, y = image_arrays()
    np.savez(path, x=x, y=y)
    return path
