"""Tabular features: numeric columns imputed and standardised, categoricals one-hot or indexed.

Fitted on the training split only. One-hot gives unknown categories all zeros; the
embedding encoding gives them index 0 (so cardinalities count index 0).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from practicum.data.columns import column_type, numeric_values, sort_labels, value_keys

log = logging.getLogger(__name__)

HIGH_CARDINALITY = 100
"""A categorical with more training categories than this gets a warning."""


@dataclass
class TabularEncoder:
    numeric: list[str]
    medians: list[float]
    means: list[float]
    stds: list[float]
    categorical: list[str]
    categories: list[list[str]]
    encoding: str

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        features: list[str],
        categorical: list[str] | None,
        encoding: str,
        normalize: bool,
    ) -> TabularEncoder:
        """Statistics of the training frame: medians, means, stds and sorted categories."""
        listed = set(categorical or [])
        cat_cols = [c for c in features if c in listed or column_type(frame[c]) != "numeric"]
        num_cols = [c for c in features if c not in cat_cols]
        medians, means, stds = [], [], []
        for col in num_cols:
            values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
            median = float(np.nanmedian(values)) if np.isfinite(values).any() else 0.0
            filled = np.where(np.isnan(values), median, values)
            mean, std = (float(filled.mean()), float(filled.std())) if normalize else (0.0, 1.0)
            medians.append(median)
            means.append(mean)
            stds.append(std if std > 0 else 1.0)
        cats = []
        for col in cat_cols:
            keys = [k for k in value_keys(frame[col]) if k is not None]
            cats.append(sort_labels(keys))
            if len(cats[-1]) > HIGH_CARDINALITY:
                log.warning("column %r has %d categories; is it an ID or free text?", col, len(cats[-1]))
        return cls(num_cols, medians, means, stds, cat_cols, cats, encoding)

    @property
    def num_features(self) -> int:
        """Width of the dense "x"."""
        if self.encoding == "embedding":
            return len(self.numeric)
        return len(self.numeric) + sum(len(c) for c in self.categories)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding sizes per categorical column, index 0 (unknown) included."""
        return [len(c) + 1 for c in self.categories] if self.encoding == "embedding" else []

    def transform(self, frame: pd.DataFrame, source: str) -> dict[str, torch.Tensor]:
        """{"x": (N, F) float32} plus {"x_cat": (N, C) int64} for the embedding encoding."""
        n = len(frame)
        parts = [self._numeric(frame, source)]  # (N, n_numeric)
        indices = np.stack(
            [self._indices(frame[c], cats) for c, cats in zip(self.categorical, self.categories, strict=True)],
            axis=1,
        ) if self.categorical else np.zeros((n, 0), dtype=np.int64)  # (N, C)
        if self.encoding == "embedding":
            x = np.concatenate(parts, axis=1)
            return {"x": torch.from_numpy(x.astype(np.float32)), "x_cat": torch.from_numpy(indices)}
        for j, cats in enumerate(self.categories):
            onehot = np.zeros((n, len(cats) + 1), dtype=np.float64)
            onehot[np.arange(n), indices[:, j]] = 1.0
            parts.append(onehot[:, 1:])  # drop the unknown slot: unknown -> all zeros
        x = np.concatenate(parts, axis=1)
        return {"x": torch.from_numpy(x.astype(np.float32))}

    def _numeric(self, frame: pd.DataFrame, source: str) -> np.ndarray:
        out = np.zeros((len(frame), len(self.numeric)), dtype=np.float64)
        for j, col in enumerate(self.numeric):
            values = numeric_values(frame[col], source, f"column {col!r}",
                                    "fix the value or leave it empty")
            values = np.where(np.isnan(values), self.medians[j], values)
            out[:, j] = (values - self.means[j]) / self.stds[j]
        return out

    @staticmethod
    def _indices(series: pd.Series, cats: list[str]) -> np.ndarray:
        lookup = {c: i + 1 for i, c in enumerate(cats)}
        return np.fromiter(
            (lookup.get(k, 0) for k in value_keys(series)), dtype=np.int64, count=len(series)
        )

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TabularEncoder:
        return cls(**state)
