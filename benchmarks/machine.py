"""What machine a benchmark ran on, and how busy other processes kept its CPUs meanwhile.

The development machine is shared, and with torch's default of one thread per core a single
busy neighbour can slow a step several-fold, so every timing is stored beside the CPU time
that other processes used during it (`CpuWatch`). Linux only for the load figures.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

PROC_STAT = Path("/proc/stat")


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, torch version and threads: the header of every result file."""
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _busy_jiffies() -> int | None:
    """CPU time all processes used since boot, in clock ticks (None off Linux)."""
    try:
        fields = [int(v) for v in PROC_STAT.read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


class CpuWatch:
    """Measures, over a `with` block, how many cores' worth of CPU *other* processes used.

    other_cores = (machine busy time - this process's CPU time) / wall time. Near 0 means the
    timing had the machine to itself; 1.0 on a 2-core machine means a neighbour held a core.
    """

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.other_cores: float | None = None

    def __enter__(self) -> CpuWatch:
        self._t0, self._own0, self._busy0 = time.perf_counter(), _own_cpu_s(), _busy_jiffies()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._t0
        busy1 = _busy_jiffies()
        if self._busy0 is None or busy1 is None or self.wall_s <= 0:
            return
        tick = os.sysconf("SC_CLK_TCK")
        others = (busy1 - self._busy0) / tick - (_own_cpu_s() - self._own0)
        self.other_cores = round(max(0.0, others) / self.wall_s, 3)


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system
