"""PyTorch twins of practicum.scratch.layers: same constructor arguments, same parameter
names, torch's own operators inside."""

from __future__ import annotations

import torch
from torch import nn

from practicum.scratch.twins.seeding import seeded


class Linear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 seed: int | None = None) -> None:
        with seeded(seed):
            super().__init__(in_features, out_features, bias=bias, dtype=torch.float64)


class ReLU(nn.ReLU):
    def __init__(self) -> None:
        super().__init__()


class Tanh(nn.Tanh):
    def __init__(self) -> None:
        super().__init__()


class Sigmoid(nn.Sigmoid):
    def __init__(self) -> None:
        super().__init__()


class Flatten(nn.Flatten):
    """(B, ...) -> (B, prod(...))."""

    def __init__(self) -> None:
        super().__init__()


class GELU(nn.GELU):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__(approximate=approximate)


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "gelu": GELU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class Dropout(nn.Dropout):
    """torch's dropout draws from torch's generator: `seed` seeds it when given."""

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        super().__init__(p)
        if seed is not None:
            torch.manual_seed(seed)


class LayerNorm(nn.LayerNorm):
    def __init__(self, normalized_shape: int, eps: float = 1e-5) -> None:
        super().__init__(normalized_shape, eps=eps, dtype=torch.float64)
