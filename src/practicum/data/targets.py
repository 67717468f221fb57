"""Targets: a label map for classification, standardisation for regression (fitted on train)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from practicum.data.columns import numeric_values, sort_labels, value_keys
from practicum.errors import UserError


@dataclass
class TargetEncoder:
    task: str
    labels: list[str] | None = None
    """Classification: index -> label string (sorted; numeric labels in numeric order)."""
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, values: pd.Series | np.ndarray, task: str, source: str) -> TargetEncoder:
        series = pd.Series(values)
        if task == "classification":
            labels = sort_labels(k for k in value_keys(series) if k is not None)
            if len(labels) < 2:
                raise UserError(
                    f"{source}: the training target has {len(labels)} class(es) "
                    f"({', '.join(labels) or 'none'}); classification needs at least 2"
                )
            return cls(task, labels)
        y = regression_values(series, source)
        std = float(y.std())
        return cls(task, None, float(y.mean()), std if std > 0 else 1.0)

    def encode(self, values: pd.Series | np.ndarray, source: str) -> torch.Tensor:
        """Class indices (N,) int64, or standardised values (N,) float32."""
        series = pd.Series(values)
        if self.task == "regression":
            y = (regression_values(series, source) - self.mean) / self.std
            return torch.from_numpy(y.astype(np.float32))
        index = {label: i for i, label in enumerate(self.labels or [])}
        keys = value_keys(series)
        out = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            if key not in index:
                what = "a missing label" if key is None else f"label {key!r}"
                raise UserError(
                    f"{source}: {what} (row {series.index[i]}) does not occur in the training "
                    "data; remove those rows or add examples of it to the training data"
                )
            out[i] = index[key]
        return torch.from_numpy(out)

    def decode(self, values: torch.Tensor) -> list[Any]:
        """Class indices -> label strings; standardised values -> floats in original units."""
        flat = values.detach().cpu().reshape(-1)
        if self.task == "classification":
            labels = self.labels or []
            return [labels[int(i)] for i in flat.tolist()]
        return [float(v) * self.std + self.mean for v in flat.double().tolist()]

    def raw(self, values: pd.Series | np.ndarray) -> list[Any]:
        """Target values as the user wrote them: label strings or floats."""
        series = pd.Series(values)
        if self.task == "classification":
            return value_keys(series)
        return [float(v) for v in pd.to_numeric(series, errors="coerce")]

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TargetEncoder:
        return cls(**state)


def regression_values(series: pd.Series, source: str) -> np.ndarray:
    """Float64 target values; a non-number is a UserError naming its row."""
    return numeric_values(series, source, "target", "fix it or set task.type classification")
