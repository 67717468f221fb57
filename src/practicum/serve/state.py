"""What every route shares: the served models, the settings, the metrics and the checks a
request goes through before it reaches a model (which model, how long, how many tokens)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from practicum.errors import UserError
from practicum.generate import GenerationConfig
from practicum.serve.limits import ApiError, error_body
from practicum.serve.metrics import ServeMetrics
from practicum.serve.models import LanguageModel, ServedModel
from practicum.serve.settings import ServeSettings

log = logging.getLogger(__name__)


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

    def check_text(self, text: str, param: str) -> None:
        limit = self.settings.max_input_chars
        if len(text) > limit:
            raise ApiError(400, f"{param} has {len(text)} characters, more than the limit of {limit} "
                           "(--max-input-chars); shorten it", param, "input_too_long")

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
        if len(stops) > 8 or any(not s for s in stops):
            raise ApiError(400, "stop: give at most 8 non-empty strings", "stop", "invalid_stop")
        try:
            return GenerationConfig(
                max_new_tokens=max_new_tokens, temperature=1.0 if temperature is None else temperature,
                top_k=top_k, top_p=top_p, stop=stops, seed=seed,
                repetition_penalty=1.0 if repetition_penalty is None else repetition_penalty)
        except UserError as exc:
            raise ApiError(400, str(exc), None, "invalid_generation_settings") from None


def sse(data: Any) -> str:
    """One server-sent event carrying JSON (or the literal [DONE])."""
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {body}\n\n"


def stream_error(exc: BaseException) -> dict[str, Any]:
    """The error event of a stream that failed after its 200 was sent."""
    log.error("stream failed: %s: %s", type(exc).__name__, exc)
    return error_body(500, f"generation failed: {type(exc).__name__}: {exc}", None, "internal_error")


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
