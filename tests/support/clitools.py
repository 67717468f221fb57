"""Helpers for end-to-end tests: run the real CLI; where the recipes and shared data are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
PRACTICUM = [sys.executable, "-m", "practicum.cli"]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `practicum` command in a fresh process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*PRACTICUM, *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout)


