"""Run the app with uvicorn: load first (a bad bundle fails before the port is bound), then
serve until SIGTERM/SIGINT, which stops accepting, turns /readyz to 503, lets in-flight
requests (streams too) finish within graceful_timeout, stops the workers and returns. The
timeouts and the connection cap of the transport are in transport.py."""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import threading
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import Any

from practicum.errors import UserError
from practicum.serve.settings import ServeSettings

log = logging.getLogger("practicum.serve")


def run(models: list[str] | dict[str, str | Path] | str, host: str = "127.0.0.1", port: int = 8000,
        settings: ServeSettings | None = None) -> None:
    """Serve the bundles over HTTP until a signal ends the process (then return normally)."""
    from practicum.serve import create_app
    from practicum.serve.transport import fit_open_files, uvicorn_config

    app = create_app(models, settings)
    state = app.state.serve
    config = uvicorn_config(app, state.settings, host, port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=state.settings.graceful_timeout,
                            lifespan="on", log_config=None)
    server = _server(config, state)
    _check_port(host, port)
    fit_open_files(state.settings.max_connections)
    server.run()
    if server.failed:
        raise UserError(state.failure or f"the server could not start on {host}:{port}; see above")


def _server(config: Any, state: Any) -> Any:
    """A uvicorn.Server that turns /readyz to 503 on the first signal and returns normally after
    the shutdown (uvicorn itself re-raises the signal, which would end the process with it)."""
    import uvicorn

    class Server(uvicorn.Server):
        failed = False

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if state.ready:
                log.info("signal %s: finishing in-flight requests, then stopping", sig)
            state.ready = False
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            before = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)

        async def startup(self, sockets: Any = None) -> None:
            try:
                await super().startup(sockets)
            except SystemExit:  # uvicorn exits when the lifespan (warm-up) or the bind fails
                self.failed = self.should_exit = True
                return
            sock = self.servers[0].sockets[0].getsockname() if self.servers else (config.host, config.port)
            url = f"http://{_shown_host(config.host)}:{sock[1]}"
            log.info("serving %s at %s (playground %s/, OpenAI base URL %s/v1)",
                     ", ".join(state.models), url, url, url)

    return Server(config)


def _shown_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _check_port(host: str, port: int) -> None:
    """A clear error when the port is taken (uvicorn would only log and exit 1)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = "the address is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise UserError(f"cannot listen on {host}:{port}: {why}; pass another --port") from None
