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

    # ------------------------------------------------------------ hooks with defaults

    streams = False
    """True when a split's outputs are too large to keep (language models): the Trainer then
    evaluates batch by batch through stream_start / stream_add / stream_result."""

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Turn a raw batch into model inputs and targets (masked LM corrupts tokens here)."""
        return batch

    def batch_loss(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed loss of a prepared batch; tasks with several targets override this."""
        return self.loss(outputs, batch["target"])

    def stream_start(self) -> dict[str, float]:
        raise NotImplementedError

    def stream_add(self, totals: dict[str, float], outputs: Any, batch: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def stream_result(self, totals: dict[str, float]) -> dict[str, Any]:
        raise NotImplementedError
