"""Models assembled from scratch layers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from practicum.scratch import layers as L
from practicum.scratch.core import Module, Sequential, as_rng


class MLP(Sequential):
    """Linear -> activation (-> dropout) for every hidden size, then a final Linear.

    MLP([64, 128, 10]) maps 64 inputs through 128 hidden units to 10 logits. Parameters are
    named like torch.nn.Sequential's ("0.weight", "2.bias", ...).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", dropout: float = 0.0,
                 seed: int | np.random.Generator | None = None) -> None:
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least an input and an output size, got {list(sizes)}")
        rng = as_rng(seed)
        layers: list[Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(L.Linear(n_in, n_out, seed=rng))
            if i < len(sizes) - 2:
                layers.append(L.activation(activation))
                if dropout:
                    layers.append(L.Dropout(dropout, seed=rng))
        super().__init__(*layers)
