"""OpenAI-compatible routes, in the shapes the official `openai` client parses.

    GET  /v1/models             every served model
    POST /v1/completions        prompt (a string or a list of them), n, stream, stream_options
    POST /v1/chat/completions   messages through the bundle's chat template
    POST /v1/embeddings         input (a string or a list), encoding_format float | base64

Sampling fields: max_tokens (max_completion_tokens), temperature, top_p, stop, seed, plus
practicum's top_k and repetition_penalty (the client's `extra_body`). Fields OpenAI has and
these models cannot honour (logprobs, logit_bias, tools, ...) get a 400 rather than silence.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from practicum.generate import GenerationConfig
from practicum.serve.decoding import Event, RequestStream
from practicum.serve.limits import ApiError
from practicum.serve.models import LanguageModel
from practicum.serve.schema import PENALTY_RANGE, SEED_RANGE, TEMPERATURE_MAX, RequestBody
from practicum.serve.state import SSE_HEADERS, ServeState, sse, stream_error

_UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias", "suffix", "best_of", "tools", "functions",
                "tool_choice", "function_call", "response_format", "audio", "modalities")


class _Sampling(RequestBody):
    model_config = ConfigDict(extra="allow", strict=True)
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=TEMPERATURE_MAX)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=16)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    top_k: int | None = Field(None, ge=1)
    repetition_penalty: float | None = Field(None, ge=PENALTY_RANGE[0], le=PENALTY_RANGE[1])

    def refuse_unsupported(self) -> None:
        extra = self.model_extra or {}
        for name in _UNSUPPORTED:
            if extra.get(name) not in (None, False, 0, [], {}):
                raise ApiError(400, f"{name} is not supported by this server; remove it", name,
                               "unsupported_parameter")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ApiError(400, f"{name} is not supported; use repetition_penalty (extra_body)",
                               name, "unsupported_parameter")


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(_Sampling):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(None, ge=1)


class EmbeddingsRequest(RequestBody):
    model_config = ConfigDict(extra="allow", strict=True)
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"


def openai_routes(app: FastAPI, state: ServeState) -> None:
    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [m.describe() for m in state.models.values()]}

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest, request: Request) -> Any:
        model = state.language_model(request, body.model, "completions")
        body.refuse_unsupported()
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        state.check_inputs(prompts, "prompt")
        cfg = _config(state, body, body.max_tokens, "max_tokens", default=16)
        state.check_work(len(prompts) * body.n, cfg.max_new_tokens)
        ids = [model.encode(p, f"prompt.{i}" if len(prompts) > 1 else "prompt")
               for i, p in enumerate(prompts)]
        stream = model.generate([x for x in ids for _ in range(body.n)], cfg)
        head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion",
                "created": int(time.time()), "model": model.name}
        echo = [p for p in prompts for _ in range(body.n)] if body.echo else None
        if body.stream:
            return _streaming(_completion_chunks(stream, head, echo, _usage_wanted(body)))
        done = await state.unless_gone(request, stream.collect(), stream.cancel)
        choices = [{"index": e.index, "text": (echo[e.index] if echo else "") + e.text, "logprobs": None,
                    "finish_reason": e.finish_reason} for e in done]
        return {**head, "choices": choices, "usage": _usage(done)}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatRequest, request: Request) -> Any:
        model = state.language_model(request, body.model, "chat")
        body.refuse_unsupported()
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": _text(m, i)}
                    for i, m in enumerate(body.messages)]
        if not messages:
            raise ApiError(422, "messages: give at least one message", "messages", "empty_messages")
        state.check_messages(messages)
        cfg = _config(state, body, body.max_completion_tokens or body.max_tokens, "max_tokens")
        state.check_work(body.n, cfg.max_new_tokens)
        rendered = model.render_chat(messages)
        state.check_text(rendered, "messages", state.settings.max_input_chars * 2,
                         "the conversation as the chat template renders it")
        prompt = model.encode(rendered, "messages")
        stream = model.generate([prompt] * body.n, cfg, chat=True)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
                "created": int(time.time()), "model": model.name}
        if body.stream:
            return _streaming(_chat_chunks(stream, {**head, "object": "chat.completion.chunk"}, body.n,
                                           _usage_wanted(body)))
        done = await state.unless_gone(request, stream.collect(), stream.cancel)
        choices = [{"index": e.index, "message": {"role": "assistant", "content": e.text},
                    "logprobs": None, "finish_reason": e.finish_reason} for e in done]
        return {**head, "choices": choices, "usage": _usage(done)}

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingsRequest, request: Request) -> dict[str, Any]:
        model = state.pick(request, body.model, "embed")
        texts = [body.input] if isinstance(body.input, str) else body.input
        state.check_inputs(texts, "input")
        vectors = await state.unless_gone(request, model.run("embed", texts))
        tokens = sum(len(model.tokenizer.encode(t)) for t in texts) if isinstance(model, LanguageModel) else 0
        data = [{"object": "embedding", "index": i, "embedding": _encode_vector(v, body.encoding_format)}
                for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": model.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _config(state: ServeState, body: _Sampling, asked: int | None, param: str,
            default: int | None = None) -> GenerationConfig:
    if asked is None and default is not None:
        asked = min(default, state.settings.max_new_tokens)
    return state.generation(state.new_tokens(asked, param), body.temperature, body.top_k, body.top_p,
                            body.stop, body.seed, body.repetition_penalty)


def _text(message: ChatMessage, i: int) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    parts = []
    for part in message.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(400, f"messages.{i}.content: only text parts are supported (got "
                           f"{part.get('type')!r})", f"messages.{i}.content", "unsupported_content")
        parts.append(part["text"])
    return "".join(parts)


def _usage_wanted(body: _Sampling) -> bool:
    return bool((body.stream_options or {}).get("include_usage"))


def _usage(done: list[Event]) -> dict[str, int]:
    prompt = sum(e.prompt_tokens for e in done)
    new = sum(e.tokens for e in done)
    return {"prompt_tokens": prompt, "completion_tokens": new, "total_tokens": prompt + new}


def _encode_vector(vector: list[float], how: str) -> list[float] | str:
    if how == "float":
        return vector
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode()


def _streaming(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)


async def _completion_chunks(stream: RequestStream, head: dict[str, Any], echo: list[str] | None,
                             usage: bool) -> AsyncIterator[str]:
    done: list[Event] = []
    try:
        if echo:
            for i, text in enumerate(echo):
                yield sse({**head, "choices": [{"index": i, "text": text, "logprobs": None,
                                                "finish_reason": None}]})
        async for e in stream.events():
            if e.text or e.finish_reason:
                yield sse({**head, "choices": [{"index": e.index, "text": e.text, "logprobs": None,
                                                "finish_reason": e.finish_reason}]})
            if e.finish_reason:
                done.append(e)
        if usage:
            yield sse({**head, "choices": [], "usage": _usage(done)})
    except Exception as exc:  # the 200 is sent already: report in the stream
        yield sse(stream_error(exc))
    yield sse("[DONE]")


async def _chat_chunks(stream: RequestStream, head: dict[str, Any], n: int,
                       usage: bool) -> AsyncIterator[str]:
    def chunk(index: int, delta: dict[str, str], reason: str | None = None) -> str:
        return sse({**head, "choices": [{"index": index, "delta": delta, "logprobs": None,
                                         "finish_reason": reason}]})

    done: list[Event] = []
    try:
        for i in range(n):
            yield chunk(i, {"role": "assistant", "content": ""})
        async for e in stream.events():
            if e.text:
                yield chunk(e.index, {"content": e.text})
            if e.finish_reason:
                done.append(e)
                yield chunk(e.index, {}, e.finish_reason)
        if usage:
            yield sse({**head, "choices": [], "usage": _usage(done)})
    except Exception as exc:  # the 200 is sent already: report in the stream
        yield sse(stream_error(exc))
    yield sse("[DONE]")
