"""What a training run shows while it runs: a tqdm bar on a terminal, log lines elsewhere.

    progress = make_progress("auto", total=2000, initial=0)
    progress.epoch(1, 3); progress.step(200, loss, lr); progress.trained(loss, samples_per_s)
    progress.validated("accuracy", 0.93); progress.close()

Output piped into a file or a CI log gets a line (logging, INFO) every tenth of the run and
at least every LINE_EVERY_S seconds:

    step 200/2000  loss 1.93  lr 1.0e-03  12.3 steps/s  eta 2m26s
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

log = logging.getLogger(__name__)

LINE_EVERY_S = 30.0
"""Longest wait between two progress lines (a step that ends later than this prints one)."""


class Progress:
    """Shows nothing (progress "never", and every rank but the first)."""

    def epoch(self, epoch: int, epochs: int) -> None:
        """Epoch `epoch` (from 1) of `epochs` begins."""

    def step(self, step: int, loss: float, lr: float) -> None:
        """Optimizer step `step` is done and logged (its validation, if any, follows);
        loss: its mean loss."""

    def trained(self, loss: float, samples_per_s: float) -> None:
        """The training loss and throughput since the last log (every train.log_every steps)."""

    def validated(self, monitor: str, value: float) -> None:
        """A validation ended with `value` on the monitored metric."""

    def close(self) -> None:
        """The run ended (or failed)."""

    def state_dict(self) -> dict[str, Any]:
        """What the next lines depend on besides the clock (checkpoints carry it)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's `state_dict()`."""


class BarProgress(Progress):
    """A tqdm bar with the epoch, the latest loss and the latest validation value."""

    def __init__(self, total: int, initial: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=False)

    def epoch(self, epoch: int, epochs: int) -> None:
        self.bar.set_description(f"epoch {epoch}/{epochs}", refresh=False)

    def step(self, step: int, loss: float, lr: float) -> None:
        self.bar.update(step - self.bar.n)

    def trained(self, loss: float, samples_per_s: float) -> None:
        self._postfix(f"loss={loss:.4g} ({samples_per_s:,.0f} samples/s)")

    def validated(self, monitor: str, value: float) -> None:
        self._postfix(f"val_{monitor}={value:.4g}")

    def close(self) -> None:
        self.bar.close()

    def _postfix(self, part: str) -> None:
        """Keep the latest loss and validation parts side by side."""
        key = part.split("=", 1)[0]
        old = [p for p in (self.bar.postfix or "").split(", ") if p and not p.startswith(key)]
        self.bar.set_postfix_str(", ".join([*old, part]), refresh=False)


class LineProgress(Progress):
    """One log line every tenth of the run, and at least every `every_s` seconds."""

    def __init__(self, total: int, initial: int, every_s: float = LINE_EVERY_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.total, self.every, self.every_s, self.clock = total, max(1, math.ceil(total / 10)), every_s, clock
        self.first_step, self.t0 = initial, clock()
        self.last_step, self.last_t = initial, self.t0
        self.losses: list[float] = []  # of the steps since the last line
        self.val: str | None = None

    def step(self, step: int, loss: float, lr: float) -> None:
        self.losses.append(loss)
        now = self.clock()
        if step % self.every and step != self.total and now - self.last_t < self.every_s:
            return
        log.info(self.line(step, lr, now))
        self.last_step, self.last_t, self.losses = step, now, []

    def validated(self, monitor: str, value: float) -> None:
        self.val = f"val_{monitor} {value:.4g}"

    def state_dict(self) -> dict[str, Any]:
        return {"losses": list(self.losses), "val": self.val}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses, self.val = [float(x) for x in state.get("losses", [])], state.get("val")

    def line(self, step: int, lr: float, now: float) -> str:
        """`step 200/2000  loss 1.93  lr 1.0e-03  12.3 steps/s  eta 2m26s`: the mean training
        loss and the rate since the last line, the eta from the rate since this run started
        (validation included)."""
        recent = (step - self.last_step) / max(now - self.last_t, 1e-9)
        overall = (step - self.first_step) / max(now - self.t0, 1e-9)
        parts = [f"step {step}/{self.total}", f"loss {sum(self.losses) / max(len(self.losses), 1):.4g}"]
        if self.val is not None:
            parts.append(self.val)
        parts += [f"lr {lr:.1e}", f"{recent:.3g} steps/s"]
        if step < self.total and overall > 0:
            parts.append(f"eta {duration((self.total - step) / overall)}")
        return "  ".join(parts)


def duration(seconds: float) -> str:
    """1h02m, 2m10s, 45s."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def make_progress(mode: str, total: int, initial: int, stream: TextIO | None = None) -> Progress:
    """mode "always": a bar; "never": nothing; "auto": a bar when `stream` (stderr, where
    both go) is a terminal, log lines when it is a file or a pipe."""
    if mode == "never":
        return Progress()
    terminal = (stream or sys.stderr).isatty()
    if mode == "always" or terminal:
        return BarProgress(total, initial)
    return LineProgress(total, initial)
