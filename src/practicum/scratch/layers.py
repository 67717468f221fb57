"""Dense layers, activations, dropout and layer norm, each with its backward pass.

Every layer works on inputs of shape (..., features): the leading axes are batch axes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from practicum.scratch.core import Array, Module, Parameter, as_rng


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features) as in torch.nn.Linear.

    Initialised as PyTorch does: W, b ~ U(-1/sqrt(in_features), 1/sqrt(in_features)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 seed: int | np.random.Generator | None = None) -> None:
        rng, bound = as_rng(seed), 1.0 / math.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features)) if bias else None

    def forward(self, x: Array) -> Array:
        self._x = x
        y = x @ self.weight.value.T  # (..., out)
        return y + self.bias.value if self.bias is not None else y

    def backward(self, grad_output: Array) -> Array:
        x2 = self._x.reshape(-1, self._x.shape[-1])  # (N, in)
        g2 = grad_output.reshape(-1, grad_output.shape[-1])  # (N, out)
        self.weight.grad += g2.T @ x2
        if self.bias is not None:
            self.bias.grad += g2.sum(axis=0)
        return grad_output @ self.weight.value


class ReLU(Module):
    def forward(self, x: Array) -> Array:
        self._mask = x > 0
        return np.where(self._mask, x, 0.0)

    def backward(self, grad_output: Array) -> Array:
        return np.where(self._mask, grad_output, 0.0)


class Tanh(Module):
    def forward(self, x: Array) -> Array:
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad_output: Array) -> Array:
        return grad_output * (1.0 - self._y**2)


def sigmoid(x: Array) -> Array:
    """1 / (1 + e^-x) without overflow for large |x|."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


class Sigmoid(Module):
    def forward(self, x: Array) -> Array:
        self._y = sigmoid(x)
        return self._y

    def backward(self, grad_output: Array) -> Array:
        return grad_output * self._y * (1.0 - self._y)


class GELU(Module):
    """x * Phi(x), Phi the standard normal CDF; `approximate="tanh"` is GPT-2's version."""

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Array) -> Array:
        self._x = x
        if self.approximate == "tanh":
            self._t = np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))
            return 0.5 * x * (1.0 + self._t)
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))

    def backward(self, grad_output: Array) -> Array:
        x = self._x
        if self.approximate == "tanh":
            t = self._t
            dinner = math.sqrt(2.0 / math.pi) * (1.0 + 3 * 0.044715 * x**2)
            return grad_output * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * dinner)
        cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)
        return grad_output * (cdf + x * pdf)


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "gelu": GELU}


def activation(name: str) -> Module:
    """An activation layer by name (relu, tanh, sigmoid, gelu)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class Dropout(Module):
    """Inverted dropout: in training, zero each value with probability p and scale the rest
    by 1/(1-p), so evaluation (identity) needs no rescaling."""

    def __init__(self, p: float = 0.5, seed: int | np.random.Generator | None = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p, self.rng = p, as_rng(seed)

    def forward(self, x: Array) -> Array:
        if not self.training or self.p == 0.0:
            self._scale = None
            return x
        self._scale = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)
        return x * self._scale

    def backward(self, grad_output: Array) -> Array:
        return grad_output if self._scale is None else grad_output * self._scale


class Flatten(Module):
    """(B, ...) -> (B, prod(...))."""

    def forward(self, x: Array) -> Array:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_output: Array) -> Array:
        return grad_output.reshape(self._shape)


class LayerNorm(Module):
    """Normalise the last axis to zero mean and unit variance, then scale and shift:
    y = (x - mean) / sqrt(var + eps) * weight + bias (biased variance, as torch.nn.LayerNorm)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5) -> None:
        self.eps = eps
        self.weight = Parameter(np.ones(normalized_shape))
        self.bias = Parameter(np.zeros(normalized_shape))

    def forward(self, x: Array) -> Array:
        mean = x.mean(axis=-1, keepdims=True)
        self._inv_std = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + self.eps)  # (..., 1)
        self._xhat = (x - mean) * self._inv_std
        return self._xhat * self.weight.value + self.bias.value

    def backward(self, grad_output: Array) -> Array:
        xhat, n = self._xhat, self._xhat.shape[-1]
        lead = tuple(range(grad_output.ndim - 1))
        self.weight.grad += (grad_output * xhat).sum(axis=lead)
        self.bias.grad += grad_output.sum(axis=lead)
        g = grad_output * self.weight.value  # dL/dxhat
        # dL/dx = (1/std) * (g - mean(g) - xhat * mean(g * xhat))
        return self._inv_std * (g - g.mean(-1, keepdims=True)
                                - xhat * (g * xhat).sum(-1, keepdims=True) / n)
