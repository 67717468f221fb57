"""Training: the one loop, optimizers and schedules, checkpoints, devices."""

from practicum.train.trainer import Trainer, TrainState

__all__ = ["Trainer", "TrainState"]
