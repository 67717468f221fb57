"""Fixtures: small data files generated in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datagen import image_arrays, tabular_frame, text_frame


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
