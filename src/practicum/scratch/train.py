"""Mini-batch training and evaluation of any scratch model: the loop written out.

    model = MLP([64, 128, 10], seed=0)
    history = fit(model, X_train, y_train, optimizer="adam", lr=1e-3, epochs=20,
                  val=(X_val, y_val), on_epoch=print)
    accuracy(model, X_test, y_test)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from practicum.scratch.core import Array, Module
from practicum.scratch.losses import LOSSES, l2_penalty
from practicum.scratch.optim import SGD, Adam, Optimizer


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[Array]:
    """Row indices of each mini-batch: a fresh shuffle per epoch when rng is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def make_optimizer(model: Module, name: str, lr: float, momentum: float) -> Optimizer:
    if name == "sgd":
        return SGD(model.parameters(), lr=lr, momentum=momentum)
    if name == "adam":
        return Adam(model.parameters(), lr=lr)
    raise ValueError(f"unknown optimizer {name!r}: use sgd or adam")


def fit(model: Module, X: Array, y: Array, *, loss: str = "cross_entropy", optimizer: str = "adam",
        lr: float = 1e-3, epochs: int = 10, batch_size: int = 32, momentum: float = 0.0,
        weight_decay: float = 0.0, seed: int = 0, val: tuple[Array, Array] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Train `model` with mini-batch gradient descent; one row of figures per epoch.

    Each step: forward, loss, backward (loss -> model), L2 penalty on the weights
    (`weight_decay`), optimizer step. `loss` is cross_entropy, mse or bce; `optimizer` is
    sgd (with `momentum`) or adam. The batch order comes from `seed`.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}: use one of {', '.join(LOSSES)}")
    criterion, opt, rng = LOSSES[loss](), make_optimizer(model, optimizer, lr, momentum), np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        start, total, seen = time.perf_counter(), 0.0, 0
        for idx in batches(len(X), batch_size, rng):
            opt.zero_grad()
            batch_loss = float(criterion(model(X[idx]), y[idx]))
            model.backward(criterion.backward())
            if weight_decay:
                batch_loss += l2_penalty(model, weight_decay)
            opt.step()
            total, seen = total + batch_loss * len(idx), seen + len(idx)
        row = {"epoch": epoch, "loss": total / seen, "seconds": time.perf_counter() - start}
        if val is not None:
            row.update(evaluate(model, *val, loss=loss))
        history.append(row)
        if on_epoch:
            on_epoch(row)
    return history


def predict(model: Module, X: Array, batch_size: int = 1024) -> Array:
    """The model's outputs in evaluation mode (dropout off), in batches."""
    model.eval()
    out = np.concatenate([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])
    model.train()
    return out


def evaluate(model: Module, X: Array, y: Array, loss: str = "cross_entropy") -> dict[str, float]:
    """val_loss, and val_accuracy for the classification losses."""
    out = predict(model, X)
    row = {"val_loss": float(LOSSES[loss]()(out, y))}
    if loss == "cross_entropy":
        row["val_accuracy"] = float(np.mean(out.argmax(axis=-1) == y))
    elif loss == "bce":
        row["val_accuracy"] = float(np.mean((out > 0) == (y > 0.5)))
    return row


def accuracy(model: Module, X: Array, y: Array) -> float:
    """Share of rows whose highest logit is the target class."""
    return float(np.mean(predict(model, X).argmax(axis=-1) == y))
