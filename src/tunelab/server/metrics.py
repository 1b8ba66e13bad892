"""Prometheus metrics of `tunelab serve`, at GET /metrics (text exposition format, prometheus_client).

Each app has a registry of its own (several apps in one process, as in the tests, do not share
counters). Series:

    tunelab_http_requests_total{method, route, status}       requests answered (route: the path template;
                                                             method: GET, POST, ... or "other")
    tunelab_http_errors_total{route, status}                 responses with status >= 400
    tunelab_http_request_duration_seconds{route}             latency histogram
    tunelab_batch_prompts{model}                             prompts per forward pass (histogram)
    tunelab_batch_duration_seconds{model}                    time per forward pass (histogram)
    tunelab_predictions_total{model, endpoint}               prompts answered by a fine-tuned model
    tunelab_predicted_label_total{model, label}              predicted labels of classifiers
    tunelab_queue_prompts{model}                             prompts waiting for a forward pass (gauge)
    tunelab_loaded_models                                    models warm in memory (gauge)
    tunelab_prediction_log_queue_rows                        rows waiting to be written to the log (gauge)
    tunelab_prediction_log_rows_total{outcome}               written / dropped / failed log rows

With API keys configured, /metrics needs one too (give Prometheus a bearer token).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

disable_created_metrics()  # no `_created` twin of every counter: half the text, nothing lost

# The methods a client of this API sends; any other token (HTTP allows made-up methods, and uvicorn
# passes them on to answer 405) counts as "other", else each one would add a series for good.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    def __init__(self, snapshot: Callable[[], dict] | None = None):
        """`snapshot()` returns the gauges read at scrape time: {"queued": {model: prompts},
        "loaded_models": n, "log": WriterStats-like object with depth, or None}."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("tunelab_http_requests", "HTTP requests answered.", ["method", "route", "status"],
                                registry=r)
        self.errors = Counter("tunelab_http_errors", "HTTP responses with an error status.", ["route", "status"],
                              registry=r)
        self.latency = Histogram("tunelab_http_request_duration_seconds", "Time to answer a request.", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_prompts = Histogram("tunelab_batch_prompts", "Prompts per forward pass (on-the-fly batching).",
                                       ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("tunelab_batch_duration_seconds", "Time per forward pass.", ["model"],
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("tunelab_predictions", "Prompts answered by a fine-tuned model.",
                                   ["model", "endpoint"], registry=r)
        self.labels = Counter("tunelab_predicted_label", "Labels predicted by classification models.",
                              ["model", "label"], registry=r)
        self.snapshot = snapshot
        r.register(_Gauges(self))

    # -- hooks ---------------------------------------------------------------------------------
    def observe_batch(self, model: str, n_requests: int, n_prompts: int, seconds: float) -> None:
        self.batch_prompts.labels(model).observe(n_prompts)
        self.batch_seconds.labels(model).observe(seconds)

    def observe_prediction(self, model: str, endpoint: str, label: str | None) -> None:
        self.predictions.labels(model, endpoint).inc()
        if label is not None:
            self.labels.labels(model, label).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    @property
    def middleware_class(self):
        """For `app.add_middleware(metrics.middleware_class, metrics=metrics)`."""
        return MetricsMiddleware


class _Gauges:
    """Values read when Prometheus scrapes: queue depths, loaded models, the prediction log's writer."""

    def __init__(self, metrics: ServerMetrics):
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        snap = self.metrics.snapshot() if self.metrics.snapshot else {}
        queued = GaugeMetricFamily("tunelab_queue_prompts", "Prompts waiting for a forward pass.", labels=["model"])
        for model, n in sorted((snap.get("queued") or {}).items()):
            queued.add_metric([model], n)
        yield queued
        yield GaugeMetricFamily("tunelab_loaded_models", "Models warm in memory.", value=snap.get("loaded_models", 0))
        writer = snap.get("log")
        depth = GaugeMetricFamily("tunelab_prediction_log_queue_rows", "Prediction log rows waiting to be written.",
                                  value=writer.depth if writer is not None else 0)
        yield depth
        rows = CounterMetricFamily("tunelab_prediction_log_rows", "Prediction log rows by outcome.",
                                   labels=["outcome"])
        if writer is not None:
            for outcome in ("written", "dropped", "failed"):
                rows.add_metric([outcome], getattr(writer.stats, outcome))
        yield rows


def route_template(scope: Scope) -> str:
    """The matched route's path template, with the /v1 prefix its router was included under."""
    template = getattr(scope.get("route"), "path", None)
    if not template:
        return "unmatched"
    path = scope.get("path", "")
    if path.startswith("/v1/") and not template.startswith("/v1/"):
        template = "/v1" + template
    return template


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (/v1/files/{file_id}, not the id),
    so the number of series stays bounded; unmatched paths count as "unmatched"."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(scope)
            m = self.metrics
            method = scope.get("method", "")
            m.requests.labels(method if method in KNOWN_METHODS else "other", route, str(status)).inc()
            m.latency.labels(route).observe(time.perf_counter() - started)
            if status >= 400:
                m.errors.labels(route, str(status)).inc()
