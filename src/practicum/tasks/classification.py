"""Single-label classification: cross-entropy, class probabilities, sklearn metrics."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from practicum.evaluate.metrics import classification_metrics
from practicum.tasks.base import Task


class ClassificationTask(Task):
    name = "classification"
    default_monitor = "accuracy"

    def __init__(self, label_names: list[str], label_smoothing: float = 0.0) -> None:
        self.label_names = list(label_names)
        self.label_smoothing = label_smoothing

    def num_outputs(self) -> int:
        return len(self.label_names)

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            outputs.float(), target, reduction="sum", label_smoothing=self.label_smoothing
        )

    def metrics(self, outputs: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        proba = torch.softmax(outputs.float(), dim=-1)
        return classification_metrics(
            target.numpy(), proba.argmax(-1).numpy(), proba.numpy(), self.label_names
        )

    def predictions(self, outputs: torch.Tensor) -> list[dict[str, Any]]:
        proba = torch.softmax(outputs.float(), dim=-1)
        conf, index = proba.max(-1)
        return [
            {
                "prediction": self.label_names[i],
                "confidence": round(float(c), 6),
                "probabilities": {n: round(float(p), 6) for n, p in zip(self.label_names, row, strict=True)},
            }
            for i, c, row in zip(index.tolist(), conf, proba, strict=True)
        ]
