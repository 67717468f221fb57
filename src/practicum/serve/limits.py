"""Errors in one JSON shape (OpenAI's) and the checks made before a route runs (Guard): the
origin (CORS), the API key, the body's size, type and read timeout.

Every 4xx/5xx the server sends reads
`{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from practicum.errors import UserError
from practicum.serve.settings import ServeSettings

log = logging.getLogger(__name__)

_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
          429: "rate_limit_error", 500: "server_error", 503: "service_unavailable"}


class ApiError(Exception):
    """A request the server refuses: status, one-line message, the parameter at fault, a code."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(status: int, message: str, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure to the one JSON error shape. A request the server refuses
    (4xx) is logged in one line; only the server's own faults (5xx) log a traceback."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return _refused(request, error_response(exc.status, exc.message, exc.param, exc.code), exc.message)

    @app.exception_handler(UserError)
    async def _user(request: Request, exc: UserError) -> JSONResponse:  # the bundle's own input checks
        return _refused(request, error_response(422, str(exc), "inputs", "invalid_input"), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        response = validation_response(exc.errors())
        return _refused(request, response, json.loads(response.body)["error"]["message"])

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see GET /v1/models and the README"
        return error_response(exc.status_code, message, None, _code(exc.status_code),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}", None, "internal_error")


def _refused(request: Request, response: JSONResponse, message: str) -> JSONResponse:
    if response.status_code < 500:
        log.info("%s %s -> %d: %s", request.method, request.url.path, response.status_code, message[:300])
    return response


def validation_response(errors: list[Any]) -> JSONResponse:
    """FastAPI's validation errors -> 400 (malformed JSON) or 422 (wrong fields or types)."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return error_response(400, f"the request body is not valid JSON ({detail or first.get('msg')}); "
                              "send a JSON object", None, "invalid_json")
    loc = [str(p) for p in first.get("loc", ()) if p != "body" and not _union_tag(p)]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid value")
    if first.get("type") == "missing":
        message = "field required"
    elif first.get("type") == "model_attributes_type" and not loc:
        message = "expected a JSON object"
    elif first.get("type") == "extra_forbidden":
        message = "unknown field; remove it (see the route's fields in the README)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"{param}: " if param else "body: "
    return error_response(422, f"{where}{message}{more}", param, first.get("type") or "invalid_value")


def _union_tag(part: object) -> bool:
    """pydantic names the member of a union in the error location ('str', 'list[str]')."""
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool", "dict", "list"))


def _code(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed"}.get(status, f"http_{status}")


class Guard:
    """ASGI middleware: the checks made before FastAPI parses anything, in this order.

    - Origin: a browser request from another web origin to /v1/* gets 403 unless the origin is
      one of `cors_origins`, which get CORS (preflight answered, Access-Control-* headers).
    - API key: with `api_key` set, every route that reveals the API (/v1/*, /docs,
      /openapi.json, /metrics) needs `Authorization: Bearer KEY` (401); health probes and the
      playground page stay open.
    - Body: larger than `max_body_bytes` gets 413; POST /v1/* must be JSON (415); a body that
      has not arrived `read_timeout` seconds after the head gets 408. The body is read here
      and replayed to the app.
    """

    def __init__(self, app: ASGIApp, settings: ServeSettings) -> None:
        from starlette.middleware.cors import CORSMiddleware

        self.app, self.api_key, self.max_body = app, settings.api_key, settings.max_body_bytes
        self.read_timeout, self.cors_origins = settings.read_timeout, settings.cors_origins
        self.cors = CORSMiddleware(self._checked, allow_origins=list(self.cors_origins),
                                   allow_methods=["GET", "POST", "OPTIONS"],
                                   allow_headers=["*"], max_age=600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None or _same_origin(origin, scope):
            await self._checked(scope, receive, send)
        elif "*" in self.cors_origins or origin.rstrip("/") in self.cors_origins:
            await self.cors(scope, receive, send)
        elif scope["path"].startswith("/v1/"):
            await error_response(403, f"cross-origin request from {origin} refused; start the server "
                                 f"with --cors-origin {origin} to allow it", None,
                                 "cross_origin_refused")(scope, receive, send)
        else:  # pages and probes: the browser keeps the answer from the other origin's script
            await self._checked(scope, receive, send)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if self.api_key and path.startswith(_KEYED) and not self._authorised(scope):
            await error_response(401, "missing or wrong API key; send the header "
                                 "'Authorization: Bearer KEY'", None, "invalid_api_key",
                                 headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and path.startswith("/v1/") and not _is_json(scope):
            given = _header(scope, b"content-type")
            await error_response(415, f"the body must be JSON, not {given or 'undeclared'}; send the "
                                 "header Content-Type: application/json", None,
                                 "unsupported_media_type")(scope, receive, send)
            return
        body = await self._body(scope, receive, send)
        if body is not None:
            await self.app(scope, _replay(body, receive), send)

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None once the client went away or an error was sent (408, 413)."""
        body, more = bytearray(), True
        with _Deadline(self.read_timeout) as deadline:
            while more and not deadline.expired:
                try:
                    message = await receive()
                except asyncio.CancelledError:
                    if not deadline.expired:
                        raise
                    break
                if message["type"] != "http.request":
                    return None  # the client went away
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_body:
                    await self._too_large(scope, receive, send)
                    return None
        if more:
            await error_response(408, f"the request body did not arrive within {self.read_timeout:g} s "
                                 "(--read-timeout); send the whole request at once", None,
                                 "request_timeout", headers={"Connection": "close"})(scope, receive, send)
            return None
        return bytes(body)

    def _authorised(self, scope: Scope) -> bool:
        given = _header(scope, b"authorization") or ""
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                                   str(self.api_key).encode())

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, f"the request body is larger than {self.max_body} bytes "
                                  "(--max-body-bytes); send fewer or smaller inputs", None,
                                  "request_too_large", headers={"Connection": "close"})
        await response(scope, receive, send)


class _Deadline:
    """Cancel the current task's await when `seconds` have passed (`expired` then says so): one
    timer for the whole body, where asyncio.wait_for would start a task per read."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.expired = seconds, False

    def __enter__(self) -> _Deadline:
        task = asyncio.current_task()
        self._handle = asyncio.get_running_loop().call_later(self.seconds, self._expire, task)
        return self

    def _expire(self, task: asyncio.Task) -> None:
        self.expired = True
        task.cancel()

    def __exit__(self, *exc: object) -> None:
        self._handle.cancel()
        task = asyncio.current_task()
        if self.expired and task is not None and hasattr(task, "uncancel"):
            task.uncancel()  # the cancellation was ours and is handled (Python 3.11+)


_KEYED = ("/v1/", "/docs", "/openapi.json", "/metrics")
"""Path prefixes that need the API key when one is set: everything that reveals the API."""


def _same_origin(origin: str, scope: Scope) -> bool:
    """The page calling is the server's own: the Origin's host[:port] is the Host header. The
    scheme is not compared: a proxy in front that ends TLS serves the page over https."""
    host = _header(scope, b"host")
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


def _is_json(scope: Scope) -> bool:
    given = _header(scope, b"content-type") or ""
    return given.partition(";")[0].strip().lower() == "application/json"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that gives the buffered body once, then the real channel (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
