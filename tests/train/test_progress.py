"""Training progress: a bar on a terminal, log lines (every tenth of the run, at least every
30 s) when stderr is a file or a pipe, nothing for "never"."""

from __future__ import annotations

import io
import logging
import re

import pytest

from practicum.train.progress import BarProgress, LineProgress, Progress, duration, make_progress

LINE = re.compile(r"step \d+/\d+  loss \S+  (val_\w+ \S+  )?lr \S+  \S+ steps/s(  eta \w+)?$")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "practicum.train.progress"]


def test_the_kind_follows_the_mode_and_whether_stderr_is_a_terminal():
    assert isinstance(make_progress("auto", 10, 0, io.StringIO()), LineProgress)
    bar = make_progress("auto", 10, 0, Terminal())
    assert isinstance(bar, BarProgress)
    bar.close()
    assert type(make_progress("never", 10, 0, Terminal())) is Progress


def test_a_line_every_tenth_of_the_run_with_loss_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, "practicum.train.progress")
    clock = Clock()
    progress = LineProgress(total=200, initial=0, clock=clock)
    for step in range(1, 201):
        clock.now += 0.5  # 2 steps/s
        if step == 100:
            progress.validated("loss", 0.75)
        progress.step(step, float(step), 1e-3)
    shown = lines(caplog)
    assert [int(s.split()[1].split("/")[0]) for s in shown] == list(range(20, 201, 20))
    assert all(LINE.match(s) for s in shown), shown
    assert shown[1] == "step 40/200  loss 30.5  lr 1.0e-03  2 steps/s  eta 1m20s"  # mean of steps 21..40
    assert shown[4] == "step 100/200  loss 90.5  val_loss 0.75  lr 1.0e-03  2 steps/s  eta 50s"
    assert "eta" not in shown[-1]


def test_slow_steps_still_give_a_line_every_30_seconds(caplog):
    caplog.set_level(logging.INFO, "practicum.train.progress")
    clock = Clock()
    progress = LineProgress(total=1000, initial=0, clock=clock)
    for step in range(1, 21):
        clock.now += 10.0
        progress.step(step, 1.0, 1e-3)
    assert [s.split("  ")[0] for s in lines(caplog)] == ["step 3/1000", "step 6/1000", "step 9/1000",
                                                        "step 12/1000", "step 15/1000", "step 18/1000"]


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0s"), (45, "45s"), (130, "2m10s"), (3725, "1h02m")])
def test_duration(seconds, text):
    assert duration(seconds) == text
