"""PyTorch twins of practicum.scratch.losses."""

from __future__ import annotations

import torch
from torch import nn

CrossEntropyLoss, MSELoss, BCEWithLogitsLoss = nn.CrossEntropyLoss, nn.MSELoss, nn.BCEWithLogitsLoss
LOSSES = {"cross_entropy": CrossEntropyLoss, "mse": MSELoss, "bce": BCEWithLogitsLoss}


def l2_penalty(module: nn.Module, weight_decay: float) -> torch.Tensor:
    """(weight_decay / 2) * sum of squared weights (parameters with 2+ axes), for the loss."""
    weights = [p for p in module.parameters() if p.ndim >= 2]
    return 0.5 * weight_decay * sum((p**2).sum() for p in weights)
