"""Kill a training run mid-way (as a crash would) and resume it: for exact-resume tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from practicum import api
from practicum.train.trainer import Trainer


class Interrupt(Exception):
    """Raised inside Trainer._step to stop a run the way a kill would."""


def interrupted_then_resumed(cfg: dict[str, Any], step: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    """api.train(cfg) dies when it reaches optimizer step `step`; then the run folder is
    resumed (with torch's RNG disturbed first, so the checkpoint must restore it)."""
    real_step = Trainer._step

    def dying_step(self: Trainer, group: list) -> Any:
        if self.state.step == step:
            raise Interrupt
        return real_step(self, group)

    monkeypatch.setattr(Trainer, "_step", dying_step)
    with pytest.raises(Interrupt):
        api.train(cfg)
    monkeypatch.setattr(Trainer, "_step", real_step)
    torch.manual_seed(999)
    return api.train(cfg, resume=Path(cfg["out_dir"]))
