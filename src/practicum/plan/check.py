"""What a real run measures, to check the planner against: peak memory and mean step time.

"Measured peak" on a CPU (which has no allocator statistics) is the sum of what a training step
holds at its peak, each part read from the real run rather than computed: the bytes of the
model's parameters and buffers, of the gradients present when the optimizer steps, of the
optimizer's state tensors after the run, and the most bytes of distinct non-parameter tensors
autograd saved for backward in any one training forward (saved_tensors_hooks over the whole
run). Allocator slack and short-lived temporaries are not in it, so it is compared with the
plan's peak without its overhead. On CUDA it is torch.cuda.max_memory_allocated, compared
with the full planned peak.

Padded text is planned at its widest micro-batch (the rows with the most tokens), the peak a
whole run meets; a short run may not draw that batch, so check such recipes with enough steps.
Fixed-width data (tables, images, LM token windows) has no such gap.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from practicum.config import RunConfig
from practicum.plan.memory import real_optimizer_bytes, tensor_bytes
from practicum.plan.run import build_setup

WARMUP = 2
"""Steps of the measured run left out of its mean step time."""


def measure_run(cfg: RunConfig, steps: int = 20, device: str | None = None) -> dict[str, Any]:
    """Train `cfg` for `steps` optimizer steps with the real Trainer (no validation) and return
    the measured memory parts, peak, and step time: the median of the Trainer's own steps after
    WARMUP (the mean beside it; a step slowed by another process moves the mean, not the median)."""
    from practicum.train.trainer import Trainer

    update: dict[str, Any] = {"max_steps": steps, "progress": "never", "tensorboard": False,
                              "eval_every": None, "patience": None}
    if device:
        update["device"] = device
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=update)})
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    with tempfile.TemporaryDirectory(prefix="practicum-plan-check-") as tmp:
        model, task, train, augment = build_setup(cfg, Path(tmp))
        trainer = Trainer(cfg.train, model, task, train, None, Path(tmp) / "run", augment=augment)
        probe = _Probe(trainer)
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(trainer.device)
        with torch.autograd.graph.saved_tensors_hooks(probe.pack, lambda t: t):
            trainer.fit()
        parts = {
            "weights": tensor_bytes([*model.parameters(), *model.buffers()]),
            "gradients": probe.grad_bytes,
            "optimizer": real_optimizer_bytes(trainer.optimizer),
            "activations": probe.max_saved,
        }
        out: dict[str, Any] = {"memory": parts, "peak": sum(parts.values()), "steps": len(probe.times)}
        if trainer.device.type == "cuda":
            out["peak"] = int(torch.cuda.max_memory_allocated(trainer.device))
        timed = probe.times[WARMUP:] or probe.times
        out["step_time_s"] = statistics.median(timed)
        out["step_time_mean_s"] = sum(timed) / len(timed)
        out["device"] = str(trainer.device)
    return out


class _Probe:
    """Hooks on one Trainer: saved-tensor bytes per forward, gradient bytes, step times."""

    def __init__(self, trainer: Any) -> None:
        model = trainer.model
        self.skip = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
        self.saved: dict[int, int] = {}
        self.max_saved = 0
        self.grad_bytes = 0
        self.times: list[float] = []
        model.register_forward_pre_hook(self._new_forward)
        trainer.optimizer.register_step_pre_hook(self._on_step)
        step = trainer._step

        def timed(group: list[torch.Tensor]) -> tuple[float, int]:
            _sync(trainer.device)
            t0 = time.perf_counter()
            result = step(group)
            _sync(trainer.device)
            self.times.append(time.perf_counter() - t0)
            return result

        trainer._step = timed

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self.skip:
            self.saved[storage.data_ptr()] = storage.nbytes()
            self.max_saved = max(self.max_saved, sum(self.saved.values()))
        return t

    def _new_forward(self, module: Any, args: Any) -> None:
        self.saved = {}

    def _on_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        self.grad_bytes = max(self.grad_bytes, tensor_bytes(grads))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
