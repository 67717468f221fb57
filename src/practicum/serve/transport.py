"""The HTTP transport under the app: uvicorn's own HTTP/1.1 protocol (httptools, else h11, as
uvicorn would pick) with a read timeout on request heads and a cap on open connections.

Slow clients: a connection must deliver a complete request head within `read_timeout` seconds
of opening (or of its previous response), else it is closed; the body then has `read_timeout`
more (Guard in limits.py answers 408). An idle keep-alive connection closes after
`keep_alive_timeout`. So stalled connections cost a socket for seconds, not forever.

Clients that leave: every request's scope["state"] holds a list under DISCONNECT_HOOKS; when
its connection is lost before the response is complete, each callable in it is called (the
routes cancel the request's queued or running work that way, without a watcher per request).

Many clients: beyond `max_connections` a new connection gets a 503 JSON error at once and is
closed; the open ones carry on. At start-up the soft limit on open files (RLIMIT_NOFILE) is
raised towards the hard one to fit the cap. Should file descriptors still run out, the event
loop cannot accept: uvloop (libuv) accepts and at once closes the connections it cannot keep,
plain asyncio logs the error and retries each second while they wait in the listen backlog.
Either way the open connections and the process carry on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from practicum.serve.limits import error_body
from practicum.serve.settings import ServeSettings

log = logging.getLogger("practicum.serve")
_SPARE_FILES = 128  # model files, logs, the listening socket: descriptors beside the connections
_WARN_EVERY_S = 60.0
DISCONNECT_HOOKS = "practicum.disconnect_hooks"
"""Key in a request's scope["state"]: callables to call when its client goes away early."""


def uvicorn_config(app: Any, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000,
                   **options: Any) -> Any:
    """A uvicorn.Config serving `app` with the transport limits of `settings`."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, ws="none",
                          http=protocol_class(settings.read_timeout, settings.max_connections),
                          timeout_keep_alive=settings.keep_alive_timeout, **options)


def protocol_class(read_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's automatic HTTP protocol class with the head read timeout and the connection cap."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    refusal = _refusal(max_connections)

    class GuardedProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        head_timer: asyncio.TimerHandle | None = None
        refused_at = 0.0  # (class-wide) when the cap was last logged: once a minute at most

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self.connections.discard(self)
                transport.write(refusal)
                transport.close()
                if time.monotonic() - GuardedProtocol.refused_at > _WARN_EVERY_S:
                    GuardedProtocol.refused_at = time.monotonic()
                    log.warning("%d connections open (--max-connections): refusing new ones with 503",
                                max_connections)
                return
            self._wait_for_head()

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle:  # a request head was parsed: its body has Guard's timeout
                self._stop_head_timer()
                self.cycle.scope.setdefault("state", {})[DISCONNECT_HOOKS] = []

        def on_response_complete(self) -> None:
            super().on_response_complete()
            waiting = self.cycle is None or self.cycle.response_complete  # no pipelined request
            if waiting and not self.transport.is_closing():
                self._wait_for_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            cycle = self.cycle
            super().connection_lost(exc)
            if cycle is not None and not cycle.response_complete:
                for hook in list(cycle.scope.get("state", {}).get(DISCONNECT_HOOKS, ())):
                    hook()

        def _wait_for_head(self) -> None:
            self._stop_head_timer()
            self.head_timer = self.loop.call_later(read_timeout, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def _head_timed_out(self) -> None:
            self.head_timer = None
            if not self.transport.is_closing():
                log.debug("closing %s: no complete request head in %g s", self.client, read_timeout)
                self.transport.close()

    return GuardedProtocol


def _refusal(max_connections: int) -> bytes:
    """The whole 503 response a connection beyond the cap gets before it is closed."""
    body = json.dumps(error_body(503, f"the server has {max_connections} open connections "
                                 "(--max-connections); try again shortly", None,
                                 "too_many_connections")).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


def fit_open_files(max_connections: int) -> None:
    """Raise the soft limit on open files towards the hard one so `max_connections` fit; warn
    when they cannot (then the loop drops what it cannot accept, see the module docstring)."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning("only %d open files allowed (ulimit -n): fewer than --max-connections %d can be "
                    "open at once; connections beyond are dropped", soft, max_connections)
