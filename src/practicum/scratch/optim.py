"""Gradient descent: SGD (with momentum, Nesterov, weight decay) and Adam/AdamW, with the
exact update rules of torch.optim, so the same steps give the same weights."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from practicum.scratch.core import Parameter


class Optimizer:
    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimizer got no parameters")
        self.lr = lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad[...] = 0.0

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """p <- p - lr * v, v <- momentum * v + g (v = g on the first step), as torch.optim.SGD.

    weight_decay adds weight_decay * p to g (L2 regularisation); nesterov uses g + momentum * v.
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        for i, p in enumerate(self.params):
            g = p.grad + self.weight_decay * p.value if self.weight_decay else p.grad
            if self.momentum:
                v = self.velocity[i]
                v = g.copy() if v is None else self.momentum * v + g
                self.velocity[i] = v
                g = g + self.momentum * v if self.nesterov else v
            p.value -= self.lr * g


class Adam(Optimizer):
    """Adam: running means of g and g^2 with bias correction, as torch.optim.Adam.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    weight_decay is L2 (added to g) unless decoupled_weight_decay (AdamW: p <- p (1 - lr wd)).
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False) -> None:
        super().__init__(params, lr)
        self.betas, self.eps = betas, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled_weight_decay
        self.m = [np.zeros_like(p.value) for p in self.params]
        self.v = [np.zeros_like(p.value) for p in self.params]
        self.t = 0

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        correction1, correction2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad
            if self.weight_decay and self.decoupled:
                p.value *= 1.0 - self.lr * self.weight_decay
            elif self.weight_decay:
                g = g + self.weight_decay * p.value
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            denom = np.sqrt(v) / np.sqrt(correction2) + self.eps
            p.value -= (self.lr / correction1) * m / denom


OPTIMIZERS = {"sgd": SGD, "adam": Adam}
