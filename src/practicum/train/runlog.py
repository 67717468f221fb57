"""Where metrics go: metrics.jsonl (the source of truth), metrics.csv and TensorBoard."""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RunLog:
    """Appends one JSON row per event; mirrors scalars to TensorBoard; rewrites the CSV on flush."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, active: bool = True) -> None:
        """`active=False` (ranks other than 0 of a distributed run) writes nothing; rows() still reads."""
        run_dir.mkdir(parents=True, exist_ok=True)
        self.active = active
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        self.tb_dir = run_dir / "tensorboard"
        self._writer = None
        self._tensorboard = tensorboard

    def truncate_after(self, step: int) -> None:
        """Drop rows a killed run wrote after the checkpoint we resume from."""
        if not self.active:
            return
        rows = [r for r in self.rows() if r.get("step", 0) <= step]
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        if not self.active:
            return
        clean = {k: _plain(v) for k, v in row.items()}
        with self.jsonl.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(clean) + "\n")
        self._scalars(clean)

    def rows(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text(encoding="utf-8").splitlines() if line]

    def flush(self) -> None:
        if not self.active:
            return
        rows = self.rows()
        if rows:
            fields = list(dict.fromkeys(k for r in rows for k in r))
            with self.csv.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _scalars(self, row: dict[str, Any]) -> None:
        if not self._tensorboard:
            return
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a dependency, but stay usable without it
                log.warning("tensorboard is not installed; metrics go to metrics.jsonl only")
                self._tensorboard = False
                return
            self._writer = SummaryWriter(str(self.tb_dir))
        split, step = row.get("split", "train"), int(row.get("step", 0))
        for key, value in row.items():
            if key not in ("split", "step", "epoch") and isinstance(value, (int, float)):
                self._writer.add_scalar(f"{split}/{key}", value, step)


class LossWindow:
    """The training loss and throughput since the last train row. Checkpoints carry its state,
    so a resumed run logs the rows an uninterrupted one does (throughput aside: it is a clock)."""

    def __init__(self) -> None:
        self.loss_sum, self.rows, self.t0 = 0.0, 0, time.perf_counter()

    def add(self, loss_sum: float, rows: int) -> None:
        self.loss_sum += loss_sum
        self.rows += rows

    def take(self) -> tuple[float, float]:
        """(mean loss per row, rows per second) since the last take; starts a new window."""
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        out = (self.loss_sum / max(self.rows, 1), self.rows / elapsed)
        self.loss_sum, self.rows, self.t0 = 0.0, 0, time.perf_counter()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"loss_sum": self.loss_sum, "rows": self.rows, "elapsed_s": time.perf_counter() - self.t0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a saved window; the time between the save and now does not count."""
        self.loss_sum, self.rows = float(state["loss_sum"]), int(state["rows"])
        self.t0 = time.perf_counter() - float(state["elapsed_s"])


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return value
