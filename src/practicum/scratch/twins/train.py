"""PyTorch twin of practicum.scratch.train: the same fit/predict/evaluate/accuracy, taking
NumPy arrays, with autograd doing the backward pass. Same batches for the same seed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from practicum.scratch.train import batches
from practicum.scratch.twins.losses import LOSSES, l2_penalty
from practicum.scratch.twins.optim import SGD, Adam


def make_optimizer(model: nn.Module, name: str, lr: float, momentum: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return SGD(model.parameters(), lr=lr, momentum=momentum)
    if name == "adam":
        return Adam(model.parameters(), lr=lr)
    raise ValueError(f"unknown optimizer {name!r}: use sgd or adam")


def fit(model: nn.Module, X: np.ndarray, y: np.ndarray, *, loss: str = "cross_entropy",
        optimizer: str = "adam", lr: float = 1e-3, epochs: int = 10, batch_size: int = 32,
        momentum: float = 0.0, weight_decay: float = 0.0, seed: int = 0,
        val: tuple[np.ndarray, np.ndarray] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """As practicum.scratch.train.fit, with loss.backward() instead of a written backward."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}: use one of {', '.join(LOSSES)}")
    dtype = next(model.parameters()).dtype
    Xt, yt = _tensor(X, dtype), _target(y, loss, dtype)
    criterion, opt = LOSSES[loss](), make_optimizer(model, optimizer, lr, momentum)
    rng, history = np.random.default_rng(seed), []
    for epoch in range(1, epochs + 1):
        model.train()
        start, total, seen = time.perf_counter(), 0.0, 0
        for idx in batches(len(X), batch_size, rng):
            ix = torch.from_numpy(idx)
            opt.zero_grad()
            batch_loss = criterion(model(Xt[ix]), yt[ix])
            if weight_decay:
                batch_loss = batch_loss + l2_penalty(model, weight_decay)
            batch_loss.backward()
            opt.step()
            total, seen = total + batch_loss.item() * len(idx), seen + len(idx)
        row = {"epoch": epoch, "loss": total / seen, "seconds": time.perf_counter() - start}
        if val is not None:
            row.update(evaluate(model, *val, loss=loss))
        history.append(row)
        if on_epoch:
            on_epoch(row)
    return history


@torch.no_grad()
def predict(model: nn.Module, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    model.eval()
    dtype = next(model.parameters()).dtype
    out = torch.cat([model(_tensor(X[i : i + batch_size], dtype)) for i in range(0, len(X), batch_size)])
    model.train()
    return out.double().numpy()


def evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray, loss: str = "cross_entropy") -> dict[str, float]:
    out = torch.from_numpy(predict(model, X))
    row = {"val_loss": float(LOSSES[loss]()(out, _target(y, loss, torch.float64)))}
    if loss == "cross_entropy":
        row["val_accuracy"] = float((out.argmax(-1).numpy() == y).mean())
    elif loss == "bce":
        row["val_accuracy"] = float(((out.numpy() > 0) == (y > 0.5)).mean())
    return row


def accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predict(model, X).argmax(axis=-1) == y))


def _tensor(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def _target(y: np.ndarray, loss: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y), dtype=torch.long if loss == "cross_entropy" else dtype)
