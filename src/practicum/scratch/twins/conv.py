"""PyTorch twins of practicum.scratch.conv: same constructor arguments, same parameter names,
torch's own operators inside."""

from __future__ import annotations

import torch
from torch import nn

from practicum.scratch.twins.seeding import seeded

Pair = int | tuple[int, int]


class Conv2d(nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: Pair, stride: Pair = 1,
                 padding: Pair = 0, bias: bool = True, seed: int | None = None) -> None:
        with seeded(seed):
            super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                             bias=bias, dtype=torch.float64)


class MaxPool2d(nn.MaxPool2d):
    def __init__(self, kernel_size: Pair, stride: Pair | None = None) -> None:
        super().__init__(kernel_size, stride=stride)
