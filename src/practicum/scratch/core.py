"""The two ideas every scratch layer is made of: a Parameter (a value and its gradient)
and a Module (forward keeps what backward needs; backward turns dL/d(output) into
dL/d(input) and adds dL/d(parameter) into each Parameter's grad).

Parameter names follow PyTorch's (`weight`, `bias`, `0.weight`, `out_proj.bias`), so a
scratch model's `state_dict()` loads into its PyTorch twin and back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

Array = np.ndarray


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A NumPy generator from a seed, an existing generator (shared, not copied) or None."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class Parameter:
    """A trainable array and the gradient that backward accumulates into it."""

    def __init__(self, value: Array) -> None:
        self.value = np.asarray(value, dtype=np.float64)
        self.grad = np.zeros_like(self.value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.value.shape})"


class Module:
    """Base of every scratch layer and model.

    `forward(*inputs)` computes the output and keeps what `backward` needs;
    `backward(grad_output)` returns the gradient of the loss with respect to the input(s)
    and *adds* the parameters' gradients into `Parameter.grad` (as PyTorch accumulates
    into `.grad`); `zero_grad()` clears them. A backward belongs to the latest forward.
    """

    training: bool = True

    def __call__(self, *inputs: Any) -> Any:
        return self.forward(*inputs)

    def forward(self, *inputs: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad_output: Any) -> Any:
        raise NotImplementedError

    # parameters and submodules, found by walking the attributes in definition order
    def children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}" if name != "layers" else str(i), item

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
        for name, child in self.children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0.0

    def train(self, mode: bool = True) -> Module:
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def state_dict(self) -> dict[str, Array]:
        """Copies of the parameter values, keyed as PyTorch would key them."""
        return {name: p.value.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load arrays (or anything np.asarray takes, e.g. a torch state_dict moved to NumPy)."""
        own = dict(self.named_parameters())
        missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
        if missing or unexpected:
            raise KeyError(f"state_dict mismatch: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        for name, p in own.items():
            value = np.asarray(state[name], dtype=np.float64)
            if value.shape != p.value.shape:
                raise ValueError(f"{name}: expected shape {p.value.shape}, got {value.shape}")
            p.value[...] = value

    def num_parameters(self) -> int:
        return sum(p.value.size for p in self.parameters())


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse."""

    def __init__(self, *layers: Module) -> None:
        self.layers = list(layers)

    def forward(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad_output: Array) -> Array:
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)
