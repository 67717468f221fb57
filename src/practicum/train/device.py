"""Device choice (`auto` picks CUDA, then Apple MPS, then the CPU) and feeding batches to it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from practicum.errors import UserError

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"train.device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device is cuda but this machine has no CUDA GPU; use --train.device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"train.device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("train.device is mps but MPS is not available here; use --train.device auto")
    return device


def supports_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


def wants_pinning(setting: str | bool, device: torch.device) -> bool:
    """train.pin_memory: auto pins when training on CUDA; true needs CUDA to be present."""
    if setting == "auto":
        return device.type == "cuda"
    if setting and not torch.cuda.is_available():
        log.warning("train.pin_memory needs CUDA; batches are not pinned")
        return False
    return bool(setting)


class BatchFeeder:
    """An epoch's batches, prepared by `prepare(idx, epoch, batch_index)`: in the caller's thread
    (workers 0) or ahead of time by `workers` threads. Each batch is seeded by its own
    (seed, epoch, batch) generators, so the results do not depend on the order of preparation."""

    def __init__(self, prepare: Callable[[torch.Tensor, int, int], Any], workers: int) -> None:
        self.prepare, self.workers = prepare, workers
        self.pool: Any = None
        self.plan: list[torch.Tensor] = []
        self.pending: dict[tuple[int, int], Future] = {}

    def start(self, plan: list[torch.Tensor], first: int) -> None:
        """A new epoch's plan; batches before `first` were consumed already (resume)."""
        self.plan, self.pending = plan, {}
        if self.workers and self.pool is None:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="practicum-batches")

    def get(self, idx: torch.Tensor, epoch: int, batch_index: int) -> Any:
        if not self.workers:
            return self.prepare(idx, epoch, batch_index)
        ahead = min(len(self.plan), batch_index + 2 * self.workers)
        for b in range(batch_index + 1, ahead):
            if (epoch, b) not in self.pending:
                self.pending[(epoch, b)] = self.pool.submit(self.prepare, self.plan[b], epoch, b)
        future = self.pending.pop((epoch, batch_index), None)
        return future.result() if future is not None else self.prepare(idx, epoch, batch_index)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool, self.pending = None, {}
