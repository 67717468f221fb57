"""A torchrun worker for tests/train/test_distributed.py: `practicum.cli` whose rank KILL_RANK
SIGKILLs itself before optimizer step KILL_AT_STEP (first attempt only), as a crash would."""

from __future__ import annotations

import os
import signal
import sys

import torch

from practicum.cli import main
from practicum.train.trainer import Trainer


def _install_killer() -> None:
    at, rank = int(os.environ.get("KILL_AT_STEP", "0")), int(os.environ.get("KILL_RANK", "1"))
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
    if not at or restarted or int(os.environ.get("RANK", "0")) != rank:
        return
    real_step = Trainer._step

    def dying_step(self: Trainer, group: list) -> tuple[float, int]:
        if self.state.step == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_step(self, group)

    Trainer._step = dying_step  # type: ignore[method-assign]


if __name__ == "__main__":
    torch.set_num_threads(1)
    _install_killer()
    sys.exit(main(sys.argv[1:]))
