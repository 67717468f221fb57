"""Losses with their gradients, and L2 regularisation.

A loss is a Module whose forward returns the mean loss (a 0-d array) and whose backward
returns d(loss)/d(prediction); the targets get no gradient.
"""

from __future__ import annotations

import numpy as np

from practicum.scratch.core import Array, Module
from practicum.scratch.layers import sigmoid


def log_softmax(logits: Array) -> Array:
    """log(softmax(logits)) over the last axis, stable for large logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class CrossEntropyLoss(Module):
    """Softmax cross-entropy of logits (N, C) against integer class targets (N,), mean over N.

    Its gradient is the classic (softmax(logits) - one_hot(target)) / N.
    """

    def forward(self, logits: Array, target: Array) -> Array:
        target = np.asarray(target, dtype=np.int64)
        logp = log_softmax(logits)  # (N, C)
        self._probs, self._target = np.exp(logp), target
        return -logp[np.arange(len(target)), target].mean()

    def backward(self, grad_output: Array | float = 1.0) -> Array:
        n = len(self._target)
        grad = self._probs.copy()
        grad[np.arange(n), self._target] -= 1.0
        return grad * (np.asarray(grad_output) / n)


class MSELoss(Module):
    """Mean squared error over every element."""

    def forward(self, prediction: Array, target: Array) -> Array:
        self._diff = prediction - np.asarray(target, dtype=np.float64)
        return (self._diff**2).mean()

    def backward(self, grad_output: Array | float = 1.0) -> Array:
        return 2.0 * self._diff / self._diff.size * np.asarray(grad_output)


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy of logits against 0/1 targets: mean(log(1 + e^x) - t x),
    computed without overflow; the gradient is (sigmoid(x) - t) / N."""

    def forward(self, logits: Array, target: Array) -> Array:
        self._x, self._t = logits, np.asarray(target, dtype=np.float64)
        softplus = np.maximum(logits, 0.0) + np.log1p(np.exp(-np.abs(logits)))
        return (softplus - self._t * logits).mean()

    def backward(self, grad_output: Array | float = 1.0) -> Array:
        return (sigmoid(self._x) - self._t) / self._x.size * np.asarray(grad_output)


LOSSES = {"cross_entropy": CrossEntropyLoss, "mse": MSELoss, "bce": BCEWithLogitsLoss}


def l2_penalty(module: Module, weight_decay: float) -> float:
    """(weight_decay / 2) * sum of squared weights, and its gradient weight_decay * W added
    into each weight's grad. Biases and norm parameters (1-d) are not penalised."""
    total = 0.0
    for _, p in module.named_parameters():
        if p.value.ndim >= 2:
            total += 0.5 * weight_decay * float(np.sum(p.value**2))
            p.grad += weight_decay * p.value
    return total
