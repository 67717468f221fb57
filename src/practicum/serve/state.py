"""What every route shares: the served models, the settings, the metrics and the checks a
request goes through before it reaches a model (which model, how long, how many tokens)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request

from practicum.errors import UserError
from practicum.generate import GenerationConfig
from practicum.serve.limits import ApiError, error_body
from practicum.serve.metrics import CLIENT_GONE, ServeMetrics
from practicum.serve.models import LanguageModel, ServedModel
from practicum.serve.settings import ServeSettings
from practicum.serve.transport import DISCONNECT_HOOKS

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class ServeState:
    models: dict[str, ServedModel]
    settings: ServeSettings
    metrics: ServeMetrics
    ready: bool = False
    failure: str | None = None
    """Why the start-up (warm-up) failed, for the one-line error of `practicum serve`."""

    def pick(self, request: Request, name: str | None, endpoint: str) -> ServedModel:
        """The model a request names (404 if unknown); when it names none, the one model
        that serves this endpoint (400 when there are several)."""
        if name is None:
            fits = [m for m in self.models.values() if endpoint in m.endpoints]
            if len(fits) != 1:
                names = ", ".join(m.name for m in fits) or "none"
                raise ApiError(400, f"say which model: {len(fits)} served models have /v1/{endpoint} "
                               f"({names}); add \"model\": NAME", "model", "model_required")
            model = fits[0]
        elif name in self.models:
            model = self.models[name]
        else:
            raise ApiError(404, f"model {name!r} is not served here; GET /v1/models lists "
                           f"{', '.join(self.models)}", "model", "model_not_found")
        request.state.model = model.name
        model.require(endpoint)
        return model

    def language_model(self, request: Request, name: str | None, endpoint: str) -> LanguageModel:
        model = self.pick(request, name, endpoint)
        assert isinstance(model, LanguageModel)
        return model

    def check_inputs(self, items: list[Any], param: str = "inputs") -> None:
        """How many inputs, and how long each text is (400 beyond the limits)."""
        limit = self.settings.max_inputs
        if not items:
            raise ApiError(422, f"{param}: give at least one input", param, "empty_inputs")
        if len(items) > limit:
            raise ApiError(400, f"{param}: {len(items)} inputs, more than the limit of {limit} per request "
                           "(--max-inputs); split them over several requests", param, "too_many_inputs")
        for i, item in enumerate(items):
            if isinstance(item, dict) and "image" in item:
                continue  # images are limited by the body size and their pixel count
            self.check_text(item if isinstance(item, str) else json.dumps(item), f"{param}.{i}")

    def check_text(self, text: str, param: str, limit: int | None = None, what: str | None = None) -> None:
        limit = limit or self.settings.max_input_chars
        if len(text) > limit:
            raise ApiError(400, f"{what or param} has {len(text)} characters, more than the limit of "
                           f"{limit} (--max-input-chars); shorten it", param, "input_too_long")

    def check_messages(self, messages: list[dict[str, str]]) -> None:
        """How many messages, and how long their text is in all (400 beyond the limits)."""
        limit = self.settings.max_messages
        if len(messages) > limit:
            raise ApiError(400, f"messages: {len(messages)} messages, more than the limit of {limit} "
                           "(--max-messages); drop the oldest turns", "messages", "too_many_messages")
        self.check_text("".join(m["content"] for m in messages), "messages")

    def check_work(self, sequences: int, max_new_tokens: int) -> None:
        """What one generation request may buy: sequences (prompts x n) and new tokens in all."""
        s = self.settings
        if sequences > s.max_sequences:
            raise ApiError(400, f"the request starts {sequences} sequences (prompts x n), more than the "
                           f"limit of {s.max_sequences} (--max-sequences); send fewer prompts or a "
                           "smaller n", "n", "too_many_sequences")
        if sequences * max_new_tokens > s.max_request_tokens:
            raise ApiError(400, f"the request may generate {sequences} x {max_new_tokens} = "
                           f"{sequences * max_new_tokens} tokens, more than the limit of "
                           f"{s.max_request_tokens} (--max-request-tokens); ask for fewer tokens or "
                           "sequences", "max_tokens", "too_many_tokens")

    async def unless_gone(self, request: Request, work: Awaitable[T],
                          cancel: Callable[[], None] | None = None) -> T:
        """The result of `work`, unless the client disconnects first: then the work is cancelled
        (queued inputs are dropped; `cancel` stops running generation) and the request ends
        with status 499. Under practicum's transport the connection itself reports the loss
        (transport.DISCONNECT_HOOKS); elsewhere a watcher task waits for http.disconnect."""
        handler = asyncio.current_task()
        gone, active = False, True

        def left() -> None:
            nonlocal gone
            if active and not gone and handler is not None:
                gone = True
                handler.cancel()

        hooks = (request.scope.get("state") or {}).get(DISCONNECT_HOOKS)
        watcher = None
        if hooks is not None:
            hooks.append(left)
        else:
            watcher = asyncio.ensure_future(_disconnected(request))
            watcher.add_done_callback(lambda done: None if done.cancelled() or done.exception() else left())
        try:
            return await work
        except asyncio.CancelledError:
            if not gone:
                raise  # cancelled for another reason (the server is stopping)
            if hasattr(handler, "uncancel"):  # Python 3.11+: the cancellation is handled here
                handler.uncancel()
            if cancel is not None:
                cancel()
            raise ApiError(CLIENT_GONE, "the client closed the connection before the answer", None,
                           "client_closed_request") from None
        finally:
            active = False
            if hooks is not None:
                hooks.remove(left)
            if watcher is not None:
                watcher.cancel()

    def new_tokens(self, asked: int | None, param: str) -> int:
        """The new-token budget of a request (400 above --max-new-tokens)."""
        limit = self.settings.max_new_tokens
        if asked is None:
            return min(self.settings.default_new_tokens, limit)
        if asked > limit:
            raise ApiError(400, f"{param} is {asked}, more than this server allows ({limit}, "
                           "--max-new-tokens); ask for fewer", param, "max_new_tokens_exceeded")
        return asked

    def generation(self, max_new_tokens: int, temperature: float | None, top_k: int | None,
                   top_p: float | None, stop: str | list[str] | None, seed: int | None,
                   repetition_penalty: float | None = None) -> GenerationConfig:
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        most, longest = self.settings.max_stops, self.settings.max_stop_chars
        if len(stops) > most or any(not s for s in stops):
            raise ApiError(400, f"stop: give at most {most} non-empty strings (--max-stops)", "stop",
                           "invalid_stop")
        if any(len(s) > longest for s in stops):
            raise ApiError(400, f"stop: a stop string has {max(len(s) for s in stops)} characters, more "
                           f"than the limit of {longest} (--max-stop-chars)", "stop", "invalid_stop")
        try:
            return GenerationConfig(
                max_new_tokens=max_new_tokens, temperature=1.0 if temperature is None else temperature,
                top_k=top_k, top_p=top_p, stop=stops, seed=seed,
                repetition_penalty=1.0 if repetition_penalty is None else repetition_penalty)
        except UserError as exc:
            raise ApiError(400, str(exc), None, "invalid_generation_settings") from None


async def _disconnected(request: Request) -> None:
    """Return once the client has closed the connection (the body is read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def sse(data: Any) -> str:
    """One server-sent event carrying JSON (or the literal [DONE])."""
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {body}\n\n"


def stream_error(exc: BaseException) -> dict[str, Any]:
    """The error event of a stream that failed after its 200 was sent."""
    log.error("stream failed: %s: %s", type(exc).__name__, exc)
    return error_body(500, f"generation failed: {type(exc).__name__}: {exc}", None, "internal_error")


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
