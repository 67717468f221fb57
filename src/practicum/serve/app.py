"""The FastAPI app: native routes, health, metrics and the playground; OpenAI routes in openai.py.

    POST /v1/predict   {"model", "inputs": [...]} -> {"model", "predictions": [...]}
    POST /v1/embed     {"model", "inputs": [...]} -> {"model", "embeddings": [[...]], "dim"}
    POST /v1/generate  {"model", "prompt", "max_new_tokens", ..., "stream"} -> {"model", "text",
                       "tokens", "finish_reason"}, or server-sent events {"text": piece} ...
                       {"finish_reason", "tokens"} [DONE]
    GET  /healthz  /readyz  /metrics  /  (the playground, static/)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import Field

from practicum.serve.limits import Guard, error_response, install_error_handlers
from practicum.serve.metrics import MetricsMiddleware
from practicum.serve.schema import PENALTY_RANGE, SEED_RANGE, TEMPERATURE_MAX, RequestBody
from practicum.serve.state import SSE_HEADERS, ServeState, sse, stream_error

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


class InputsRequest(RequestBody):
    """POST /v1/predict and /v1/embed."""

    model: str | None = None
    inputs: list[str | dict[str, Any]]


class GenerateRequest(RequestBody):
    """POST /v1/generate."""

    model: str | None = None
    prompt: str
    max_new_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=TEMPERATURE_MAX)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1)
    repetition_penalty: float = Field(1.0, ge=PENALTY_RANGE[0], le=PENALTY_RANGE[1])
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stream: bool = False


def build_app(state: ServeState) -> FastAPI:
    """The app over loaded models; workers start and models warm up in its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for model in state.models.values():
            model.start()
        try:
            for model in state.models.values():
                try:
                    await model.warm()
                except Exception as exc:
                    state.failure = f"cannot serve {model.name}: warm-up failed: {type(exc).__name__}: {exc}"
                    raise
            state.ready = True
            log.info("ready: %s", ", ".join(f"{m.name} ({m.task})" for m in state.models.values()))
            yield
        finally:
            state.ready = False
            for model in state.models.values():
                await asyncio.to_thread(model.stop)

    app = FastAPI(title="practicum", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.serve = state
    install_error_handlers(app)
    _native_routes(app, state)
    from practicum.serve.openai import openai_routes

    openai_routes(app, state)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, settings=state.settings)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)  # outermost: sees every status
    return app


def _native_routes(app: FastAPI, state: ServeState) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if not state.ready:
            return error_response(503, "not ready: models are loading or the server is shutting down",
                                  None, "not_ready")
        return JSONResponse({"status": "ready", "models": list(state.models)})

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # JSONResponse directly: plain JSON types already, FastAPI's encoder would only cost time
    @app.post("/v1/predict")
    async def predict(body: InputsRequest, request: Request) -> JSONResponse:
        model = state.pick(request, body.model, "predict")
        state.check_inputs(body.inputs)
        predictions = await state.unless_gone(request, model.run("predict", body.inputs))
        return JSONResponse({"model": model.name, "predictions": predictions})

    @app.post("/v1/embed")
    async def embed(body: InputsRequest, request: Request) -> JSONResponse:
        model = state.pick(request, body.model, "embed")
        state.check_inputs(body.inputs)
        vectors = await state.unless_gone(request, model.run("embed", body.inputs))
        return JSONResponse({"model": model.name, "embeddings": vectors,
                             "dim": len(vectors[0]) if vectors else 0})

    @app.post("/v1/generate", response_model=None)
    async def generate(body: GenerateRequest, request: Request) -> dict[str, Any] | StreamingResponse:
        model = state.language_model(request, body.model, "generate")
        state.check_text(body.prompt, "prompt")
        cfg = state.generation(state.new_tokens(body.max_new_tokens, "max_new_tokens"), body.temperature,
                               body.top_k, body.top_p, body.stop, body.seed, body.repetition_penalty)
        stream = model.generate([model.encode(body.prompt, "prompt")], cfg)
        if not body.stream:
            (done,) = await state.unless_gone(request, stream.collect(), stream.cancel)
            return {"model": model.name, "text": done.text, "tokens": done.tokens,
                    "finish_reason": done.finish_reason}

        async def events() -> AsyncIterator[str]:
            try:
                async for event in stream.events():
                    if event.text:
                        yield sse({"text": event.text})
                    if event.finish_reason is not None:
                        yield sse({"finish_reason": event.finish_reason, "tokens": event.tokens})
            except Exception as exc:  # the status is sent already: report in the stream
                yield sse(stream_error(exc))
            yield sse("[DONE]")

        return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
