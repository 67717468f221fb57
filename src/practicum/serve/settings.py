"""Server settings (the only place their defaults live) and `NAME=PATH` model arguments.

Light on purpose: the CLI reads these defaults for --help without importing FastAPI.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

from practicum.errors import UserError

API_KEY_ENV = "PRACTICUM_API_KEY"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class ServeSettings:
    """How the server batches, and the limits it puts on each request."""

    api_key: str | None = None
    """Require `Authorization: Bearer KEY` on /v1/*, /docs, /openapi.json and /metrics (default: the
    PRACTICUM_API_KEY variable, else none)."""
    max_batch: int = 32
    """Most inputs (predict/embed) or sequences (generation) one model runs together."""
    max_wait_ms: float = 5.0
    """How long the first request of a batch waits for others to join it."""
    batching: bool = True
    """False = --no-batching: every request runs alone (max batch 1, no wait)."""
    max_body_bytes: int = 2_000_000
    """Largest request body; a bigger one gets 413."""
    max_input_chars: int = 10_000
    """Longest text input, prompt or chat conversation in characters (400 beyond)."""
    max_inputs: int = 256
    """Most inputs in one /v1/predict or /v1/embed request (400 beyond)."""
    max_new_tokens: int = 512
    """Most new tokens a generation request may ask for (400 beyond)."""
    default_new_tokens: int = 128
    """New tokens of a generation request that does not say (capped by max_new_tokens)."""
    max_image_pixels: int = 16_000_000
    """Largest image (width x height) an /v1/predict request may send."""
    max_request_pixels: int = 64_000_000
    """Most pixels of all the images of one /v1/predict request together."""
    max_sequences: int = 64
    """Most sequences one generation request may start (prompts x n)."""
    max_request_tokens: int = 32_768
    """Most new tokens one generation request may ask for in all (sequences x max tokens)."""
    max_stops: int = 8
    """Most stop strings in one generation request."""
    max_stop_chars: int = 256
    """Longest stop string in characters."""
    max_messages: int = 256
    """Most messages in one chat request (the rendered conversation is also limited to twice
    --max-input-chars)."""
    read_timeout: float = 15.0
    """Seconds a connection has to send a request head (closed beyond), then as many for the body (408)."""
    keep_alive_timeout: float = 5.0
    """Seconds an idle keep-alive connection stays open waiting for the next request."""
    max_connections: int = 1024
    """Most open connections; a new one beyond them gets 503 and is closed at once."""
    cors_origins: tuple[str, ...] = ()
    """Web origins (scheme://host[:port], or *) whose pages may call /v1/* from a browser (CORS);
    none by default: other origins than the server's own get 403."""
    graceful_timeout: float = 30.0
    """Seconds a shutdown waits for in-flight requests (streams included) before cutting them."""
    device: str = "cpu"
    """Where the models run (cpu, cuda, cuda:1, mps)."""

    def __post_init__(self) -> None:
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_ENV) or None
        positive = ("max_batch", "max_body_bytes", "max_input_chars", "max_inputs", "max_new_tokens",
                    "default_new_tokens", "max_image_pixels", "max_request_pixels", "max_sequences",
                    "max_request_tokens", "max_stops", "max_stop_chars", "max_messages", "max_connections")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"serve: --{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0 or self.graceful_timeout < 0:
            raise UserError("serve: --max-wait-ms and --graceful-timeout must be >= 0")
        if self.read_timeout <= 0 or self.keep_alive_timeout <= 0:
            raise UserError("serve: --read-timeout and --keep-alive-timeout must be > 0 seconds")
        self.cors_origins = tuple(o.rstrip("/") for o in self.cors_origins)
        if not self.batching:
            self.max_batch, self.max_wait_ms = 1, 0.0

    @classmethod
    def help(cls, name: str) -> str:
        """The field's docstring line and default, for --help."""
        default = next(f.default for f in fields(cls) if f.name == name)
        return _DOCS.get(name, "") + ("" if default in (None, ()) else f" (default {default})")


_DOCS = {
    "api_key": "require Authorization: Bearer KEY on /v1/*, /docs, /openapi.json, /metrics "
               "(default: $PRACTICUM_API_KEY)",
    "max_batch": "most inputs or sequences run together",
    "max_wait_ms": "how long a batch waits for more requests",
    "max_body_bytes": "largest request body (413 beyond)",
    "max_input_chars": "longest text input or prompt in characters",
    "max_inputs": "most inputs per /v1/predict or /v1/embed request",
    "max_new_tokens": "most new tokens a request may ask for",
    "graceful_timeout": "seconds a shutdown waits for in-flight requests",
    "max_image_pixels": "largest image (width x height) a predict request may send",
    "max_request_pixels": "most pixels of all the images of one predict request",
    "max_sequences": "most sequences one generation request may start (prompts x n)",
    "max_request_tokens": "most new tokens of one generation request in all (sequences x max tokens)",
    "max_stops": "most stop strings per generation request",
    "max_stop_chars": "longest stop string in characters",
    "max_messages": "most messages per chat request",
    "read_timeout": "seconds a connection has to send a request head, then its body",
    "keep_alive_timeout": "seconds an idle keep-alive connection stays open",
    "max_connections": "most open connections (more are refused with 503)",
    "cors_origins": "a web origin (https://app.example.com, or *) allowed to call /v1/* from a browser "
                    "(repeatable; default none: only the server's own pages)",
}


def parse_models(specs: list[str] | dict[str, str | Path] | str | Path) -> dict[str, Path]:
    """`NAME=PATH` or `PATH` arguments (or a name -> path dict) -> {name: bundle folder}.

    A plain path is named after its bundle folder, or after the run folder when the folder
    is called `bundle` (runs/x/bundle -> x).
    """
    if isinstance(specs, str | Path):
        specs = [str(specs)]
    pairs = list(specs.items()) if isinstance(specs, dict) else [_split(s) for s in specs]
    if not pairs:
        raise UserError("serve: give at least one bundle, e.g. practicum serve runs/quickstart/bundle")
    models: dict[str, Path] = {}
    for name, path in pairs:
        if not _NAME.match(name):
            raise UserError(f"serve: model name {name!r} may hold only letters, digits, '.', '_' "
                            "and '-'; name it with NAME=PATH")
        if name in models:
            raise UserError(f"serve: two models are named {name!r}; name them with NAME=PATH")
        models[name] = Path(path)
    return models


def _split(spec: str) -> tuple[str, Path]:
    name, sep, path = spec.partition("=")
    if sep and name and not Path(spec).exists():
        return name, Path(path)
    folder = Path(spec)
    resolved = folder.resolve()
    if resolved.name == "bundle" and resolved.parent.name:
        return resolved.parent.name, folder
    if (folder / "bundle" / "bundle.json").is_file():
        return resolved.name, folder
    return resolved.name or "model", folder
