"""MNIST IDX files: header parsing, gzip or plain, labels found by the standard naming."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from practicum.config import TaskConfig
from practicum.data import load_data
from practicum.data.formats import detect_format
from practicum.data.idx import labels_path_for, read_idx, read_idx_array
from practicum.errors import UserError


@pytest.mark.parametrize("gz", [True, False])
def test_idx_pair(gen: SimpleNamespace, tmp_path: Path, gz: bool) -> None:
    images = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    labels = np.array([0, 1, 2, 1, 0], dtype=np.uint8)
    path = gen.write_idx_pair(tmp_path, "train", images, labels, gz=gz)
    assert detect_format(path) == "idx"
    data = read_idx(path)
    assert data.images.shape == (5, 4, 3, 1)
    assert np.array_equal(data.images[..., 0], images)
    assert data.labels is not None and data.labels.tolist() == labels.tolist()


def test_labels_found_plain_beside_gz(tmp_path: Path) -> None:
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    images.touch()
    (tmp_path / "t10k-labels-idx1-ubyte").touch()
    assert labels_path_for(images) == tmp_path / "t10k-labels-idx1-ubyte"
    assert labels_path_for(tmp_path / "other.idx") is None


def test_big_endian_types(gen: SimpleNamespace, tmp_path: Path) -> None:
    arr = np.array([[1.5, -2.0], [3.25, 4.0]], dtype=np.float32)
    (tmp_path / "f.idx").write_bytes(gen.idx_bytes(arr))
    assert np.array_equal(read_idx_array(tmp_path / "f.idx"), arr)
    ints = np.array([70000, -3], dtype=np.int32)
    (tmp_path / "i.idx").write_bytes(gen.idx_bytes(ints))
    assert read_idx_array(tmp_path / "i.idx").tolist() == [70000, -3]


def test_truncated_idx_is_a_user_error(gen: SimpleNamespace, tmp_path: Path) -> None:
    data = gen.idx_bytes(np.zeros((4, 3, 3), dtype=np.uint8))
    (tmp_path / "x-images-idx3-ubyte").write_bytes(data[:-5])
    with pytest.raises(UserError, match="too short"):
        read_idx_array(tmp_path / "x-images-idx3-ubyte")


def test_idx_with_test_path(gen: SimpleNamespace, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train = gen.write_idx_pair(tmp_path, "train", rng.integers(0, 255, (40, 6, 6), dtype=np.uint8),
                           np.arange(40, dtype=np.uint8) % 4, gz=True)
    test = gen.write_idx_pair(tmp_path, "t10k", rng.integers(0, 255, (12, 6, 6), dtype=np.uint8),
                          np.arange(12, dtype=np.uint8) % 4, gz=False)
    splits = load_data(gen.config(train, test_path=str(test)), TaskConfig())
    assert splits.test is not None and splits.test["image"].shape == (12, 1, 6, 6)
    assert splits.train["image"].shape[0] + splits.val["image"].shape[0] == 40
