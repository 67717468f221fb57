"""Tasks: the objective of a run. A task owns the loss, the metrics and how outputs read."""

from __future__ import annotations

from practicum.registry import Registry
from practicum.tasks.base import Task

TASKS: Registry[type[Task]] = Registry("task")

from practicum.tasks.classification import ClassificationTask  # noqa: E402
from practicum.tasks.language import CausalLMTask, MaskedLMTask, SFTTask  # noqa: E402
from practicum.tasks.regression import RegressionTask  # noqa: E402
from practicum.tasks.tagging import TokenClassificationTask  # noqa: E402

TASKS.register("classification")(ClassificationTask)
TASKS.register("regression")(RegressionTask)
TASKS.register("causal_lm")(CausalLMTask)
TASKS.register("masked_lm")(MaskedLMTask)
TASKS.register("sft")(SFTTask)
TASKS.register("token_classification")(TokenClassificationTask)


def build_task(name: str, **kwargs) -> Task:
    return TASKS.get(name)(**kwargs)


__all__ = [
    "TASKS", "Task", "CausalLMTask", "ClassificationTask", "MaskedLMTask", "RegressionTask", "SFTTask",
    "TokenClassificationTask",
    "build_task",
]
