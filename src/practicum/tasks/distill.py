"""Knowledge distillation as a task: a student learns the hard labels and a teacher's softened
outputs at once (Hinton, Vinyals and Dean, 2015).

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * hard loss

`DistillationTask` wraps the student's own task (classification, causal LM): the Trainer calls
`batch_loss(outputs, batch)` with the whole prepared batch, so the teacher (eval mode, no
gradients, same device) scores the very inputs the student just saw, inside the training step.
Everything else (validation loss and metrics, predictions, collation) is the inner task's, so
validation reports the student's plain task loss, comparable with the teacher's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from practicum.data.lm import IGNORE_INDEX
from practicum.tasks.base import Task


def softened_kl(student: Tensor, teacher: Tensor, temperature: float,
                keep: Tensor | None = None) -> Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over rows (logits (N, K))
    or over the kept positions (logits (B, T, V), keep (B, T) bool); 0 when nothing is kept.

    The T^2 keeps the soft term's gradients on the scale of the hard loss's as T changes.
    """
    log_q = F.log_softmax(student.float() / temperature, dim=-1)  # (..., K) student
    log_p = F.log_softmax(teacher.float() / temperature, dim=-1)  # (..., K) teacher
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # (N,) or (B, T)
    if keep is not None:
        kl = kl[keep]
    if kl.numel() == 0:
        return student.float().sum() * 0.0  # keeps the graph; nothing to learn from
    return kl.mean() * temperature**2


def model_inputs(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """A model's keyword arguments: every key of the batch but the targets."""
    return {k: v for k, v in batch.items() if k != "target" and not k.endswith("_target")}


def target_positions(outputs: Tensor, target: Tensor) -> Tensor | None:
    """Positions the task's loss covers: None (every row) for per-row logits (N, K); for
    per-token logits (B, T, V) the positions whose target is not IGNORE_INDEX, (B, T) bool."""
    if outputs.dim() == 2:
        return None
    return target != IGNORE_INDEX


class DistillationTask(Task):
    """The inner task's objective mixed with a teacher's softened outputs; see the module doc."""

    name = "distillation"

    def __init__(self, inner: Task, teacher: nn.Module, temperature: float = 2.0,
                 alpha: float = 0.5) -> None:
        self.inner, self.teacher = inner, teacher.eval()
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.default_monitor = inner.default_monitor
        self.streams = inner.streams

    def __getattr__(self, name: str) -> Any:
        """Anything else (label_names, token_bytes, ...) is the inner task's."""
        if name == "inner":  # not set yet: no recursion while unpickling or copying
            raise AttributeError(name)
        return getattr(self.inner, name)

    def num_outputs(self) -> int:
        return self.inner.num_outputs()

    def loss(self, outputs: Any, target: Tensor) -> Tensor:
        """The hard loss alone (validation and test report it, as for any run of the task)."""
        return self.inner.loss(outputs, target)

    def batch_loss(self, outputs: Any, batch: dict[str, Tensor]) -> Tensor:
        """Summed over rows like every task's loss: alpha * soft + (1 - alpha) * hard."""
        hard = self.inner.batch_loss(outputs, batch)
        if self.alpha == 0.0:
            return hard
        self.teacher.eval()
        with torch.no_grad():
            teacher_out = self.teacher(**model_inputs(batch))
        if teacher_out.shape != outputs.shape:
            raise ValueError(f"teacher outputs {tuple(teacher_out.shape)} and student outputs "
                             f"{tuple(outputs.shape)} differ; they must score the same classes/vocabulary")
        keep = target_positions(outputs, batch["target"])
        soft = softened_kl(outputs, teacher_out, self.temperature, keep) * batch["target"].size(0)
        return self.alpha * soft + (1.0 - self.alpha) * hard

    def metrics(self, outputs: Any, target: Tensor) -> dict[str, Any]:
        return self.inner.metrics(outputs, target)

    def predictions(self, outputs: Tensor) -> list[dict[str, Any]]:
        return self.inner.predictions(outputs)

    def prepare(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        return self.inner.prepare(batch, generator)

    def stream_start(self) -> dict[str, float]:
        return self.inner.stream_start()

    def stream_add(self, totals: dict[str, float], outputs: Any, batch: dict[str, Tensor]) -> None:
        self.inner.stream_add(totals, outputs, batch)

    def stream_result(self, totals: dict[str, float]) -> dict[str, Any]:
        return self.inner.stream_result(totals)
