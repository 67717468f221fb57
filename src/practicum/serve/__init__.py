"""The inference server: every bundle kind over HTTP, with dynamic batching.

    from practicum.serve import create_app, ServeSettings
    app = create_app({"clf": "runs/x/bundle", "gpt": "runs/y/bundle"}, ServeSettings(api_key="k"))
    # uvicorn.run(app) -- or `practicum serve clf=runs/x/bundle gpt=runs/y/bundle`

Modules: settings (defaults), limits (errors; origin, API key and body checks), metrics
(Prometheus), batching (micro-batcher), decoding (continuous batching for generation), inputs,
models, state, app (native routes), openai (OpenAI-compatible routes), server (uvicorn,
signals), transport (read timeouts, connection cap).
FastAPI, uvicorn and prometheus_client are imported only when an app is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from practicum.errors import UserError
from practicum.serve.settings import ServeSettings, parse_models

__all__ = ["ServeSettings", "create_app", "parse_models", "run"]


def require_serve_deps() -> None:
    """A clear error when the serve extra is not installed."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"serving needs {', '.join(missing)}: pip install 'practicum[serve]'")


def create_app(models: list[str] | dict[str, str | Path] | str,
               settings: ServeSettings | None = None) -> Any:
    """A FastAPI app serving these bundles (`NAME=PATH` strings, paths, or a name -> path dict).

    Every bundle is loaded now: one that cannot be loaded raises UserError("cannot serve NAME:
    why"). Worker threads start and the models warm up when the app starts (its lifespan).
    """
    require_serve_deps()
    from practicum.serve.app import build_app
    from practicum.serve.metrics import ServeMetrics
    from practicum.serve.models import load_models
    from practicum.serve.state import ServeState

    settings = settings or ServeSettings()
    metrics = ServeMetrics()
    served = load_models(parse_models(models), settings, metrics)
    return build_app(ServeState(served, settings, metrics))


def run(models: list[str] | dict[str, str | Path] | str, host: str = "127.0.0.1", port: int = 8000,
        settings: ServeSettings | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then finish in-flight requests and return."""
    require_serve_deps()
    from practicum.serve.server import run as run_server

    run_server(models, host, port, settings)
