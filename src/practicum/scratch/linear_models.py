"""Linear regression (closed form and gradient descent), logistic and softmax regression.

The models are single Linear layers; what differs is the loss each is trained with
(MSE, binary cross-entropy, softmax cross-entropy), which `fit` picks by name.
"""

from __future__ import annotations

import numpy as np

from practicum.scratch.core import Array, Module
from practicum.scratch.layers import Linear


def linear_regression_closed_form(X: Array, y: Array, l2: float = 0.0) -> tuple[Array, float]:
    """The least-squares weights and bias, exactly: w = (Xc^T Xc + l2 I)^-1 Xc^T yc.

    X and y are centred so the bias is not regularised; solved with lstsq (stable even when
    X^T X is ill-conditioned) when l2 is 0.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x_mean, y_mean = X.mean(axis=0), y.mean()
    Xc, yc = X - x_mean, y - y_mean  # (N, D), (N,)
    if l2 > 0:
        w = np.linalg.solve(Xc.T @ Xc + l2 * np.eye(X.shape[1]), Xc.T @ yc)
    else:
        w = np.linalg.lstsq(Xc, yc, rcond=None)[0]
    return w, float(y_mean - x_mean @ w)


class LinearRegression(Module):
    """y_hat = x w + b, shape (N,); train with loss="mse"."""

    def __init__(self, num_inputs: int, seed: int | np.random.Generator | None = None) -> None:
        self.linear = Linear(num_inputs, 1, seed=seed)

    def forward(self, x: Array) -> Array:
        return self.linear(x)[:, 0]

    def backward(self, grad_output: Array) -> Array:
        return self.linear.backward(grad_output[:, None])


class LogisticRegression(LinearRegression):
    """The logit of P(y = 1 | x), shape (N,); train with loss="bce"."""


class SoftmaxRegression(Module):
    """Class logits (N, C); train with loss="cross_entropy"."""

    def __init__(self, num_inputs: int, num_classes: int,
                 seed: int | np.random.Generator | None = None) -> None:
        self.linear = Linear(num_inputs, num_classes, seed=seed)

    def forward(self, x: Array) -> Array:
        return self.linear(x)

    def backward(self, grad_output: Array) -> Array:
        return self.linear.backward(grad_output)
