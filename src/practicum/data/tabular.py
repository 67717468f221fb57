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
SHOWN_UNSEEN = 5
"""The warning about categories not seen in training names at most this many of them."""


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
        """{"x": (N, F) float32} plus {"x_cat": (N, C) int64} for the embedding encoding.

        Categories not seen in training are encoded as unknown, with one warning per column."""
        n = len(frame)
        parts = [self._numeric(frame, source)]  # (N, n_numeric)
        columns = []
        for col, cats in zip(self.categorical, self.categories, strict=True):
            keys = value_keys(frame[col])
            columns.append(self._indices(keys, cats))
            self._warn_unseen(source, col, _unseen(keys, cats))
        indices = np.stack(columns, axis=1) if columns else np.zeros((n, 0), dtype=np.int64)  # (N, C)
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
    def _indices(keys: list[str | None], cats: list[str]) -> np.ndarray:
        lookup = {c: i + 1 for i, c in enumerate(cats)}
        return np.fromiter((lookup.get(k, 0) for k in keys), dtype=np.int64, count=len(keys))

    def unknown_counts(self, frame: pd.DataFrame) -> dict[str, int]:
        """Per categorical column, how many cells hold a category not seen in training (missing
        cells aside); only columns with some."""
        counts = {col: len(_unseen(value_keys(frame[col]), cats))
                  for col, cats in zip(self.categorical, self.categories, strict=True)}
        return {col: n for col, n in counts.items() if n}

    def _warn_unseen(self, source: str, col: str, unseen: list[str]) -> None:
        if not unseen:
            return
        distinct = list(dict.fromkeys(unseen))
        shown = ", ".join(repr(v) for v in distinct[:SHOWN_UNSEEN])
        more = f" and {len(distinct) - SHOWN_UNSEEN} more" if len(distinct) > SHOWN_UNSEEN else ""
        how = "the embedding's unknown index" if self.encoding == "embedding" else "all zeros in the one-hot"
        log.warning("%s: %s: %d %s not seen in training (%s%s); encoded as unknown (%s)", source, col,
                    len(unseen), "value" if len(unseen) == 1 else "values", shown, more, how)

    def fields(self, order: list[str]) -> list[dict[str, Any]]:
        """Each column of `order` as {"name", "type": numeric | categorical, "example"}: a value
        that reads as typical (the training median, or the first training category)."""
        medians = dict(zip(self.numeric, self.medians, strict=True))
        categories = dict(zip(self.categorical, self.categories, strict=True))
        out: list[dict[str, Any]] = []
        for col in order:
            if col in medians:
                out.append({"name": col, "type": "numeric", "example": float(f"{medians[col]:.6g}")})
            else:
                cats = categories.get(col) or [None]
                out.append({"name": col, "type": "categorical", "example": cats[0]})
        return out

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TabularEncoder:
        return cls(**state)


def _unseen(keys: list[str | None], cats: list[str]) -> list[str]:
    """The keys (one per cell, repeats kept) that are neither missing nor a training category."""
    known = set(cats)
    return [k for k in keys if k is not None and k not in known]
