"""What the model needs to know about its inputs, and the splits `load_data` returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch

if TYPE_CHECKING:
    from practicum.data.preprocess import Preprocessor

Kind = Literal["tabular", "text", "image"]
Task = Literal["classification", "regression"]
Batch = dict[str, torch.Tensor]


@dataclass
class InputSpec:
    """Shapes and sizes of the model inputs, fixed by the preprocessor at fit time."""

    kind: Kind
    num_features: int = 0
    """Tabular: width of the dense "x" (standardised numerics + one-hot categoricals)."""
    cat_cardinalities: list[int] = field(default_factory=list)
    """Tabular, embedding encoding: categories per column, index 0 (unknown) included."""
    vocab_size: int = 0
    """Text: vocabulary size, specials included."""
    max_length: int = 0
    """Text: tokens per example (T of "tokens")."""
    pad_id: int = 0
    """Text: the padding token id."""
    image_shape: tuple[int, int, int] | None = None
    """Image: (C, H, W)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["image_shape"] = list(self.image_shape) if self.image_shape else None
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        d = dict(d)
        shape = d.get("image_shape")
        d["image_shape"] = tuple(shape) if shape else None
        d["cat_cardinalities"] = list(d.get("cat_cardinalities") or [])
        return cls(**d)


@dataclass
class DataSplits:
    """Tensors of every split plus the fitted preprocessor that made them."""

    train: Batch
    val: Batch
    test: Batch | None
    preprocessor: Preprocessor
    spec: InputSpec
    task: Task
    label_names: list[str] | None
    """Classification: class index -> label string."""
    test_display: list[str] | None
    """One short human string per test row, for sample predictions."""
    leakage: dict | None = None
    """Fine-tuning runs: the train vs val/test overlap report (practicum.data.leakage)."""
