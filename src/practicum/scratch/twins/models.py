"""PyTorch twins of practicum.scratch.linear_models and .models (same signatures, same
parameter names)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from practicum.scratch.twins import layers as L
from practicum.scratch.twins.seeding import seeded


class LinearRegression(nn.Module):
    def __init__(self, num_inputs: int, seed: int | None = None) -> None:
        super().__init__()
        self.linear = L.Linear(num_inputs, 1, seed=seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)[:, 0]


class LogisticRegression(LinearRegression):
    pass


class SoftmaxRegression(nn.Module):
    def __init__(self, num_inputs: int, num_classes: int, seed: int | None = None) -> None:
        super().__init__()
        self.linear = L.Linear(num_inputs, num_classes, seed=seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MLP(nn.Sequential):
    def __init__(self, sizes: Sequence[int], activation: str = "relu", dropout: float = 0.0,
                 seed: int | None = None) -> None:
        layers: list[nn.Module] = []
        with seeded(seed):
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
                layers.append(L.Linear(n_in, n_out))
                if i < len(sizes) - 2:
                    layers.append(L.activation(activation))
                    if dropout:
                        layers.append(nn.Dropout(dropout))
        super().__init__(*layers)
