"""In-memory raw data as read from a file, before any preprocessing.

A `Table` wraps a DataFrame (tabular and text data); an `ImageSet` holds images as
(N, H, W, C) arrays with optional labels. Both keep their source name for error
messages and their original row positions for display ("row 17", "image 17").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from practicum.data.spec import Kind


@dataclass
class Table:
    """Rows of a CSV/JSONL/Parquet file; the frame index keeps the original row numbers."""

    frame: pd.DataFrame
    source: str

    def __len__(self) -> int:
        return len(self.frame)

    def take(self, idx: np.ndarray) -> Table:
        return Table(self.frame.iloc[np.asarray(idx, dtype=np.int64)], self.source)

    def head(self, n: int) -> Table:
        return Table(self.frame.iloc[:n], self.source)

    def display(self) -> list[str]:
        return [f"row {i}" for i in self.frame.index]


@dataclass
class ImageSet:
    """Images (N, H, W, C) in their stored dtype, labels (N,) or None, per-image names or None."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str
    names: list[str] | None = None
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if len(self.index) != len(self.images):
            self.index = np.arange(len(self.images), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def take(self, idx: np.ndarray) -> ImageSet:
        idx = np.asarray(idx, dtype=np.int64)
        return ImageSet(
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            source=self.source,
            names=None if self.names is None else [self.names[i] for i in idx],
            index=self.index[idx],
        )

    def head(self, n: int) -> ImageSet:
        return self.take(np.arange(min(n, len(self))))

    def display(self) -> list[str]:
        if self.names is not None:
            return list(self.names)
        return [f"image {i}" for i in self.index]


RawData = Table | ImageSet


@dataclass
class Loaded:
    """What one source gives: its data, an official test split if it has one, and hints."""

    train: RawData
    test: RawData | None = None
    val: RawData | None = None
    """An official validation split (split JSON files such as CLINC150's)."""
    target: str | None = None
    """The source's own target column (built-in data sets)."""
    kind: Kind | None = None
    """The source's own kind (built-in data sets), used when data.kind is auto."""
