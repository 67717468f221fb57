"""PyTorch twins of practicum.scratch.rnn: same constructor arguments, same parameter names
(weight_ih, ..., weight_ih_l0, ...), torch's own recurrent kernels inside."""

from __future__ import annotations

import torch
from torch import nn

from practicum.scratch.twins.seeding import seeded


class RNNCell(nn.RNNCell):
    """forward(x (B, I), h (B, H)) -> h' (B, H)."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 bias: bool = True, seed: int | None = None) -> None:
        with seeded(seed):
            super().__init__(input_size, hidden_size, bias=bias, nonlinearity=nonlinearity,
                             dtype=torch.float64)


class RNN(nn.RNN):
    """Single layer, batch first; h0 is (B, H) as in the scratch RNN (torch wants (1, B, H))."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 bias: bool = True, seed: int | None = None) -> None:
        with seeded(seed):
            super().__init__(input_size, hidden_size, num_layers=1, nonlinearity=nonlinearity,
                             bias=bias, batch_first=True, dtype=torch.float64)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None  # type: ignore[override]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(output (B, T, H), h_n (1, B, H)), as torch.nn.RNN returns them."""
        return super().forward(x, None if h0 is None else h0.unsqueeze(0))
