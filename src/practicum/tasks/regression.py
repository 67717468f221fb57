"""Scalar regression on a standardised target; metrics in the original units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from practicum.evaluate.metrics import regression_metrics
from practicum.tasks.base import Task


class RegressionTask(Task):
    name = "regression"
    default_monitor = "loss"

    def __init__(self, decode: Callable[[torch.Tensor], list[float]]) -> None:
        self.decode = decode  # standardised values -> original units (from the preprocessor)

    def num_outputs(self) -> int:
        return 1

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.float().squeeze(-1), target.float(), reduction="sum")

    def metrics(self, outputs: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        pred = self.decode(outputs.float().squeeze(-1))
        true = self.decode(target.float())
        return regression_metrics(torch.tensor(true).numpy(), torch.tensor(pred).numpy())

    def predictions(self, outputs: torch.Tensor) -> list[dict[str, Any]]:
        return [{"prediction": float(v)} for v in self.decode(outputs.float().squeeze(-1))]
