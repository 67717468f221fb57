"""Helpers for browser tests: find Debian's chromium, drive it headless with Playwright, and run
`practicum serve` in a subprocess on a free port.

Nothing here downloads: Playwright's own browser builds (`playwright install`) are never used;
the test set-up (`make browser`, run by `make test`) installs Debian's `chromium` package where
it can, and a test skips with a message where it could not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("PRACTICUM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]


def chromium_or_skip() -> Path:
    """The chromium executable, or skip the calling test saying how to get one."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (`make browser`, or "
                    "`apt-get install chromium`) to run the browser test")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed: pip install 'practicum[dev]'")
    return CHROMIUM


@contextmanager
def chromium_page(user_data_dir: Path) -> Iterator[Any]:
    """A Playwright page in a fresh headless chromium (its own profile folder), closed on exit."""
    from playwright.sync_api import Error, sync_playwright

    executable = chromium_or_skip()
    with sync_playwright() as pw:
        try:
            context = pw.chromium.launch_persistent_context(
                str(user_data_dir), executable_path=str(executable), headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1100, "height": 900})
        except Error as err:  # e.g. a chromium too old or too new for this Playwright
            pytest.skip(f"cannot start {executable} with Playwright: {str(err).splitlines()[0]}")
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def free_port() -> int:
    """A TCP port that nothing listens on right now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`practicum serve` in a subprocess on 127.0.0.1; use as a context manager (always killed)."""

    def __init__(self, models: dict[str, Path], extra: list[str] | None = None, log: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        specs = [f"{name}={path}" for name, path in models.items()]
        self.cmd = [sys.executable, "-m", "practicum.cli", "serve", *specs, "--host", "127.0.0.1",
                    "--port", str(self.port), *(extra or [])]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        out = self.log.open("w") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Poll /readyz until 200; fail with the server's output if it exits or never gets ready."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with code {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"server not ready after {timeout:.0f} s:\n{self.output()}")

    def output(self) -> str:
        """The last lines the server wrote (when it writes to a log file)."""
        if self.log is None or not self.log.is_file():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

