"""The Task interface the Trainer talks to; it never knows which model or data it trains."""

from __future__ import annotations

from typing import Any

import torch


class Task:
    """Loss, predictions and metrics for one kind of objective."""

    name = "task"
    default_monitor = "loss"

    def num_outputs(self) -> int:
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Summed (not averaged) loss over the batch; the Trainer divides by the group size."""
        raise NotImplementedError

    def metrics(self, outputs: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """Full metrics for a split from all its outputs and targets (CPU tensors)."""
        raise NotImplementedError

    def predictions(self, outputs: torch.Tensor) -> list[dict[str, Any]]:
        """One readable record per row: the prediction and its confidence or value."""
        raise NotImplementedError
