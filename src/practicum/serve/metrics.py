"""Prometheus metrics of one app (its own CollectorRegistry, so tests can build many apps).

    practicum_requests_total{route, model, status}     counter
    practicum_request_duration_seconds{route, model}   histogram (a stream counts until its end)
    practicum_requests_in_flight                       gauge
    practicum_batch_size{model, kind}                  histogram: inputs per predict/embed batch,
                                                       sequences per decoding step
    practicum_generated_tokens_total{model}            counter
    practicum_prompt_tokens_total{model}               counter
    practicum_cancelled_total{model, kind}             counter: work dropped because its client
                                                       left: kind "sequences" (generation, queued
                                                       or running) or "inputs" (predict/embed)
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROUTES = frozenset({"/v1/models", "/v1/predict", "/v1/embed", "/v1/embeddings", "/v1/generate",
                    "/v1/completions", "/v1/chat/completions", "/healthz", "/readyz", "/metrics", "/"})
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)
CLIENT_GONE = 499
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServeMetrics:
    """The server's counters; thread-safe (model workers record batches and tokens)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("practicum_requests", "HTTP requests by route, model and status",
                                ["route", "model", "status"], registry=r)
        self.latency = Histogram("practicum_request_duration_seconds",
                                 "Time from request to the end of the response",
                                 ["route", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("practicum_requests_in_flight", "Requests being served now", registry=r)
        self.batch_size = Histogram("practicum_batch_size",
                                    "Inputs per predict/embed batch; sequences per decoding step",
                                    ["model", "kind"], buckets=BATCH_BUCKETS, registry=r)
        self.generated = Counter("practicum_generated_tokens", "New tokens generated",
                                 ["model"], registry=r)
        self.prompt_tokens = Counter("practicum_prompt_tokens", "Prompt tokens read", ["model"],
                                     registry=r)
        self.cancelled = Counter("practicum_cancelled", "Work dropped because its client left",
                                 ["model", "kind"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def batches(self, model: str, kind: str) -> dict[float, float]:
        """Cumulative counts of the batch-size histogram, by upper bound (for tests and logs)."""
        out: dict[float, float] = {}
        for metric in self.registry.collect():
            for s in metric.samples:
                if (s.name == "practicum_batch_size_bucket" and s.labels.get("model") == model
                        and s.labels.get("kind") == kind):
                    out[float(s.labels["le"])] = s.value
        return out


class MetricsMiddleware:
    """ASGI middleware: in-flight gauge, and count + latency of every HTTP request at its end.

    The model label is what the route put in `request.state.model` (empty when none). A request
    that got no response because its client left first counts as 499 (nginx's "client closed
    request"), not as a server error; one whose handling raised counts as 500."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m, start, status = self.metrics, time.perf_counter(), CLIENT_GONE
        path = scope["path"]
        route = path if path in ROUTES else ("/static" if path.startswith("/static/") else "other")
        state = scope.setdefault("state", {})
        done = False

        def finish() -> None:
            nonlocal done
            if done:
                return
            done = True
            model = str(state.get("model", "") or "")
            m.requests.labels(route, model, str(status)).inc()
            m.latency.labels(route, model).observe(time.perf_counter() - start)
            m.in_flight.dec()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()

        m.in_flight.inc()
        try:
            await self.app(scope, receive, watch)
        except BaseException:
            if status == CLIENT_GONE:
                status = 500
            raise
        finally:
            finish()
